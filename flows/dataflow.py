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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic, StatefulLogic
from bytewax.outputs import Sink

from operators.case import OrderCase
from operators.contract import DeadLetter, Event, decode
from operators.learner import DAY, PROGRESS_STEP, DecisionGate, Learner, SnapshotBoard
from operators.models import MODEL_SET, TruthLookup
from operators.policy import RecoveryPolicy
from operators.window import CaseWindow, Decider, Expire, ExpiryClock, WindowConfig, shard_of
from state.models import ModelStore
from state.versions import VersionClock

OUTPUT_NAMES = ("interventions", "decisions", "outcomes", "dead_letter")
_TAG_OF_OUTPUT = {
    "interventions": "intervention",
    "decisions": "decision",
    "outcomes": "outcome",
    "dead_letter": "dead_letter",
    "cases": "case",
}


@dataclass
class FlowObserver:
    """Hooks the flow calls as items pass; metrics plug in here. Unset hooks cost nothing.

    - ``on_input(stream, payload)``: every raw input record, before decoding.
    - ``on_event(event)``: every valid decoded event.
    - ``on_dead_letter(dead_letter)``: every dead letter (invalid, late, after close).
    - ``on_output(name, record)``: every output record, by output name.
    - ``on_clock(shard, watermark, max_event_at, tracked)``: after each clock batch;
      ``tracked`` is the number of open orders plus tombstones held by the shard.
    - ``on_latency(seconds)``: wall time from decoding an event to its decision.
    - ``on_model(stats)``: after the learner updates a model; ``stats`` has ``model``,
      ``version``, ``examples``, ``roc_auc``, ``log_loss``, ``calibration_error`` (None
      until known), ``learning_lag_seconds`` (event time from decision to label) and
      ``version_boundary`` (the event-time boundary the version was cut at; None for
      the last one, at end of input).
    - ``on_kafka_lag(topic, partition, lag)``: live input only, every few seconds per
      partition: messages between the end of the partition and the next one to emit.
    """

    on_input: Callable[[str, Any], None] | None = None
    on_event: Callable[[Event], None] | None = None
    on_dead_letter: Callable[[DeadLetter], None] | None = None
    on_output: Callable[[str, dict[str, Any]], None] | None = None
    on_clock: Callable[[str, float | None, float | None, int], None] | None = None
    on_latency: Callable[[float], None] | None = None
    on_model: Callable[[dict[str, Any]], None] | None = None
    on_kafka_lag: Callable[[str, int, int], None] | None = None


@dataclass
class ModelRuntime:
    """The online-learning side of a flow: one learner step (a single writer, keyed on a
    constant) publishes a version of the models per event-time boundary of ``versions``
    to ``board`` for the scorers of this process, and checkpoints to ``store`` (warm
    start, and scorers in other processes). A decision at event time ``t`` reads the
    version of ``versions.visible(t)`` (see ``state.versions``)."""

    versions: VersionClock = field(default_factory=VersionClock)
    board: SnapshotBoard = field(default_factory=SnapshotBoard)
    store: ModelStore | None = None
    #: Unused since versions are cut by event time; kept so callers that set it still run.
    publish_every: int = 200
    last_stats: dict[str, Any] | None = None
    #: Every decision is labelled "refunded within this horizon" (policy
    #: ``learning.label_horizon_days``), released once the learner's event time passes it.
    horizon: float = 14 * DAY
    #: Room for resolutions arriving after later decisions (at least the allowed lateness).
    margin: float = 1 * DAY
    prior_precision: float = 12.5
    #: Simulator ground truth for treated examples (backtests); never checkpointed.
    truth: TruthLookup | None = None
    #: Replays: decisions wait until the model version they read is complete, and the
    #: learner's clock follows the workers' progress (exact replays). None: live mode,
    #: where decisions read the newest complete version and never wait.
    wait_for_versions: bool = False
    gate: DecisionGate | None = None
    #: False: a replay with the fixed scorer; the learner step keeps only the clock (the
    #: context aggregates' versions) and builds no models.
    learn: bool = True
    #: Workers of this process's flow (the gate waits to hear from each).
    workers: int = 1

    @classmethod
    def for_policy(
        cls, policy: RecoveryPolicy, window: WindowConfig, **kwargs: Any
    ) -> ModelRuntime:
        """A runtime with the policy's ``learning`` settings (label horizon, prior, version
        period and lag) and a release margin of at least the window's allowed lateness.
        The lag is at least the margin: a version can only be complete once the learner's
        clock is a margin past its boundary."""
        margin = max(DAY, window.allowed_lateness)
        versions = VersionClock(
            period=policy.version_period_hours * 3600.0,
            lag=max(policy.version_lag_hours * 3600.0, margin + PROGRESS_STEP),
        )
        return cls(
            versions=versions,
            horizon=policy.label_horizon_days * DAY,
            margin=margin,
            prior_precision=policy.prior_precision,
            **kwargs,
        )

    def __post_init__(self) -> None:
        if self.board.clock is None:
            self.board.clock = self.versions
        if self.wait_for_versions and self.gate is None:
            self.gate = DecisionGate(self.board, self.workers)
        # Warm start: scorers read the last checkpoint from the first decision on, not
        # only once the learner step (built on its first example) exists.
        if self.store is not None and self.board.latest is None:
            latest = self.store.latest(MODEL_SET)
            if latest is not None:
                self.board.post(Learner.from_bytes(latest[1]).snapshot())


class LearnerLogic(StatefulBatchLogic[tuple[str, Any], dict[str, Any], bytes]):
    """Bytewax wrapper of :class:`~operators.learner.Learner`: takes the case step's
    ``pending`` examples and ``resolution`` records, learns each example at its label
    horizon, publishes a version of the models at each event-time boundary its clock
    passes (``ModelRuntime.versions``)."""

    def __init__(
        self,
        runtime: ModelRuntime,
        snap: bytes | None,
        observer: FlowObserver,
        snapshots: bool = True,
    ):
        self.runtime = runtime
        self.observer = observer
        self.snapshots = snapshots
        blob = snap
        warm = False
        if blob is None and runtime.store is not None:
            latest = runtime.store.latest(MODEL_SET)
            blob = latest[1] if latest else None  # warm start from the last checkpoint
            warm = blob is not None
        if blob:
            self.learner = Learner.from_bytes(blob)
            if warm:
                self.learner.restart_clock()
        else:
            self.learner = Learner(
                runtime.publish_every,
                horizon=runtime.horizon,
                margin=runtime.margin,
                prior_precision=runtime.prior_precision,
                models=runtime.learn,
            )
        self.learner.publish_every = runtime.publish_every
        self.learner.horizon = runtime.horizon
        self.learner.margin = runtime.margin
        self.learner.period = runtime.versions.period
        self.learner.clock_from_progress = runtime.gate is not None
        gate = runtime.gate
        self.learner.finished = gate.finished if gate is not None else None
        self.learner.heard_all = gate.heard_all if gate is not None else None
        self.learner.truth = runtime.truth
        if blob:
            # Restored: the state as it was is the base every later version builds on.
            runtime.board.post(self.learner.snapshot())

    def _report(self, stats: dict[str, Any], boundary: float | None = None) -> None:
        stats["early_reads"] = self.runtime.board.early_reads
        #: The event-time boundary of the version (None: the last one, at end of input).
        stats["version_boundary"] = (
            boundary if boundary is not None and math.isfinite(boundary) else None
        )
        self.runtime.last_stats = stats
        if self.observer.on_model is not None:
            self.observer.on_model(stats)

    def _publish_cuts(self) -> None:
        """Hand the versions cut since the last batch to the board (and the store)."""
        board, store = self.runtime.board, self.runtime.store
        newest = None
        for boundary, snapshot, stats in self.learner.take_cuts():
            board.publish(boundary, snapshot)
            if snapshot is not None and stats is not None:
                newest = snapshot
                self._report(stats, boundary)
        if newest is not None and store is not None:
            store.save(MODEL_SET, newest.version, self.learner.to_bytes())

    def on_batch(self, values: list[tuple[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        self.learner.feed_batch([v[1] for v in values])
        self._publish_cuts()
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[dict[str, Any]], bool]:
        learner = self.learner
        before = learner.examples
        learner.finish()
        # What end of input released is one last version (for the store and the stats:
        # no decision is left to read it).
        final = learner.publish() if learner.examples > before else None
        self.runtime.board.publish(math.inf, final)
        if final is not None and self.runtime.store is not None:
            self.runtime.store.save(MODEL_SET, final.version, learner.to_bytes())
        self._report(learner.stats())
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        # The learner holds its pending examples (a horizon's worth of decisions): pickling
        # them at every epoch is the cost of recovery, not worth paying without it.
        return self.learner.to_bytes() if self.snapshots else None


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


class ClockLogic(StatefulBatchLogic[Event, Any, dict[str, Any]]):
    """Bytewax wrapper of :class:`~operators.window.ExpiryClock` (one per shard)."""

    def __init__(
        self,
        config: WindowConfig,
        snap: dict[str, Any] | None,
        observer: FlowObserver,
        snapshots: bool = True,
        censor_at_eof: bool = False,
        tag_sender: bool = False,
    ) -> None:
        self.censor_at_eof = censor_at_eof
        #: Emit (worker, item) pairs: the case steps' progress is per clock worker (the
        #: items of one sender arrive in order; different senders' do not).
        self.tag_sender = tag_sender
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
        return self._tag(out), StatefulBatchLogic.RETAIN

    def _tag(self, out: list[Any]) -> list[Any]:
        if not self.tag_sender:
            return out
        sender = threading.get_ident()
        return [(sender, item) for item in out]

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
        if clock.max_event_at is not None:
            per_source = self._idle_targets(now) if clock.config.sources else None
            out = clock.advance_idle(clock.max_event_at + (now - self._latest_at), per_source)
            self._latest_at = now
        else:
            out = []
        self._moved_at = now
        self._report()
        return self._tag(out), StatefulBatchLogic.RETAIN

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
        return self._tag(list(self.clock.on_eof(self.censor_at_eof))), StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any] | None:
        return self.clock.snapshot() if self.snapshots else None


class CaseLogic(StatefulLogic[Event | Expire, tuple[str, Any], bytes]):
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
        self, value: Event | Expire | tuple[int, Event | Expire]
    ) -> tuple[list[tuple[str, Any]], bool]:
        gate = self.gate
        if gate is None:
            assert not isinstance(value, tuple)
            return self._handle(value)
        assert isinstance(value, tuple)  # (clock worker, item) with a gate
        sender, value = value
        if isinstance(value, Event):
            gate.received(value.occurred_at, sender)
        if self.queue or not self._ready(value):
            if not self.queue:
                gate.wait(value.order_id, _item_time(value))
            self.queue.append(value)
            return self._progress([]), StatefulLogic.RETAIN
        out, discard = self._handle(value)
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
        if self.queue:
            gate.wait(self.queue[0].order_id, _item_time(self.queue[0]))
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
            return out + got, discard
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        # Pickled now, so later mutation cannot leak into the snapshot; far cheaper than
        # deepcopy, and Bytewax would pickle it anyway. (Replays, the only flows with a
        # gate, run without recovery: waiting items are not part of it.)
        return pickle.dumps(self.window.case, pickle.HIGHEST_PROTOCOL)


def _item_time(value: Event | Expire) -> float:
    return value.occurred_at if isinstance(value, Event) else value.deadline


def _decode_item(item: tuple[Any, ...]) -> Event | DeadLetter:
    # (stream, payload, received_at) from a replay; live sources add their partition.
    if len(item) == 4:
        stream, payload, received_at, source = item
        return decode(stream, payload, received_at, source)
    stream, payload, received_at = item
    return decode(stream, payload, received_at)


@dataclass
class FlowStreams:
    """The built flow and its output streams, for callers that add steps before the sinks
    (live mode adds the human-review loop and the dispatcher)."""

    flow: Dataflow
    events: Stream[Event]
    records: dict[str, Stream[dict[str, Any]]]


def build_flow(parts: FlowParts, flow_id: str = "salvage") -> Dataflow:
    """Build the dataflow from its parts, with every sink in ``parts.sinks`` attached."""
    streams = build_streams(parts, flow_id)
    attach_outputs(streams, parts.sinks, parts.observer)
    return streams.flow


def attach_outputs(
    streams: FlowStreams, sinks: dict[str, Sink], observer: FlowObserver | None = None
) -> None:
    """Connect output records to sinks by output name (missing names are not written)."""
    hook = observer.on_output if observer is not None else None
    for name, sink in sinks.items():
        records = streams.records[name]
        if hook is not None:
            records = op.inspect(
                f"observe_{name}", records, lambda _s, r, n=name, hook=hook: hook(n, r)
            )
        op.output(f"out_{name}", records, sink)


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
    decoded = op.map("decode", raw, _decode_item)
    if observer.on_event is not None:
        on_event = observer.on_event
        decoded = op.inspect(
            "observe_event", decoded, lambda _s, x: on_event(x) if isinstance(x, Event) else None
        )
    valid = op.branch("valid", decoded, lambda x: isinstance(x, Event))

    shards = cfg.shards
    snapshots = parts.snapshots
    by_shard = op.key_on("key_shard", valid.trues, lambda e: shard_of(e.order_id, shards))
    tag_sender = parts.models is not None and parts.models.gate is not None
    clocked = op.stateful_batch(
        "clock",
        by_shard,
        lambda snap: ClockLogic(
            cfg, snap, observer, snapshots, parts.close_open_cases_at_eof, tag_sender
        ),
    )
    gate = parts.models.gate if parts.models is not None else None
    admitted = op.map("unkey_clock", clocked, lambda kv: kv[1])
    clock_dead: Stream[DeadLetter]
    if gate is None:
        admitted_ok = op.branch("admitted", admitted, lambda x: not isinstance(x, DeadLetter))
        by_order = op.key_on("key_order", admitted_ok.trues, lambda x: x.order_id)
        clock_dead = admitted_ok.falses
    else:
        # Items come tagged with the clock worker that sent them (see ClockLogic).
        tagged_ok = op.branch("admitted", admitted, lambda x: not isinstance(x[1], DeadLetter))
        by_order = op.key_on("key_order", tagged_ok.trues, lambda x: x[1].order_id)
        clock_dead = op.map("untag_dead", tagged_ok.falses, lambda x: x[1])

    close_at_eof = parts.close_open_cases_at_eof

    # ``op.stateful`` gives the builder only the resume state; a fresh case learns its
    # order id from its first item (see CaseLogic.on_item).
    def fresh(order_id: str) -> CaseWindow:
        return CaseWindow(order_id, decider(), cfg, None, parts.emit_case_views)

    def case_builder(snap: bytes | None) -> CaseLogic:
        case: OrderCase = pickle.loads(snap) if snap is not None else OrderCase("")
        window = CaseWindow(case.order_id, decider(), cfg, case, parts.emit_case_views)
        return CaseLogic(window, close_at_eof, observer.on_latency, snapshots, gate, fresh)

    cases = op.stateful("case", by_order, case_builder)
    tagged = op.map("unkey_case", cases, lambda kv: kv[1])

    dead: Stream[DeadLetter] = op.merge("dead_letters", valid.falses, clock_dead)
    if observer.on_dead_letter is not None:
        on_dead = observer.on_dead_letter
        dead = op.inspect("observe_dead", dead, lambda _s, d: on_dead(d))
    dead_records = op.map("dead_letter_record", dead, DeadLetter.to_record)

    records: dict[str, Stream[dict[str, Any]]] = {"dead_letter": dead_records}
    names = [*OUTPUT_NAMES[:3], "cases"] if parts.emit_case_views else OUTPUT_NAMES[:3]
    for name in names:
        tag = _TAG_OF_OUTPUT[name]
        records[name] = op.filter_map(
            f"select_{name}", tagged, lambda t, tag=tag: t[1] if t[0] == tag else None
        )
    if parts.models is not None:
        runtime = parts.models
        examples = op.filter(
            "select_examples", tagged, lambda t: t[0] in ("pending", "resolution", "progress")
        )
        keyed = op.key_on("key_models", examples, lambda _r: MODEL_SET)
        learned = op.stateful_batch(
            "learn", keyed, lambda snap: LearnerLogic(runtime, snap, observer, snapshots)
        )
        # Bytewax calls on_eof only on steps whose output reaches an output or inspect step;
        # without this the examples after the last publish would never be published.
        op.inspect("learned", learned, lambda _s, _x: None)
    return FlowStreams(flow, valid.trues, records)
