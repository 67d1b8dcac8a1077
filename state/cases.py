"""Case store: the latest view of each case, so a support console can ask why.

A case view is a JSON-able dict (see ``OrderCase.view``) plus the decisions and
interventions made for the order. ``salvage case ORDER_ID`` reads it.

>>> store = InMemoryCaseStore()
>>> store.put_view("o1", {"order_id": "o1", "stage": "at_risk"})
>>> store.add_decision("o1", {"action": "none"})
>>> store.get("o1")["decisions"]
[{'action': 'none'}]
"""

from __future__ import annotations

import threading
from typing import Any

# The protocol lives in the domain (operators.stores); re-exported for existing imports.
from operators.stores import CaseStore


class InMemoryCaseStore:
    """A process-local CaseStore (tests, replay)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cases: dict[str, dict[str, Any]] = {}

    def _entry(self, order_id: str) -> dict[str, Any]:
        return self._cases.setdefault(
            order_id, {"view": None, "decisions": [], "interventions": [], "outcome": None}
        )

    def put_view(self, order_id: str, view: dict[str, Any]) -> None:
        with self._lock:
            self._entry(order_id)["view"] = view

    def add_decision(self, order_id: str, decision: dict[str, Any]) -> None:
        with self._lock:
            self._entry(order_id)["decisions"].append(decision)

    def add_intervention(self, order_id: str, intervention: dict[str, Any]) -> None:
        with self._lock:
            self._entry(order_id)["interventions"].append(intervention)

    def put_outcome(self, order_id: str, outcome: dict[str, Any]) -> None:
        with self._lock:
            self._entry(order_id)["outcome"] = outcome

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._cases.get(order_id)
            return None if entry is None else {k: v for k, v in entry.items()}


__all__ = ["CaseStore", "InMemoryCaseStore"]
