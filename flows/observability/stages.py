"""Recovery stages of open cases, read from the output records: pure Python, no Prometheus.

This is not the domain's case stage. :class:`operators.case.OrderCase` moves through
``open``, ``at_risk`` and ``resolved``: how risky the case is. The recovery stage says what
Salvage has done about an open case so far, and only the output records tell that: a
decision moves it to ``intervened``, ``held_out`` (control arm) or ``in_review``; a review
settles ``in_review``; an outcome closes the case. The domain keeps no such state, so it
lives here, beside the gauges that export it (``salvage_open_cases``,
``salvage_open_value_at_risk``, the human-review backlog; ``docs/metrics.md``).

>>> stages = RecoveryStages()
>>> stages.decided("o1", IN_REVIEW, 80.0, "2026-06-01T10:00:00Z")
>>> stages.decided("o2", None, 20.0, None)
>>> stages.counts()
([1, 0, 0, 1], [20.0, 0.0, 0.0, 80.0])
>>> stages.reviewed("o1", "approved"); stages.closed("o2"); stages.counts()
([0, 1, 0, 0], [0.0, 80.0, 0.0, 0.0])
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from operators.contract import parse_ts
from operators.vocabulary import Action

#: Recovery stages of an open case (see docs/metrics.md, ``salvage_open_cases``).
STAGE_MONITORED = "monitored"
STAGE_INTERVENED = "intervened"
STAGE_HELD_OUT = "held_out"
STAGE_IN_REVIEW = "in_review"
STAGES: tuple[str, ...] = (STAGE_MONITORED, STAGE_INTERVENED, STAGE_HELD_OUT, STAGE_IN_REVIEW)
MONITORED, INTERVENED, HELD_OUT, IN_REVIEW = range(len(STAGES))
#: Closed orders remembered, so a decision observed after its case's outcome (two output
#: streams of one batch) does not reopen the case in the gauges.
CLOSED_MEMORY = 65_536


def decision_stage(action: str | None, arm: str | None) -> int | None:
    """The stage a decision moves its case to; None when it took no action (the case
    keeps its stage).

    >>> [decision_stage(a, arm) for a, arm in [(None, "treatment"), ("x", "control"),
    ...     ("human_review", "treatment"), ("exchange_first_offer", "treatment")]]
    [None, 2, 3, 1]
    """
    if not action:
        return None
    if arm == "control":
        return HELD_OUT
    if action == Action.HUMAN_REVIEW:
        return IN_REVIEW
    return INTERVENED


@dataclass(slots=True)
class OpenCase:
    stage: int  # index into STAGES (MONITORED...)
    value_at_risk: float
    review_since: float | None  # event time the case went to human review


class RecoveryStages:
    """Open cases by recovery stage, with their value at risk; thread-safe.

    Review age is measured in event time: against the newest event time seen
    (:meth:`saw_event_time` and the decisions' ``decided_at``), so a replay reports the
    backlog as it was, not as of the wall clock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, OpenCase] = {}
        self._closed: dict[str, None] = {}  # insertion-ordered set, CLOSED_MEMORY at most
        self._cases = [0] * len(STAGES)
        self._values = [0.0] * len(STAGES)
        self.event_now = 0.0  # newest event time seen

    @property
    def remembered_closed(self) -> int:
        """How many closed orders are remembered (at most CLOSED_MEMORY)."""
        return len(self._closed)

    def saw_event_time(self, at: float) -> None:
        if at > self.event_now:
            self.event_now = at

    def decided(self, order_id: str, stage: int | None, value: float, decided_at: Any) -> None:
        """A decision on ``order_id`` (``stage`` from :func:`decision_stage`) with the
        case's current value at risk."""
        since = None
        if stage == IN_REVIEW:
            try:
                since = parse_ts(decided_at, "decided_at")
            except ValueError:
                since = self.event_now
            self.event_now = max(self.event_now, since)
        with self._lock:
            if order_id in self._closed:
                return
            case = self._open.get(order_id)
            if case is None:
                first = MONITORED if stage is None else stage
                self._open[order_id] = OpenCase(first, value, since)
                self._cases[first] += 1
                self._values[first] += value
                return
            self._values[case.stage] -= case.value_at_risk
            if stage is not None and stage != case.stage:
                self._cases[case.stage] -= 1
                self._cases[stage] += 1
                case.stage = stage
                case.review_since = since
            self._values[case.stage] += value
            case.value_at_risk = value

    def reviewed(self, order_id: str | None, status: Any) -> None:
        """A human review settled: approved sends the reviewed intervention out
        (intervened); rejected or expired sent nothing (monitored)."""
        if status not in ("approved", "rejected", "expired"):
            return  # "closed" comes with the outcome; "ignored" changes nothing
        with self._lock:
            case = self._open.get(order_id) if order_id else None
            if case is None or case.stage != IN_REVIEW:
                return
            stage = INTERVENED if status == "approved" else MONITORED
            self._cases[IN_REVIEW] -= 1
            self._values[IN_REVIEW] -= case.value_at_risk
            self._cases[stage] += 1
            self._values[stage] += case.value_at_risk
            case.stage = stage
            case.review_since = None

    def closed(self, order_id: str) -> None:
        """The case of ``order_id`` has its outcome: it leaves the open cases for good."""
        with self._lock:
            self._closed[order_id] = None
            if len(self._closed) > CLOSED_MEMORY:
                del self._closed[next(iter(self._closed))]
            case = self._open.pop(order_id, None)
            if case is not None:
                self._cases[case.stage] -= 1
                self._values[case.stage] -= case.value_at_risk
                if not self._open:  # no float drift when nothing is open
                    self._values = [0.0] * len(STAGES)

    def counts(self) -> tuple[list[int], list[float]]:
        """Open cases and their value at risk, by stage (in STAGES order)."""
        with self._lock:
            return list(self._cases), list(self._values)

    def review_backlog(self) -> tuple[int, float]:
        """Cases in review, and the event-time age of the oldest (0 if none)."""
        with self._lock:
            since = [c.review_since or 0.0 for c in self._open.values() if c.stage == IN_REVIEW]
        if not since:
            return 0, 0.0
        return len(since), max(self.event_now - min(since), 0.0)
