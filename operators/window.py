"""Event-time windowing of order cases: the expiry clock and the per-order case window.

Two pieces of plain-Python logic that the dataflow wires as two stateful steps:

``ExpiryClock``
    Keyed by a *shard* of the order id. It owns the event-time watermark (the highest
    ``occurred_at`` seen minus the allowed lateness), rejects late events, remembers each
    open order's recovery deadline and, when the watermark passes a deadline, emits an
    ``Expire`` command for that order. It also keeps short-lived tombstones of closed
    orders so that stragglers are dead-lettered rather than opening a second case.

``CaseWindow``
    Keyed by ``order_id``. It holds one :class:`~operators.case.OrderCase`, drops
    re-delivered events, folds the rest in, asks the decider when something that matters
    changed, and closes the case exactly once: on a resolving event, on ``Expire``, or
    (replay only) at end of input as ``censored``. A closed case returns ``discard=True`` so
    the runtime frees its state.

Both are driven only by event time, so a replay and a live run of the same events make
the same decisions and close the same cases. Bytewax's session windows keep per-key
state forever; this design frees it.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from operators.case import DAY, HOUR, OrderCase
from operators.contract import (
    MAX_EVENTS_PER_CASE,
    RESOLVING_TYPES,
    DeadLetter,
    Event,
    format_ts,
    payload_digest,
    redact,
)
from operators.records import OutcomeRecord, Output
from operators.vocabulary import DeadLetterKind


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Event-time settings of the case join."""

    allowed_lateness: float = 6 * HOUR
    window_after_delivery: float = 30 * DAY
    window_after_placed: float = 45 * DAY
    tombstone_retention: float = 14 * DAY
    shards: int = 8
    #: Events stamped further than this ahead of when they were received are dead-lettered
    #: as ``future``: one bad clock would otherwise move its shard's watermark ahead and
    #: expire every open case there. (Replays receive each event at the stream's own
    #: progress, see flows/sources.py.) None disables the check.
    max_future_skew: float | None = 1 * DAY
    #: The largest jump of event time one event may make alone: an event further ahead
    #: than this of its input's latest event time is accepted, but moves the watermark
    #: only once a second event lands within this of it, so a single outlier (a bad clock
    #: the future guard could not see) cannot advance a watermark. Keep it at or below
    #: ``allowed_lateness``: a larger jump taken alone makes the events behind it late.
    #: None: every event moves it (sparse test streams whose single events stand for days
    #: of traffic).
    max_jump: float | None = 6 * HOUR
    #: Live mode: when a shard has had no events for this many wall-clock seconds, its
    #: event time moves on with the wall clock (as Bytewax's EventClock does), so quiet
    #: hours still close expired cases. Each partition moves on from its *own* latest event
    #: time, never to a faster one's, so the idle advance makes none of a lagging
    #: partition's events late. None (replays): event time moves only with events.
    idle_advance_seconds: float | None = None
    #: The input partitions (live: ``p0``..``pN-1``). The watermark is the lowest of their
    #: latest event times, so a partition read ahead of the others (a backlog, a restart)
    #: makes no event of a slower one late. Empty: one input (replays).
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("allowed_lateness", "window_after_delivery", "window_after_placed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.tombstone_retention < 0:
            raise ValueError("tombstone_retention must be >= 0")
        if not 1 <= self.shards <= 4096:
            raise ValueError("shards must be between 1 and 4096")
        if self.max_future_skew is not None and self.max_future_skew < 0:
            raise ValueError("max_future_skew must be >= 0")
        if self.max_jump is not None and not self.max_jump > 0:
            raise ValueError("max_jump must be > 0")
        if self.idle_advance_seconds is not None and self.idle_advance_seconds <= 0:
            raise ValueError("idle_advance_seconds must be > 0")


def shard_of(order_id: str, shards: int) -> str:
    """The clock shard of an order: stable across processes and runs (no hash salt)."""
    return str(zlib.crc32(order_id.encode()) % shards)


@dataclass(frozen=True, slots=True)
class Expire:
    """Command from the clock: the order's recovery window ended at ``deadline``; or, with
    ``censored``, the input ended at ``deadline`` while the case was still open (replays)."""

    order_id: str
    deadline: float
    censored: bool = False
    #: The shard's watermark when the clock emitted it: from when the flow knows the case
    #: ended (a silent shard emits its expiries late; the context aggregates are versioned
    #: by this time, not by the deadline, see state/context.py).
    known_at: float | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class _Window:
    anchor: float  # order_placed time, or the first signal's time while pending
    placed: bool
    delivered: float | None
    events: int = 0  # events admitted (re-deliveries included): bounded by the contract


# --- the clock ----------------------------------------------------------------------------


@dataclass
class ExpiryClock:
    """Watermark, lateness and deadlines for the orders of one shard.

    >>> from operators.contract import decode
    >>> clock = ExpiryClock(WindowConfig(allowed_lateness=3600, window_after_placed=7200))
    >>> def ev(i, t, at):
    ...     return decode("orders", {"event_id": i, "type": t, "order_id": "o" + i,
    ...                              "occurred_at": at, "customer_id": "c", "currency": "EUR",
    ...                              "total": 1, "items": [{"sku": "s", "sku_family": "f",
    ...                              "quantity": 1, "unit_price": 1}]})
    >>> [type(x).__name__ for x in clock.on_event(ev("1", "order_placed", "2026-06-01T00:00:00Z"))]
    ['Event']
    >>> [type(x).__name__ for x in clock.on_event(ev("2", "order_placed", "2026-06-01T04:00:00Z"))]
    ['Event', 'Expire']
    >>> clock.on_event(ev("3", "order_placed", "2026-06-01T01:00:00Z"))[0].reason
    'late: occurred_at 2026-06-01T01:00:00Z is behind the watermark 2026-06-01T03:00:00Z'
    """

    config: WindowConfig = field(default_factory=WindowConfig)
    #: Latest confirmed event time (see ``pending``).
    max_event_at: float | None = None
    #: Latest confirmed event time per input partition (only with ``config.sources``).
    source_max: dict[str, float] = field(default_factory=dict)
    #: Per input ("" for the merged input, else the partition): event times that jumped
    #: more than ``max_jump`` ahead and wait for a second event to confirm them.
    pending: dict[str, list[float]] = field(default_factory=dict)
    windows: dict[str, _Window] = field(default_factory=dict)
    tombstones: dict[str, float] = field(default_factory=dict)
    #: order_id -> event_id of the event that resolved it, while its tombstone lives.
    closed_by: dict[str, str] = field(default_factory=dict)
    _heap: list[tuple[float, str]] = field(default_factory=list)
    _tomb_heap: list[tuple[float, str]] = field(default_factory=list)
    #: Events admitted ahead of the latest confirmed time, by (order id, event id): their
    #: re-deliveries move nothing (few: only jumps and the event confirming one).
    _ahead: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def watermark(self) -> float | None:
        """Event time before which no more events are accepted: the latest event time (the
        lowest over partitions, with several) less the allowed lateness."""
        sources = self.config.sources
        if sources:
            seen = self.source_max
            if len(seen) < len(sources):
                return None  # a partition has not been heard from yet
            return min(seen[s] for s in sources) - self.config.allowed_lateness
        if self.max_event_at is None:
            return None
        return self.max_event_at - self.config.allowed_lateness

    def deadline(self, w: _Window) -> float:
        if w.delivered is not None:
            return w.delivered + self.config.window_after_delivery
        return w.anchor + self.config.window_after_placed

    def on_event(self, event: Event, received_at: float = 0.0) -> list[Event | Expire | DeadLetter]:
        """Admit one event; returns it (or a dead letter) followed by any expiries it causes.

        A re-delivery of the event that resolved a case is dropped (dedup by event_id);
        any other event for a closed case is dead-lettered as ``after_close``.
        """
        oid = event.order_id
        if self.closed_by.get(oid) == event.event_id:
            return []
        wm = self.watermark
        ts = event.occurred_at
        skew = self.config.max_future_skew
        if skew is not None and received_at > 0 and ts > received_at + skew:
            return [
                _dead(
                    event,
                    DeadLetterKind.FUTURE,
                    f"occurred_at {format_ts(ts)} is more than {skew / HOUR:g} h "
                    f"after it was received ({format_ts(received_at)})",
                    received_at,
                )
            ]
        if wm is not None and ts < wm:
            return [
                _dead(
                    event,
                    DeadLetterKind.LATE,
                    f"occurred_at {format_ts(ts)} is behind the watermark {format_ts(wm)}",
                    received_at,
                )
            ]
        w = self.windows.get(oid)
        if w is not None and w.events >= MAX_EVENTS_PER_CASE and event.type not in RESOLVING_TYPES:
            # A runaway producer must not grow one case without bound; a resolution still
            # closes it.
            return [
                _dead(
                    event,
                    DeadLetterKind.TOO_MANY_EVENTS,
                    f"the order already has {w.events} events (limit {MAX_EVENTS_PER_CASE})",
                    received_at,
                )
            ]
        if oid in self.tombstones:
            return [
                _dead(
                    event,
                    DeadLetterKind.AFTER_CLOSE,
                    "the order's case is already closed",
                    received_at,
                )
            ]
        out: list[Event | Expire | DeadLetter] = [event]
        lateness = self.config.allowed_lateness
        # A re-delivery (a duplicate line) of an event still ahead of the latest confirmed
        # time goes on to its case, which drops it, but moves nothing here: as a second
        # event it would confirm its own jump, or move the time past where a confirmed
        # jump left it, so duplicates would change a replay's outcome.
        seen = (oid, event.event_id)
        if self._ahead.get(seen) == ts:
            return out
        if event.type in RESOLVING_TYPES:
            self._close(oid, ts)
            self.closed_by[oid] = event.event_id
        else:
            self._track(event)
        if self.config.sources:
            source = event.source
            if source in self.config.sources:
                confirmed = self._confirm(source, self.source_max.get(source), ts)
                if confirmed is not None:
                    self.source_max[source] = confirmed
                    new_wm = self.watermark
                    if new_wm is not None and (wm is None or new_wm > wm):
                        known = max(new_wm, max(ts, received_at) - lateness)
                        out.extend(self._advance(new_wm, known))
            confirmed = self._confirm("", self.max_event_at, ts)
            if confirmed is not None:
                self.max_event_at = confirmed
                self._forget_ahead()
        else:
            confirmed = self._confirm("", self.max_event_at, ts)
            if confirmed is not None:
                self.max_event_at = confirmed
                self._forget_ahead()
                new_wm = confirmed - lateness
                # The flow knows from this event on: not before its time (confirming a
                # jump moves the watermark to the earlier event) nor before the input's
                # progress when it came (a file's own disorder delivers it late).
                known = max(new_wm, max(ts, received_at) - lateness)
                out.extend(self._advance(new_wm, known))
        if self.max_event_at is not None and ts > self.max_event_at:
            self._ahead[seen] = ts
        return out

    def _forget_ahead(self) -> None:
        ahead = self._ahead
        if ahead and self.max_event_at is not None:
            latest = self.max_event_at
            for key in [k for k, t in ahead.items() if t <= latest]:
                del ahead[key]

    #: Unconfirmed jumps remembered per input: a burst of bad clocks forgets the oldest.
    MAX_PENDING = 16

    def _confirm(self, key: str, current: float | None, ts: float) -> float | None:
        """The input's new latest event time after an event at ``ts``, or None if it does
        not move. A jump of more than ``max_jump`` counts only once a second event lands
        within ``max_jump`` of it: then the earlier of the two is taken. (A re-delivery of
        the event never gets here: see ``_ahead``.)"""
        jump = self.config.max_jump
        if current is None or jump is None or ts <= current + jump:
            if current is not None and ts <= current:
                return None
            pending = self.pending.get(key)
            if pending:
                # Jumps the input has now reached are no longer pending.
                pending[:] = [p for p in pending if p > ts]
            return ts
        pending = self.pending.setdefault(key, [])
        for p in pending:
            if abs(p - ts) <= jump:  # a second event agrees: the input really is there
                new = min(p, ts)
                pending[:] = [q for q in pending if q > new + jump]
                return new
        pending.append(ts)
        if len(pending) > self.MAX_PENDING:
            del pending[0]
        return None

    def _track(self, event: Event) -> None:
        oid, ts, type_ = event.order_id, event.occurred_at, event.type
        w = self.windows.get(oid)
        before = None
        if w is None:
            w = self.windows[oid] = _Window(ts, type_ == "order_placed", None)
        else:
            before = self.deadline(w)
            if type_ == "order_placed":
                w.anchor, w.placed = ts, True
            elif not w.placed and ts < w.anchor:
                w.anchor = ts
        if type_ == "delivered":
            w.delivered = ts
        w.events += 1
        deadline = self.deadline(w)
        # The heap already holds this deadline unless it moved: one entry per change, not
        # per event (a heap entry per event was about 350 bytes per open case).
        if deadline != before:
            heapq.heappush(self._heap, (deadline, oid))

    def _close(self, oid: str, ts: float) -> None:
        self.windows.pop(oid, None)
        until = ts + self.config.tombstone_retention
        self.tombstones[oid] = until
        heapq.heappush(self._tomb_heap, (until, oid))

    def _advance(self, watermark: float, known_at: float | None = None) -> list[Expire]:
        """Expire what ``watermark`` passed (``known_at``: from when the flow knows, see
        Expire; the watermark itself by default)."""
        known = watermark if known_at is None else known_at
        expired: list[Expire] = []
        heap = self._heap
        while heap and heap[0][0] <= watermark:
            deadline, oid = heapq.heappop(heap)
            w = self.windows.get(oid)
            # Stale heap entries (the deadline moved, or the case closed) are skipped.
            if w is None or self.deadline(w) != deadline:
                continue
            expired.append(Expire(oid, deadline, known_at=known))
            self._close(oid, deadline)
        tomb = self._tomb_heap
        while tomb and tomb[0][0] <= watermark:
            until, oid = heapq.heappop(tomb)
            if self.tombstones.get(oid) == until:
                del self.tombstones[oid]
                self.closed_by.pop(oid, None)
        # The lazy heap can hold many stale entries; rebuild it when it gets too loose.
        if len(heap) > 4 * len(self.windows) + 1024:
            self._heap = [(self.deadline(w), o) for o, w in self.windows.items()]
            heapq.heapify(self._heap)
        return expired

    def advance_idle(
        self, event_time: float, per_source: Mapping[str, float] | None = None
    ) -> list[Expire]:
        """Move this shard's event time on to ``event_time`` without an event (idle input
        in live mode) and expire what the new watermark allows. Never moves backwards.

        With several partitions, ``per_source`` gives each partition its own new time
        (its latest event time plus the wall time it has been quiet): a partition is never
        taken as caught up with a faster one, so none of its events is made late. Without
        it every partition moves to ``event_time``.

        >>> clock = ExpiryClock(WindowConfig(allowed_lateness=0, window_after_placed=10))
        >>> from operators.contract import decode
        >>> _ = clock.on_event(decode("orders", {"event_id": "e", "type": "order_placed",
        ...     "order_id": "o", "occurred_at": "2026-06-01T00:00:00Z", "customer_id": "c",
        ...     "currency": "EUR", "total": 1, "items": [{"sku": "s", "sku_family": "f",
        ...     "quantity": 1, "unit_price": 1}]}))
        >>> clock.advance_idle(clock.max_event_at + 5), clock.advance_idle(clock.max_event_at + 5)
        ([], [Expire(order_id='o', deadline=1780272010.0, censored=False)])
        """
        if self.config.sources:
            before = self.watermark
            for source in self.config.sources:
                target = event_time if per_source is None else per_source.get(source)
                if target is not None and self.source_max.get(source, float("-inf")) < target:
                    self.source_max[source] = target
            if self.max_event_at is None or event_time > self.max_event_at:
                self.max_event_at = event_time
            after = self.watermark
            if after is None or (before is not None and after <= before):
                return []
            return self._advance(after)
        if self.max_event_at is None or event_time <= self.max_event_at:
            return []
        self.max_event_at = event_time
        return self._advance(event_time - self.config.allowed_lateness)

    def on_eof(self, censor: bool = False) -> list[Expire]:
        """End of input: expire everything whose deadline is at or before the last event
        and, with ``censor``, censor every order still open at the shard's last event time
        (the same time for the shard's orders in every run, whatever the workers or
        processes: a shard's events all pass through this clock)."""
        if self.max_event_at is None:
            return []
        # Known only at the end of input, after every decision (not read by any).
        out = self._advance(self.max_event_at, math.inf)
        if censor:
            end = self.max_event_at
            out.extend(Expire(oid, end, censored=True) for oid in sorted(self.windows))
        return out

    def state_size(self) -> int:
        """Orders and tombstones held (for metrics and memory tests)."""
        return len(self.windows) + len(self.tombstones)

    def snapshot(self) -> dict[str, Any]:
        """Picklable copy of the state (recovery)."""
        return {
            "max_event_at": self.max_event_at,
            "source_max": dict(self.source_max),
            "pending": {k: list(v) for k, v in self.pending.items() if v},
            "windows": {
                o: (w.anchor, w.placed, w.delivered, w.events) for o, w in self.windows.items()
            },
            "tombstones": dict(self.tombstones),
            "closed_by": dict(self.closed_by),
        }

    @classmethod
    def restore(cls, config: WindowConfig, snap: dict[str, Any] | None) -> ExpiryClock:
        """Rebuild a clock from :meth:`snapshot` (or a fresh one from None)."""
        clock = cls(config)
        if snap:
            clock.max_event_at = snap["max_event_at"]
            clock.source_max = dict(snap.get("source_max", {}))
            clock.pending = {k: list(v) for k, v in snap.get("pending", {}).items()}
            clock.windows = {o: _Window(*w) for o, w in snap["windows"].items()}
            clock.tombstones = dict(snap["tombstones"])
            clock.closed_by = dict(snap.get("closed_by", {}))
            clock._heap = [(clock.deadline(w), o) for o, w in clock.windows.items()]
            heapq.heapify(clock._heap)
            clock._tomb_heap = [(u, o) for o, u in clock.tombstones.items()]
            heapq.heapify(clock._tomb_heap)
        return clock


def _dead(event: Event, kind: DeadLetterKind, reason: str, received_at: float) -> DeadLetter:
    # The body is valid JSON; the letter keeps its allowlisted fields and digest only.
    return DeadLetter(
        event.stream,
        f"{kind}: {reason}",
        redact(event.body),
        received_at,
        event.event_id,
        event.order_id,
        kind,
        payload_digest(event.body),
    )


# --- the case window ------------------------------------------------------------------------


class Decider(Protocol):
    """The decision seam: turns a case that changed into output records.

    It may write decision bookkeeping on the case (arm, actions, first propensity).
    """

    def decide(self, case: OrderCase, trigger: Event) -> list[Output]: ...

    def on_close(self, case: OrderCase, outcome: dict[str, Any]) -> list[Output]:
        """Called once when the case closes; may return extra outputs (learning examples)."""
        ...


@runtime_checkable
class BatchDecider(Decider, Protocol):
    """A decider that works per batch of the flow (``FlowParts.decides_per_batch``):
    ``prepare`` gets each batch's events before the case step, ``settle`` each batch of
    the case step's (key, output) pairs after it and returns what goes on."""

    def prepare(self, events: Iterable[Event]) -> None: ...

    def settle(self, items: list[tuple[Any, Output]]) -> list[tuple[Any, Output]]: ...


class CaseWindow:
    """The per-order stateful logic: dedup, join, decide, close exactly once.

    ``on_*`` methods return ``(outputs, discard)`` like a Bytewax ``StatefulLogic``.
    """

    __slots__ = ("case", "config", "decider", "emit_views")

    def __init__(
        self,
        order_id: str,
        decider: Decider,
        config: WindowConfig,
        case: OrderCase | None = None,
        emit_views: bool = False,
    ) -> None:
        self.case = case if case is not None else OrderCase(order_id)
        self.decider = decider
        self.config = config
        self.emit_views = emit_views  # live mode keeps a case view for `salvage case`

    def on_event(self, event: Event) -> tuple[list[Output], bool]:
        case = self.case
        if case.is_duplicate(event):
            return [], False
        matters = case.apply(event)
        out: list[Output] = []
        if case.closed:
            out.extend(self._close(case.resolved_at or event.occurred_at))
            return out, True
        if matters:
            out.extend(self.decider.decide(case, event))
            if self.emit_views:
                out.append(("case", case.view(event.occurred_at)))
        return out, False

    def on_expire(self, expire: Expire) -> tuple[list[Output], bool]:
        if expire.censored:
            return self.on_eof(expire.deadline)
        return self._close(expire.deadline, known_at=expire.known_at), True

    def on_eof(self, end_at: float | None = None) -> tuple[list[Output], bool]:
        """End of a replay: the case is censored at the end of input, ``end_at`` (the
        latest event time of the order's clock shard; this case's last event if unknown)."""
        at = self.case.last_event_at if end_at is None else max(end_at, self.case.last_event_at)
        return self._close(at, censored=True), True

    def _close(
        self, closed_at: float, *, censored: bool = False, known_at: float | None = None
    ) -> list[Output]:
        record = OutcomeRecord.of_case(self.case, closed_at, censored=censored).to_record()
        # The decider also learns when the flow knew (``known_at_ts``: an expiry's
        # watermark; the closing event's time otherwise), which the output does not carry.
        seen = {**record, "known_at_ts": closed_at if known_at is None else known_at}
        out = self.decider.on_close(self.case, seen)
        if self.emit_views:
            out.append(("case", self.case.view(closed_at)))
        out.append(("outcome", record))
        return out


def run_in_memory(
    events: Iterable[Event],
    decider: Decider,
    config: WindowConfig | None = None,
    on_dead: Callable[[DeadLetter], None] | None = None,
    close_at_eof: bool = True,
    on_output: Callable[[Output], None] | None = None,
) -> tuple[list[Output], dict[str, CaseWindow], ExpiryClock]:
    """Drive clock and windows over events without a dataflow (one shard), for tests and
    tools. Returns outputs, the windows left open, and the clock.

    Like a replay, end of input expires what the last event time allows and then, with
    ``close_at_eof``, closes every other case as ``censored`` at the last event time;
    without it those windows are returned still open. ``on_output`` takes outputs as they
    come (online learning) instead of collecting them."""
    cfg = config or WindowConfig()
    clock = ExpiryClock(cfg)
    windows: dict[str, CaseWindow] = {}
    outputs: list[Output] = []
    emit = on_output if on_output is not None else outputs.append

    def route(item: Event | Expire | DeadLetter) -> None:
        if isinstance(item, DeadLetter):
            if on_dead is not None:
                on_dead(item)
            return
        w = windows.get(item.order_id)
        if isinstance(item, Expire):
            if w is None:
                return
            out, discard = w.on_expire(item)
        else:
            if w is None:
                w = windows[item.order_id] = CaseWindow(item.order_id, decider, cfg)
            out, discard = w.on_event(item)
        for o in out:
            emit(o)
        if discard:
            del windows[item.order_id]

    for event in events:
        for item in clock.on_event(event):
            route(item)
    for item in clock.on_eof():
        route(item)
    if close_at_eof:
        for order_id in sorted(windows):  # sorted: outputs in a stable order
            for o in windows.pop(order_id).on_eof(clock.max_event_at)[0]:
                emit(o)
    return outputs, windows, clock
