"""Where model versions are posted, and the gate that makes decisions wait for theirs.

The learner (:mod:`operators.learner`) cuts a version of the models at each event-time
boundary and posts it on a :class:`SnapshotBoard`; scorers in the same process read the
version for a decision's event time. In a replay a :class:`DecisionGate` holds a decision
whose version is not cut yet, and reports each worker's :class:`Progress` to the learner,
whose clock moves on those alone (see ``docs/decisions.md``, "Replay determinism").
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
from dataclasses import dataclass

from operators.models import ModelSnapshot
from operators.versions import VersionClock

#: Event time a worker's progress moves before it is reported again (see DecisionGate).
PROGRESS_STEP = 3600.0
#: Turns of the flow after the end of input (and after a worker last received an item)
#: before a worker with nothing waiting no longer holds the learner's clock back: what
#: was sent to it has arrived by then (an item that comes later still counts as late).
END_ROUNDS = 20


@dataclass(frozen=True, slots=True)
class Progress:
    """A worker's case step will emit nothing earlier than ``at`` any more (less the
    allowed lateness): everything it received up to then was decided, or waits at ``at``
    or later. With a :class:`DecisionGate` the learner's clock moves on these alone."""

    source: int
    at: float


class SnapshotBoard:
    """Where the learner posts model versions and scorers in the same process read them.

    With a ``clock`` the learner publishes a version per event-time boundary
    (:meth:`publish`) and a scorer deciding at event time ``t`` reads :meth:`for_time`:
    the newest version whose boundary is at or before ``clock.visible(t)``. That is
    exact once the learner has cut that boundary (``complete_until``). A read before
    that gets the newest version there is, and is checked when the boundary is cut: if
    the version it should have read is another, it counts in ``early_reads`` (0 in an
    exact run, see ``docs/decisions.md``). :meth:`post` sets an untimed version (a
    checkpoint at warm start, tests), read where no timed version is yet and by scorers
    without a time. Posting replaces references under a lock, so a scorer never sees a
    half-updated model. Across processes the learner also saves checkpoints to a
    ``ModelStore``.
    """

    #: Timed versions kept: a read needs one only as far back as its lag and lateness.
    KEEP = 64

    def __init__(self, clock: VersionClock | None = None) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.latest: ModelSnapshot | None = None
        self.base: ModelSnapshot | None = None  # untimed: before the first timed version
        # Every timed version's boundary and number; the snapshots of the last KEEP.
        self._boundaries: list[float] = []
        self._numbers: list[int] = []
        self._snapshots: dict[int, ModelSnapshot] = {}
        self.complete_until = -math.inf
        #: Reads made before their boundary was cut: (boundary, version number read).
        self._unchecked: list[tuple[float, int]] = []
        self.early_reads = 0
        #: The latest event time found ready with the current clock: ``visible`` never
        #: decreases with time and ``complete_until`` never goes back, so any time at or
        #: before it is ready too (asked for every item of a replay).
        self._ready_upto = -math.inf
        self._ready_clock: VersionClock | None = None

    def post(self, snapshot: ModelSnapshot) -> None:
        """An untimed version (warm start, tests): the newest by version number wins."""
        with self._lock:
            if self.latest is None or snapshot.version > self.latest.version:
                self.latest = snapshot
            if self.base is None or snapshot.version > self.base.version:
                self.base = snapshot

    def publish(self, boundary: float, snapshot: ModelSnapshot | None) -> None:
        """The learner cut ``boundary``: every example at or before it is learned, and
        ``snapshot`` is the new version (None: nothing new since the previous cut)."""
        with self._lock:
            if snapshot is not None:
                self.latest = snapshot
                if math.isfinite(boundary):
                    self._boundaries.append(boundary)
                    self._numbers.append(snapshot.version)
                    self._snapshots[snapshot.version] = snapshot
                    if len(self._snapshots) > self.KEEP:
                        del self._snapshots[min(self._snapshots)]
            if boundary > self.complete_until:
                self.complete_until = boundary
                self._check_early_reads()

    def _number_at(self, boundary: float) -> int:
        i = bisect.bisect_right(self._boundaries, boundary)
        return self._numbers[i - 1] if i else 0

    def _check_early_reads(self) -> None:
        keep = []
        for boundary, number in self._unchecked:
            if boundary > self.complete_until:
                keep.append((boundary, number))
            elif self._number_at(boundary) != number:
                self.early_reads += 1
        self._unchecked = keep

    def for_time(self, t: float) -> ModelSnapshot | None:
        """The version a decision at event time ``t`` reads (see the class docstring)."""
        if self.clock is None:
            return self.latest
        boundary = self.clock.visible(t)
        with self._lock:
            number = self._number_at(boundary)
            snapshot = self._snapshots.get(number) if number else self.base
            if number and snapshot is None:
                self.early_reads += 1  # older than every version kept: take the oldest
                snapshot = self._snapshots[min(self._snapshots)]
            if boundary > self.complete_until:
                self._unchecked.append((boundary, number))
            return snapshot

    def ready(self, t: float) -> bool:
        """Whether the version a decision at ``t`` reads is complete (always, untimed)."""
        clock = self.clock
        if clock is None:
            return True
        if t <= self._ready_upto and clock is self._ready_clock:
            return True
        if clock.visible(t) <= self.complete_until:
            if clock is not self._ready_clock:
                self._ready_clock, self._ready_upto = clock, t
            elif t > self._ready_upto:
                self._ready_upto = t
            return True
        return False


class DecisionGate:
    """Holds decisions until the model version they read is complete (replays).

    A worker's case step asks :meth:`ready` before handing an order's item to its case: if
    the version for the decision's event time is not cut yet, the item (and every later
    item of the order) waits in the case's state and is retried when the step is next
    woken. Each worker reports its :class:`Progress` to the learner: the latest event time
    it received, or its earliest waiting item if earlier; the learner's clock is the
    lowest progress of the workers, so a waiting decision never waits for itself (the lag
    is at least the learner's margin plus :data:`PROGRESS_STEP`). Per-worker state is
    keyed by thread: the workers of one process share the gate.
    """

    def __init__(self, board: SnapshotBoard, workers: int = 1, step: float = PROGRESS_STEP) -> None:
        self.board = board
        self.workers = workers  # the flow's case-step workers, all in this process
        self.step = step
        self._workers: dict[int, _WorkerProgress] = {}
        #: Items that waited, and items handed on at end of input before they were ready.
        self.held = 0
        self.forced = 0
        #: Turns the source gave at the end of input while items waited (hold_end).
        self.end_rounds = 0

    def hold_end(self) -> bool:
        """The source is at the end of its input: whether to give the flow another turn
        (something waits)."""
        self.end_rounds += 1
        return self.waiting()

    def heard_all(self, sources: int) -> bool:
        """Whether the learner may cut, having heard from ``sources`` workers: all of them
        (one not heard from may still send anything), or the input ended a while ago (a
        worker that never received an item sends nothing)."""
        return sources >= self.workers or self.end_rounds >= END_ROUNDS

    def finished(self) -> frozenset[int]:
        """Workers with nothing waiting, END_ROUNDS turns after the end of input: they
        have nothing left to send (an item still on its way would count as late)."""
        rounds = self.end_rounds
        if rounds < END_ROUNDS:
            return frozenset()
        return frozenset(
            src
            for src, w in list(self._workers.items())
            if not w.waiting and rounds - w.changed_at >= END_ROUNDS
        )

    def _mine(self) -> _WorkerProgress:
        src = threading.get_ident()
        mine = self._workers.get(src)
        if mine is None:
            mine = self._workers[src] = _WorkerProgress(src)
        return mine

    def ready(self, t: float) -> bool:
        return self.board.ready(t)

    def waiting(self) -> bool:
        """Whether any worker has items waiting (read from any thread)."""
        return any(w.waiting for w in list(self._workers.values()))

    def received(self, t: float, sender: int = 0) -> None:
        """This worker received an event at ``t`` from clock worker ``sender``."""
        mine = self._mine()
        mine.changed_at = self.end_rounds
        by = mine.received_from
        if t > by.get(sender, -math.inf):
            by[sender] = t
            # Items of one sender arrive in order, not those of different senders: what
            # this worker has surely received is the lowest of its senders' latest.
            if len(by) >= self.workers or self.end_rounds >= END_ROUNDS:
                mine.received = min(by.values())

    def wait(self, order_id: str, t: float) -> None:
        """The order's earliest waiting item is at ``t`` (it starts waiting, or the item
        before it was handed on)."""
        mine = self._mine()
        if order_id not in mine.waiting:
            self.held += 1
        mine.waiting[order_id] = t
        heapq.heappush(mine.heap, (t, order_id))

    def done(self, order_id: str) -> None:
        """Nothing of the order waits any more."""
        self._mine().waiting.pop(order_id, None)

    def progress(self) -> Progress | None:
        """This worker's progress, when it moved ``step`` since last reported."""
        mine = self._mine()
        at = mine.received
        # After the end of input, report at every turn: the learner re-reads finished().
        ending = self.end_rounds >= END_ROUNDS and mine.seen_end != self.end_rounds
        if ending and self.end_rounds - mine.changed_at >= END_ROUNDS and mine.received_from:
            # Everything sent to this worker has arrived: a sender that stopped sending to
            # it long ago no longer holds its progress back.
            at = max(mine.received_from.values())
        mine.seen_end = self.end_rounds
        if at < mine.reported + self.step and not ending:
            return None
        heap, waiting = mine.heap, mine.waiting
        while heap and waiting.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale: that item was handed on
        if heap and heap[0][0] < at:
            at = heap[0][0]
            if at < mine.reported + self.step and not ending:
                return None
        mine.reported = max(mine.reported, at)
        return Progress(mine.source, at)


class _WorkerProgress:
    __slots__ = (
        "changed_at", "heap", "received", "received_from", "reported", "seen_end", "source",
        "waiting",
    )  # fmt: skip

    def __init__(self, source: int) -> None:
        self.source = source
        self.received = -math.inf
        self.received_from: dict[int, float] = {}  # clock worker -> its latest event here
        self.reported = -math.inf
        self.waiting: dict[str, float] = {}  # order id -> its earliest waiting item's time
        self.heap: list[tuple[float, str]] = []
        self.seen_end = 0
        self.changed_at = 0  # the end turn at which it last received an item
