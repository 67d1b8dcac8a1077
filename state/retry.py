"""Deliveries waiting for a retry, and deliveries given up on, outside the process.

A webhook delivery that still fails after its quick attempts is *parked* here with the
time of its next attempt, so the dataflow never waits for it and a restart does not lose
it: the dispatcher's retry loop takes what is due (:meth:`RetryQueue.take_due`), tries
once, and parks it again or ends it. A delivery given up on is *buried* with its reason,
complete (the dead-letter topic holds a truncated copy), so ``salvage dispatch retry`` can
send it again.

Taking is a lease: a taken item's due time moves ``lease_seconds`` ahead, so several
dispatchers (workers, processes) never take the same item at once, and an item whose
dispatcher died mid-attempt comes back when the lease ends. Delivery is at least once per
attempt; the receiver deduplicates by ``Idempotency-Key`` and the dispatch ledger makes
sure a delivered intervention is never parked again.

>>> q = InMemoryRetryQueue()
>>> q.park(RetryItem({"intervention_id": "iv-1"}, "hook", attempts=5, first_at=0.0,
...                  due_at=60.0))
>>> [i.iid for i in q.take_due(59.0)], [i.iid for i in q.take_due(60.0)]
([], ['iv-1'])
>>> q.take_due(61.0)  # leased
[]
>>> q.done("iv-1"); q.pending()
0
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

# The protocol lives in the domain (operators.stores); re-exported for existing imports.
from operators.stores import DEFAULT_LEASE_SECONDS, RetryItem, RetryQueue


@dataclass
class InMemoryRetryQueue:
    """A process-local :class:`RetryQueue` (tests; live mode without Redis, where parked
    deliveries are lost with the process)."""

    _parked: dict[str, RetryItem] = field(default_factory=dict)
    _buried: dict[str, RetryItem] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def park(self, item: RetryItem) -> None:
        with self._lock:
            self._parked[item.iid] = RetryItem.from_json(item.to_json())

    def park_many(self, items: Sequence[RetryItem]) -> None:
        for item in items:
            self.park(item)

    def take_due(
        self, now: float, limit: int = 100, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[RetryItem]:
        with self._lock:
            due = sorted(
                (i for i in self._parked.values() if i.due_at <= now),
                key=lambda i: (i.due_at, i.iid),
            )[:limit]
            out = []
            for item in due:
                out.append(RetryItem.from_json(item.to_json()))
                item.due_at = now + lease_seconds
            return out

    def done(self, intervention_id: str) -> None:
        with self._lock:
            self._parked.pop(intervention_id, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._parked)

    def bury(self, item: RetryItem) -> None:
        with self._lock:
            self._buried[item.iid] = RetryItem.from_json(item.to_json())

    def buried(self, limit: int = 1000) -> list[RetryItem]:
        with self._lock:
            items = sorted(self._buried.values(), key=lambda i: (i.buried_at or 0.0, i.iid))
            return [RetryItem.from_json(i.to_json()) for i in items[:limit]]

    def unbury(self, intervention_id: str) -> RetryItem | None:
        with self._lock:
            return self._buried.pop(intervention_id, None)


__all__ = ["DEFAULT_LEASE_SECONDS", "InMemoryRetryQueue", "RetryItem", "RetryQueue"]
