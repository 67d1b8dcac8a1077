"""Building contract events from invoices: customer history, return matching, JSONL."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby
from typing import Any

import orjson

from flows.importers.columns import CsvMapping
from flows.importers.limits import CENT, PRICE_STEP
from flows.importers.reading import Invoice, Item

# --------------------------------------------------------------------------- replay


@dataclass(slots=True)
class _Purchase:
    """An emitted order of a customer, with the quantity per sku not yet refunded."""

    order_id: str
    remaining: dict[str, int]
    unit_price: dict[str, Decimal]


@dataclass(slots=True)
class _Customer:
    """A customer's running history as seen by events already replayed."""

    orders_count: int = 0
    returns_count: int = 0
    lifetime_value: Decimal = Decimal(0)
    purchases: list[_Purchase] = field(default_factory=list)


def _utc_text(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a ``Z`` suffix."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _money(value: Decimal) -> float:
    """Round an amount to cents (half up) for output."""
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _unit_price(item: Item) -> Decimal:
    """Return the quantity-weighted unit price of a merged item, to 4 decimals."""
    return (item.value / item.quantity).quantize(PRICE_STEP, rounding=ROUND_HALF_UP)


Event = tuple[datetime, dict[str, Any]]


class Ledger:
    """Replay purchases and returns in time order, emitting events and matching returns."""

    def __init__(self, mapping: CsvMapping) -> None:
        self._currency = mapping.currency
        self._lanes = dict(mapping.lanes)
        self._customers: defaultdict[str, _Customer] = defaultdict(_Customer)
        self.orders: list[Event] = []
        self.refunds: list[Event] = []
        self.unmatched: Counter[str] = Counter()
        self.unmatched_units = 0
        self.refunded_orders: set[str] = set()

    def run(self, purchases: Iterable[Invoice], returns: Iterable[Invoice]) -> None:
        """Replay all invoices; invoices at the same instant never see each other."""
        timeline = [(inv.occurred, 0, inv.key, inv) for inv in purchases]
        timeline += [(inv.occurred, 1, inv.key, inv) for inv in returns]
        timeline.sort(key=lambda entry: entry[:3])
        for _, batch in groupby(timeline, key=lambda entry: entry[0]):
            entries = list(batch)
            placed = [inv for _, kind, _, inv in entries if kind == 0]
            returned = [inv for _, kind, _, inv in entries if kind == 1]
            self.orders.extend((inv.occurred, self._order_event(inv)) for inv in placed)
            effects = [self._match_return(inv) for inv in returned]
            for inv in placed:
                self._commit_order(inv)
            for customer, count, amount in effects:
                customer.returns_count += count
                customer.lifetime_value -= amount

    def _order_event(self, invoice: Invoice) -> dict[str, Any]:
        """Build the ``order_placed`` event, with the customer's history before it."""
        history = self._customers[invoice.customer]
        items = [
            {
                "sku": sku,
                "sku_family": item.family,
                "quantity": item.quantity,
                "unit_price": float(_unit_price(item)),
            }
            for sku, item in invoice.items.items()
        ]
        return {
            "event_id": f"op-{invoice.key}",
            "type": "order_placed",
            "order_id": invoice.key,
            "occurred_at": _utc_text(invoice.occurred),
            "customer_id": invoice.customer,
            "currency": self._currency,
            "total": _money(sum((item.value for item in invoice.items.values()), Decimal(0))),
            "items": items,
            "lane": self._lanes.get(invoice.country, invoice.country) or None,
            "campaign": None,
            "customer": {
                "orders_count": history.orders_count,
                "returns_count": history.returns_count,
                "lifetime_value": _money(history.lifetime_value),
            },
        }

    def _commit_order(self, invoice: Invoice) -> None:
        """Add an emitted order to its customer's history."""
        history = self._customers[invoice.customer]
        history.orders_count += 1
        history.lifetime_value += sum((item.value for item in invoice.items.values()), Decimal(0))
        history.purchases.append(
            _Purchase(
                order_id=invoice.key,
                remaining={sku: item.quantity for sku, item in invoice.items.items()},
                unit_price={sku: _unit_price(item) for sku, item in invoice.items.items()},
            )
        )

    def _match_return(self, invoice: Invoice) -> tuple[_Customer, int, Decimal]:
        """Match a return invoice to earlier purchases and emit its refund events.

        Returns the customer with the number of events and the refunded amount, to be applied
        once every invoice at this instant has been handled.
        """
        lines = len(invoice.items) + len(invoice.non_product)
        if not invoice.customer:
            self.unmatched["no_customer"] += lines
            self.unmatched_units += sum(item.quantity for item in invoice.items.values())
            return _Customer(), 0, Decimal(0)
        self.unmatched["non_product_code"] += len(invoice.non_product)
        customer = self._customers[invoice.customer]
        taken: dict[str, dict[str, int]] = {}
        for sku, item in invoice.items.items():
            self._take(customer, sku, item.quantity, taken)
        total = Decimal(0)
        prices = {p.order_id: p.unit_price for p in customer.purchases if p.order_id in taken}
        for order_id, skus in taken.items():
            amount = sum((qty * prices[order_id][sku] for sku, qty in skus.items()), Decimal(0))
            total += amount
            self.refunded_orders.add(order_id)
            self.refunds.append(
                (
                    invoice.occurred,
                    {
                        "event_id": f"rf-{invoice.key}-{order_id}",
                        "type": "refund_issued",
                        "order_id": order_id,
                        "occurred_at": _utc_text(invoice.occurred),
                        "amount": _money(amount),
                        "skus": sorted(skus),
                        "reason": "other",
                        "request_id": invoice.key,
                    },
                )
            )
        return customer, len(taken), total

    def _take(
        self, customer: _Customer, sku: str, quantity: int, taken: dict[str, dict[str, int]]
    ) -> None:
        """Use up ``quantity`` of ``sku`` from the newest earlier purchases that still hold it."""
        needed = quantity
        for purchase in reversed(customer.purchases):
            available = purchase.remaining.get(sku, 0)
            if available <= 0:
                continue
            used = min(available, needed)
            purchase.remaining[sku] = available - used
            per_order = taken.setdefault(purchase.order_id, {})
            per_order[sku] = per_order.get(sku, 0) + used
            needed -= used
            if needed == 0:
                return
        if needed == quantity:
            self.unmatched["no_earlier_purchase"] += 1
        else:
            self.unmatched["partially_matched"] += 1
        self.unmatched_units += needed


# --------------------------------------------------------------------------- writing


def events_jsonl(events: list[Event]) -> bytes:
    """Serialise events sorted by time then event id, one sorted-key JSON object per line."""
    ordered = sorted(events, key=lambda event: (event[0], event[1]["event_id"]))
    return b"".join(orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n" for _, body in ordered)
