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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from operators.vocabulary import Outcome

DAY = 86400.0


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


class ContextStore(Protocol):
    """Read and update context aggregates. In memory here; Redis in live mode."""

    def customer(self, customer_id: str) -> CustomerStats | None: ...

    def family_rate(self, family: str | None, now: float) -> float: ...

    def lane_refund_rate(self, lane: str | None, now: float) -> float: ...

    def lane_delay_rate(self, lane: str | None, now: float) -> float: ...

    def record_outcome(self, outcome: dict[str, Any]) -> None: ...


class InMemoryContextStore:
    """A process-local ContextStore (replay, demo and tests)."""

    def __init__(
        self,
        half_life_days: float = 14.0,
        prior_refund_rate: float = 0.08,
        prior_delay_rate: float = 0.1,
        prior_weight: float = 20.0,
    ) -> None:
        self.half_life = half_life_days * DAY
        self.prior_refund_rate = prior_refund_rate
        self.prior_delay_rate = prior_delay_rate
        self.prior_weight = prior_weight
        self.customers: dict[str, CustomerStats] = {}
        self.families: dict[str, DecayedRate] = {}
        self.lane_refunds: dict[str, DecayedRate] = {}
        self.lane_delays: dict[str, DecayedRate] = {}

    def customer(self, customer_id: str) -> CustomerStats | None:
        return self.customers.get(customer_id)

    def _rate(
        self, table: dict[str, DecayedRate], key: str | None, now: float, prior: float
    ) -> float:
        r = table.get(key) if key is not None else None
        if r is None:
            return prior
        return r.rate(now, self.half_life, prior, self.prior_weight)

    def family_rate(self, family: str | None, now: float) -> float:
        return self._rate(self.families, family, now, self.prior_refund_rate)

    def lane_refund_rate(self, lane: str | None, now: float) -> float:
        return self._rate(self.lane_refunds, lane, now, self.prior_refund_rate)

    def lane_delay_rate(self, lane: str | None, now: float) -> float:
        return self._rate(self.lane_delays, lane, now, self.prior_delay_rate)

    def record_outcome(self, outcome: dict[str, Any]) -> None:
        """Fold in a closed case. Reads: customer_id, outcome, refund_value, order_value,
        sku_family, courier_lane, delayed, resolved_at_ts (epoch seconds)."""
        kind = outcome["outcome"]
        if kind == "open":
            return
        now = float(outcome.get("resolved_at_ts") or 0.0)
        refunded = kind in (Outcome.REFUNDED, Outcome.CHARGEBACK)
        cid = outcome.get("customer_id")
        if cid:
            stats = self.customers.get(cid)
            if stats is None:
                stats = self.customers[cid] = CustomerStats(first_seen=now)
            stats.orders += 1
            stats.refunds += kind == Outcome.REFUNDED
            stats.exchanges += kind == Outcome.EXCHANGED
            stats.chargebacks += kind == Outcome.CHARGEBACK
            stats.refund_value += float(outcome.get("refund_value") or 0.0)
            stats.spend += float(outcome.get("order_value") or 0.0)
        family = outcome.get("sku_family")
        if family:
            self.families.setdefault(family, DecayedRate(at=now)).add(refunded, now, self.half_life)
        lane = outcome.get("courier_lane")
        if lane:
            self.lane_refunds.setdefault(lane, DecayedRate(at=now)).add(
                refunded, now, self.half_life
            )
            self.lane_delays.setdefault(lane, DecayedRate(at=now)).add(
                bool(outcome.get("delayed")), now, self.half_life
            )

    def snapshot(self) -> dict[str, Any]:
        """Picklable copy (checkpoints)."""
        return {
            "customers": dict(self.customers),
            "families": dict(self.families),
            "lane_refunds": dict(self.lane_refunds),
            "lane_delays": dict(self.lane_delays),
        }
