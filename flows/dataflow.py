"""The Salvage dataflow: decode, clock, join per order, decide, emit.

::

    input (stream, payload, received_at)
      └─ decode ──────────────── dead letters (invalid) ───────────────┐
           └─ key by shard ─ clock (watermark, lateness, expiry) ─ dead letters (late, after close)
                └─ key by order_id ─ case (join, dedup, decide, close)  │
                     ├─ interventions                                  │
                     ├─ decisions                                      │
                     ├─ outcomes                                       │
                     └─────────────────────────────────────────────── dead_letter

Replay and live mode build this same flow; only the source and the sinks differ.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic, StatefulLogic
from bytewax.outputs import Sink

from flows.batching import prepare_step, settle_step
from flows.learning import LearnerLogic, ModelRuntime
from flows.observer import FlowObserver
from operators.case import OrderCase
from operators.contract import DeadLetter, Event, decode
from operators.gate import DecisionGate
from operators.models import MODEL_SET
from operators.window import CaseWindow, Decider, Expire, ExpiryClock, WindowConfig, shard_of

#: The outputs a case emits, then the dead letters (from decoding and the clock).
RECORD_OUTPUTS = ("interventions", "decisions", "outcomes")
OUTPUT_NAMES = (*RECORD_OUTPUTS, "dead_letter")
#: Output name -> the tag of its records in the case step's output (live mode: also their
#: ``type`` header on Kafka).
TAG_OF_OUTPUT = {
    "interventions": "intervention",
    "decisions": "decision",
    "outcomes": "outcome",
    "dead_letter": "dead_letter",
    "cases": "case",
}


@dataclass
class FlowParts:
    """What a flow is built from: where events come from, where records go, how to decide."""

    source: Source
    sinks: dict[str, Sink]  # by output name; build_streams ignores it
    decider_factory: Callable[[], Decider]
    window: WindowConfig = field(default_factory=WindowConfig)
    close_open_cases_at_eof: bool = True
    emit_case_views: bool = False  # adds a "cases" record stream (live: the case store)
    models: ModelRuntime | None = None  # online learning; None: decide with a fixed scorer
    #: Bytewax asks every touched key for a snapshot at each epoch even without recovery;
    #: without a recovery store they are thrown away, so skip building them.
    snapshots: bool = True
    observer: FlowObserver = field(default_factory=FlowObserver)
    #: The state keys of the clock and case steps (a cluster replay chooses them so that
    #: nothing crosses processes, ``flows.routing.LocalKeys``); None: the shard and the
    #: order id, placed wherever Bytewax's hash of them says.
    keys: StepKeys | None = None
    #: The decider sees each batch of events before the case step and settles its
    #: decisions on the case step's outputs before they go on (``BatchDecider``: live
    #: mode's decision memo reads and writes a batch in one round trip each).
    decides_per_batch: bool = False


class StepKeys(Protocol):
    """State keys for the clock step (by shard), the case step (by order id) and the
    learner step (one key: one learner per key)."""

    def clock_key(self, shard: str) -> str: ...

    def case_key(self, order_id: str) -> str: ...

    def learner_key(self) -> str: ...


class ClockLogic(StatefulBatchLogic[Event, Any, dict[str, Any] | None]):
    """Bytewax wrapper of :class:`~operators.window.ExpiryClock` (one per shard)."""

    def __init__(
        self,
        config: WindowConfig,
        snap: dict[str, Any] | None,
        observer: FlowObserver,
        snapshots: bool = True,
        censor_at_eof: bool = False,
        gate: DecisionGate | None = None,
    ) -> None:
        self.censor_at_eof = censor_at_eof
        #: With a gate (replays), emit ((shard, number, bound), item) pairs: the items for
        #: the case step are numbered in the order sent (dead letters: -1), and ``bound`` is
        #: the watermark before the call that emitted the item: this and every later item
        #: of the shard is at or after it (an event is admitted only there, an expiry is
        #: known there), whatever the lateness let through. The case steps' progress is
        #: built on these (see DecisionGate), and the gate is told how many the shard has
        #: sent before they are sent, so it knows when nothing is in flight any more.
        self.gate = gate
        self._sent = 0
        self.clock = ExpiryClock.restore(config, snap)
        self.observer = observer
        self.snapshots = snapshots
        self.shard: str | None = None
        # Wall-clock times at which the watermark, and the latest event time, last moved:
        # a watermark stuck for idle_advance_seconds wakes the shard (idle advance).
        self._moved_at = self._latest_at = time.time()
        # Per input partition: wall-clock time its latest event time last moved, so a
        # quiet partition moves on from its own time, not from the fastest partition's.
        self._source_at: dict[str, float] = {}

    def _report(self) -> None:
        on_clock = self.observer.on_clock
        if on_clock is not None and self.shard is not None:
            clock = self.clock
            on_clock(self.shard, clock.watermark, clock.max_event_at, clock.state_size())

    def on_batch(self, values: list[Event]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        clock = self.clock
        on_event = clock.on_event
        before, latest = clock.watermark, clock.max_event_at
        seen = dict(clock.source_max) if clock.config.sources else None
        for event in values:
            out.extend(on_event(event, event.received_at))
        now = time.time()
        if seen is not None:
            for source, ts in clock.source_max.items():
                if seen.get(source) != ts:
                    self._source_at[source] = now
        if clock.watermark != before:
            self._moved_at = now
        if clock.max_event_at != latest:
            self._latest_at = now
        if values and self.shard is None:
            self.shard = shard_of(values[0].order_id, clock.config.shards)
        self._report()
        return self._tag(out, before, len(values)), StatefulBatchLogic.RETAIN

    def _tag(self, out: list[Any], watermark: float | None, took: int = 0) -> list[Any]:
        gate = self.gate
        if gate is None:
            return out
        if not out:
            if took:  # every event taken was a re-delivery dropped here
                gate.sent(-1, 0, took)
            return out
        shard = self.shard
        if shard is None:  # no event yet: a censoring or idle call emits nothing
            shard = shard_of(_order_of(out[0]), self.clock.config.shards)
        key = int(shard)
        bound = -math.inf if watermark is None else watermark
        tagged = []
        n = self._sent
        for item in out:
            if isinstance(item, DeadLetter):
                tagged.append(((key, -1, bound), item))
            else:
                tagged.append(((key, n, bound), item))
                n += 1
        self._sent = n
        gate.sent(key, n, took)
        return tagged

    def notify_at(self) -> datetime | None:
        idle = self.clock.config.idle_advance_seconds
        if idle is None:
            return None
        return datetime.fromtimestamp(self._moved_at + idle, UTC)

    def on_notify(self) -> tuple[list[Any], bool]:
        """The watermark has not moved for ``idle_advance_seconds`` (no events, or a quiet
        partition): event time follows the wall clock from the latest event seen."""
        clock = self.clock
        now = time.time()
        before = clock.watermark
        if clock.max_event_at is not None:
            per_source = self._idle_targets(now) if clock.config.sources else None
            out = clock.advance_idle(clock.max_event_at + (now - self._latest_at), per_source)
            self._latest_at = now
        else:
            out = []
        self._moved_at = now
        self._report()
        return self._tag(out, before), StatefulBatchLogic.RETAIN

    def _idle_targets(self, now: float) -> dict[str, float]:
        """Each partition's new event time: its own latest plus the wall time since that
        moved, once quiet for ``idle_advance_seconds`` (a partition sending events keeps
        its time). One never heard from takes the lowest of the others."""
        clock = self.clock
        idle = clock.config.idle_advance_seconds or 0.0
        targets: dict[str, float] = {}
        for source, ts in clock.source_max.items():
            since = self._source_at.setdefault(source, now)
            targets[source] = ts + (now - since) if now - since >= idle else ts
        for source, ts in targets.items():
            if ts != clock.source_max[source]:
                self._source_at[source] = now
        if targets:
            lowest = min(targets.values())
            for source in clock.config.sources:
                targets.setdefault(source, lowest)
        return targets

    def on_eof(self) -> tuple[list[Any], bool]:
        before = self.clock.watermark
        out = list(self.clock.on_eof(self.censor_at_eof))
        return self._tag(out, before), StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any] | None:
        return self.clock.snapshot() if self.snapshots else None


class CaseLogic(StatefulLogic[Event | Expire, tuple[str, Any], bytes | None]):
    """Bytewax wrapper of :class:`~operators.window.CaseWindow` (one per order).

    With a ``gate`` (replays), an item whose decision would read a model version that is
    not complete yet waits here, with every later item of the order, and is retried each
    time the step is woken (``notify_at``); each worker's progress goes to the learner
    (see :class:`~operators.learner.DecisionGate`)."""

    __slots__ = ("close_at_eof", "fresh", "gate", "on_latency", "queue", "snapshots", "window")

    def __init__(
        self,
        window: CaseWindow,
        close_at_eof: bool,
        on_latency: Callable[[float], None] | None = None,
        snapshots: bool = True,
        gate: DecisionGate | None = None,
        fresh: Callable[[str], CaseWindow] | None = None,
    ) -> None:
        self.window = window
        self.close_at_eof = close_at_eof
        self.on_latency = on_latency
        self.snapshots = snapshots
        self.gate = gate
        self.fresh = fresh  # a new window for the order (an item after its case closed)
        self.queue: list[Event | Expire] = []

    def _handle(self, value: Event | Expire) -> tuple[list[tuple[str, Any]], bool]:
        case = self.window.case
        if not case.order_id:
            case.order_id = value.order_id
        if isinstance(value, Expire):
            if case.last_event_at == 0.0:
                return [], StatefulLogic.DISCARD  # nothing was ever seen for this key
            return self.window.on_expire(value)
        out = self.window.on_event(value)
        if self.on_latency is not None and out[0] and value.ingested_at:
            self.on_latency(time.monotonic() - value.ingested_at)
        return out

    def _ready(self, value: Event | Expire) -> bool:
        # Only events decide; the decision is dated as in DecisionEngine.decide.
        if isinstance(value, Expire) or self.gate is None:
            return True
        return self.gate.ready(max(value.occurred_at, self.window.case.last_event_at))

    def _progress(self, out: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        assert self.gate is not None
        progress = self.gate.progress()
        if progress is not None:
            out.append(("progress", progress))
        return out

    def on_item(
        self, value: Event | Expire | tuple[tuple[int, int, float], Event | Expire]
    ) -> tuple[list[tuple[str, Any]], bool]:
        gate = self.gate
        if gate is None:
            assert not isinstance(value, tuple)
            return self._handle(value)
        assert isinstance(value, tuple)  # ((shard, number, bound), item): see ClockLogic
        (shard, seq, bound), value = value
        if self.queue or not self._ready(value):
            # The gate must know the order's earliest waiting event: one queued behind
            # another may be earlier (out of order, within the allowed lateness), and the
            # worker's progress must not pass it before it is handed on.
            if not self.queue:
                gate.wait(value.order_id, _item_time(value))
            elif isinstance(value, Event) and value.occurred_at < _earliest(self.queue):
                gate.wait(value.order_id, value.occurred_at)
            self.queue.append(value)
            gate.received(shard, seq, bound, _item_time(value))
            return self._progress([]), StatefulLogic.RETAIN
        out, discard = self._handle(value)
        # Handled: what it emits is in ``out``, ahead of this worker's next progress; the
        # examples in it are counted before the item is (see DecisionGate.finished).
        examples = _examples_in(out)
        if examples:
            gate.emitted(examples)
        gate.received(shard, seq, bound, _item_time(value))
        return self._progress(out), discard

    def _drain(self, force: bool) -> tuple[list[tuple[str, Any]], bool]:
        """Hand on the waiting items that are ready (all of them with ``force``)."""
        gate = self.gate
        assert gate is not None
        out: list[tuple[str, Any]] = []
        discard = False
        while self.queue and (force or self._ready(self.queue[0])):
            value = self.queue.pop(0)
            if force and not self._ready(value):
                gate.forced += 1
            if discard:
                # The case closed and a later item of the order waited behind it: what
                # would have reached a new state for the key without the wait.
                if self.fresh is None:
                    continue
                self.window = self.fresh(value.order_id)
            got, discard = self._handle(value)
            out.extend(got)
        examples = _examples_in(out)
        if examples:
            gate.emitted(examples)  # before the order stops waiting (DecisionGate.finished)
        if self.queue:
            gate.wait(self.queue[0].order_id, _earliest(self.queue))
        else:
            gate.done(self.window.case.order_id)
        return out, discard

    def notify_at(self) -> datetime | None:
        # Waiting: wake at the next activation (the learner may have cut the version).
        return datetime.now(UTC) if self.queue else None

    def on_notify(self) -> tuple[list[tuple[str, Any]], bool]:
        out, discard = self._drain(force=False)
        return self._progress(out), discard

    def on_eof(self) -> tuple[list[tuple[str, Any]], bool]:
        out: list[tuple[str, Any]] = []
        if self.queue:
            # End of input: nothing more will be cut before the learner's own end.
            out, discard = self._drain(force=True)
            if discard:
                return out, discard
        if self.close_at_eof:
            # The clock censored every case it tracked at its shard's end of input; a case
            # still here was never tracked (nothing valid arrived): its last event it is.
            got, discard = self.window.on_eof(None)
            examples = _examples_in(got)
            if examples and self.gate is not None:
                self.gate.emitted(examples)
            return out + got, discard
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        # Pickled now, so later mutation cannot leak into the snapshot; far cheaper than
        # deepcopy, and Bytewax would pickle it anyway. (Replays, the only flows with a
        # gate, run without recovery: waiting items are not part of it.)
        return pickle.dumps(self.window.case, pickle.HIGHEST_PROTOCOL)


def _case_key(keys: StepKeys, tagged: bool = False) -> Callable[[Any], str]:
    """The case step's key of an item (``(sender, item)`` if ``tagged``), from ``keys``."""
    case_key = keys.case_key
    if tagged:
        return lambda x: case_key(x[1].order_id)
    return lambda x: case_key(x.order_id)


def _order_id(item: Event | Expire) -> str:
    return item.order_id


def _tagged_order_id(item: tuple[Any, Event | Expire]) -> str:
    return item[1].order_id


def _order_of(item: Any) -> str:
    return str(item.order_id)


#: The tags of the case step's outputs that the learner counts (DecisionGate.emitted).
_TO_LEARNER = frozenset({"pending", "resolution"})


def _examples_in(out: list[tuple[str, Any]]) -> int:
    """How many of a case's outputs are examples for the learner.

    >>> _examples_in([("decision", {}), ("pending", None), ("resolution", None)])
    2
    """
    return sum(1 for tag, _ in out if tag in _TO_LEARNER)


def _item_time(value: Event | Expire) -> float:
    return value.occurred_at if isinstance(value, Event) else value.deadline


def _earliest(queue: list[Event | Expire]) -> float:
    """The event time of the earliest of an order's waiting events (not always the first
    in the queue: events of an order may arrive out of order, within the lateness). An
    expiry does not count: it is sent once the watermark is past its deadline, so its
    deadline is no bound on what is still to come (counting it would hold the worker's
    progress below what it already reported, and the version its queue waits for would
    never be cut). With only expiries waiting, the first one's deadline, as before."""
    times = [v.occurred_at for v in queue if isinstance(v, Event)]
    return min(times) if times else _item_time(queue[0])


def _is_event(item: Event | DeadLetter) -> TypeGuard[Event]:
    return isinstance(item, Event)


def _observer_of(
    name: str, hook: Callable[[str, dict[str, Any]], None]
) -> Callable[[str, dict[str, Any]], None]:
    """An inspect callback that hands each record of output ``name`` to ``hook``."""

    def observe(_step: str, record: dict[str, Any]) -> None:
        hook(name, record)

    return observe


def _select(tag: str) -> Callable[[tuple[str, tuple[str, Any]]], dict[str, Any] | None]:
    """The record of each (order id, tagged item) with ``tag``; None (dropped) for others."""

    def select(kv: tuple[str, tuple[str, Any]]) -> dict[str, Any] | None:
        item = kv[1]
        return item[1] if item[0] == tag else None

    return select


_EXAMPLE_TAGS = frozenset({"pending", "resolution", "progress"})


def _example(kv: tuple[str, tuple[str, Any]]) -> tuple[str, Any] | None:
    """The tagged items the learner step takes (the case step's ``pending``,
    ``resolution`` and ``progress``); None (dropped) for the others."""
    item = kv[1]
    return item if item[0] in _EXAMPLE_TAGS else None


def _decode_item(item: tuple[Any, ...]) -> Event | DeadLetter:
    # (stream, payload, received_at) from a replay; live sources add their partition.
    if len(item) == 4:
        stream, payload, received_at, source = item
        return decode(stream, payload, received_at, source)
    stream, payload, received_at = item
    return decode(stream, payload, received_at)


def _counting_rejects(gate: DecisionGate) -> Callable[[tuple[Any, ...]], Event | DeadLetter]:
    """:func:`_decode_item`, telling ``gate`` of each item that decodes to a dead letter
    (it never reaches a clock shard: see DecisionGate.in_flight)."""

    def decode_counted(item: tuple[Any, ...]) -> Event | DeadLetter:
        decoded = _decode_item(item)
        if not isinstance(decoded, Event):
            gate.rejected(1)
        return decoded

    return decode_counted


@dataclass
class FlowStreams:
    """The built flow and its output streams, for callers that add steps before the sinks
    (live mode adds the human-review loop and the dispatcher)."""

    flow: Dataflow
    events: Stream[Event]
    records: dict[str, Stream[dict[str, Any]]]
    #: The case step's output, ``(order key, (tag, item))`` in the order it emitted them,
    #: every tag in one stream: a sink that takes several kinds of record from here gets
    #: each batch of the case step as one batch (``records`` splits it per output).
    tagged: Stream[tuple[str, tuple[str, Any]]]


def build_flow(parts: FlowParts, flow_id: str = "salvage") -> Dataflow:
    """Build the dataflow from its parts, with every sink in ``parts.sinks`` attached."""
    streams = build_streams(parts, flow_id)
    attach_outputs(streams, parts.sinks, parts.observer)
    return streams.flow


def attach_outputs(
    streams: FlowStreams, sinks: dict[str, Sink], observer: FlowObserver | None = None
) -> None:
    """Connect output records to sinks by output name (missing names are not written)."""
    observed = observe_outputs(streams, list(sinks), observer)
    for name, sink in sinks.items():
        op.output(f"out_{name}", observed[name], sink)


def observe_outputs(
    streams: FlowStreams, names: list[str], observer: FlowObserver | None
) -> dict[str, Stream[dict[str, Any]]]:
    """The output streams ``names``, each record handed to ``observer.on_output`` (the
    streams unchanged without one): for the outputs a caller writes itself."""
    hook = observer.on_output if observer is not None else None
    observed = {}
    for name in names:
        records = streams.records[name]
        if hook is not None:
            records = op.inspect(f"observe_{name}", records, _observer_of(name, hook))
        observed[name] = records
    return observed


def build_streams(parts: FlowParts, flow_id: str = "salvage") -> FlowStreams:
    """Build the dataflow up to its output records (no sinks attached)."""
    flow = Dataflow(flow_id)
    cfg = parts.window
    observer = parts.observer
    decider_holder: list[Decider] = []

    def decider() -> Decider:
        # One decider per process, built lazily on the worker (not at import time).
        if not decider_holder:
            decider_holder.append(parts.decider_factory())
        return decider_holder[0]

    raw = op.input("input", flow, parts.source)
    if observer.on_input is not None:
        on_input = observer.on_input
        raw = op.inspect("observe_input", raw, lambda _s, item: on_input(item[0], item[1]))
    gate = parts.models.gate if parts.models is not None else None
    decoded = op.map("decode", raw, _decode_item if gate is None else _counting_rejects(gate))
    if observer.on_event is not None:
        on_event = observer.on_event
        decoded = op.inspect(
            "observe_event", decoded, lambda _s, x: on_event(x) if isinstance(x, Event) else None
        )
    valid = op.branch("valid", decoded, _is_event)

    shards = cfg.shards
    snapshots = parts.snapshots
    keys = parts.keys
    if keys is None:
        by_shard = op.key_on("key_shard", valid.trues, lambda e: shard_of(e.order_id, shards))
    else:
        clock_key = keys.clock_key
        by_shard = op.key_on(
            "key_shard", valid.trues, lambda e: clock_key(shard_of(e.order_id, shards))
        )
    clocked = op.stateful_batch(
        "clock",
        by_shard,
        lambda snap: ClockLogic(
            cfg, snap, observer, snapshots, parts.close_open_cases_at_eof, gate
        ),
    )
    # Progress waits for a bound from each shard that sends to this process: fewer would
    # make it no bound (a cluster process reads only its own shards' orders).
    if gate is not None and (gate.shards > shards if keys is not None else gate.shards != shards):
        raise ValueError(f"the gate expects {gate.shards} clock shards, the flow has {shards}")
    # The clock's (shard, item) pairs are split and re-keyed by order in one step each
    # (no separate unkeying step: every event passes here).
    by_order: Stream[tuple[str, Any]]
    clock_dead: Stream[DeadLetter]
    if gate is None:
        admitted_ok = op.branch("admitted", clocked, lambda kv: not isinstance(kv[1], DeadLetter))
        order_key = _case_key(keys) if keys is not None else _order_id
        by_order = op.map("key_order", admitted_ok.trues, lambda kv: (order_key(kv[1]), kv[1]))
        clock_dead = op.map("unkey_dead", admitted_ok.falses, lambda kv: kv[1])
    else:
        # Items come tagged with the clock worker that sent them (see ClockLogic).
        tagged_ok = op.branch("admitted", clocked, lambda kv: not isinstance(kv[1][1], DeadLetter))
        tagged_key = _case_key(keys, tagged=True) if keys is not None else _tagged_order_id
        by_order = op.map("key_order", tagged_ok.trues, lambda kv: (tagged_key(kv[1]), kv[1]))
        clock_dead = op.map("untag_dead", tagged_ok.falses, lambda kv: kv[1][1])

    close_at_eof = parts.close_open_cases_at_eof

    # ``op.stateful`` gives the builder only the resume state; a fresh case learns its
    # order id from its first item (see CaseLogic.on_item).
    def fresh(order_id: str) -> CaseWindow:
        return CaseWindow(order_id, decider(), cfg, None, parts.emit_case_views)

    def case_builder(snap: bytes | None) -> CaseLogic:
        case: OrderCase = pickle.loads(snap) if snap is not None else OrderCase("")
        window = CaseWindow(case.order_id, decider(), cfg, case, parts.emit_case_views)
        return CaseLogic(window, close_at_eof, observer.on_latency, snapshots, gate, fresh)

    if parts.decides_per_batch:
        by_order = op.flat_map_batch("prepare_decisions", by_order, prepare_step(decider))

    # (order id, (tag, record)) pairs: the steps below read the tagged item directly.
    cases = op.stateful("case", by_order, case_builder)
    if parts.decides_per_batch:
        # Before any sink: a decision is recorded before its records leave the flow.
        settle = settle_step(decider)
        cases = op.flat_map_batch("settle_decisions", cases, settle)

    dead: Stream[DeadLetter] = op.merge("dead_letters", valid.falses, clock_dead)
    if observer.on_dead_letter is not None:
        on_dead = observer.on_dead_letter
        dead = op.inspect("observe_dead", dead, lambda _s, d: on_dead(d))
    dead_records = op.map("dead_letter_record", dead, DeadLetter.to_record)

    records: dict[str, Stream[dict[str, Any]]] = {"dead_letter": dead_records}
    names = [*RECORD_OUTPUTS, "cases"] if parts.emit_case_views else list(RECORD_OUTPUTS)
    for name in names:
        tag = TAG_OF_OUTPUT[name]
        records[name] = op.filter_map(f"select_{name}", cases, _select(tag))
    if parts.models is not None:
        runtime = parts.models
        examples = op.filter_map("select_examples", cases, _example)
        model_key = keys.learner_key() if keys is not None else MODEL_SET
        keyed = op.key_on("key_models", examples, lambda _r: model_key)
        learned = op.stateful_batch(
            "learn", keyed, lambda snap: LearnerLogic(runtime, snap, observer, snapshots)
        )
        # Bytewax calls on_eof only on steps whose output reaches an output or inspect step;
        # without this the examples after the last publish would never be published.
        op.inspect("learned", learned, lambda _s, _x: None)
    return FlowStreams(flow, valid.trues, records, cases)
