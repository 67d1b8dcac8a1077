"""The decision gate's progress is a lower bound on what its worker will still emit, even
when the clock admits a straggler far behind the latest event time the worker received
(another shard is ahead) or a shard's items are handled out of the order it sent them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

from operators.case import DAY, HOUR, OrderCase
from operators.contract import Event, decode, format_ts
from operators.features import build_features, to_vector
from operators.gate import END_ROUNDS, DecisionGate, Progress, SnapshotBoard
from operators.learner import Learner
from operators.models import Pending, Resolution
from operators.versions import VersionClock
from operators.window import ExpiryClock, WindowConfig

D0 = 1_780_272_000.0  # 2026-06-01T00:00:00Z
VECTOR = to_vector(build_features(OrderCase("o"), None, 0.0))


def placed(order_id: str, at: float) -> Event:
    return decode(
        "orders",
        {
            "event_id": f"e-{order_id}", "type": "order_placed", "order_id": order_id,
            "occurred_at": format_ts(at), "customer_id": "c", "currency": "EUR", "total": 1,
            "items": [{"sku": "s", "sku_family": "f", "quantity": 1, "unit_price": 1}],
        },
    )  # fmt: skip


def pending(order_id: str, at: float) -> Pending:
    return Pending(order_id, at, VECTOR, 0.2, None, "control", "other", True, (), 0.0)


def learner_for(gate: DecisionGate | None) -> Learner:
    learner = Learner(horizon=1 * HOUR, margin=0.0, period=DAY, models=True)
    learner.clock_from_progress = True
    if gate is not None:
        learner.finished, learner.heard_all = gate.finished, gate.heard_all
    return learner


def sent(clocks: dict[int, ExpiryClock], script: list[tuple[int, Event]]) -> Iterator[tuple]:
    """What the clock step sends, as ClockLogic tags it: (shard, number, the shard's
    watermark before the call, item), for each admitted item of each event in turn."""
    numbers = dict.fromkeys(clocks, 0)
    for shard, event in script:
        clock = clocks[shard]
        wm = clock.watermark
        bound = -math.inf if wm is None else wm
        for item in clock.on_event(event):
            assert isinstance(item, Event), item  # the straggler is admitted, not late
            yield shard, numbers[shard], bound, item
            numbers[shard] += 1


def test_a_straggler_of_a_lagging_shard_is_learned_before_its_version_is_cut() -> None:
    config = WindowConfig()  # 6 h lateness, 6 h jumps need a second event
    clocks = {0: ExpiryClock(config), 1: ExpiryClock(config)}
    straggler_at = D0 - 5 * HOUR
    script = [
        (0, placed("a1", D0)),
        (1, placed("b1", D0)),
        (1, placed("b2", D0 + 1 * HOUR)),
        # Shard 0 runs ten days ahead (two events: the jump is confirmed).
        (0, placed("a2", D0 + 10 * DAY)),
        (0, placed("a3", D0 + 10 * DAY + 1 * HOUR)),
        # Shard 1's watermark is D0 - 5 h: it still admits this one.
        (1, placed("b3", straggler_at)),
    ]
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=2)
    learner = learner_for(gate)
    old_rule = learner_for(None)  # progress = the latest event time received
    latest = -math.inf
    for shard, seq, bound, event in sent(clocks, script):
        at = event.occurred_at
        # The case step decides the item (one example), then counts it as handled and
        # reports its progress, in that order (flows/dataflow.py, CaseLogic.on_item).
        gate.received(shard, seq, bound, at)
        batch: list[Pending | Progress] = [pending(event.order_id, at)]
        progress = gate.progress()
        if progress is not None:
            assert progress.at <= at or event.order_id != "b3"
            batch.append(progress)
        learner.feed_batch(batch)
        latest = max(latest, at)
        old_rule.feed_batch([pending(event.order_id, at), Progress(0, latest)])

    # The straggler's example (released at D0 - 4 h) belongs in the version cut at D0.
    assert learner.late == 0
    assert learner.released_until < straggler_at + 1 * HOUR
    # The old rule had cut ten days past it before it came: its example arrived late.
    assert old_rule.released_until >= D0 + 9 * DAY
    assert old_rule.late == 1
    # And the gate's progress did move: it is shard 1's watermark, not -inf.
    assert learner.released_until == D0 - DAY


def test_progress_waits_for_a_shards_earlier_item_handled_out_of_order() -> None:
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=1)
    gate.received(0, 0, D0, D0)
    assert gate.progress() == Progress(gate._mine().source, D0)
    # Item 2 (bound D0 + 2 days) is handled before item 1 (bound D0 + 1 day): item 1's
    # may still be anything from D0 + 1 day on, so nothing moves until it is handled.
    gate.received(0, 2, D0 + 2 * DAY, D0 + 2 * DAY + HOUR)
    assert gate.progress() is None
    gate.received(0, 1, D0 + DAY, D0 + DAY + HOUR)
    progress = gate.progress()
    assert progress is not None and progress.at == D0 + 2 * DAY
    # Dead letters are not numbered and move nothing.
    gate.received(0, -1, D0 + 5 * DAY, D0 + 5 * DAY)
    assert gate.progress() is None


def test_progress_needs_a_bound_from_every_shard() -> None:
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=3)
    gate.received(0, 0, D0, D0)
    gate.received(1, 0, D0 + DAY, D0 + DAY)
    progress = gate.progress()
    assert progress is None or progress.at == -math.inf  # shard 2 may still send anything
    gate.received(2, 0, D0 + 2 * DAY, D0 + 2 * DAY)
    progress = gate.progress()
    assert progress is not None and progress.at == D0  # the lowest shard's bound


def test_no_worker_is_finished_while_an_item_a_shard_sent_is_on_its_way() -> None:
    """At the end of input a worker with nothing waiting is taken as finished (the
    learner's clock then ignores it), but only once every item the clock shards sent has
    been handled: turns of the source alone left an item in flight to the other worker
    thread now and then, and it arrived after the learner had cut past it."""
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=1)
    gate.sent(0, 2)  # the shard sent items 0 and 1
    gate.received(0, 0, D0, D0)
    for _ in range(2 * END_ROUNDS):
        gate.hold_end()
    assert gate.in_flight()
    assert gate.finished({}) == frozenset()
    progress = gate.progress()
    assert progress is None or progress.at <= D0  # not the worker's latest: item 1 may be earlier
    gate.received(0, 1, D0, D0 + HOUR)
    for _ in range(2 * END_ROUNDS):
        gate.hold_end()
    assert not gate.in_flight()
    assert gate.finished({}) == frozenset({gate._mine().source})


def test_no_worker_is_finished_while_an_event_the_source_read_is_on_its_way_to_a_shard() -> None:
    """The source's last batch may not have reached the clock shards (another worker
    thread's) after END_ROUNDS turns of the source: what the source read, less what
    decoding rejected, must all have been taken by the shards."""
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=1)
    gate.read(3)
    gate.rejected(1)  # a line that decodes to a dead letter never reaches a shard
    gate.sent(0, 1, took=1)
    gate.received(0, 0, D0, D0)
    for _ in range(2 * END_ROUNDS):
        gate.hold_end()
    assert gate.in_flight()
    assert gate.finished({}) == frozenset()
    gate.sent(0, 1, took=1)  # the last event was a re-delivery: taken, nothing sent
    assert not gate.in_flight()
    assert gate.finished({}) == frozenset({gate._mine().source})


def test_a_refund_a_worker_handed_on_at_the_end_is_learned_before_the_cut_past_it() -> None:
    """The race behind a rare late example with two workers: at the end of input a worker
    hands on an order's waiting refund, and its state says idle at once, while the refund
    is still on its way to the learner (another thread). Taken as finished then, the
    worker let the learner's clock jump to the latest event time and cut past the refund
    before it arrived. It is finished only once the learner has taken every example it
    emitted."""
    gate = DecisionGate(SnapshotBoard(VersionClock(DAY, 2 * DAY)), workers=1, shards=1)
    learner = learner_for(gate)
    me = gate._mine().source
    # Earlier: the worker reported its progress, and decided a later order at D0 + 3 days.
    gate.emitted(1)
    learner.feed_batch([Progress(me, D0), replace(pending("later", D0 + 3 * DAY), source=me)])
    # The refund of an order that waited for its version is handed on at the end of input.
    gate.read(1)
    gate.sent(0, 1, took=1)
    gate.wait("o", D0 + DAY)
    gate.received(0, 0, D0, D0 + DAY)
    for _ in range(2 * END_ROUNDS):
        gate.hold_end()
    gate.emitted(1)
    gate.done("o")
    refund = Resolution("o", "refunded", D0 + DAY, me)
    assert gate.finished(learner.received) == frozenset()  # the refund has not arrived
    learner.feed_batch([])  # the learner takes a turn before it does
    assert learner.released_until < D0 + DAY
    learner.feed_batch([refund])
    assert gate.finished(learner.received) == frozenset({me})
    assert learner.released_until >= D0 + 2 * DAY  # now it may cut past the refund
    assert learner.late == 0
