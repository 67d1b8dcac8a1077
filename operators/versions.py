"""Event-time versions: which state of the shared, cross-order aggregates a decision reads.

Two kinds of state are shared by all orders: the online models (written by the learner
step) and the context aggregates (family, lane and customer rates, written when a case
closes). If a decision read them "as they are now", what it saw would depend on how far
the flow had processed other orders' events: on batch sizes, duplicate lines (they shift
batch breaks) and worker count. A replay would then not be a pure function of its input.

Instead, event time is cut into boundaries every ``period`` seconds (multiples of the
period since the epoch, so the same for every run), and a decision at event time ``t``
reads the state *as of* the boundary::

    visible(t) = floor((t - lag) / period) * period

that is, everything whose event time is at or before that boundary, applied in a fixed
order, and nothing after it. ``lag`` leaves the flow time to have processed everything
before the boundary: see ``docs/decisions.md`` ("Replay determinism").

>>> clock = VersionClock(period=86400.0, lag=2 * 86400.0)
>>> clock.visible(10 * 86400.0 + 5.0) / 86400.0, clock.visible(10 * 86400.0) / 86400.0
(8.0, 8.0)
>>> clock.boundary_after(86400.0), clock.boundary_after(86400.5) / 86400.0
(86400.0, 2.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from operators.case import DAY


@dataclass(frozen=True, slots=True)
class VersionClock:
    """Boundaries every ``period`` seconds of event time; a decision at ``t`` reads the
    boundary at or before ``t - lag`` (policy ``learning.version_period_hours`` and
    ``learning.version_lag_hours``)."""

    period: float = DAY
    lag: float = 2 * DAY

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period) and self.period > 0):
            raise ValueError(f"version period must be a positive number, got {self.period!r}")
        if not (math.isfinite(self.lag) and self.lag >= 0):
            raise ValueError(f"version lag must be a non-negative number, got {self.lag!r}")

    def boundary_before(self, t: float) -> float:
        """The boundary at or before ``t``."""
        return math.floor(t / self.period) * self.period

    def boundary_after(self, t: float) -> float:
        """The boundary at or after ``t``."""
        return math.ceil(t / self.period) * self.period

    def visible(self, t: float) -> float:
        """The boundary a decision at event time ``t`` reads state as of."""
        return self.boundary_before(t - self.lag)
