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
from collections.abc import Collection, Mapping
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
    """A worker's case step will emit nothing earlier than ``at`` any more: no shard of
    the clock sends anything earlier, and what it received before was decided, or waits
    at ``at`` or later. With a :class:`DecisionGate` the learner's clock moves on these
    alone."""

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
    woken. Each worker reports its :class:`Progress` to the learner: how far every shard
    of the clock has surely got (see :meth:`received`), or its earliest waiting item if
    earlier. The learner's clock is the lowest progress of the workers, so a waiting
    decision never waits for itself (the lag is at least the learner's margin plus
    :data:`PROGRESS_STEP`). Per-worker state is keyed by thread: the workers of one
    process share the gate, and what the shards sent is counted for all of them.

    Why not the latest event time received: a shard admits events up to the allowed
    lateness behind its *own* latest, which may be far behind another shard's; and a
    stateful step takes the items of one activation grouped by key, so even one shard's
    items are handled out of the order it sent them in. Hence each shard numbers the items
    it sends and tags them with its watermark then (``flows.dataflow.ClockLogic``): once
    every item up to number *n* was handled, nothing earlier than the bound sent with *n*
    can come from that shard any more.
    """

    def __init__(
        self,
        board: SnapshotBoard,
        workers: int = 1,
        step: float = PROGRESS_STEP,
        shards: int = 1,
    ) -> None:
        self.board = board
        self.workers = workers  # the flow's case-step workers, all in this process
        self.step = step
        #: The clock's shards (WindowConfig.shards): progress needs a bound from each.
        self.shards = shards
        self._workers: dict[int, _WorkerProgress] = {}
        self._lock = threading.Lock()  # the feeds are shared by the workers
        self._feeds: dict[int, _Feed] = {}
        #: The lowest bound of the shards (-inf until every shard was heard from).
        self._low = -math.inf
        #: Items that waited, and items handed on at end of input before they were ready.
        self.held = 0
        self.forced = 0
        #: Turns the source gave at the end of input while items waited (hold_end).
        self.end_rounds = 0
        #: Numbered items each clock shard of this process has sent so far (see sent()).
        self._sent: dict[int, int] = {}
        #: Raw items the source handed to the flow, the ones decoding turned into dead
        #: letters, and the events the clock shards took: until the first equals the sum
        #: of the others, an event is on its way to a clock shard (see in_flight()).
        self._read = 0
        self._rejected = 0
        self._taken = 0

    def hold_end(self) -> bool:
        """The source is at the end of its input: whether to give the flow another turn
        (something waits)."""
        self.end_rounds += 1
        return self.waiting()

    def read(self, count: int) -> None:
        """The source hands ``count`` more raw items to the flow (called before it does)."""
        with self._lock:
            self._read += count

    def rejected(self, count: int) -> None:
        """Decoding turned ``count`` of the items read into dead letters: they never reach
        a clock shard."""
        with self._lock:
            self._rejected += count

    def heard_all(self, heard: Collection[int], done: Collection[int] = ()) -> bool:
        """Whether the learner may cut, having had progress from the workers ``heard``:
        from all of them (one not heard from may still send anything), or, a while after
        the end of input, from every worker that is not ``done`` (see :meth:`finished`; a
        worker that never received an item sends nothing)."""
        if len(heard) >= self.workers:
            return True
        if self.end_rounds < END_ROUNDS:
            return False
        return all(src in heard or src in done for src in list(self._workers))

    def sent(self, shard: int, count: int, took: int = 0) -> None:
        """Clock shard ``shard`` took ``took`` more events and has sent (or is about to
        send) items numbered below ``count``: until a worker of this process has handled
        each of them, one is still on its way, and no worker is finished. (Both at once:
        read apart, the events taken and the items sent would show nothing in flight
        between the two updates.)"""
        with self._lock:
            self._taken += took
            if count > self._sent.get(shard, 0):
                self._sent[shard] = count

    def in_flight(self) -> bool:
        """Whether an item the source read has not reached a clock shard yet, or one a
        clock shard sent has not been handled yet (read from any thread)."""
        with self._lock:
            if self._read > self._rejected + self._taken:
                return True
            feeds = self._feeds
            return any(
                (feed := feeds.get(shard)) is None or feed.next < count
                for shard, count in self._sent.items()
                if count > 0
            )

    def emitted(self, count: int) -> None:
        """This worker hands ``count`` more examples (pending, resolution) to the learner.
        Called before it counts the item that gave them as handled: until the learner has
        taken as many from it (:meth:`finished`), they are on their way."""
        self._mine().emitted += count

    def finished(self, received: Mapping[int, int]) -> frozenset[int]:
        """Workers with nothing left to send the learner, given how many examples it has
        ``received`` from each: nothing waiting, END_ROUNDS turns after the end of input
        and after the last item they received, every item the source read and the clock
        shards sent handled, and every example they emitted received. (The learner reads
        this from another thread: a worker's state says it is idle as soon as it has
        handled its last item, while what that emitted is still on its way to the
        learner; counting both ends closes that window, where turns alone did not.)"""
        rounds = self.end_rounds
        if rounds < END_ROUNDS or self.in_flight():
            return frozenset()
        return frozenset(
            src
            for src, w in list(self._workers.items())
            if not w.waiting
            and rounds - w.changed_at >= END_ROUNDS
            and received.get(src, 0) >= w.emitted
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

    def received(self, shard: int, seq: int, bound: float, at: float) -> None:
        """This worker has handled (decided, or queued to wait) item ``seq`` of clock
        shard ``shard``, at event time ``at``, sent with the bound ``bound``: that shard
        sends nothing earlier than it from its item ``seq`` on (its watermark then; -inf:
        none yet)."""
        mine = self._mine()
        mine.changed_at = self.end_rounds
        if at > mine.latest:
            mine.latest = at
        if seq < 0:
            return  # not numbered: nothing is counted on it
        with self._lock:
            feed = self._feeds.get(shard)
            if feed is None:
                feed = self._feeds[shard] = _Feed()
            if seq != feed.next:
                feed.ahead[seq] = bound  # an earlier item of the shard is still to come
                return
            feed.next = seq + 1
            ahead = feed.ahead
            while feed.next in ahead:
                bound = max(bound, ahead.pop(feed.next))
                feed.next += 1
            if bound <= feed.bound:
                return
            low = feed.bound
            feed.bound = bound
            feeds = self._feeds
            if (low <= self._low or self._low == -math.inf) and (
                len(feeds) >= self.shards or self.end_rounds >= END_ROUNDS
            ):
                self._low = min(f.bound for f in feeds.values())

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
        at = self._low
        # After the end of input, report at every turn: the learner re-reads finished().
        ending = self.end_rounds >= END_ROUNDS and mine.seen_end != self.end_rounds
        if (
            ending
            and self.end_rounds - mine.changed_at >= END_ROUNDS
            and mine.latest > at
            and not self.in_flight()
        ):
            # Everything sent to this worker has arrived and was handled: it emits nothing
            # earlier than its waiting items any more (the shards' bounds lag their latest
            # event by the lateness and more, at the sparse tail of an input).
            at = mine.latest
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


class _Feed:
    """What a worker of this process handled of one clock shard's numbered items."""

    __slots__ = ("ahead", "bound", "next")

    def __init__(self) -> None:
        self.next = 0  # every item before this one was handled
        self.bound = -math.inf  # the bound sent with item next - 1
        self.ahead: dict[int, float] = {}  # items handled before an earlier one: bound


class _WorkerProgress:
    __slots__ = (
        "changed_at", "emitted", "heap", "latest", "reported", "seen_end", "source", "waiting",
    )  # fmt: skip

    def __init__(self, source: int) -> None:
        self.source = source
        self.reported = -math.inf
        self.latest = -math.inf  # the latest event time of the items it handled
        self.waiting: dict[str, float] = {}  # order id -> its earliest waiting item's time
        self.heap: list[tuple[float, str]] = []
        self.seen_end = 0
        self.changed_at = 0  # the end turn at which it last received an item
        self.emitted = 0  # examples it handed to the learner (see DecisionGate.emitted)
