"""Context aggregates: customer history and SKU-family / courier-lane rates.

The flow updates these from the outcomes it observes itself, and the features read them
at decision time. Only closed cases feed them, so a decision never sees its own outcome.
Rates decay with event time (half-life ``half_life_days``) so that "recent" means recent.

>>> store = InMemoryContextStore()
>>> store.record_outcome({"customer_id": "c1", "outcome": "refunded", "refund_value": 40.0,
...     "order_value": 40.0, "sku_family": "skincare", "courier_lane": "dhl:DE-NL",
...     "delayed": True, "resolved_at_ts": 0.0})
>>> store.customer("c1").refunds, round(store.family_rate("skincare", 0.0), 3)
(1, 0.124)

With a :class:`~operators.versions.VersionClock`, reads are as of a boundary of event time:

>>> from operators.versions import VersionClock
>>> timed = InMemoryContextStore(clock=VersionClock(period=10.0, lag=0.0))
>>> timed.record_outcome({"order_id": "o1", "customer_id": "c1", "outcome": "refunded",
...     "resolved_at_ts": 25.0})
>>> timed.customer_at("c1", 29.0), timed.customer_at("c1", 30.0).refunds
(None, 1)
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from operators.case import DAY
from operators.contract import parse_ts
from operators.versions import VersionClock
from operators.vocabulary import Outcome


@dataclass(slots=True)
class CustomerStats:
    """What the flow has observed about one customer."""

    orders: int = 0
    refunds: int = 0
    exchanges: int = 0
    chargebacks: int = 0
    refund_value: float = 0.0
    spend: float = 0.0
    first_seen: float | None = None


@dataclass(slots=True)
class DecayedRate:
    """An event-time exponentially decayed rate ``hits / total`` with a Beta prior.

    The prior (``prior_rate`` with weight ``prior_weight``) keeps rates of rare families
    from jumping to 0 or 1 on the first outcomes.
    """

    hits: float = 0.0
    total: float = 0.0
    at: float = 0.0

    def _decay(self, now: float, half_life: float) -> None:
        if now > self.at:
            factor = math.exp(-math.log(2.0) * (now - self.at) / half_life)
            self.hits *= factor
            self.total *= factor
            self.at = now

    def add(self, hit: bool, now: float, half_life: float) -> None:
        self._decay(now, half_life)
        self.total += 1.0
        if hit:
            self.hits += 1.0

    def rate(self, now: float, half_life: float, prior_rate: float, prior_weight: float) -> float:
        hits, total = self.hits, self.total
        if now > self.at:
            factor = math.exp(-math.log(2.0) * (now - self.at) / half_life)
            hits, total = hits * factor, total * factor
        return (hits + prior_rate * prior_weight) / (total + prior_weight)


#: Sorts after every order id: a read as of a boundary includes updates at that instant.
_LAST = "\U0010ffff"
#: A family's or lane's history keeps this much event time before its latest read (reads
#: never go further back than the lag, a period and the allowed lateness).
_KEEP_SECONDS = 30 * DAY
_PRUNE_ABOVE = 2048

V = TypeVar("V")


class _History(Generic[V]):
    """One aggregate's value after each update, in (time, order id) order, so that a read
    as of a boundary sees exactly the updates at or before it, whatever order they were
    recorded in. Values are computed lazily up to what a read needs (an update recorded
    out of order only invalidates those after it). ``read_until`` is the latest boundary
    read: an update at or before it came after a read that should have seen it."""

    __slots__ = (
        "_read_at", "_read_value", "apply", "base", "deltas", "keys", "read_until", "valid",
        "values",
    )  # fmt: skip

    def __init__(self, apply: Callable[[V | None, Any], V]) -> None:
        self.apply = apply
        self.keys: list[tuple[float, str]] = []
        self.deltas: list[Any] = []
        self.values: list[V | None] = []
        self.valid = 0  # values[:valid] are up to date
        self.base: V | None = None  # the value after the entries pruned from the front
        self.read_until = -math.inf
        # The last read's boundary and value: decisions read the same boundary for a whole
        # version period, so most reads repeat the previous one. Any update forgets it.
        self._read_at: float | None = None
        self._read_value: V | None = None

    def insert(self, key: tuple[float, str], delta: Any) -> bool:
        """Add an update; False if a read already passed its time (that read was inexact)."""
        exact = key[0] > self.read_until
        self._read_at = None
        i = bisect.bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.deltas.insert(i, delta)
        self.values.insert(i, None)
        if i < self.valid:
            self.valid = i
        return exact

    def _upto(self, n: int) -> V | None:
        """The value after the first ``n`` entries."""
        values, deltas, apply = self.values, self.deltas, self.apply
        for k in range(self.valid, n):
            values[k] = apply(values[k - 1] if k else self.base, deltas[k])
        if n > self.valid:
            self.valid = n
        return values[n - 1] if n else self.base

    def at(self, boundary: float) -> V | None:
        """The value after every update at or before ``boundary``."""
        if boundary == self._read_at:
            return self._read_value  # nothing was inserted or pruned since that read
        if boundary > self.read_until:
            self.read_until = boundary
        value = self._upto(bisect.bisect_right(self.keys, (boundary, _LAST)))
        self._read_at, self._read_value = boundary, value
        return value

    def latest(self) -> V | None:
        return self._upto(len(self.keys))

    def prune(self, before: float) -> None:
        """Forget the entries before ``before`` (no read needs them): their end value
        becomes the base."""
        i = bisect.bisect_left(self.keys, (before, ""))
        if i:
            self._read_at = None
            self.base = self._upto(i)
            del self.keys[:i], self.deltas[:i], self.values[:i]
            self.valid -= i


class InMemoryContextStore:
    """A process-local ContextStore (replay, demo and tests).

    With a ``clock`` (replays), every aggregate is versioned by event time: an outcome is
    applied at its case's close time (ties by order id), and a read at ``now`` sees the
    aggregates as of ``clock.visible(now)``, so what a decision reads does not depend on
    how far the flow has got with other orders. ``late_updates`` counts outcomes recorded
    after a read that should have seen them (0 in a deterministic run). Without a clock a
    read sees every outcome recorded so far (tests, tools).
    """

    def __init__(
        self,
        half_life_days: float = 14.0,
        prior_refund_rate: float = 0.08,
        prior_delay_rate: float = 0.1,
        prior_weight: float = 20.0,
        clock: VersionClock | None = None,
    ) -> None:
        self.half_life = half_life_days * DAY
        self.prior_refund_rate = prior_refund_rate
        self.prior_delay_rate = prior_delay_rate
        self.prior_weight = prior_weight
        self.clock = clock
        self._customers: dict[str, _History[CustomerStats]] = {}
        self._families: dict[str, _History[DecayedRate]] = {}
        self._lane_refunds: dict[str, _History[DecayedRate]] = {}
        self._lane_delays: dict[str, _History[DecayedRate]] = {}
        self.late_updates = 0
        self._recorded = 0
        self._lock = threading.Lock()  # workers of one process share the store

    @property
    def customers(self) -> dict[str, CustomerStats]:
        """Latest value per customer (everything recorded)."""
        return _latest(self._customers)

    @property
    def families(self) -> dict[str, DecayedRate]:
        return _latest(self._families)

    @property
    def lane_refunds(self) -> dict[str, DecayedRate]:
        return _latest(self._lane_refunds)

    @property
    def lane_delays(self) -> dict[str, DecayedRate]:
        return _latest(self._lane_delays)

    def _read(self, history: _History[V] | None, now: float | None) -> V | None:
        if history is None:
            return None
        if self.clock is None or now is None:
            return history.latest()
        return history.at(self.clock.visible(now))

    def customer(self, customer_id: str) -> CustomerStats | None:
        """Everything recorded about the customer (not versioned: see :meth:`customer_at`)."""
        with self._lock:
            return self._read(self._customers.get(customer_id), None)

    def customer_at(self, customer_id: str, now: float) -> CustomerStats | None:
        """What a decision at event time ``now`` knows about the customer."""
        with self._lock:
            return self._read(self._customers.get(customer_id), now)

    def _rate(
        self, table: dict[str, _History[DecayedRate]], key: str | None, now: float, prior: float
    ) -> float:
        with self._lock:
            r = self._read(table.get(key), now) if key is not None else None
        if r is None:
            return prior
        return r.rate(now, self.half_life, prior, self.prior_weight)

    def family_rate(self, family: str | None, now: float) -> float:
        return self._rate(self._families, family, now, self.prior_refund_rate)

    def lane_refund_rate(self, lane: str | None, now: float) -> float:
        return self._rate(self._lane_refunds, lane, now, self.prior_refund_rate)

    def lane_delay_rate(self, lane: str | None, now: float) -> float:
        return self._rate(self._lane_delays, lane, now, self.prior_delay_rate)

    def _add_rate(self, prev: DecayedRate | None, delta: tuple[bool, float]) -> DecayedRate:
        hit, now = delta
        r = DecayedRate(at=now) if prev is None else DecayedRate(prev.hits, prev.total, prev.at)
        r.add(hit, now, self.half_life)
        return r

    def _update(
        self,
        table: dict[str, _History[V]],
        key: str,
        at: tuple[float, str],
        delta: Any,
        apply: Callable[[V | None, Any], V],
        prune: bool,
    ) -> None:
        history = table.get(key)
        if history is None:
            history = table[key] = _History(apply)
        if not history.insert(at, delta):
            self.late_updates += 1
        if prune and len(history.keys) > _PRUNE_ABOVE:
            history.prune(history.read_until - _KEEP_SECONDS)

    def record_outcome(self, outcome: dict[str, Any]) -> None:
        """Fold in a closed case. Reads: order_id, customer_id, outcome, refund_value,
        order_value, sku_family, courier_lane, delayed, resolved_at_ts (epoch seconds), and
        for versions by event time when the outcome became known: known_at_ts (epoch
        seconds; an expired case's is the watermark that expired it), else resolved_at."""
        kind = outcome["outcome"]
        if kind == "open":
            return
        now = float(outcome.get("resolved_at_ts") or 0.0)
        closed = outcome.get("resolved_at")
        if self.clock is None:
            # Unversioned: applied in the order recorded (as the Redis store does).
            self._recorded += 1
            at = (float(self._recorded), "")
        else:
            known = outcome.get("known_at_ts")
            if isinstance(known, (int, float)):
                known_at = float(known)
            else:
                known_at = parse_ts(closed) if isinstance(closed, str) else now
            at = (known_at, str(outcome.get("order_id")))
        refunded = kind in (Outcome.REFUNDED, Outcome.CHARGEBACK)
        with self._lock:
            cid = outcome.get("customer_id")
            if cid:
                delta = (
                    now, kind, float(outcome.get("refund_value") or 0.0),
                    float(outcome.get("order_value") or 0.0),
                )  # fmt: skip
                self._update(self._customers, cid, at, delta, _add_customer, False)
            family = outcome.get("sku_family")
            if family:
                self._update(self._families, family, at, (refunded, now), self._add_rate, True)
            lane = outcome.get("courier_lane")
            if lane:
                self._update(self._lane_refunds, lane, at, (refunded, now), self._add_rate, True)
                delayed = (bool(outcome.get("delayed")), now)
                self._update(self._lane_delays, lane, at, delayed, self._add_rate, True)

    def snapshot(self) -> dict[str, Any]:
        """Picklable copy of the latest values (checkpoints)."""
        with self._lock:
            return {
                "customers": _latest(self._customers),
                "families": _latest(self._families),
                "lane_refunds": _latest(self._lane_refunds),
                "lane_delays": _latest(self._lane_delays),
            }


def _add_customer(
    prev: CustomerStats | None, delta: tuple[float, str, float, float]
) -> CustomerStats:
    now, kind, refund_value, order_value = delta
    stats = CustomerStats(first_seen=now) if prev is None else replace(prev)
    stats.orders += 1
    stats.refunds += kind == Outcome.REFUNDED
    stats.exchanges += kind == Outcome.EXCHANGED
    stats.chargebacks += kind == Outcome.CHARGEBACK
    stats.refund_value += refund_value
    stats.spend += order_value
    return stats


def _latest(table: dict[str, _History[V]]) -> dict[str, V]:
    return {k: v for k, h in table.items() if (v := h.latest()) is not None}
