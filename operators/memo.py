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
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from operators.case import OrderCase
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


class RememberingDecider:
    """A ``Decider`` (``operators.window``) that decides each decision point once.

    ``inner`` is the decision engine; everything but ``decide`` is passed through."""

    def __init__(self, inner: Decider, memo: DecisionMemo, policy_version: str) -> None:
        self.inner = inner
        self.memo = memo
        self.policy_version = policy_version
        #: Decision points answered from the memo (re-decisions after a resume).
        self.replayed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, case: OrderCase, trigger: Event) -> list[Output]:
        point = decision_point(case.order_id, trigger.event_id, self.policy_version)
        known = self.memo.get(point)
        if known is not None:
            return self._replay(case, known)
        before = _CaseMarks.of(case)
        out = self.inner.decide(case, trigger)
        entry = _entry_of(out, case)
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
        if case.arm is None:
            case.arm = entry.arm
        if case.first_propensity is None:
            case.first_propensity = entry.first_propensity
        if entry.action != NO_ACTION:
            case.record_action(entry.decided_at, entry.action)
        out: list[Output] = [(kind, dict(record)) for kind, record in entry.records]
        if entry.pending is not None:
            out.append(("pending", Pending(**entry.pending, source=threading.get_ident())))
            case.example_points += 1
        return out


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
            fields = asdict(value)
            fields.pop("source")
            pending = fields
    if action != NO_ACTION and case.actions:
        decided_at = case.actions[-1][0]
    return MemoEntry(decided_at, action, case.arm, case.first_propensity, tuple(records), pending)


__all__ = ["DecisionMemo", "MemoEntry", "RememberingDecider", "decision_point"]
