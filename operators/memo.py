"""Decision memo: one decision per decision point, however often the point is reached.

Live mode resumes from a Bytewax snapshot after a crash and reads again the events after
it. The case state rolls back with the snapshot, but what else a decision reads (the
context aggregates, the published model, the credit ledger) lives in Redis and does not:
decided again, a re-read event could get a *different* action, hence a different
``intervention_id`` (it hashes the action), which the dispatch ledger cannot catch, and
one more customer contact than the first run made.

:class:`RememberingDecider` wraps the decision engine. The first decision at a point
(order id, trigger event id, policy version: :func:`decision_point`) is recorded in a
:class:`DecisionMemo` *before* its records are emitted; reaching the point again replays
the recorded records, byte for byte, and applies to the case what the first decision did
(its arm, its first propensity, the action in its history, the learning-example count),
so the case continues exactly as it did the first time. Effectively once, keyed by the
decision point; the records themselves stay at-least-once (a replayed point re-emits).

A point the memo does not know (the first time, or after its entry expired) is decided
afresh. Replays need no memo: they read no state outside the dataflow.

**Per batch, not per point.** Asking the memo before and writing it after every decision is
two round trips to Redis per decision point, the largest cost of a live flow. The flow
therefore hands the decider each batch of events before the case step
(:meth:`RememberingDecider.prepare`: one read of every point the batch can reach) and each
batch of the case step's outputs after it (:meth:`RememberingDecider.settle`: one write of
every decision made, *before* the outputs go on to the sinks). A decision made while another
writer recorded the same point in between (two incarnations of a worker at once) is
replaced at ``settle`` by the one that stands, as it is when deciding point by point; its
case takes the standing decision's marks when nothing later changed them, and otherwise
keeps its own (logged: only a concurrently running zombie can cause it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from operators.case import DECISION_TYPES, OrderCase
from operators.contract import Event
from operators.decision import NO_ACTION
from operators.models import Pending
from operators.records import Output
from operators.window import Decider

log = logging.getLogger("salvage.memo")


#: The record kinds a memo entry keeps as they were emitted.
REPLAYED_KINDS = ("decision", "intervention")


def decision_point(order_id: str, trigger_event_id: str, policy_version: str) -> str:
    """The memo key of one decision point (a short hash: no ids in clear in the store).

    >>> decision_point("o-1", "e-9", "v3") == decision_point("o-1", "e-9", "v3")
    True
    >>> decision_point("o-1", "e-9", "v3") == decision_point("o-1", "e-9", "v4")
    False
    """
    raw = "\x1f".join((order_id, trigger_event_id, policy_version)).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class MemoEntry:
    """What one decision emitted and did to its case (JSON-serialisable)."""

    decided_at: float
    action: str
    arm: str | None
    first_propensity: float | None
    #: ("decision" | "intervention", record) in emission order.
    records: tuple[tuple[str, dict[str, Any]], ...]
    #: The learning example's fields (without ``source``), if one was emitted.
    pending: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "decided_at": self.decided_at,
            "action": self.action,
            "arm": self.arm,
            "first_propensity": self.first_propensity,
            "records": [[k, r] for k, r in self.records],
            "pending": self.pending,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MemoEntry:
        pending = raw.get("pending")
        if pending is not None:
            vector, keys = tuple(pending["vector"]), tuple(pending["keys"])
            pending = {**pending, "vector": vector, "keys": keys}
        return cls(
            float(raw["decided_at"]),
            str(raw["action"]),
            raw.get("arm"),
            raw.get("first_propensity"),
            tuple((str(k), dict(r)) for k, r in raw["records"]),
            pending,
        )


class DecisionMemo(Protocol):
    """The first decision of each decision point (implementations: ``state.memo``)."""

    def get(self, point: str) -> MemoEntry | None:
        """The recorded decision of ``point``, or None."""
        ...

    def remember(self, point: str, entry: MemoEntry) -> MemoEntry:
        """Record ``entry`` unless ``point`` has one; return the one that stands (atomic:
        of two writers, both get the first)."""
        ...

    def get_many(self, points: Sequence[str]) -> list[MemoEntry | None]:
        """:meth:`get` of each point, in order (one round trip to a remote store)."""
        ...

    def remember_many(self, entries: Sequence[tuple[str, MemoEntry]]) -> list[MemoEntry]:
        """:meth:`remember` of each (point, entry), in order; the entries that stand."""
        ...


class RememberingDecider:
    """A ``Decider`` (``operators.window``) that decides each decision point once.

    ``inner`` is the decision engine; everything but ``decide`` is passed through.

    Point by point, ``decide`` reads the memo first and records its decision before
    returning it. Once the flow has called :meth:`prepare` it works per batch: ``decide``
    reads what ``prepare`` fetched and leaves its entry to :meth:`settle`, which the flow
    calls on the case step's outputs before they reach a sink. Each worker thread settles
    its own decisions (a stateless step runs on the worker whose items it gets)."""

    #: Fetched points kept at most (a batch's points that were no decision point are never
    #: asked for; past this the fetched answers are dropped and re-asked when needed).
    MAX_FETCHED = 200_000

    def __init__(self, inner: Decider, memo: DecisionMemo, policy_version: str) -> None:
        self.inner = inner
        self.memo = memo
        self.policy_version = policy_version
        #: Decision points answered from the memo (re-decisions after a resume).
        self.replayed = 0
        #: Decisions replaced at ``settle`` by one another writer recorded first.
        self.overruled = 0
        self._batched = False
        self._lock = threading.Lock()
        self._fetched: dict[str, MemoEntry | None] = {}
        self._unsettled: dict[int, list[_Unsettled]] = {}
        self._swaps: dict[int, _Swap] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # --- per batch -----------------------------------------------------------------------

    def prepare(self, events: Iterable[Event]) -> None:
        """Fetch the memo entries of every point ``events`` can reach, in one read, and
        decide per batch from now on (decisions wait for :meth:`settle`)."""
        events = list(events)
        prepare_inner = getattr(self.inner, "prepare", None)
        if prepare_inner is not None:
            prepare_inner(events)
        version = self.policy_version
        # Only an event of a decision type can be a decision point (``OrderCase.apply``):
        # about a third of a shop's events. Any other point is read when it is reached.
        points = [
            decision_point(e.order_id, e.event_id, version)
            for e in events
            if e.type in DECISION_TYPES
        ]
        found = self.memo.get_many(points) if points else []
        with self._lock:
            self._batched = True
            fetched = self._fetched
            if len(fetched) + len(points) > self.MAX_FETCHED:
                fetched.clear()
            fetched.update(zip(points, found, strict=True))

    def settle(self, items: list[tuple[Any, Output]]) -> list[tuple[Any, Output]]:
        """Record this thread's decisions made since its last ``settle`` in one write,
        and return ``items`` (the case step's (key, output) pairs) with the outputs of a
        decision another writer recorded first replaced by those of the standing one."""
        with self._lock:
            unsettled = self._unsettled.pop(threading.get_ident(), [])
        if unsettled:
            standing = self.memo.remember_many([(u.point, u.entry) for u in unsettled])
            for u, kept in zip(unsettled, standing, strict=True):
                if kept is not u.entry:
                    self._overrule(u, kept)
        if not self._swaps:
            return items
        settled: list[tuple[Any, Output]] = []
        for key, output in items:
            swap = self._swaps.pop(id(output), None)
            if swap is None:
                settled.append((key, output))
            elif not swap.emitted:
                # The standing decision's outputs take the place of the first one overruled.
                swap.emitted = True
                settled.extend((key, replaced) for replaced in swap.outputs)
        return settled

    def _overrule(self, u: _Unsettled, standing: MemoEntry) -> None:
        self.overruled += 1
        case = u.case
        if _CaseMarks.of(case) == u.after:
            # Nothing decided on this case since: it continues as the standing decision left it.
            u.before.restore(case)
            self._apply(case, standing)
        else:
            log.warning(
                "a decision point was recorded by another writer after later decisions on "
                "its case; the case keeps its own marks (another incarnation is running?)"
            )
        swap = _Swap(self._outputs(standing))
        for output in u.outputs:
            self._swaps[id(output)] = swap
        if not u.outputs:
            log.warning("an overruled decision emitted nothing; the standing one is not re-emitted")

    # --- per point -----------------------------------------------------------------------

    def decide(self, case: OrderCase, trigger: Event) -> list[Output]:
        point = decision_point(case.order_id, trigger.event_id, self.policy_version)
        with self._lock:
            batched = self._batched
            known = self._fetched.pop(point, _UNKNOWN)
        if known is _UNKNOWN:
            known = self.memo.get(point)
        if known is not None:
            assert isinstance(known, MemoEntry)
            return self._replay(case, known)
        before = _CaseMarks.of(case)
        out = self.inner.decide(case, trigger)
        entry = _entry_of(out, case)
        if batched:
            unsettled = _Unsettled(point, entry, case, before, _CaseMarks.of(case), tuple(out))
            with self._lock:
                self._unsettled.setdefault(threading.get_ident(), []).append(unsettled)
            return out
        standing = self.memo.remember(point, entry)
        if standing is not entry:
            # Another writer recorded this point between our read and write (a previous
            # incarnation of this worker): its decision stands.
            before.restore(case)
            return self._replay(case, standing)
        return out

    def on_close(self, case: OrderCase, outcome: dict[str, Any]) -> list[Output]:
        return self.inner.on_close(case, outcome)

    def _replay(self, case: OrderCase, entry: MemoEntry) -> list[Output]:
        self.replayed += 1
        self._apply(case, entry)
        return self._outputs(entry)

    @staticmethod
    def _apply(case: OrderCase, entry: MemoEntry) -> None:
        """Do to ``case`` what the decision of ``entry`` did."""
        if case.arm is None:
            case.arm = entry.arm
        if case.first_propensity is None:
            case.first_propensity = entry.first_propensity
        if entry.action != NO_ACTION:
            case.record_action(entry.decided_at, entry.action)
        if entry.pending is not None:
            case.example_points += 1

    @staticmethod
    def _outputs(entry: MemoEntry) -> list[Output]:
        """The outputs of the decision of ``entry``, as it emitted them."""
        out: list[Output] = [(kind, dict(record)) for kind, record in entry.records]
        if entry.pending is not None:
            out.append(("pending", Pending(**entry.pending, source=threading.get_ident())))
        return out


#: ``decide``'s "not fetched" (None means fetched and absent).
_UNKNOWN: Any = object()


@dataclass(frozen=True, slots=True)
class _Unsettled:
    """A decision made per batch and not yet recorded."""

    point: str
    entry: MemoEntry
    case: OrderCase
    before: _CaseMarks
    after: _CaseMarks
    outputs: tuple[Output, ...]


@dataclass(slots=True)
class _Swap:
    """The standing decision's outputs, for the first output of an overruled one."""

    outputs: list[Output]
    emitted: bool = False


@dataclass(frozen=True, slots=True)
class _CaseMarks:
    """What a decision changes on its case, to undo it when another decision stands."""

    arm: str | None
    first_propensity: float | None
    actions: int
    example_points: int

    @classmethod
    def of(cls, case: OrderCase) -> _CaseMarks:
        return cls(case.arm, case.first_propensity, len(case.actions), case.example_points)

    def restore(self, case: OrderCase) -> None:
        case.arm = self.arm
        case.first_propensity = self.first_propensity
        del case.actions[self.actions :]
        case.example_points = self.example_points


#: The fields of a memo entry's pending example: the emitting worker is the replaying one's.
_PENDING_FIELDS = tuple(f.name for f in fields(Pending) if f.name != "source")


def _entry_of(out: list[Output], case: OrderCase) -> MemoEntry:
    records: list[tuple[str, dict[str, Any]]] = []
    pending: dict[str, Any] | None = None
    action = NO_ACTION
    decided_at = case.last_event_at
    for kind, value in out:
        if kind in REPLAYED_KINDS:
            records.append((kind, value))
            if kind == "decision":
                action = value["action"]
        elif kind == "pending" and isinstance(value, Pending):
            # A shallow copy: every field is immutable (str, float, tuples of them), so it
            # equals ``asdict``'s deep one, at a fraction of its cost per decision point.
            pending = {name: getattr(value, name) for name in _PENDING_FIELDS}
    if action != NO_ACTION and case.actions:
        decided_at = case.actions[-1][0]
    return MemoEntry(decided_at, action, case.arm, case.first_propensity, tuple(records), pending)


__all__ = ["DecisionMemo", "MemoEntry", "RememberingDecider", "decision_point"]
