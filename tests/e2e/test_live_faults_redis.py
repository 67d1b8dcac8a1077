"""Redis as a durable store that may blip (issue #11), against a real ``redis-server``
started here on a fixed port so it can be stopped and started again:

- with AOF (``--appendonly yes --appendfsync everysec``, what docs/live.md now gives), the
  dispatch ledger, the decision memo and the credit ledger survive a Redis restart; with
  the flags the docs used to give (``--save "" --appendonly no``) they are gone, which is
  how 14 webhooks were sent again;
- a command issued while Redis is down waits (bounded retries with backoff) and completes
  when Redis is back, the outage is logged (start, recovery) and counted; with Redis down
  for longer than the patience, the command fails instead of waiting forever.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from operators.memo import MemoEntry
from state.redis_conn import HEALTH, connect
from state.redis_credit import RedisCreditLedger
from state.redis_memo import RedisDecisionMemo
from state.redis_store import RedisDispatchLedger
from tests.fixtures.processes import free_port, missing_service, stop_process
from tests.fixtures.redis_server import _ping

pytestmark = [pytest.mark.services]

AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]
NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]
T0 = 1_780_000_000.0


class RestartableRedis:
    """A redis-server on a fixed port and data directory, stopped with SIGTERM (a clean
    shutdown, as a supervisor or ``redis-cli shutdown`` does) and started again."""

    def __init__(self, workdir: Path, persistence: list[str]) -> None:
        self.workdir = workdir
        self.persistence = persistence
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server not found on PATH", "install redis-server")
        assert binary is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--logfile", str(self.workdir / "redis.log"), *self.persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert _ping(self.port, self.proc, 10.0), (self.workdir / "redis.log").read_text()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Any]:
    servers: list[RestartableRedis] = []

    def make(persistence: list[str]) -> RestartableRedis:
        server = RestartableRedis(tmp_path / f"redis-{len(servers)}", persistence)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def _write_state(url: str) -> None:
    client = connect(url)
    try:
        ledger = RedisDispatchLedger(client, "aof")
        assert ledger.claim("iv-1", 3600)
        ledger.mark_delivered("iv-1", "delivered", 3600)
        entry = MemoEntry(T0, "proactive_reassurance", "treatment", 0.4, (), None)
        RedisDecisionMemo(client, "aof").remember("pt-1", entry)
        RedisCreditLedger(client, "aof").reserve("c-1", T0, 10.0, 30.0, grant_id="iv-1")
    finally:
        client.close()


def _read_state(url: str) -> tuple[str | None, Any, float]:
    client = connect(url)
    try:
        return (
            RedisDispatchLedger(client, "aof").status("iv-1"),
            RedisDecisionMemo(client, "aof").get("pt-1"),
            RedisCreditLedger(client, "aof").used("c-1", T0 + 1),
        )
    finally:
        client.close()


def test_with_aof_the_ledgers_and_the_memo_survive_a_redis_restart(make_redis: Any) -> None:
    server = make_redis(AOF)
    _write_state(server.url)
    server.stop()
    server.start()
    status, memo, credit = _read_state(server.url)
    assert status == "delivered"  # a re-emitted intervention is not sent again
    assert memo is not None and memo.action == "proactive_reassurance"
    assert credit == 10.0


def test_without_persistence_a_restart_forgets_every_delivery(make_redis: Any) -> None:
    """Why docs/live.md no longer gives ``--save "" --appendonly no`` for live mode."""
    server = make_redis(NO_PERSISTENCE)
    _write_state(server.url)
    server.stop()
    server.start()
    assert _read_state(server.url) == (None, None, 0.0)


def test_a_command_during_an_outage_waits_and_completes_when_redis_is_back(
    make_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_redis(AOF)
    client = connect(server.url, outage_seconds=60.0, socket_timeout=1.0)
    ledger = RedisDispatchLedger(client, "blip")
    assert ledger.claim("iv-before", 3600)
    outages, errors = HEALTH.outages, HEALTH.errors
    seen: list[tuple[bool, Any]] = []
    HEALTH.listen(lambda up, error: seen.append((up, error)))
    server.stop()

    result: list[Any] = []
    caller = threading.Thread(target=lambda: result.append(ledger.claim("iv-during", 3600)))
    with caplog.at_level(logging.WARNING, logger="salvage.redis"):
        caller.start()
        # Redis comes back once the caller has failed (and backed off) a few times.
        failing = threading.Event()
        HEALTH.listen(lambda up, _e: failing.set() if HEALTH.errors >= errors + 3 else None)
        assert failing.wait(30), "the command did not retry"
        assert caller.is_alive() and not result  # waiting, not failed
        assert HEALTH.up is False
        server.start()
        caller.join(60)
    assert result == [True]  # completed, nothing lost
    assert ledger.status("iv-before") == "claimed"  # and the data is still there (AOF)
    assert HEALTH.up is True
    assert HEALTH.outages == outages + 1
    assert HEALTH.errors >= errors + 3
    assert seen[-1] == (True, None) and all(not up for up, _ in seen[:-1])
    text = caplog.text
    assert "redis unreachable" in text and "redis is back after" in text
    assert "127.0.0.1" in text and "password" not in text.lower()
    client.close()


def test_past_its_patience_a_command_fails_instead_of_waiting_forever(make_redis: Any) -> None:
    server = make_redis(AOF)
    client = connect(server.url, outage_seconds=1.0, socket_timeout=0.5)
    ledger = RedisDispatchLedger(client, "down")
    assert ledger.claim("iv-0", 3600)
    server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            ledger.claim("iv-1", 3600)
    finally:
        server.start()
        assert ledger.claim("iv-2", 3600)  # and it works again once Redis is back
        client.close()
