"""The Bytewax dataflow end to end through ``bytewax.testing``: the four-stream join,
out-of-order and duplicate events, dead letters, state release and two workers."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from flows.dataflow import OUTPUT_NAMES, CaseLogic, FlowParts, build_flow
from flows.observer import FlowObserver
from operators.contract import VALIDATORS, DeadLetter, Event, decode, parse_ts
from operators.engine import DecisionEngine
from operators.policy import RecoveryPolicy
from operators.window import WindowConfig, run_in_memory
from state.context import InMemoryContextStore
from tests.helpers import body, epoch, item, order_placed, support

POLICY = RecoveryPolicy.default()

# Arrival order of the input (not event-time order). Hours are event times.
A, B, C, D, E, F, G = "ord-A", "ord-B", "ord-C", "ord-D", "ord-E", "ord-F", "ord-G"
_ARRIVALS: list[tuple[str, Any]] = [
    ("ok", order_placed(A, 0, total=120.0, customer_id="c-A", lane="DE-NL")),
    ("ok", order_placed(B, 1, sku_family="loungewear", customer_id="c-B")),
    ("ok", support("ticket_opened", D, 3, intent="where_is_my_order")),  # before its order
    ("ok", order_placed(C, 2, customer_id="c-C")),  # out of order, within lateness
    ("ok", order_placed(D, 4, customer_id="c-D")),
    ("ok", order_placed(E, 5, customer_id="c-E")),
    ("ok", body("order_cancelled", E, 6)),
    ("ok", body("shipped", A, 5)),  # out of order
    ("after_close", support("ticket_resolved", E, 7)),
    ("invalid", ("support", b'{"event_id": "x", oops', 8)),
    ("ok", body("delivered", C, 20)),
    ("ok", body("delivered", B, 30)),
    ("ok", body("delayed", A, 40, estimated_delivery_at="2026-06-05T00:00:00Z")),
    ("dup", body("delayed", A, 40, estimated_delivery_at="2026-06-05T00:00:00Z")),
    ("ok", support("ticket_opened", A, 50, intent="where_is_my_order", sentiment=-0.6)),
    ("ok", body("exchange_requested", B, 50, reason="size_fit")),
    ("ok", body("refund_requested", A, 55, reason="late_delivery")),
    ("dup", body("exchange_requested", B, 50, reason="size_fit")),
    ("invalid", ("refunds", orjson.dumps(body("refund_issued", A, 60)), 60)),  # no amount
    ("invalid", ("delivery", order_placed(G, 60), 60)),  # wrong stream for the type
    ("ok", body("refund_issued", A, 70, amount=30.0)),
    ("late", body("in_transit", C, 1)),
    ("ok", body("exchange_completed", B, 100)),
    ("dup", body("refund_issued", A, 70, amount=30.0)),  # re-delivered after close
    # A pending signal moves event time past C's and D's deadlines before G is decided.
    # (Across orders, the flow does not define the order of one batch's items; decisions
    # read aggregates of closed cases, so this keeps the comparison with run_in_memory exact.)
    ("ok", support("ticket_resolved", G, 1399)),
    ("ok", order_placed(G, 1400, customer_id="c-G")),
    # Far enough ahead to pass every tombstone.
    ("ok", order_placed(F, 1427, customer_id="c-F")),
]
EXPECTED = {
    A: ("refunded", "2026-06-03T22:00:00Z", 30.0),
    B: ("exchanged", "2026-06-05T04:00:00Z", 0.0),
    C: ("kept", "2026-07-01T20:00:00Z", 0.0),  # delivered 20 h + 30 d
    D: ("kept", "2026-07-16T04:00:00Z", 0.0),  # placed 4 h + 45 d
    E: ("cancelled", "2026-06-01T06:00:00Z", 0.0),
    # Unresolved at the end of input: censored at the input's last event time (F's order at
    # 1427 h), also for G, whose own last event came earlier.
    F: ("censored", "2026-07-30T11:00:00Z", 0.0),
    G: ("censored", "2026-07-30T11:00:00Z", 0.0),
}


def input_items() -> list[tuple[str, Any, float]]:
    """Dataflow input items; valid events as bytes or parsed objects, alternately."""
    out = []
    for i, (_, rec) in enumerate(_ARRIVALS):
        if isinstance(rec, tuple):
            stream, payload, hours = rec
            out.append((stream, payload, epoch(hours)))
        else:
            stream, payload, received = item(rec, float(i))
            out.append((stream, orjson.dumps(payload) if i % 2 else payload, received))
    return out


def run_flow(
    items: list[tuple[str, Any, float]],
    window: WindowConfig,
    workers: int = 1,
    observer: FlowObserver | None = None,
) -> dict[str, list[dict[str, Any]]]:
    outputs: dict[str, list[dict[str, Any]]] = {name: [] for name in OUTPUT_NAMES}
    parts = FlowParts(
        source=TestingSource(items),
        sinks={name: TestingSink(outputs[name]) for name in OUTPUT_NAMES},
        decider_factory=lambda: DecisionEngine(POLICY, context=InMemoryContextStore()),
        window=window,
        observer=observer or FlowObserver(),
    )
    flow = build_flow(parts)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return outputs


# The scenario's received_at values are arrival stamps, not wall-clock times, so the
# future-skew guard (tested in test_window.py) is off here, and single events stand for
# days of traffic, so a jump needs no confirming second event (max_jump).
ONE_SHARD = WindowConfig(shards=1, max_future_skew=None, max_jump=None)


@pytest.fixture(scope="module")
def single() -> dict[str, list[dict[str, Any]]]:
    return run_flow(input_items(), ONE_SHARD)


def test_every_output_record_follows_the_contract(single) -> None:
    for name, records in single.items():
        for record in records:
            assert VALIDATORS[name](record) == [], (name, record)
    assert single["interventions"], "the scenario should produce some interventions"


def test_four_stream_join_gives_exactly_one_outcome_per_order(single) -> None:
    counts = Counter(o["order_id"] for o in single["outcomes"])
    assert counts == Counter(dict.fromkeys(EXPECTED, 1))
    got = {
        o["order_id"]: (o["outcome"], o["resolved_at"], o["refund_value"])
        for o in single["outcomes"]
    }
    assert got == EXPECTED


def test_joined_case_carries_signals_from_all_streams(single) -> None:
    outcome = {o["order_id"]: o for o in single["outcomes"]}
    a = outcome[A]
    assert a["courier_lane"] == "DE-NL"  # orders stream
    assert a["support_reason"] == "where_is_my_order"  # support stream
    assert a["retained_value"] == 90.0  # 120 ordered, 30 refunded (refunds stream)
    assert a["arm"] in ("treatment", "control") and a["predicted_return_propensity"] is not None
    decisions_a = [d for d in single["decisions"] if d["order_id"] == A]
    # The delay (delivery stream) raised the slip: reasons mention it, scores moved.
    assert [d["trigger_event_id"] for d in decisions_a] == [
        f"{A}:order_placed:0",
        f"{A}:delayed:40",
        f"{A}:ticket_opened:50",
        f"{A}:refund_requested:55",
    ]
    first, last = decisions_a[0]["scores"], decisions_a[-1]["scores"]
    assert last["return_propensity"] > first["return_propensity"]


def test_duplicates_decide_once_and_pending_signals_wait_for_the_order(single) -> None:
    triggers = Counter(d["trigger_event_id"] for d in single["decisions"])
    assert max(triggers.values()) == 1
    assert f"{D}:ticket_opened:3" not in triggers  # pending: no decision before the order
    assert triggers[f"{D}:order_placed:4"] == 1
    ids = [iv["intervention_id"] for iv in single["interventions"]]
    assert len(ids) == len(set(ids))


def test_invalid_late_and_after_close_input_is_dead_lettered_and_the_rest_flows(single) -> None:
    dead = single["dead_letter"]
    kinds = Counter(r["reason"].split(":")[0] for r in dead)
    assert kinds == Counter(
        {
            "not valid JSON": 1,
            "missing required field amount": 1,
            "type 'order_placed' is not a delivery event type (one of ['delayed', 'delivered', "
            "'exception', 'failed_attempt', 'in_transit', 'lost', 'out_for_delivery', "
            "'returned_to_sender', 'shipped'])": 1,
            "after_close": 1,
            "late": 1,
        }
    )
    by_kind = {r["reason"].split(":")[0]: r for r in dead}
    assert by_kind["late"]["event_id"] == f"{C}:in_transit:1"
    assert by_kind["after_close"]["order_id"] == E
    # received_at of an undecodable record is the time the input item carries.
    assert by_kind["not valid JSON"]["received_at"] == "2026-06-01T08:00:00Z"
    assert by_kind["not valid JSON"]["stream"] == "support"
    # Input after every kind of bad record was still joined and decided.
    assert any(d["trigger_event_id"] == f"{A}:refund_requested:55" for d in single["decisions"])


def test_flow_matches_the_in_memory_join(single) -> None:
    """The dataflow and run_in_memory (the same logic without Bytewax) agree exactly."""
    evs = []
    for stream, payload, received in input_items():
        result = decode(stream, payload, received)
        if isinstance(result, Event):
            evs.append(result)
    outputs, _, _ = run_in_memory(
        evs, DecisionEngine(POLICY, context=InMemoryContextStore()), ONE_SHARD
    )
    mem: dict[str, list[dict[str, Any]]] = {"decision": [], "intervention": [], "outcome": []}
    for tag, rec in outputs:
        if tag in mem:
            mem[tag].append(rec)

    def key(r: dict[str, Any]) -> bytes:
        return orjson.dumps(r, option=orjson.OPT_SORT_KEYS)

    assert sorted(map(key, single["decisions"])) == sorted(map(key, mem["decision"]))
    assert sorted(map(key, single["interventions"])) == sorted(map(key, mem["intervention"]))
    assert sorted(map(key, single["outcomes"])) == sorted(map(key, mem["outcome"]))


def test_state_is_freed_after_expiry_and_close() -> None:
    """Clock: tracked orders drop once expired and tombstones pass; case step: Bytewax drops
    the per-order logic of closed cases (live CaseLogic objects, counted at each clock batch)."""
    seen: list[tuple[str, float | None, int, int]] = []

    def on_clock(shard: str, watermark: float | None, _max: float | None, tracked: int) -> None:
        live_cases = sum(1 for o in gc.get_objects() if type(o) is CaseLogic)
        seen.append((shard, watermark, tracked, live_cases))

    run_flow(input_items(), ONE_SHARD, observer=FlowObserver(on_clock=on_clock))
    assert {s for s, *_ in seen} == {"0"}
    assert max(t for _, _, t, _ in seen) >= 5  # A..E open or tombstoned together
    assert max(n for *_, n in seen) >= 4
    # After G and F moved event time past every deadline and tombstone: only G and F left.
    _, watermark, tracked, live_cases = seen[-1]
    assert tracked == 2 and watermark == epoch(1427 - 6)
    assert live_cases <= 2  # G (and F, once its event reaches the case step)


def _outcome_set(outputs: dict[str, list[dict[str, Any]]]) -> set[tuple[Any, ...]]:
    return {
        (o["order_id"], o["outcome"], o["resolved_at"], o["refund_value"], o["retained_value"])
        for o in outputs["outcomes"]
    }


@pytest.mark.parametrize("shards", [1, 4])
def test_two_workers_give_the_same_outcomes(shards: int) -> None:
    window = WindowConfig(shards=shards, max_future_skew=None, max_jump=None)
    one = run_flow(input_items(), window, workers=1)
    two = run_flow(input_items(), window, workers=2)
    assert len(two["outcomes"]) == len(EXPECTED)
    assert _outcome_set(two) == _outcome_set(one)
    assert Counter(d["trigger_event_id"] for d in two["decisions"]) == Counter(
        d["trigger_event_id"] for d in one["decisions"]
    )
    assert sorted(r["reason"] for r in two["dead_letter"]) == sorted(
        r["reason"] for r in one["dead_letter"]
    )


def test_dead_letter_objects_reach_the_observer() -> None:
    letters: list[DeadLetter] = []
    run_flow(input_items(), ONE_SHARD, observer=FlowObserver(on_dead_letter=letters.append))
    assert len(letters) == 5 and all(isinstance(x, DeadLetter) for x in letters)


def test_late_and_after_close_dead_letters_keep_the_time_they_were_received(single) -> None:
    received = {
        rec["event_id"]: item(rec, float(i))[2]
        for i, (kind, rec) in enumerate(_ARRIVALS)
        if kind in ("late", "after_close")
    }
    by_event = {r["event_id"]: r for r in single["dead_letter"] if r["event_id"] in received}
    assert {e: parse_ts(r["received_at"]) for e, r in by_event.items()} == received


def test_a_quiet_shard_moves_event_time_on_with_the_wall_clock() -> None:
    from datetime import datetime

    from flows.dataflow import ClockLogic
    from operators.window import Expire

    cfg = WindowConfig(
        shards=1, allowed_lateness=0.0, window_after_placed=3600.0, idle_advance_seconds=60.0
    )
    logic = ClockLogic(cfg, None, FlowObserver())
    placed = decode("orders", order_placed("o-idle", 0.0), epoch(0))
    out, _ = logic.on_batch([placed])
    assert out == [placed]
    wake = logic.notify_at()
    assert isinstance(wake, datetime) and abs(wake.timestamp() - logic._moved_at - 60.0) < 1e-6
    # Pretend the shard has been quiet for two hours of wall-clock time.
    logic._moved_at -= 2 * 3600
    logic._latest_at -= 2 * 3600
    out, _ = logic.on_notify()
    assert out == [Expire("o-idle", placed.occurred_at + 3600.0)]
    assert logic.clock.max_event_at == pytest.approx(placed.occurred_at + 2 * 3600, abs=5)
    # Replays never set idle_advance_seconds: no wake-ups.
    assert ClockLogic(WindowConfig(), None, FlowObserver()).notify_at() is None


@pytest.mark.parametrize("per_partition", [True, False])
def test_partitions_read_out_of_step_lose_nothing_with_per_partition_watermarks(
    per_partition: bool,
) -> None:
    # Partition p0 is read days ahead of p1 (a backlog read from the earliest offset).
    p0 = [order_placed(f"p0-{i}", 24.0 * i) for i in range(5)]
    p1 = [order_placed(f"p1-{i}", 24.0 * i + 1) for i in range(5)]
    items = [("orders", r, epoch(200), "p0") for r in p0]
    items += [("orders", r, epoch(200), "p1") for r in p1]
    window = WindowConfig(
        shards=1,
        max_future_skew=None,
        max_jump=None,  # each event stands for a day of traffic
        sources=("p0", "p1") if per_partition else (),
    )
    out = run_flow(items, window)
    late = [d for d in out["dead_letter"] if d["reason"].startswith("late:")]
    if per_partition:
        assert late == [] and len(out["outcomes"]) == 10
    else:  # one watermark for both: p1's early orders are behind p0's latest
        assert {d["order_id"] for d in late} == {"p1-0", "p1-1", "p1-2", "p1-3"}


def test_a_waiting_order_holds_progress_at_its_earliest_item_not_its_first() -> None:
    """In a replay, an order's items wait while the model version they need is not cut.
    An item of the order that arrives later but is dated earlier (out of order, within the
    lateness) waits behind the first: the worker's progress must stay at or below it, or
    the learner may cut past it before it is handed on (a late example)."""
    from operators.case import HOUR
    from operators.gate import DecisionGate, Progress, SnapshotBoard
    from operators.versions import VersionClock
    from operators.window import CaseWindow

    gate = DecisionGate(SnapshotBoard(VersionClock(24 * HOUR, 48 * HOUR)), workers=1, shards=1)
    logic = CaseLogic(CaseWindow("o1", None, WindowConfig()), close_at_eof=False, gate=gate)  # type: ignore[arg-type]
    t0 = epoch(0)

    def event(hours: float, n: int) -> Event:
        got = decode("orders", order_placed("o1", hours) | {"event_id": f"e{n}"})
        assert isinstance(got, Event)
        return got

    reported: list[float] = []
    # (number, the shard's watermark when it sent the item, the item's time in hours)
    for seq, bound_hours, hours in [(0, 0, 10), (1, 1, 2), (2, 5, 6)]:
        out, _ = logic.on_item(((0, seq, t0 + bound_hours * HOUR), event(hours, seq)))
        reported += [p.at for kind, p in out if kind == "progress" and isinstance(p, Progress)]
    assert len(logic.queue) == 3  # nothing is cut: every item waits
    assert reported and max(reported) <= t0 + 2 * HOUR
