"""The webhook dispatcher against a real local HTTP server (no mocks of the network)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from flows.connectors.webhooks import DeliveryResult, Dispatcher, backoff_delay, webhook_body
from flows.settings import EndpointSettings, WebhookSettings
from operators.signature import verify
from state.dispatch import InMemoryDispatchLedger
from tests.fixtures.processes import free_port

SECRET = "dispatch-test-secret"


@dataclass
class Server:
    """Answers by ``plan(attempt_of_this_key) -> status`` (0: stall past the timeout)."""

    plan: Callable[[int], int]
    stall: float = 0.6
    hold: threading.Event | None = None  # when set, requests wait for it
    hits: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    max_active: int = 0
    url: str = ""

    def statuses(self, key: str) -> list[int]:
        with self.lock:
            return [s for h, _, s in self.hits if h.get("Idempotency-Key") == key]


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    started: list[ThreadingHTTPServer] = []

    def make(plan: Callable[[int], int], **kw: Any) -> Server:
        state = Server(plan, **kw)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key", "")
                with state.lock:
                    state.active += 1
                    state.max_active = max(state.max_active, state.active)
                    attempt = 1 + sum(
                        1 for h, _, _ in state.hits if h.get("Idempotency-Key") == key
                    )
                    status = state.plan(attempt)
                    state.hits.append((dict(self.headers), raw, status))
                try:
                    if state.hold is not None:
                        state.hold.wait(10)
                    if status == 0:
                        time.sleep(state.stall)
                        status = 200
                finally:
                    # Before the answer: once it is sent the client may start its next
                    # request, which must not find this one still counted (on a loaded
                    # machine this thread can resume after that request has arrived).
                    with state.lock:
                        state.active -= 1
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        return state

    yield make
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def settings(url: str, **endpoint: Any) -> WebhookSettings:
    ep = EndpointSettings(
        name="hook",
        url=url,
        secret_env="UNUSED",
        timeout_seconds=endpoint.pop("timeout_seconds", 0.3),
        max_attempts=endpoint.pop("max_attempts", 4),
        backoff_base_seconds=endpoint.pop("backoff_base_seconds", 0.01),
        backoff_max_seconds=endpoint.pop("backoff_max_seconds", 0.05),
        **endpoint,
    )
    return WebhookSettings(endpoints={"hook": ep}, routes={"proactive_reassurance": "hook"})


@dataclass
class Harness:
    dispatcher: Dispatcher
    ledger: InMemoryDispatchLedger
    dead: list[dict[str, Any]]
    results: list[DeliveryResult]


def harness(webhooks: WebhookSettings, ledger: InMemoryDispatchLedger | None = None) -> Harness:
    led = ledger or InMemoryDispatchLedger()
    dead: list[dict[str, Any]] = []
    results: list[DeliveryResult] = []
    d = Dispatcher(
        webhooks, {"hook": SECRET}, led, dead.append, rng=random.Random(7), on_result=results.append
    )
    return Harness(d, led, dead, results)


def intervention(i: int = 1, action: str = "proactive_reassurance") -> dict[str, Any]:
    return {
        "intervention_id": f"iv-{i}",
        "order_id": f"o-{i}",
        "customer_id": f"c-{i}",
        "action": action,
        "automated": True,
        "decided_at": "2026-06-01T10:00:00Z",
        "reasons": ["P(refund)=0.40"],
        "message": {
            "channel": "email",
            "template": action,
            "text": f"Your order o-{i} is on its way.",
            "send_after": "2026-06-01T08:00:00Z",
        },
    }


def test_delivery_is_signed_with_idempotency_and_contract_headers(server_factory) -> None:
    srv = server_factory(lambda attempt: 200)
    h = harness(settings(srv.url, headers={"X-Team": "care"}))
    result = h.dispatcher.deliver_now(intervention())
    assert (result.status, result.attempts, result.http_status) == ("delivered", 1, 200)
    headers, body, _ = srv.hits[0]
    assert verify(SECRET, body, headers["X-Salvage-Signature"])
    assert headers["Idempotency-Key"] == "iv-1"
    assert headers["X-Salvage-Event"] == "intervention"
    assert headers["X-Salvage-Contract-Version"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "care"
    payload = orjson.loads(body)
    assert payload["text"] == "Your order o-1 is on its way."
    assert payload["send_after"] == "2026-06-01T08:00:00Z"  # delivered now, receiver schedules
    assert payload["intervention"]["intervention_id"] == "iv-1"
    assert h.ledger.status("iv-1") == "delivered"
    h.dispatcher.close()


def test_retries_500_and_timeouts_then_succeeds(server_factory) -> None:
    srv = server_factory(lambda attempt: {1: 500, 2: 0, 3: 503}.get(attempt, 200))
    h = harness(settings(srv.url))
    result = h.dispatcher.deliver_now(intervention())
    assert result.status == "delivered"
    assert srv.statuses("iv-1") == [500, 0, 503, 200]
    assert [orjson.loads(b)["intervention_id"] for _, b, _ in srv.hits] == ["iv-1"] * 4
    attempts = [h_["X-Salvage-Attempt"] for h_, _, _ in srv.hits]
    assert attempts == ["1", "2", "3", "4"]
    assert h.dead == []
    h.dispatcher.close()


def test_dead_letter_after_the_last_attempt(server_factory) -> None:
    srv = server_factory(lambda attempt: 500)
    h = harness(settings(srv.url, max_attempts=3))
    result = h.dispatcher.deliver_now(intervention())
    assert (result.status, result.attempts) == ("dead_letter", 3)
    assert len(srv.hits) == 3
    [record] = h.dead
    assert record["stream"] == "dispatch"
    assert record["event_id"] == "iv-1" and record["order_id"] == "o-1"
    assert record["reason"] == "webhook hook: HTTP 500 after 3 attempts"
    assert h.ledger.status("iv-1") == "dead_letter"
    # A dead-lettered intervention is not tried again when it is re-emitted.
    assert h.dispatcher.deliver_now(intervention()).status == "skipped_duplicate"
    assert len(srv.hits) == 3
    h.dispatcher.close()


@pytest.mark.parametrize(("status", "retried"), [(400, False), (404, False), (429, True)])
def test_4xx_are_final_except_408_and_429(server_factory, status: int, retried: bool) -> None:
    srv = server_factory(lambda attempt: status if attempt == 1 else 200)
    h = harness(settings(srv.url))
    result = h.dispatcher.deliver_now(intervention())
    if retried:
        assert result.status == "delivered" and len(srv.hits) == 2
    else:
        assert result.status == "dead_letter" and len(srv.hits) == 1
        assert h.dead[0]["reason"] == f"webhook hook: HTTP {status} (not retried)"
    h.dispatcher.close()


def test_connection_errors_are_retried_then_dead_lettered() -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    h = harness(settings(url, max_attempts=2))
    result = h.dispatcher.deliver_now(intervention())
    assert (result.status, result.attempts) == ("dead_letter", 2)
    assert "connection error" in h.dead[0]["reason"]
    h.dispatcher.close()


def test_each_intervention_is_sent_once(server_factory) -> None:
    srv = server_factory(lambda attempt: 200)
    h = harness(settings(srv.url))
    futures = [h.dispatcher.submit(intervention(i)) for i in (1, 2, 1, 3, 2)]
    assert [f is None for f in futures] == [False, False, True, False, True]
    for f in futures:
        if f is not None:
            f.result(5)
    assert sorted(hh["Idempotency-Key"] for hh, _, _ in srv.hits) == ["iv-1", "iv-2", "iv-3"]
    skipped = [r.intervention_id for r in h.results if r.status == "skipped_duplicate"]
    assert skipped == ["iv-1", "iv-2"]
    h.dispatcher.close()


class BatchLedger(InMemoryDispatchLedger):
    """A ledger that claims a batch in one call (as Redis does in one pipeline)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def claim(self, intervention_id: str, ttl_seconds: int) -> bool:
        self.calls.append("claim")
        return super().claim(intervention_id, ttl_seconds)

    def claim_many(self, intervention_ids: list[str], ttl_seconds: int) -> list[bool]:
        self.calls.append("claim_many")
        return [super(BatchLedger, self).claim(i, ttl_seconds) for i in intervention_ids]


def test_a_batch_is_claimed_in_one_call_and_sent_like_one_by_one(server_factory) -> None:
    srv = server_factory(lambda attempt: 200)
    ledger = BatchLedger()
    assert super(BatchLedger, ledger).claim("iv-4", 3600)  # an earlier run died after this
    assert super(BatchLedger, ledger).claim("iv-5", 3600)
    super(BatchLedger, ledger).mark_delivered("iv-5", "delivered", 3600)  # ... and this one went
    h = harness(settings(srv.url), ledger)
    batch = [intervention(i) for i in (1, 2, 1, 3, 2, 4, 5)]
    batch.insert(3, intervention(6, action="product_guidance"))  # unrouted
    futures = h.dispatcher.submit_many(batch)
    assert [f is None for f in futures] == [False, False, True, True, False, True, False, True]
    assert ledger.calls == ["claim_many"]
    for f in futures:
        if f is not None:
            f.result(5)
    sent = sorted(hh["Idempotency-Key"] for hh, _, _ in srv.hits)
    assert sent == ["iv-1", "iv-2", "iv-3", "iv-4"]
    statuses = {r.intervention_id: r.status for r in h.results if r.status != "delivered"}
    assert statuses == {
        "iv-1": "skipped_duplicate", "iv-2": "skipped_duplicate", "iv-6": "unrouted",
        "iv-5": "skipped_duplicate",
    }  # fmt: skip
    assert ledger.status("iv-6") is None
    h.dispatcher.close()


class CountingBook:
    """A contact book that counts its calls (in memory underneath)."""

    def __init__(self) -> None:
        from state.contacts import InMemoryContactBook

        self.book = InMemoryContactBook()
        self.calls: list[str] = []

    def admit(self, order_id: str, contact_id: str, limit: int, ttl_seconds: int) -> bool:
        self.calls.append("admit")
        return self.book.admit(order_id, contact_id, limit, ttl_seconds)

    def admit_many(
        self, contacts: list[tuple[str, str]], limit: int, ttl_seconds: int
    ) -> list[bool]:
        self.calls.append("admit_many")
        return self.book.admit_many(contacts, limit, ttl_seconds)

    def count(self, order_id: str) -> int:
        return self.book.count(order_id)


def test_a_batch_is_checked_against_the_caps_in_one_call_like_one_by_one(server_factory) -> None:
    """The guard's contact admissions of a batch go to the book in one call, only for the
    interventions this dispatcher claimed (a stale claim re-sent included), and block,
    dead-letter and send exactly what one-by-one submission does."""
    from operators.caps import DispatchCaps
    from operators.credit import InMemoryCreditLedger
    from operators.policy import RecoveryPolicy

    def run(batched: bool) -> tuple[list[str], list[tuple[str, str]], list[str], list[str]]:
        srv = server_factory(lambda attempt: 200)
        ledger = BatchLedger()
        assert super(BatchLedger, ledger).claim("iv-4", 3600)  # an earlier run died here
        h = harness(settings(srv.url), ledger)
        book = CountingBook()
        h.dispatcher.guard = DispatchCaps(RecoveryPolicy.default(), InMemoryCreditLedger(), book)
        batch = [{**intervention(i), "order_id": "o-1"} for i in (1, 2, 1, 3, 4)]
        batch.insert(2, {**intervention(5), "order_id": "o-2"})
        if batched:
            futures = h.dispatcher.submit_many(batch)
        else:
            futures = [h.dispatcher.submit(iv) for iv in batch]
        for f in futures:
            if f is not None:
                f.result(5)
        sent = sorted(hh["Idempotency-Key"] for hh, _, _ in srv.hits)
        statuses = sorted((r.intervention_id, r.status) for r in h.results)
        dead = [d["event_id"] for d in h.dead]
        h.dispatcher.close()
        return sent, statuses, dead, book.calls

    sent, statuses, dead, calls = run(batched=True)
    assert sent == ["iv-1", "iv-2", "iv-5"]
    assert statuses == [
        ("iv-1", "delivered"), ("iv-1", "skipped_duplicate"), ("iv-2", "delivered"),
        ("iv-3", "blocked"), ("iv-4", "blocked"), ("iv-5", "delivered"),
    ]  # fmt: skip
    assert dead == ["iv-3", "iv-4"]
    assert calls == ["admit_many"]
    one_by_one = run(batched=False)
    assert one_by_one[:3] == (sent, statuses, dead)
    assert one_by_one[3] == ["admit_many"] * 5  # one call per claimed intervention


def test_a_new_run_does_not_resend_what_an_earlier_run_delivered(server_factory) -> None:
    srv = server_factory(lambda attempt: 200)
    ledger = InMemoryDispatchLedger()  # shared like Redis is between runs
    first = harness(settings(srv.url), ledger)
    first.dispatcher.deliver_now(intervention(1))
    first.dispatcher.close()
    # The earlier run died after claiming iv-2 but before delivering it.
    assert ledger.claim("iv-2", 3600)
    second = harness(settings(srv.url), ledger)
    assert second.dispatcher.deliver_now(intervention(1)).status == "skipped_duplicate"
    assert second.dispatcher.deliver_now(intervention(2)).status == "delivered"
    assert [hh["Idempotency-Key"] for hh, _, _ in srv.hits] == ["iv-1", "iv-2"]
    second.dispatcher.close()


def test_unrouted_actions_are_not_sent_or_claimed(server_factory) -> None:
    srv = server_factory(lambda attempt: 200)
    h = harness(settings(srv.url))
    assert h.dispatcher.submit(intervention(1, action="product_guidance")) is None
    assert h.results[0].status == "unrouted"
    assert h.ledger.status("iv-1") is None and srv.hits == []
    h.dispatcher.close()


def test_in_flight_requests_are_bounded(server_factory) -> None:
    hold = threading.Event()
    srv = server_factory(lambda attempt: 200, hold=hold)
    h = harness(settings(srv.url, max_in_flight=2, timeout_seconds=5))
    submitted: list[int] = []

    def submit_all() -> None:
        for i in range(6):
            h.dispatcher.submit(intervention(i))
            submitted.append(i)

    feeder = threading.Thread(target=submit_all)
    feeder.start()
    deadline = time.monotonic() + 5
    while srv.active < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert srv.active == 2
    assert len(submitted) == 2  # the third submit waits for a free slot (backpressure)
    hold.set()
    feeder.join(10)
    deadline = time.monotonic() + 5
    while h.dispatcher.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(srv.hits) == 6 and srv.max_active == 2
    h.dispatcher.close()


def test_close_gives_back_the_claims_of_pending_retries(server_factory) -> None:
    srv = server_factory(lambda attempt: 500)
    h = harness(settings(srv.url, max_attempts=5, backoff_base_seconds=5, backoff_max_seconds=5))
    # Full jitter can draw a delay near 0; this seed draws a long first delay.
    h.dispatcher.rng = random.Random(3)
    assert backoff_delay(1, 5, 5, random.Random(3)) > 1
    future = h.dispatcher.submit(intervention())
    deadline = time.monotonic() + 5
    while not srv.hits and time.monotonic() < deadline:
        time.sleep(0.01)
    h.dispatcher.close(grace_seconds=5)
    assert future.result(5).status == "abandoned"
    assert h.ledger.status("iv-1") is None  # the next run delivers it
    assert h.dead == []


def test_backoff_is_exponential_with_full_jitter() -> None:
    rng = random.Random(42)
    draws = {a: [backoff_delay(a, 0.5, 8.0, rng) for _ in range(2000)] for a in (1, 2, 3, 6)}
    for attempt, values in draws.items():
        cap = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert min(values) >= 0 and max(values) <= cap
        assert abs(sum(values) / len(values) - cap / 2) < cap * 0.05  # uniform on [0, cap]
    same = [backoff_delay(3, 0.5, 8.0, random.Random(1)) for _ in range(3)]
    assert len(set(same)) == 1  # a seeded RNG makes it reproducible


def test_body_holds_no_more_than_the_intervention() -> None:
    payload = orjson.loads(webhook_body(intervention()))
    assert set(payload) == {
        "type", "contract_version", "intervention_id", "order_id", "action", "automated",
        "text", "send_after", "intervention",
    }  # fmt: skip


def test_logs_carry_no_customer_data(server_factory, caplog) -> None:
    srv = server_factory(lambda attempt: 500)
    h = harness(settings(srv.url, max_attempts=2))
    with caplog.at_level("DEBUG"):
        h.dispatcher.deliver_now(intervention(5))
    text = caplog.text
    assert "iv-5" in text
    assert "c-5" not in text and "on its way" not in text
    h.dispatcher.close()


def test_interventions_breaking_the_caps_are_dead_lettered_not_sent(server_factory) -> None:
    """The guard (operators.caps.DispatchCaps) runs after the claim: a third contact for
    one order (a decision re-made differently after a restart) is never sent, and a
    re-emission of a sent one is still a duplicate, not a new contact."""
    from operators.caps import DispatchCaps
    from operators.credit import InMemoryCreditLedger
    from operators.policy import RecoveryPolicy
    from state.contacts import InMemoryContactBook

    srv = server_factory(lambda attempt: 200)
    h = harness(settings(srv.url))
    guard = DispatchCaps(RecoveryPolicy.default(), InMemoryCreditLedger(), InMemoryContactBook())
    h.dispatcher.guard = guard
    same_order = [{**intervention(i), "order_id": "o-1"} for i in (1, 2, 3)]
    results = [h.dispatcher.deliver_now(iv).status for iv in same_order]
    assert results == ["delivered", "delivered", "blocked"]
    assert sorted(srv.statuses(k)[0] for k in ("iv-1", "iv-2")) == [200, 200]
    assert srv.statuses("iv-3") == []
    [record] = h.dead
    assert record["event_id"] == "iv-3"
    assert record["reason"] == (
        "webhook hook: not sent, breaks the policy caps: contact limit: the order already "
        "had 2 contacts (max_contacts_per_order=2)"
    )
    assert h.ledger.status("iv-3") == "blocked"
    assert h.dispatcher.deliver_now(same_order[0]).status == "skipped_duplicate"
    assert guard.contacts.count("o-1") == 2
    h.dispatcher.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed_and_count_as_failed(server_factory, status: int) -> None:
    """A redirect would carry the signature and Authorization to another host, and that
    host's 200 would count as delivered."""
    elsewhere = server_factory(lambda attempt: 200)

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Location", elsewhere.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        h = harness(settings(url, headers={"Authorization": "Bearer t0ken"}))
        result = h.dispatcher.deliver_now(intervention(1))
        assert (result.status, result.http_status) == ("dead_letter", status)
        assert "not followed" in (result.error or "")
        assert elsewhere.hits == []  # nothing reached the redirect target
        assert [d["kind"] for d in h.dead] == ["dispatch_failed"]
        assert h.ledger.status("iv-1") == "dead_letter"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_dispatch_dead_letters_keep_ids_not_message_text(server_factory) -> None:
    server = server_factory(lambda attempt: 400)
    h = harness(settings(server.url))
    h.dispatcher.deliver_now(intervention(1))
    (dead,) = h.dead
    assert "on its way" not in dead["raw"] and "c-1" not in dead["raw"]
    assert orjson.loads(dead["raw"])["intervention_id"] == "iv-1"
    assert dead["payload_sha256"].startswith("sha256:")
