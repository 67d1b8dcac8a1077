"""``webhooks.delivery: dispatcher``: the flow writes deliveries to the outbox and sends
nothing; ``salvage dispatch run`` processes send them. Against a real local HTTP receiver,
the retry queue in memory and in a real redis-server, and the command run as a process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from flows.connectors.webhooks import DeliveryResult, Dispatcher
from flows.dispatching import DispatchProcess
from flows.settings import Settings, SettingsError, WebhookDelivery, load_settings
from operators.signature import verify
from state.redis_retry import RedisRetryQueue
from state.redis_store import RedisDispatchLedger
from state.retry import InMemoryRetryQueue, RetryItem
from tests.flows.webhook_rig import SECRET, QueueFactory, Receiver, intervention, webhooks

REPO = Path(__file__).resolve().parents[2]
SALVAGE = [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())"]


class CountingQueue(InMemoryRetryQueue):
    """An in-memory outbox that counts the calls that write it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def park(self, item: RetryItem) -> None:
        self.writes.append(1)
        super().park(item)

    def park_many(self, items: Sequence[RetryItem]) -> None:
        self.writes.append(len(items))
        for item in items:
            InMemoryRetryQueue.park(self, item)


def writer(url: str, queue: Any, ledger: Any, **kw: Any) -> tuple[Dispatcher, list[Any]]:
    """The flow's side: claims, checks, parks; no secrets."""
    results: list[DeliveryResult] = []
    dead: list[dict[str, Any]] = []
    d = Dispatcher(
        webhooks(url), {}, ledger, dead.append, on_result=results.append, retries=queue,
        retry_poll_seconds=0.02, sends=False, **kw,
    )  # fmt: skip
    return d, [results, dead]


def sender(url: str, queue: Any, ledger: Any) -> Dispatcher:
    """A dispatcher process's side, its retry loop run by the test (``retry_due``)."""
    return Dispatcher(webhooks(url), {"hook": SECRET}, ledger, lambda r: None, retries=queue)


def test_the_flow_parks_a_batch_in_one_write_and_a_dispatcher_sends_each_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    from state.dispatch import InMemoryDispatchLedger

    receiver.healthy.set()
    queue, ledger = CountingQueue(), InMemoryDispatchLedger()
    flow, (results, _) = writer(receiver.url, queue, ledger)
    unrouted = {**intervention(9), "action": "exchange_first_offer"}
    batch = [intervention(i) for i in range(1, 6)] + [intervention(3), unrouted]
    assert flow.submit_many(batch) == [None] * 7
    time.sleep(0.1)  # a retry loop, had the writer started one, would have sent by now
    assert receiver.hits == []  # the flow sent nothing
    assert queue.writes == [5]  # one write for the batch; the repeated id is not parked twice
    assert sorted((r.intervention_id, r.status) for r in results) == sorted(
        [(f"iv-{i}", "queued") for i in range(1, 6)]
        + [("iv-3", "skipped_duplicate"), ("iv-9", "unrouted")]
    )
    assert [ledger.status(f"iv-{i}") for i in range(1, 6)] == ["claimed"] * 5
    # Re-emitted after a resume of the flow: its claims stand, nothing is parked again.
    assert flow.submit_many([intervention(2)]) == [None] and queue.writes == [5]
    flow.close()

    d = sender(receiver.url, queue, ledger)
    with caplog.at_level(logging.INFO, logger="salvage.dispatch"):
        sent = d.retry_due()
    d.close()
    assert sorted((r.intervention_id, r.status) for r in sent) == [
        (f"iv-{i}", "delivered") for i in range(1, 6)
    ]
    for i in range(1, 6):
        assert receiver.statuses(f"iv-{i}") == [200] and ledger.status(f"iv-{i}") == "delivered"
    for headers, body, _ in receiver.hits:
        assert headers["X-Salvage-Attempt"] == "1"  # never sent before: a first attempt
        assert verify(SECRET, body, headers["X-Salvage-Signature"])
    assert queue.pending() == 0
    assert "re-sending" not in caplog.text


def test_what_breaks_the_caps_is_dead_lettered_by_the_flow_not_parked(
    receiver: Receiver, stores: QueueFactory
) -> None:
    queue, ledger = stores()
    refused = {"iv-2": "contact limit: 2 contacts already"}
    flow, (results, dead) = writer(
        receiver.url, queue, ledger, guard=lambda iv: refused.get(iv["intervention_id"])
    )
    flow.submit_many([intervention(1), intervention(2)])
    flow.close()
    assert sorted((r.intervention_id, r.status) for r in results) == [
        ("iv-1", "queued"),
        ("iv-2", "blocked"),
    ]
    assert [d["event_id"] for d in dead] == ["iv-2"] and "caps" in dead[0]["reason"]
    assert ledger.status("iv-2") == "blocked" and queue.pending() == 1
    receiver.healthy.set()
    d = sender(receiver.url, queue, ledger)
    assert [r.intervention_id for r in d.retry_due()] == ["iv-1"]
    d.close()
    assert receiver.statuses("iv-2") == []


def test_a_writer_needs_an_outbox_and_never_signs(receiver: Receiver) -> None:
    from state.dispatch import InMemoryDispatchLedger

    with pytest.raises(ValueError, match="needs a retry queue"):
        Dispatcher(webhooks(receiver.url), {}, InMemoryDispatchLedger(), print, sends=False)
    flow, _ = writer(receiver.url, InMemoryRetryQueue(), InMemoryDispatchLedger())
    with pytest.raises(RuntimeError, match="sends nothing"):
        flow.deliver_now(intervention(1))
    flow.close()
    assert receiver.hits == []


# --- settings ------------------------------------------------------------------------------


def test_delivery_is_read_from_its_closed_vocabulary() -> None:
    env = {"SALVAGE_REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert load_settings(env=env).webhooks.delivery is WebhookDelivery.FLOW
    s = load_settings(env={**env, "SALVAGE_WEBHOOKS__DELIVERY": "dispatcher"})
    assert s.webhooks.delivery is WebhookDelivery.DISPATCHER and not s.webhooks.sent_by_flow
    assert s.effective()["webhooks"]["delivery"] == "dispatcher"
    with pytest.raises(SettingsError, match=r"webhooks.delivery: must be one of \['flow', "):
        load_settings(env={**env, "SALVAGE_WEBHOOKS__DELIVERY": "threads"})
    with pytest.raises(SettingsError, match=r"dispatcher needs redis\.url"):
        load_settings(env={"SALVAGE_WEBHOOKS__DELIVERY": "dispatcher"})


def test_only_the_process_that_signs_needs_the_secrets(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(
        """
redis: {url: "redis://127.0.0.1:6379/0"}
webhooks:
  endpoints: {hook: {url: "http://127.0.0.1:9/hook", secret_env: OUTBOX_TEST_SECRET}}
  routes: {"*": hook}
"""
    )
    flow_sends = load_settings(config, env={})
    with pytest.raises(SettingsError, match="OUTBOX_TEST_SECRET is not set"):
        flow_sends.check_secrets(env={})
    outbox = load_settings(config, env={"SALVAGE_WEBHOOKS__DELIVERY": "dispatcher"})
    outbox.check_secrets(env={})  # the flow writes the outbox: no secret needed
    with pytest.raises(SettingsError, match="OUTBOX_TEST_SECRET is not set"):
        outbox.webhook_secrets(env={})  # what `salvage dispatch run` asks for
    assert outbox.webhook_secrets(env={"OUTBOX_TEST_SECRET": "s"}) == {"hook": "s"}


def test_a_lease_shorter_than_an_attempt_is_refused() -> None:
    from state.dispatch import InMemoryDispatchLedger

    settings = Settings(webhooks=webhooks("http://127.0.0.1:9/hook"))  # timeout 2 s
    with pytest.raises(ValueError, match=r"lease \(2 s\) must be longer"):
        DispatchProcess(
            settings, InMemoryDispatchLedger(), InMemoryRetryQueue(), print, {"hook": SECRET},
            lease_seconds=2.0,
        )  # fmt: skip


def test_a_dispatch_process_sends_what_waits_and_stops_when_idle(
    receiver: Receiver, stores: QueueFactory
) -> None:
    receiver.healthy.set()
    queue, ledger = stores()
    flow, _ = writer(receiver.url, queue, ledger)
    flow.submit_many([intervention(i) for i in range(1, 21)])
    flow.close()
    process = DispatchProcess(
        Settings(webhooks=webhooks(receiver.url)), ledger, queue, print, {"hook": SECRET},
        poll_seconds=0.01, exit_when_idle=0.3,
    )  # fmt: skip
    results = process.run()
    assert results == {"delivered": 20}
    assert all(receiver.statuses(f"iv-{i}") == [200] for i in range(1, 21))
    assert queue.pending() == 0


# --- the command, as a process -------------------------------------------------------------


def _config(tmp_path: Path, url: str, prefix: str) -> Path:
    config = tmp_path / "salvage.yaml"
    config.write_text(
        f"""
redis: {{prefix: {prefix}}}
webhooks:
  delivery: dispatcher
  endpoints:
    hook: {{url: "{url}", secret_env: OUTBOX_TEST_SECRET, timeout_seconds: 2}}
  routes: {{proactive_reassurance: hook}}
metrics_port: 0
"""
    )
    return config


@pytest.mark.services
def test_salvage_dispatch_run_sends_the_outbox_and_stops_on_sigterm(
    receiver: Receiver, redis_url: str, tmp_path: Path
) -> None:
    receiver.healthy.set()
    prefix = f"outbox-{os.getpid()}-{time.monotonic_ns()}"
    client = redis.Redis.from_url(redis_url)
    queue, ledger = RedisRetryQueue(client, prefix), RedisDispatchLedger(client, prefix)
    flow, _ = writer(receiver.url, queue, ledger)
    flow.submit_many([intervention(i) for i in range(1, 31)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALVAGE_")}
    env.update(
        SALVAGE_CONFIG=str(_config(tmp_path, receiver.url, prefix)),
        SALVAGE_REDIS_URL=redis_url,
        OUTBOX_TEST_SECRET=SECRET,
        PYTHONPATH=str(REPO),
    )
    log = tmp_path / "dispatch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*SALVAGE, "dispatch", "run"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ledger.status("iv-30") != "delivered":
            time.sleep(0.05)
        # Written while the process runs: taken within its poll, not at its next start.
        flow.submit_many([intervention(31)])
        while time.monotonic() < deadline and ledger.status("iv-31") != "delivered":
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        flow.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "dispatcher stopped: 31 delivered" in text, text
    assert SECRET not in text
    for i in range(1, 32):
        assert receiver.statuses(f"iv-{i}") == [200], i
        assert ledger.status(f"iv-{i}") == "delivered"
    assert queue.pending() == 0
    client.close()


def test_salvage_dispatch_run_refuses_what_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    config = _config(tmp_path, "http://127.0.0.1:9/hook", "x")
    env_before = dict(os.environ)
    try:
        os.environ.pop("OUTBOX_TEST_SECRET", None)
        os.environ["SALVAGE_REDIS_URL"] = "redis://127.0.0.1:1/0"
        assert main(["dispatch", "run", "--config", str(config)]) == 2  # no secret
        os.environ["OUTBOX_TEST_SECRET"] = "s"
        assert main(["dispatch", "run", "--config", str(config), "--lease-seconds", "1"]) == 2
        assert main(["dispatch", "run", "--config", str(config), "--poll-seconds", "0"]) == 2
        with socket.socket() as taken:  # the flow's metrics port, say
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            assert main(["dispatch", "run", "--config", str(config), "--metrics-port", port]) == 2
        assert f"metrics port {port}: Address already in use" in capsys.readouterr().err
    finally:
        os.environ.clear()
        os.environ.update(env_before)
