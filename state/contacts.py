"""Contact book: which customer contacts an order has had, to hold the contact limit.

The dispatcher admits each customer-facing intervention against the policy's
``limits.max_contacts_per_order`` before sending it. Admission is keyed by the intervention
id: admitting the same id again (a re-emitted intervention, a retry) is free, a new id
past the limit is refused. The Redis book (``state.redis_credit.RedisContactBook``) is
shared by every process and survives restarts, so a decision re-made differently after a
crash cannot push an order over the limit.

>>> book = InMemoryContactBook()
>>> [book.admit("o1", iv, limit=2, ttl_seconds=60) for iv in ("a", "b", "a", "c")]
[True, True, True, False]
>>> book.count("o1")
2
>>> book.admit_many([("o2", "x"), ("o1", "d"), ("o2", "x")], limit=2, ttl_seconds=60)
[True, False, True]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

# The protocol lives in the domain (operators.stores); re-exported for existing imports.
from operators.stores import ContactBook


class InMemoryContactBook:
    """A process-local :class:`ContactBook` (replay, tests, live mode without Redis).
    Entries are kept for the life of the process; ``ttl_seconds`` is ignored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contacts: dict[str, set[str]] = {}

    def admit(self, order_id: str, contact_id: str, limit: int, ttl_seconds: int) -> bool:
        with self._lock:
            known = self._contacts.setdefault(order_id, set())
            if contact_id in known:
                return True
            if len(known) >= limit:
                return False
            known.add(contact_id)
            return True

    def admit_many(
        self, contacts: Sequence[tuple[str, str]], limit: int, ttl_seconds: int
    ) -> list[bool]:
        return [self.admit(o, c, limit, ttl_seconds) for o, c in contacts]

    def count(self, order_id: str) -> int:
        with self._lock:
            return len(self._contacts.get(order_id, ()))


__all__ = ["ContactBook", "InMemoryContactBook"]
