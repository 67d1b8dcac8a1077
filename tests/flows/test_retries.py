"""Webhook retries that span an outage of hours, against a real local HTTP receiver that
answers 500 for a while (real sockets, no mocks). Time is an injected clock: the tests
move it to each parked delivery's due time and run the retry loop's step themselves, so
nothing here waits for hours, and nothing asserts on wall-clock time.

The retry queue runs in memory and in a real redis-server; ``salvage dispatch retry`` is
run as the command line runs it, against Redis.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis

from flows.connectors.webhooks import DeliveryResult, Dispatcher
from operators.case import HOUR
from operators.signature import verify
from state.redis_retry import RedisRetryQueue
from state.redis_store import RedisDispatchLedger
from state.retry import InMemoryRetryQueue, RetryItem, RetryQueue
from tests.flows.webhook_rig import (
    SECRET,
    T0,
    Clock,
    QueueFactory,
    Receiver,
    intervention,
    webhooks,
)


@dataclass
class Rig:
    dispatcher: Dispatcher
    clock: Clock
    queue: RetryQueue
    ledger: Any
    dead: list[dict[str, Any]]

    def due_times(self) -> list[float]:
        return sorted(i.due_at for i in _peek(self.queue))

    def run_until_settled(self, limit: int = 200) -> list[DeliveryResult]:
        """Move the clock to each next due time and run one retry step, until nothing is
        parked. Returns every result."""
        out: list[DeliveryResult] = []
        for _ in range(limit):
            due = self.due_times()
            if not due:
                return out
            self.clock.t = due[0]
            out.extend(self.dispatcher.retry_due())
        raise AssertionError("deliveries still parked after many steps")


def _peek(queue: RetryQueue) -> list[Any]:
    if isinstance(queue, InMemoryRetryQueue):
        return list(queue._parked.values())
    assert isinstance(queue, RedisRetryQueue)
    return [RetryItem.from_json(v) for v in queue.client.hvals(queue.items_key)]


def rig(url: str, stores: QueueFactory, clock: Clock | None = None, **kw: Any) -> Rig:
    queue, ledger = stores()
    clock = clock or Clock()
    dead: list[dict[str, Any]] = []
    d = Dispatcher(
        webhooks(url, **kw),
        {"hook": SECRET},
        ledger,
        dead.append,
        rng=random.Random(3),
        clock=clock,
        retries=queue,
    )
    return Rig(d, clock, queue, ledger, dead)


def test_a_delivery_outlasts_a_two_hour_outage(receiver: Receiver, stores: QueueFactory) -> None:
    r = rig(receiver.url, stores)
    first = r.dispatcher.deliver_now(intervention())
    assert (first.status, first.attempts) == ("retrying", 3)  # the quick attempts failed
    assert r.ledger.status("iv-1") == "retrying"
    assert r.dead == [] and r.queue.pending() == 1
    # Re-emitted after a resume while parked: not sent a second way.
    assert r.dispatcher.deliver_now(intervention()).status == "skipped_duplicate"
    times = [T0]
    while r.clock.t < T0 + 2 * HOUR:  # the receiver is down for two hours
        [due] = r.due_times()
        r.clock.t = due
        times.append(due)
        [result] = r.dispatcher.retry_due()
        assert result.status == "retrying"
    receiver.healthy.set()
    [due] = r.due_times()
    r.clock.t = due
    [result] = r.dispatcher.retry_due()
    assert result.status == "delivered"
    assert r.queue.pending() == 0 and r.ledger.status("iv-1") == "delivered"
    assert r.dead == []
    statuses = receiver.statuses("iv-1")
    assert statuses.count(200) == 1 and statuses[-1] == 200
    assert len(statuses) == result.attempts
    # Each slow retry waited half to all of its nominal delay (60 s doubling, capped at 30
    # min): the schedule is exponential with jitter, not a burst.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for n, gap in enumerate(gaps, start=1):
        nominal = min(1800.0, 60.0 * 2 ** (n - 1))
        assert 0.5 * nominal <= gap <= nominal, (n, gap)
    attempts = [int(h["X-Salvage-Attempt"]) for h, _, _ in receiver.hits]
    assert attempts == list(range(1, len(attempts) + 1))
    for headers, body, _ in receiver.hits:
        assert headers["Idempotency-Key"] == "iv-1"
        assert verify(
            SECRET, body, headers["X-Salvage-Signature"], now=r.clock.t, tolerance_seconds=3 * HOUR
        )


def test_an_outage_longer_than_the_schedule_is_dead_lettered_at_its_end_then_resent(
    receiver: Receiver, stores: QueueFactory
) -> None:
    r = rig(receiver.url, stores)
    assert r.dispatcher.deliver_now(intervention()).status == "retrying"
    results = r.run_until_settled()
    assert [x.status for x in results[:-1]] == ["retrying"] * (len(results) - 1)
    last = results[-1]
    assert last.status == "dead_letter"
    assert r.clock.t == T0 + 6 * HOUR  # the last attempt is made at the end of the 6 h
    # 60 s doubling to 30 min, half to all of each, the last at 6 h: 16 slow attempts if
    # every wait is the nominal one, 28 if every wait is half of it.
    assert 16 <= len(results) <= 28
    [record] = r.dead
    assert record["event_id"] == "iv-1"
    assert record["reason"] == f"webhook hook: HTTP 500 after {last.attempts} attempts over 6.0 h"
    assert r.ledger.status("iv-1") == "dead_letter"
    assert len(receiver.statuses("iv-1")) == last.attempts
    [buried] = r.queue.buried()
    assert buried.iid == "iv-1" and buried.reason == record["reason"].split(": ", 1)[1]
    assert buried.intervention == intervention()  # complete, for the re-send
    # Re-emitted: still not sent (the dead-letter mark holds)...
    assert r.dispatcher.deliver_now(intervention()).status == "skipped_duplicate"
    # ...until an operator re-sends it deliberately, once the receiver is back.
    receiver.healthy.set()
    again = r.dispatcher.resend("iv-1")
    assert again is not None and again.status == "delivered"
    assert r.dispatcher.resend("iv-1") is None  # not buried any more
    assert r.dispatcher.deliver_now(intervention()).status == "skipped_duplicate"
    assert receiver.statuses("iv-1").count(200) == 1
    assert r.queue.buried() == [] and r.ledger.status("iv-1") == "delivered"


def test_a_4xx_is_not_retried_and_retry_hours_zero_keeps_the_old_behaviour(
    receiver: Receiver, stores: QueueFactory
) -> None:
    r = rig(receiver.url, stores, retry_hours=0)
    result = r.dispatcher.deliver_now(intervention())
    assert (result.status, result.attempts) == ("dead_letter", 3)
    assert r.dead[0]["reason"] == "webhook hook: HTTP 500 after 3 attempts"
    assert r.queue.pending() == 0 and [b.iid for b in r.queue.buried()] == ["iv-1"]


def test_two_resends_of_one_delivery_send_it_once(receiver: Receiver, stores: QueueFactory) -> None:
    r = rig(receiver.url, stores, retry_hours=0)
    r.dispatcher.deliver_now(intervention())
    receiver.healthy.set()
    other = rig(receiver.url, stores, retry_hours=0)  # another operator, another process
    results: list[DeliveryResult | None] = []
    barrier = threading.Barrier(2)

    def resend(d: Dispatcher) -> None:
        barrier.wait()
        results.append(d.resend("iv-1"))

    threads = [threading.Thread(target=resend, args=(d,)) for d in (r.dispatcher, other.dispatcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(str(x.status) if x else "None" for x in results) == ["None", "delivered"]
    assert receiver.statuses("iv-1").count(200) == 1


def test_parked_deliveries_survive_a_restart_and_are_taken_once(
    receiver: Receiver, redis_stores: QueueFactory
) -> None:
    clock = Clock()
    before = rig(receiver.url, redis_stores, clock)
    for i in range(1, 21):
        assert before.dispatcher.deliver_now(intervention(i)).status == "retrying"
    before.dispatcher.close()  # the process is gone; its parked deliveries are in Redis
    receiver.healthy.set()
    clock.t = T0 + HOUR
    workers = [rig(receiver.url, redis_stores, clock) for _ in range(3)]  # the restarted processes
    results: list[DeliveryResult] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def step(w: Rig) -> None:
        barrier.wait()
        got = w.dispatcher.retry_due(limit=7)
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=step, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers[0].dispatcher.retry_due()  # whatever is left over
    for i in range(1, 21):
        assert receiver.statuses(f"iv-{i}").count(200) == 1, i
    assert workers[0].queue.pending() == 0


def test_a_taken_delivery_comes_back_after_its_lease() -> None:
    q = InMemoryRetryQueue()
    q.park(RetryItem(intervention(), "hook", 3, T0, T0 + 60))
    assert len(q.take_due(T0 + 60, lease_seconds=300)) == 1  # taken by a process that dies
    assert q.take_due(T0 + 359) == []
    assert [i.iid for i in q.take_due(T0 + 360)] == ["iv-1"]


def test_the_body_of_a_retry_is_the_same_bytes(receiver: Receiver, stores: QueueFactory) -> None:
    r = rig(receiver.url, stores)
    r.dispatcher.deliver_now(intervention())
    receiver.healthy.set()
    r.run_until_settled()
    bodies = {b for _, b, _ in receiver.hits}
    assert len(bodies) == 1
    assert orjson.loads(next(iter(bodies)))["intervention_id"] == "iv-1"


def test_salvage_dispatch_retry_lists_and_resends(
    receiver: Receiver, redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from flows.cli import main

    client = redis.Redis.from_url(redis_url)
    queue, ledger = RedisRetryQueue(client, "cli-test"), RedisDispatchLedger(client, "cli-test")
    dead: list[dict[str, Any]] = []
    d = Dispatcher(
        webhooks(receiver.url, retry_hours=0), {"hook": SECRET}, ledger, dead.append,
        retries=queue,
    )  # fmt: skip
    for i in (1, 2):
        assert d.deliver_now(intervention(i)).status == "dead_letter"
    d.close()
    config = tmp_path / "salvage.yaml"
    config.write_text(
        f"""
redis: {{prefix: cli-test}}
webhooks:
  endpoints:
    hook: {{url: "{receiver.url}", secret_env: RETRY_TEST_SECRET, max_attempts: 2,
           backoff_base_seconds: 0.001, backoff_max_seconds: 0.002}}
  routes: {{proactive_reassurance: hook}}
"""
    )
    monkeypatch.setenv("SALVAGE_REDIS_URL", redis_url)
    monkeypatch.setenv("RETRY_TEST_SECRET", SECRET)
    assert main(["dispatch", "retry", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert "iv-1  hook  3 attempts" in listed and "HTTP 500 after 3 attempts" in listed
    assert "iv-2" in listed
    receiver.healthy.set()
    assert main(["dispatch", "retry", "iv-1", "--config", str(config)]) == 0
    assert "iv-1: delivered (1 attempts)" in capsys.readouterr().out
    # iv-1 again: it is no longer dead-lettered; nothing is sent.
    assert main(["dispatch", "retry", "iv-1", "--config", str(config)]) == 1
    assert "iv-1: not dead-lettered" in capsys.readouterr().out
    assert main(["dispatch", "retry", "--all", "--config", str(config)]) == 0
    assert "iv-2: delivered" in capsys.readouterr().out
    for key in ("iv-1", "iv-2"):
        assert receiver.statuses(key).count(200) == 1
        assert ledger.status(key) == "delivered"
        for headers, body, _ in receiver.hits:
            assert verify(SECRET, body, headers["X-Salvage-Signature"])
    client.close()


def test_only_a_dead_lettered_claim_can_be_reopened(stores: QueueFactory) -> None:
    _, ledger = stores()
    assert not ledger.reopen("iv-x", 60)  # unknown: claim() is the way in
    ledger.claim("iv-x", 60)
    assert not ledger.reopen("iv-x", 60)  # claimed: someone is sending it
    for status in ("delivered", "retrying", "blocked"):
        ledger.mark_delivered("iv-x", status, 60)
        assert not ledger.reopen("iv-x", 60), status
    ledger.mark_delivered("iv-x", "dead_letter", 60)
    assert ledger.reopen("iv-x", 60)
    assert ledger.status("iv-x") == "claimed"
    assert not ledger.reopen("iv-x", 60)  # the second of two re-sends loses


def test_a_delivery_in_flight_when_its_process_dies_is_sent_by_another(
    receiver: Receiver, redis_stores: QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Write-ahead: the delivery is in the retry queue before its first attempt, so a
    process killed during the quick attempts does not lose it."""
    clock = Clock()
    dying = rig(receiver.url, redis_stores, clock)
    queue, _ = redis_stores()
    # The dying process claimed and wrote ahead, then was killed before any attempt: this
    # is what _deliver leaves behind at its first line.
    iv = intervention(7)
    assert dying.ledger.claim("iv-7", 3600)
    item = RetryItem(iv, "hook", 0, clock.t, clock.t + 600.0)
    queue.park(item)
    receiver.healthy.set()
    restarted = rig(receiver.url, redis_stores, clock)
    assert restarted.dispatcher.retry_due() == []  # the lease has not ended yet
    clock.t += 600.0
    with caplog.at_level(logging.WARNING, logger="salvage.dispatch"):
        [result] = restarted.dispatcher.retry_due()
    assert (result.status, result.attempts) == ("delivered", 1)
    assert receiver.statuses("iv-7") == [200]
    # The receiver may have had it from the dead process: the log says it was sent again.
    assert "re-sending iv-7: its earlier delivery did not finish" in caplog.text
    assert queue.pending() == 0


def test_a_delivered_write_ahead_leaves_nothing_parked(
    receiver: Receiver, stores: QueueFactory
) -> None:
    receiver.healthy.set()
    r = rig(receiver.url, stores)
    assert r.dispatcher.deliver_now(intervention()).status == "delivered"
    assert r.queue.pending() == 0 and r.queue.buried() == []


# --- an endpoint with no free slot: the flow does not wait --------------------------------


def test_a_saturated_endpoint_queues_a_batch_in_the_retry_queue_instead_of_holding_the_flow(
    receiver: Receiver, stores: QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.healthy.set()
    gate = receiver.answering
    gate.clear()  # requests wait until the test opens it
    queue, ledger = stores()
    results: list[DeliveryResult] = []
    d = Dispatcher(
        webhooks(receiver.url, max_in_flight=1), {"hook": SECRET}, ledger, lambda r: None,
        rng=random.Random(3), on_result=results.append, retries=queue, retry_poll_seconds=0.02,
    )  # fmt: skip
    # A safety net only: if the batch waited for the endpoint, this opens it later.
    safety = threading.Timer(20.0, gate.set)
    safety.start()
    try:
        with caplog.at_level(logging.INFO, logger="salvage.dispatch"):
            futures = d.submit_many([intervention(i) for i in range(1, 6)])
            # Back before the endpoint answered anything: the flow did not wait for it.
            assert not gate.is_set()
            assert [f is None for f in futures] == [False, True, True, True, True]
            queued = sorted(r.intervention_id for r in results if r.status == "queued")
            assert queued == ["iv-2", "iv-3", "iv-4", "iv-5"]
            # Still this dispatcher's claims: a copy re-emitted now is not sent again.
            assert [ledger.status(f"iv-{i}") for i in range(2, 6)] == ["claimed"] * 4
            assert d.submit_many([intervention(3)]) == [None]
            gate.set()
            for _ in range(2000):  # until every delivery ended (at most 20 s)
                if sum(r.status == "delivered" for r in results) == 5:
                    break
                threading.Event().wait(0.01)
    finally:
        safety.cancel()
        d.close()
    assert sorted(r.intervention_id for r in results if r.status == "delivered") == [
        f"iv-{i}" for i in range(1, 6)
    ]
    for i in range(1, 6):
        assert receiver.statuses(f"iv-{i}") == [200]  # each sent once
        assert ledger.status(f"iv-{i}") == "delivered"
    assert queue.pending() == 0
    assert "re-sending" not in caplog.text  # queued deliveries were never sent before


def test_a_queued_delivery_left_by_a_stopped_process_is_sent_once_by_the_next(
    receiver: Receiver, stores: QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """What a process killed with deliveries waiting for slots leaves: claimed ids, parked
    due at once. The next process sends each once: a copy the resumed flow re-emits as an
    interrupted delivery ("re-sending", which takes the queue's copy's place), one it does
    not re-emit from the queue, as never sent before."""
    from flows.connectors.webhooks.dispatcher import WAITING_FOR_A_SLOT

    receiver.healthy.set()
    queue, ledger = stores()
    for i in (1, 2):
        assert ledger.claim(f"iv-{i}", 3600)
        queue.park(RetryItem(intervention(i), "hook", 0, T0, T0, WAITING_FOR_A_SLOT))
    r = rig(receiver.url, lambda: (queue, ledger))
    with caplog.at_level(logging.INFO, logger="salvage.dispatch"):
        assert r.dispatcher.deliver_now(intervention(1)).status == "delivered"  # re-emitted
        results = r.run_until_settled()
    # The re-send wrote itself ahead over the queue's copy and, delivered, removed it.
    assert [(x.intervention_id, x.status) for x in results] == [("iv-2", "delivered")]
    assert receiver.statuses("iv-1") == [200] and receiver.statuses("iv-2") == [200]
    assert "re-sending iv-1:" in caplog.text and "re-sending iv-2" not in caplog.text
    assert queue.pending() == 0
    r.dispatcher.close()
