"""Event-time windowing: dedup, lateness, expiry, after-close, tombstones, memory release."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from operators.case import OrderCase
from operators.contract import DeadLetter, Event, format_ts
from operators.window import CaseWindow, Expire, ExpiryClock, WindowConfig, run_in_memory
from tests.helpers import (
    DAY,
    HOUR,
    RecordingDecider,
    body,
    epoch,
    event,
    events,
    order_placed,
    support,
)

CFG = WindowConfig()  # 6 h lateness, 30 d after delivery, 45 d after placed, 14 d tombstones
# Most tests below move event time with single events days apart (each stands for days of
# traffic): a jump needs no second event to confirm it there.
CFG = dataclasses.replace(CFG, max_jump=None)


def run(records: Iterable[dict[str, Any]], config: WindowConfig = CFG, close_at_eof: bool = True):
    """run_in_memory over wire records; returns (outputs, open windows, clock, dead, decider)."""
    decider = RecordingDecider()
    dead: list[DeadLetter] = []
    outputs, windows, clock = run_in_memory(
        (event(r) for r in records), decider, config, dead.append, close_at_eof
    )
    return outputs, windows, clock, dead, decider


def outcomes(outputs: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Outcome records by order, asserting there is at most one per order."""
    found = [r for tag, r in outputs if tag == "outcome"]
    counts = Counter(r["order_id"] for r in found)
    assert all(n == 1 for n in counts.values()), f"more than one outcome: {counts}"
    return {r["order_id"]: r for r in found}


def filler(hours: float, n: int = 0) -> dict[str, Any]:
    """An unrelated order that only moves event time forward."""
    return order_placed(f"filler-{n}-{hours:g}", hours)


# --- dedup --------------------------------------------------------------------------------


def test_redelivered_event_is_a_no_op() -> None:
    delayed = body("delayed", "o-1", 40)
    refund = body("refund_issued", "o-1", 60, amount=80.0)
    outputs, windows, _, dead, decider = run(
        [order_placed("o-1", 0), delayed, delayed, body("in_transit", "o-1", 41), delayed,
         refund, refund, filler(62)]
    )  # fmt: skip
    assert [d for d in decider.decided if d[0] == "o-1"] == [
        ("o-1", "o-1:order_placed:0"),
        ("o-1", "o-1:delayed:40"),
    ]
    assert outcomes(outputs)["o-1"]["outcome"] == "refunded"
    # The closing event re-delivered after close is dropped too, not dead-lettered.
    assert dead == []
    assert "o-1" not in windows


def test_case_window_drops_a_duplicate_without_output() -> None:
    window = CaseWindow("o-1", RecordingDecider(), CFG)
    ev = event(order_placed("o-1", 0))
    assert window.on_event(ev)[0] != []
    assert window.on_event(ev) == ([], False)


def test_same_event_id_for_a_different_order_is_not_a_duplicate() -> None:
    shared = "e-shared"
    *_, decider = run(
        [order_placed("o-1", 0, event_id=shared), order_placed("o-2", 1, event_id=shared)]
    )
    assert {o for o, _ in decider.decided} == {"o-1", "o-2"}


# --- lateness -----------------------------------------------------------------------------


def test_event_behind_the_watermark_is_dead_lettered_as_late() -> None:
    clock = ExpiryClock(CFG)
    assert [e.event_id for e in clock.on_event(event(order_placed("o-1", 0)))] == [
        "o-1:order_placed:0"
    ]
    clock.on_event(event(order_placed("o-2", 10)))
    assert clock.watermark == epoch(4)
    on_mark = clock.on_event(event(body("shipped", "o-1", 4)))  # exactly at the watermark
    assert isinstance(on_mark[0], Event)
    late = clock.on_event(event(body("in_transit", "o-1", 3.99)), received_at=epoch(10))
    assert len(late) == 1 and isinstance(late[0], DeadLetter)
    letter = late[0]
    assert letter.reason.startswith("late:")
    assert "2026-06-01T03:59:24Z" in letter.reason and "2026-06-01T04:00:00Z" in letter.reason
    assert (letter.event_id, letter.order_id, letter.stream) == (
        "o-1:in_transit:3.99",
        "o-1",
        "delivery",
    )
    assert letter.received_at == epoch(10)


def test_late_events_do_not_reach_the_case() -> None:
    _, windows, _, dead, decider = run(
        [
            order_placed("o-1", 0),
            filler(20),
            body("delayed", "o-1", 13.5),
            body("delayed", "o-1", 14),
        ],
        close_at_eof=False,
    )
    assert [d.event_id for d in dead] == ["o-1:delayed:13.5"]
    assert windows["o-1"].case.delays == 1
    assert ("o-1", "o-1:delayed:13.5") not in decider.decided


def test_out_of_order_within_lateness_is_accepted_and_the_timeline_sorted() -> None:
    _, windows, _, dead, _ = run(
        [order_placed("o-1", 0), body("out_for_delivery", "o-1", 30), body("shipped", "o-1", 25),
         body("in_transit", "o-1", 27), body("delivered", "o-1", 31)],
        close_at_eof=False,
    )  # fmt: skip
    assert dead == []
    case = windows["o-1"].case
    assert [t for _, t in case.timeline] == [
        "order_placed", "shipped", "in_transit", "out_for_delivery", "delivered",
    ]  # fmt: skip
    assert case.shipped_at == epoch(25) and case.delivered_at == epoch(31)


def test_lateness_is_configurable() -> None:
    strict = WindowConfig(allowed_lateness=0.0, max_jump=None)
    *_, dead, _ = run([order_placed("o-1", 0), filler(2), body("shipped", "o-1", 1)], strict)
    assert [d.reason.split(":")[0] for d in dead] == ["late"]
    *_, dead, _ = run([order_placed("o-1", 0), filler(2), body("shipped", "o-1", 1)])
    assert dead == []


# --- expiry -------------------------------------------------------------------------------


def test_delivered_case_expires_30_days_after_delivery_by_the_watermark_only() -> None:
    lateness = CFG.allowed_lateness / HOUR
    deadline = 50 + 30 * 24  # delivered at 50 h
    clock = ExpiryClock(CFG)
    clock.on_event(event(order_placed("o-1", 0)))
    clock.on_event(event(body("delivered", "o-1", 50)))
    # Nothing but event time moves the clock: just short of deadline + lateness, no expiry.
    assert clock.on_event(event(filler(deadline + lateness - 0.01)))[1:] == []
    assert "o-1" in clock.windows
    out = clock.on_event(event(filler(deadline + lateness, 1)))
    assert out[1:] == [Expire("o-1", epoch(deadline))]
    assert "o-1" not in clock.windows and "o-1" in clock.tombstones
    # Through the case window: kept, resolved at the deadline, state gone.
    outputs, windows, clock, *_ = run(
        [order_placed("o-1", 0), body("delivered", "o-1", 50), filler(deadline + lateness)],
        close_at_eof=False,
    )
    rec = outcomes(outputs)["o-1"]
    assert rec["outcome"] == "kept"
    assert rec["resolved_at"] == "2026-07-03T02:00:00Z"  # 2026-06-03T02:00Z + 30 d
    assert "o-1" not in windows and "o-1" not in clock.windows


def test_undelivered_case_expires_45_days_after_the_order() -> None:
    deadline = 45 * 24
    expire_at = deadline + CFG.allowed_lateness / HOUR
    outputs, *_ = run([order_placed("o-1", 0), body("shipped", "o-1", 5), filler(expire_at)])
    rec = outcomes(outputs)["o-1"]
    assert (rec["outcome"], rec["resolved_at"]) == ("kept", "2026-07-16T00:00:00Z")


def test_expiry_does_not_happen_at_eof_before_the_deadline_even_late_in_wall_time() -> None:
    outputs, windows, clock, *_ = run(
        [order_placed("o-1", 0), body("delivered", "o-1", 50), filler(60)]
    )
    # Censored at the end of input (the last event of the whole input, not of this case).
    assert outcomes(outputs)["o-1"]["outcome"] == "censored"
    assert outcomes(outputs)["o-1"]["resolved_at"] == format_ts(epoch(60))
    assert windows == {}  # EOF closes every window
    assert clock.windows  # the clock still tracks it: no Expire was emitted


def test_eof_expires_cases_whose_deadline_is_before_the_last_event() -> None:
    """At end of input the lateness no longer matters: deadlines up to the last event close."""
    lateness = CFG.allowed_lateness / HOUR
    deadline = 45 * 24
    outputs, *_ = run([order_placed("o-1", 0), filler(deadline + lateness / 2)])
    assert outcomes(outputs)["o-1"]["outcome"] == "kept"


def test_delivery_moves_the_deadline_earlier_or_later() -> None:
    early = [order_placed("o-1", 0), body("delivered", "o-1", 24)]  # 1 + 30 days < 45 days
    outputs, *_ = run([*early, filler(31 * 24 + 6)])
    assert outcomes(outputs)["o-1"]["outcome"] == "kept"
    late = [order_placed("o-2", 0), body("delivered", "o-2", 20 * 24)]  # 20 + 30 days > 45
    outputs, *_ = run([*late, filler(46 * 24)])
    assert outcomes(outputs)["o-2"]["outcome"] == "censored"


def test_exactly_one_outcome_per_order_across_resolutions_and_expiries() -> None:
    records: list[dict[str, Any]] = []
    for i in range(60):
        oid, t = f"o-{i}", float(i)
        records.append(order_placed(oid, t))
        records.append(body("delivered", oid, t + 30))
        if i % 3 == 0:
            records.append(body("refund_issued", oid, t + 40, amount=10.0))
        elif i % 3 == 1:
            # resolved exactly at its own expiry deadline
            records.append(body("exchange_completed", oid, t + 30 + 30 * 24))
    records.sort(key=lambda r: r["occurred_at"])
    records.append(filler(200 * 24))
    outputs, windows, clock, dead, _ = run(records)
    assert windows == {} and clock.state_size() > 0  # tombstones still held
    by_order = outcomes(outputs)
    assert {o for o in by_order if o.startswith("o-")} == {f"o-{i}" for i in range(60)}
    kinds = Counter(by_order[f"o-{i}"]["outcome"] for i in range(60))
    assert kinds["refunded"] == 20 and kinds["kept"] + kinds["exchanged"] == 40
    assert dead == []


# --- signals before order_placed ----------------------------------------------------------


def test_pending_case_decides_nothing_and_expires_from_its_first_signal() -> None:
    records = [support("ticket_opened", "o-1", 10, intent="where_is_my_order"),
               body("delayed", "o-1", 12)]  # fmt: skip
    _, _, clock, _, decider = run(records)
    assert decider.decided == []
    assert clock.deadline(clock.windows["o-1"]) == epoch(10) + 45 * DAY
    outputs, _, _, _, decider = run([*records, filler(10 + 45 * 24 + 6)])
    rec = outcomes(outputs)["o-1"]
    assert rec["outcome"] == "kept" and rec["resolved_at"] == "2026-07-16T10:00:00Z"
    assert rec["currency"] is None
    assert [d for d in decider.decided if d[0] == "o-1"] == []


def test_pending_case_anchor_moves_to_the_order_when_it_arrives() -> None:
    # Signals stamped before the order (skewed clocks), the earlier one arriving second.
    signals = [body("shipped", "o-1", 10), body("in_transit", "o-1", 9)]
    _, windows, clock, _, decider = run(signals, close_at_eof=False)
    assert clock.deadline(clock.windows["o-1"]) == epoch(9) + 45 * DAY  # the first signal
    assert decider.decided == [] and not windows["o-1"].case.placed
    records = [*signals, order_placed("o-1", 12)]
    _, windows, clock, _, decider = run(records, close_at_eof=False)
    assert clock.deadline(clock.windows["o-1"]) == epoch(12) + 45 * DAY  # now the order
    # The first decision is on the order itself; the earlier signals are in the case.
    assert decider.decided == [("o-1", "o-1:order_placed:12")]
    assert windows["o-1"].case.shipped_at == epoch(10)
    # Past the first signal's deadline, short of the order's: still open at EOF.
    outputs, *_ = run([*records, filler(12 + 45 * 24 - 0.01)])
    assert outcomes(outputs)["o-1"]["outcome"] == "censored"
    outputs, *_ = run([*records, filler(12 + 45 * 24 + 6)])
    assert outcomes(outputs)["o-1"]["resolved_at"] == "2026-07-16T12:00:00Z"


# --- after close, tombstones --------------------------------------------------------------


def test_events_after_a_resolution_are_dead_lettered_after_close() -> None:
    outputs, _, _, dead, decider = run(
        [order_placed("o-1", 0), body("order_cancelled", "o-1", 1),
         support("ticket_resolved", "o-1", 2), body("shipped", "o-1", 3)]
    )  # fmt: skip
    assert outcomes(outputs)["o-1"]["outcome"] == "cancelled"
    assert [(d.event_id, d.reason.split(":")[0]) for d in dead] == [
        ("o-1:ticket_resolved:2", "after_close"),
        ("o-1:shipped:3", "after_close"),
    ]
    assert all(d.order_id == "o-1" for d in dead)
    assert len(decider.closed) == 1


def test_events_after_expiry_are_dead_lettered_after_close() -> None:
    expire_at = 45 * 24 + 6
    outputs, _, _, dead, _ = run(
        [order_placed("o-1", 0), filler(expire_at), body("delivered", "o-1", expire_at)]
    )
    assert outcomes(outputs)["o-1"]["outcome"] == "kept"
    assert [d.reason.split(":")[0] for d in dead] == ["after_close"]


def test_tombstones_expire_after_the_retention() -> None:
    clock = ExpiryClock(CFG)
    clock.on_event(event(order_placed("o-1", 0)))
    clock.on_event(event(body("refund_issued", "o-1", 1, amount=1.0)))
    assert "o-1" in clock.tombstones and clock.state_size() == 1
    retention = CFG.tombstone_retention / HOUR
    lateness = CFG.allowed_lateness / HOUR
    clock.on_event(event(filler(1 + retention + lateness - 0.01)))
    assert "o-1" in clock.tombstones
    clock.on_event(event(filler(1 + retention + lateness)))
    assert "o-1" not in clock.tombstones and "o-1" not in clock.closed_by
    assert clock.state_size() == 2  # only the two fillers


def test_expired_case_tombstone_counts_from_the_deadline() -> None:
    clock = ExpiryClock(CFG)
    clock.on_event(event(order_placed("o-1", 0)))
    deadline = 45 * 24
    out = clock.on_event(event(filler(deadline + 6)))
    assert Expire("o-1", epoch(deadline)) in out
    assert clock.tombstones["o-1"] == epoch(deadline) + CFG.tombstone_retention


# --- snapshot and restore -----------------------------------------------------------------


def test_clock_snapshot_restore_keeps_deadlines_and_tombstones() -> None:
    clock = ExpiryClock(CFG)
    for r in (
        order_placed("o-1", 0),
        order_placed("o-2", 1),
        body("refund_issued", "o-2", 5, amount=1.0),
        body("delivered", "o-1", 30),
    ):
        clock.on_event(event(r))
    restored = ExpiryClock.restore(CFG, clock.snapshot())
    assert restored.state_size() == clock.state_size() == 2
    assert restored.watermark == clock.watermark
    # The re-delivered closing event is still recognised after a restore.
    assert restored.on_event(event(body("refund_issued", "o-2", 5, amount=1.0))) == []
    out = restored.on_event(event(filler(30 + 30 * 24 + 6)))
    assert Expire("o-1", epoch(30) + 30 * DAY) in out
    assert ExpiryClock.restore(CFG, None).state_size() == 0


def test_window_config_rejects_bad_values() -> None:
    for kwargs in ({"allowed_lateness": -1}, {"window_after_delivery": -1},
                   {"tombstone_retention": -1}, {"shards": 0}, {"shards": 5000}):  # fmt: skip
        with pytest.raises(ValueError):
            WindowConfig(**kwargs)


# --- memory release -----------------------------------------------------------------------


class NullDecider:
    """Decides nothing and keeps nothing, so memory measures only the window state."""

    def decide(self, case: OrderCase, trigger: Event) -> list[tuple[str, dict[str, Any]]]:
        return []

    def on_close(self, case: OrderCase, outcome: dict[str, Any]) -> list[tuple[str, dict]]:
        return []


class Driver:
    """Clock + windows as the dataflow wires them, counting outputs instead of keeping them."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self.clock = ExpiryClock(config)
        self.windows: dict[str, CaseWindow] = {}
        self.decider = NullDecider()
        self.outcomes: Counter[str] = Counter()
        self.dead = 0

    def feed(self, evs: Iterable[Event]) -> None:
        for ev in evs:
            for item in self.clock.on_event(ev):
                if isinstance(item, DeadLetter):
                    self.dead += 1
                    continue
                w = self.windows.get(item.order_id)
                if isinstance(item, Expire):
                    out, discard = w.on_expire(item) if w is not None else ([], False)
                else:
                    if w is None:
                        w = self.windows[item.order_id] = CaseWindow(
                            item.order_id, self.decider, self.config
                        )
                    out, discard = w.on_event(item)
                for tag, rec in out:
                    if tag == "outcome":
                        self.outcomes[rec["outcome"]] += 1
                if discard:
                    del self.windows[item.order_id]


def _current_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.slow
def test_closed_cases_free_their_state() -> None:
    n = 5000
    opening: list[dict[str, Any]] = []
    for i in range(n):
        oid, t = f"m-{i:05d}", i * 0.01  # 5000 orders over 50 hours
        opening += [
            order_placed(oid, t, customer_id=f"c-{i}"),
            body("shipped", oid, t + 60),
            support("ticket_opened", oid, t + 70, intent="where_is_my_order", sentiment=-0.5),
            body("delivered", oid, t + 80),
        ]
        if i % 2:
            opening.append(body("refund_requested", oid, t + 90, reason="late_delivery"))
    opening.sort(key=lambda r: r["occurred_at"])
    # Half resolve; the watermark then passes every deadline and every tombstone.
    closing = [
        body("refund_issued", f"m-{i:05d}", 150 + i * 0.01, amount=5.0) for i in range(0, n, 2)
    ]
    end = 50 + 80 + 30 * 24 + CFG.tombstone_retention / HOUR + 24
    closing.append(filler(end))
    # Decode up front: the parsed events are not case state.
    opening_events, closing_events = events(*opening), events(*closing)

    driver = Driver(CFG)
    tracemalloc.start()
    try:
        base = _current_bytes()
        driver.feed(opening_events)
        assert len(driver.windows) == n and driver.clock.state_size() == n
        open_bytes = _current_bytes() - base
        driver.feed(closing_events)
        closed_bytes = _current_bytes() - base
    finally:
        tracemalloc.stop()

    assert sum(driver.outcomes.values()) == n + 0  # the filler is still open
    assert driver.outcomes == Counter({"refunded": n // 2, "kept": n - n // 2})
    assert driver.dead == 0
    assert set(driver.windows) == {closing[-1]["order_id"]}
    assert driver.clock.state_size() == 1
    assert len(driver.clock._heap) <= 2 and len(driver.clock._tomb_heap) == 0
    assert open_bytes > n * 500, open_bytes  # the measurement sees the cases at all
    # What stays is dict and heap capacity (Python does not shrink them), not cases.
    assert closed_bytes < open_bytes * 0.1, (open_bytes, closed_bytes)


def test_events_stamped_far_after_they_were_received_are_dead_lettered_as_future() -> None:
    from operators.contract import decode
    from tests.helpers import body, epoch

    clock = ExpiryClock(WindowConfig(max_future_skew=24 * 3600.0))
    received = epoch(0)
    ok = decode("orders", body("order_cancelled", "o-ok", 23), received)
    bad = decode("orders", body("order_cancelled", "o-bad", 25), received)
    assert clock.on_event(ok, received) == [ok]
    (dead,) = clock.on_event(bad, received)
    assert dead.reason.startswith("future: occurred_at") and dead.order_id == "o-bad"
    # The bad stamp did not move the watermark.
    assert clock.max_event_at == ok.occurred_at
    unchecked = ExpiryClock(WindowConfig(max_future_skew=None))
    assert unchecked.on_event(bad, received) == [bad]


# --- several input partitions ---------------------------------------------------------------


def _placed(order_id: str, hours: float, source: str) -> Event:
    from operators.contract import decode
    from tests.helpers import epoch, order_placed

    ev = decode("orders", order_placed(order_id, hours), epoch(hours), source)
    assert isinstance(ev, Event)
    return ev


def test_a_partition_read_ahead_makes_no_event_of_a_slower_one_late() -> None:
    cfg = WindowConfig(allowed_lateness=3600.0, window_after_placed=10 * 3600.0,
                       sources=("p0", "p1"), max_jump=None)  # fmt: skip
    clock = ExpiryClock(cfg)
    # p0 is read three days ahead (a backlog): with one input its events would make p1's late.
    for i in range(4):
        assert clock.on_event(_placed(f"fast-{i}", 24.0 * i, "p0"))[0].order_id == f"fast-{i}"
    assert clock.watermark is None  # p1 not heard from yet: nothing is late, nothing expires
    slow = clock.on_event(_placed("slow-0", 1.0, "p1"))
    assert [type(x).__name__ for x in slow] == ["Event"]
    # The watermark is the slower partition's: p1 at 1 h, less the hour of lateness.
    assert clock.watermark == _placed("x", 0.0, "p1").occurred_at
    # p1 catching up moves it, and expiries follow the lower of the two.
    out = clock.on_event(_placed("slow-1", 30.0, "p1"))
    expired = [x.order_id for x in out if isinstance(x, Expire)]
    assert expired == ["fast-0", "slow-0"]
    # An event behind the (minimum) watermark is still late.
    (dead,) = clock.on_event(_placed("too-late", 2.0, "p0"))
    assert isinstance(dead, DeadLetter) and dead.reason.startswith("late:")
    restored = ExpiryClock.restore(cfg, clock.snapshot())
    assert restored.watermark == clock.watermark and restored.source_max == clock.source_max


def test_a_quiet_partition_is_taken_as_caught_up_on_idle_advance() -> None:
    cfg = WindowConfig(allowed_lateness=0.0, window_after_placed=3600.0, sources=("p0", "p1"))
    clock = ExpiryClock(cfg)
    placed = _placed("o-quiet", 0.0, "p0")
    clock.on_event(placed)
    assert clock.watermark is None  # p1 never sent anything
    out = clock.advance_idle(placed.occurred_at + 2 * 3600)
    assert out == [Expire("o-quiet", placed.occurred_at + 3600)]
    assert clock.source_max == {"p0": placed.occurred_at + 7200, "p1": placed.occurred_at + 7200}


def test_a_single_outlier_cannot_advance_the_watermark() -> None:
    from operators.contract import decode

    clock = ExpiryClock(WindowConfig(max_future_skew=None))  # a bad clock the guard missed
    for i, h in enumerate([0, 1, 2]):
        clock.on_event(decode("orders", order_placed(f"o-{i}", h)))
    wm = clock.watermark
    outlier = decode("orders", order_placed("o-2100", 24 * 365 * 74))
    assert clock.on_event(outlier) == [outlier]  # accepted: it may be the next day's traffic
    assert clock.watermark == wm
    # The stream goes on where it was: nothing late, and a restore keeps the outlier pending.
    following = decode("orders", order_placed("o-3", 3))
    assert clock.on_event(following) == [following]
    clock = ExpiryClock.restore(clock.config, clock.snapshot())
    assert clock.pending == {"": [outlier.occurred_at]}
    assert clock.on_eof() == []  # end of input does not expire up to 2100 either
    # A second event near the jump confirms it: a real gap in the traffic.
    later = [decode("orders", order_placed(f"o-next-{i}", 24 * 3 + i)) for i in range(2)]
    clock.on_event(later[0])
    assert clock.watermark == following.occurred_at - CFG.allowed_lateness
    clock.on_event(later[1])
    assert clock.watermark == later[0].occurred_at - CFG.allowed_lateness


def test_events_per_case_are_bounded_and_a_resolution_still_closes() -> None:
    from operators.contract import MAX_EVENTS_PER_CASE, decode

    clock = ExpiryClock(CFG)
    admitted = dead = 0
    for i in range(MAX_EVENTS_PER_CASE + 5):
        ev = decode("support", support("customer_message", "o-noisy", i / 1000, event_id=f"m{i}"))
        (out,) = clock.on_event(ev)
        if isinstance(out, DeadLetter):
            assert out.kind == "too_many_events" and out.order_id == "o-noisy"
            dead += 1
        else:
            admitted += 1
    assert (admitted, dead) == (MAX_EVENTS_PER_CASE, 5)
    restored = ExpiryClock.restore(CFG, clock.snapshot())
    noisy = decode("support", support("customer_message", "o-noisy", 2.0, event_id="m-x"))
    assert isinstance(restored.on_event(noisy)[0], DeadLetter)
    closing = decode("refunds", body("refund_issued", "o-noisy", 2.0, amount=1.0))
    assert restored.on_event(closing)[0] is closing
