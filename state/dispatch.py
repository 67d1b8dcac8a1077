"""Dispatch ledger: hand an intervention to a messaging system at most once.

A dynamic sink re-emits after a Bytewax resume and a replay re-emits everything, so the
dispatcher claims each ``intervention_id`` before sending. A claim is atomic (Redis
``SET NX`` in live mode), survives restarts, and expires after ``ttl_seconds``.

>>> ledger = InMemoryDispatchLedger()
>>> ledger.claim("iv-1", 3600), ledger.claim("iv-1", 3600)
(True, False)
>>> ledger.release("iv-1"); ledger.claim("iv-1", 3600)
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# The protocol lives in the domain (operators.stores); re-exported for existing imports.
from operators.stores import DispatchLedger


class InMemoryDispatchLedger:
    """A process-local ledger (replay, tests). Thread-safe: workers are threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}
        self._clock = clock

    def _now(self) -> float:
        return self._clock()

    def claim(self, intervention_id: str, ttl_seconds: int) -> bool:
        with self._lock:
            entry = self._entries.get(intervention_id)
            if entry is not None and entry[1] > self._now():
                return False
            self._entries[intervention_id] = ("claimed", self._now() + ttl_seconds)
            return True

    def release(self, intervention_id: str) -> None:
        # Only a claim still pending: releasing a delivered one would let it go out twice.
        with self._lock:
            entry = self._entries.get(intervention_id)
            if entry is not None and entry[0] == "claimed":
                del self._entries[intervention_id]

    def mark_delivered(self, intervention_id: str, status: str, ttl_seconds: int) -> None:
        with self._lock:
            self._entries[intervention_id] = (status, self._now() + ttl_seconds)

    def status(self, intervention_id: str) -> str | None:
        with self._lock:
            entry = self._entries.get(intervention_id)
            if entry is None or entry[1] <= self._now():
                return None
            return entry[0]

    def reopen(self, intervention_id: str, ttl_seconds: int) -> bool:
        with self._lock:
            entry = self._entries.get(intervention_id)
            if entry is None or entry[1] <= self._now() or entry[0] != "dead_letter":
                return False
            self._entries[intervention_id] = ("claimed", self._now() + ttl_seconds)
            return True


__all__ = ["DispatchLedger", "InMemoryDispatchLedger"]
