"""The webhook rig the retry and outbox tests share: a real local HTTP receiver that
answers 500 until told otherwise, endpoint settings, interventions, and the retry queue
and dispatch ledger in memory and in a real redis-server (``stores``). The fixtures are
registered for ``tests/flows`` by its ``conftest.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from flows.settings import EndpointSettings, WebhookSettings
from state.dispatch import InMemoryDispatchLedger
from state.redis_retry import RedisRetryQueue
from state.redis_store import RedisDispatchLedger
from state.retry import InMemoryRetryQueue, RetryQueue
from tests.fixtures.processes import free_port

SECRET = "retry-test-secret"
T0 = 1_780_000_000.0


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class Receiver:
    """Answers 500 until ``healthy`` is set, then 200; records every request."""

    healthy: threading.Event = field(default_factory=threading.Event)
    #: Cleared: requests wait before they are answered (a saturated endpoint).
    answering: threading.Event = field(default_factory=lambda: _set(threading.Event()))
    hits: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def statuses(self, key: str) -> list[int]:
        with self.lock:
            return [s for h, _, s in self.hits if h.get("Idempotency-Key") == key]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.answering.wait(30)
            status = 200 if state.healthy.is_set() else 500
            with state.lock:
                state.hits.append((dict(self.headers), raw, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    try:
        yield state
    finally:
        state.answering.set()
        httpd.shutdown()
        httpd.server_close()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def webhooks(url: str, **kw: Any) -> WebhookSettings:
    ep = EndpointSettings(
        name="hook",
        url=url,
        secret_env="UNUSED",
        timeout_seconds=2.0,
        max_attempts=kw.pop("max_attempts", 3),
        backoff_base_seconds=0.001,
        backoff_max_seconds=0.005,
        retry_hours=kw.pop("retry_hours", 6.0),
        retry_base_seconds=kw.pop("retry_base_seconds", 60.0),
        retry_max_seconds=kw.pop("retry_max_seconds", 1800.0),
        max_in_flight=kw.pop("max_in_flight", 8),
    )
    return WebhookSettings(endpoints={"hook": ep}, routes={"proactive_reassurance": "hook"})


def intervention(i: int = 1) -> dict[str, Any]:
    return {
        "intervention_id": f"iv-{i}",
        "order_id": f"o-{i}",
        "customer_id": f"c-{i}",
        "action": "proactive_reassurance",
        "automated": True,
        "decided_at": "2026-06-01T10:00:00Z",
        "message": {"channel": "email", "text": f"Order o-{i} is on its way.", "send_after": None},
    }


QueueFactory = Callable[[], tuple[RetryQueue, Any]]


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest) -> Iterator[QueueFactory]:
    if request.param == "memory":
        queue, ledger = InMemoryRetryQueue(), InMemoryDispatchLedger()
        yield lambda: (queue, ledger)
        return
    yield request.getfixturevalue("redis_stores")


@pytest.fixture
def redis_stores(redis_url: str) -> Iterator[QueueFactory]:
    """A new Redis client's retry queue and ledger per call, as a process restarted on the
    same Redis has; all closed at the end."""
    clients: list[redis.Redis] = []

    def make() -> tuple[RetryQueue, Any]:
        clients.append(redis.Redis.from_url(redis_url))
        return RedisRetryQueue(clients[-1], "retry-test"), RedisDispatchLedger(
            clients[-1], "retry-test"
        )

    yield make
    for c in clients:
        c.close()
