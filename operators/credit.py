"""The credit ledger: store credit granted per customer, for the rolling 30-day cap.

Every grant of store credit (an automated offer, a reviewer's approval) is reserved here
first, so the policy's ``limits.max_credit_per_customer_30d`` holds across orders. Two
implementations share one contract (``tests/operators/test_credit_ledger.py``):

- :class:`InMemoryCreditLedger`: one per process; replay, tests. Its state is a plain,
  deterministic value (:meth:`InMemoryCreditLedger.state`) so a replay snapshot can carry it.
- ``state.redis_credit.RedisCreditLedger``: live mode; one ledger shared by every worker and
  process, atomic per customer, surviving restarts.

A grant may carry a ``grant_id`` (the intervention id): reserving the same id again returns
the amount granted the first time instead of granting twice, so a decision re-made after a
restart, or re-checked at dispatch, does not count against the cap a second time.

>>> ledger = InMemoryCreditLedger()
>>> ledger.reserve("c1", 0.0, 25.0, cap_30d=30.0, grant_id="iv-1")
25.0
>>> ledger.reserve("c1", 0.0, 25.0, cap_30d=30.0, grant_id="iv-1")  # the same grant again
25.0
>>> ledger.reserve("c1", 10.0, 25.0, cap_30d=30.0)  # only 5 left within 30 days
5.0
>>> ledger.used("c1", 31 * 86400.0)  # the window has passed
0.0
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

from operators.case import DAY

WINDOW_SECONDS = 30 * DAY


class CreditLedger(Protocol):
    """Store credit granted per customer within a rolling 30-day window."""

    def used(self, customer_id: str, now: float) -> float:
        """Credit granted to the customer in the 30 days up to ``now`` (exclusive start)."""
        ...

    def grant(self, customer_id: str, now: float, amount: float) -> None:
        """Record a grant without checking the cap (amounts <= 0 are ignored)."""
        ...

    def reserve(
        self,
        customer_id: str,
        now: float,
        amount: float,
        cap_30d: float,
        grant_id: str | None = None,
    ) -> float:
        """Grant up to ``amount`` within the customer's 30-day cap; returns what was granted
        (rounded to cents; 0.0 if nothing is left). With ``grant_id``, a second reserve of
        the same id returns the first grant's amount and grants nothing more."""
        ...


def granted_amount(amount: float, cap_30d: float, used: float) -> float:
    """What a reservation grants: ``amount`` up to the room left under the cap, in cents.

    >>> granted_amount(25.0, 30.0, 20.0), granted_amount(5.0, 30.0, 31.0)
    (10.0, 0.0)
    """
    return round(max(min(amount, cap_30d - used), 0.0), 2)


class InMemoryCreditLedger:
    """A process-local :class:`CreditLedger`. Worker threads of a process share one, so
    check-and-add runs under a lock. Sums use ``math.fsum`` so the total does not depend on
    the order grants were made in (the Redis ledger gives the same numbers)."""

    def __init__(self) -> None:
        #: customer -> [(granted_at, amount, grant_id)]
        self.grants: dict[str, list[tuple[float, float, str | None]]] = {}
        self._lock = threading.Lock()

    def used(self, customer_id: str, now: float) -> float:
        with self._lock:
            return self._used(customer_id, now)

    def _used(self, customer_id: str, now: float) -> float:
        entries = self.grants.get(customer_id)
        if not entries:
            return 0.0
        cutoff = now - WINDOW_SECONDS
        live = [e for e in entries if e[0] > cutoff]
        if len(live) != len(entries):
            self.grants[customer_id] = live
        return math.fsum(a for _, a, _ in live)

    def grant(self, customer_id: str, now: float, amount: float) -> None:
        if amount > 0:
            with self._lock:
                self.grants.setdefault(customer_id, []).append((now, amount, None))

    def reserve(
        self,
        customer_id: str,
        now: float,
        amount: float,
        cap_30d: float,
        grant_id: str | None = None,
    ) -> float:
        with self._lock:
            used = self._used(customer_id, now)  # drops grants past the window first
            if grant_id is not None:
                for _, earlier, gid in self.grants.get(customer_id, ()):
                    if gid == grant_id:
                        return earlier
            granted = granted_amount(amount, cap_30d, used)
            if granted > 0:
                self.grants.setdefault(customer_id, []).append((now, granted, grant_id))
            return granted

    # --- snapshots (replay) ----------------------------------------------------------------

    def state(self) -> dict[str, list[tuple[float, float, str | None]]]:
        """The grants as a plain value, customers sorted: equal ledgers give equal states,
        so a snapshot of it is deterministic."""
        with self._lock:
            return {c: list(self.grants[c]) for c in sorted(self.grants)}

    @classmethod
    def from_state(cls, state: dict[str, list[Any]] | None) -> InMemoryCreditLedger:
        """A ledger holding the grants of :meth:`state` (None: an empty one)."""
        ledger = cls()
        for customer, entries in (state or {}).items():
            ledger.grants[customer] = [
                (float(t), float(a), None if g is None else str(g)) for t, a, g in entries
            ]
        return ledger

    def restore(self, state: dict[str, list[Any]] | None) -> None:
        """Replace the grants with those of :meth:`state`, in place (a resumed replay hands
        the snapshot to the ledger the engine already holds)."""
        grants = InMemoryCreditLedger.from_state(state).grants
        with self._lock:
            self.grants = grants

    def __getstate__(self) -> dict[str, Any]:
        return {"grants": self.state()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.grants = InMemoryCreditLedger.from_state(state.get("grants")).grants
        self._lock = threading.Lock()


__all__ = ["WINDOW_SECONDS", "CreditLedger", "InMemoryCreditLedger", "granted_amount"]
