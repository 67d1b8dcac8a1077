"""Uplift by first action, kept current from the outcome records of a running flow.

The estimate itself is the domain's (:func:`operators.uplift.uplift_by_action`); this
module keeps the latest ``window`` decided, settled outcomes and recomputes the estimate
when the metrics are collected, at most every ``interval`` seconds and only when rows were
added: never on the event path.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from operators.uplift import Uplift, UpliftRow, rows_from_outcomes, uplift_by_action


class OnlineUplift:
    """The latest ``window`` uplift rows and a rate-limited estimate over them; thread-safe."""

    def __init__(self, window: int = 50_000, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._rows: deque[UpliftRow] = deque(maxlen=window)
        self._added = 0
        self._used = 0
        self._at = -math.inf
        self._uplift: dict[str, Uplift] = {}

    def add(self, records: Iterable[Mapping[str, Any]], action_label: Callable[[Any], str]) -> None:
        """The uplift rows of settled outcome ``records``, each action mapped through
        ``action_label`` (so the estimate has the labels the metrics show)."""
        with self._lock:
            for row in rows_from_outcomes(records):
                action = action_label(row.action)
                if action != row.action:
                    row = dataclasses.replace(row, action=action)
                self._rows.append(row)
                self._added += 1

    def current(self, *, force: bool = False) -> dict[str, Uplift]:
        """The estimate by action: recomputed if rows were added and ``interval`` seconds
        passed since the last time (or ``force``)."""
        now = time.monotonic()
        with self._lock:
            if force:
                self._at = -math.inf
            stale = self._added != self._used
            if not stale or now - self._at < self.interval:
                return self._uplift
            rows = list(self._rows)
            self._used = self._added
            self._at = now
        self._uplift = uplift_by_action(rows)
        return self._uplift
