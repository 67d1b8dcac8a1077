"""The stores the domain reads and writes, as ``Protocol``s: ``state`` implements them.

``operators`` imports no storage code: the engine, the features, the models, the caps and
the review book are handed objects that satisfy these protocols. Each has an in-memory
implementation (replay, tests) and a Redis one (live mode), and ``state.checks`` runs one
contract suite against both.

============================  ============================  ==================================
protocol                      in memory                     Redis
============================  ============================  ==================================
:class:`ContextStore`         ``state.context``             ``state.redis_store``
:class:`CaseStore`            ``state.cases``               ``state.redis_store``
:class:`DispatchLedger`       ``state.dispatch``            ``state.redis_store``
:class:`ModelStore`           ``state.models``              ``state.redis_store``
:class:`ContactBook`          ``state.contacts``            ``state.redis_credit``
:class:`CreditLedger`         ``operators.credit``          ``state.redis_credit``
:class:`RetryQueue`           ``state.retry``               ``state.redis_retry``
============================  ============================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from operators.credit import CreditLedger

#: How long a dispatcher holds a retry it took before another may take it (seconds).
DEFAULT_LEASE_SECONDS = 300.0


class CustomerHistory(Protocol):
    """What the context store has observed about one customer (``state.context.CustomerStats``)."""

    orders: int
    refunds: int
    exchanges: int
    chargebacks: int
    refund_value: float
    spend: float
    first_seen: float | None


class ContextStore(Protocol):
    """Read and update context aggregates (``state.context``: in memory; ``state.redis_store``:
    Redis, in live mode)."""

    def customer(self, customer_id: str) -> CustomerHistory | None: ...

    def family_rate(self, family: str | None, now: float) -> float: ...

    def lane_refund_rate(self, lane: str | None, now: float) -> float: ...

    def lane_delay_rate(self, lane: str | None, now: float) -> float: ...

    def record_outcome(self, outcome: dict[str, Any]) -> None: ...


class CaseStore(Protocol):
    """Latest case view and decision history per order."""

    def put_view(self, order_id: str, view: dict[str, Any]) -> None: ...

    def add_decision(self, order_id: str, decision: dict[str, Any]) -> None: ...

    def add_intervention(self, order_id: str, intervention: dict[str, Any]) -> None: ...

    def put_outcome(self, order_id: str, outcome: dict[str, Any]) -> None: ...

    def get(self, order_id: str) -> dict[str, Any] | None:
        """``{"view", "decisions", "interventions", "outcome"}`` or None if unknown."""
        ...


class DispatchLedger(Protocol):
    """At-most-once claims on intervention ids."""

    def claim(self, intervention_id: str, ttl_seconds: int) -> bool:
        """True if this caller now owns the id (first claim); False if already claimed."""
        ...

    def release(self, intervention_id: str) -> None:
        """Give a claim back (a delivery that must be retried by a later run). A claim
        already marked delivered or dead-lettered is kept."""
        ...

    def mark_delivered(self, intervention_id: str, status: str, ttl_seconds: int) -> None:
        """Record how the delivery ended (``delivered`` or ``dead_letter``)."""
        ...

    def status(self, intervention_id: str) -> str | None:
        """``claimed``, ``delivered``, ``dead_letter`` or None."""
        ...

    def reopen(self, intervention_id: str, ttl_seconds: int) -> bool:
        """Claim a dead-lettered id again for a deliberate re-send: True if it was
        ``dead_letter`` and is now ``claimed`` (atomic: of two re-sends, one wins)."""
        ...


class ModelStore(Protocol):
    """Save and load versioned model checkpoints (opaque bytes)."""

    def save(self, name: str, version: int, blob: bytes) -> None: ...

    def latest(self, name: str) -> tuple[int, bytes] | None:
        """The newest (version, blob) saved under ``name``, or None."""
        ...


class ContactBook(Protocol):
    """Customer contacts per order, admitted at most ``limit`` distinct ids."""

    def admit(self, order_id: str, contact_id: str, limit: int, ttl_seconds: int) -> bool:
        """True if ``contact_id`` is (or now becomes) one of the order's contacts; False if
        the order already has ``limit`` other contacts. Atomic."""
        ...

    def admit_many(
        self, contacts: Sequence[tuple[str, str]], limit: int, ttl_seconds: int
    ) -> list[bool]:
        """:meth:`admit` of each ``(order_id, contact_id)``, in order, answered as the
        single calls would be (a dispatcher's batch: one round trip, not one per contact)."""
        ...

    def count(self, order_id: str) -> int:
        """How many contacts the order has had."""
        ...


@dataclass
class RetryItem:
    """One delivery waiting for its next attempt (or buried, with ``reason``)."""

    intervention: dict[str, Any]
    endpoint: str
    attempts: int  # HTTP attempts made so far
    first_at: float  # when the first attempt was made (epoch s): the schedule's origin
    due_at: float  # when the next attempt is due (epoch s)
    error: str | None = None  # the last attempt's error
    reason: str | None = None  # why it was given up (buried items only)
    buried_at: float | None = None

    @property
    def iid(self) -> str:
        return str(self.intervention["intervention_id"])

    def to_json(self) -> bytes:
        # orjson writes a dataclass's fields in order, as ``asdict`` would, without first
        # deep-copying the intervention (the same bytes, several times faster).
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> RetryItem:
        return cls(**orjson.loads(raw))


class RetryQueue(Protocol):
    """Parked and buried deliveries, shared by every dispatcher of a deployment."""

    def park(self, item: RetryItem) -> None:
        """Store ``item`` (replacing an earlier one of its id) to be taken at ``due_at``."""
        ...

    def park_many(self, items: Sequence[RetryItem]) -> None:
        """:meth:`park` of each item, as one call (a dispatcher's batch)."""
        ...

    def take_due(
        self, now: float, limit: int = 100, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[RetryItem]:
        """Items due by ``now``, earliest first; each is leased until ``now + lease``."""
        ...

    def done(self, intervention_id: str) -> None:
        """Forget a parked item (delivered, or buried)."""
        ...

    def pending(self) -> int:
        """How many deliveries are parked."""
        ...

    def bury(self, item: RetryItem) -> None:
        """Keep a delivery given up on (``item.reason`` says why) for a deliberate re-send."""
        ...

    def buried(self, limit: int = 1000) -> list[RetryItem]:
        """Buried deliveries, oldest first."""
        ...

    def unbury(self, intervention_id: str) -> RetryItem | None:
        """Take one buried delivery out (to re-send it); None if it is not buried."""
        ...


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "CaseStore",
    "ContactBook",
    "ContextStore",
    "CreditLedger",
    "CustomerHistory",
    "DispatchLedger",
    "ModelStore",
    "RetryItem",
    "RetryQueue",
]
