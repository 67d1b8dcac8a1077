"""Shared test helpers: event builders, a recording decider and output-record validators.

Builders return plain JSON-ready dicts (the wire format); ``event()`` decodes one into an
:class:`~operators.contract.Event` and fails the test if it does not decode. Times are
given as hours after ``BASE`` (2026-06-01T00:00:00Z) so tests read as timelines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from operators.case import OrderCase
from operators.contract import (
    STREAM_TYPES,
    DeadLetter,
    Event,
    decode,
)

BASE = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = 3600.0
DAY = 24 * HOUR

#: Stream of each event type.
STREAM_OF: dict[str, str] = {t: s for s, types in STREAM_TYPES.items() for t in types}


def at(hours: float) -> str:
    """RFC 3339 time ``hours`` after BASE."""
    return (BASE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(hours: float) -> float:
    """Epoch seconds ``hours`` after BASE."""
    return (BASE + timedelta(hours=hours)).timestamp()


def body(type_: str, order_id: str, hours: float, *, event_id: str | None = None, **fields: Any):
    """A wire-format event of any type; ``event_id`` defaults to a stable derived id."""
    record: dict[str, Any] = {
        "event_id": event_id or f"{order_id}:{type_}:{hours:g}",
        "type": type_,
        "order_id": order_id,
        "occurred_at": at(hours),
    }
    record.update(fields)
    return record


def order_placed(
    order_id: str,
    hours: float = 0.0,
    *,
    total: float = 80.0,
    cost: float | None = 30.0,
    sku_family: str = "skincare",
    promised_in_hours: float | None = 48.0,
    customer_id: str = "c-1",
    **fields: Any,
) -> dict[str, Any]:
    """A valid ``order_placed`` with one item worth ``total``."""
    item: dict[str, Any] = {
        "sku": f"{sku_family[:3].upper()}-001",
        "sku_family": sku_family,
        "quantity": 1,
        "unit_price": total,
    }
    if cost is not None:
        item["unit_cost"] = cost
    extra: dict[str, Any] = {
        "customer_id": customer_id,
        "currency": "EUR",
        "total": total,
        "items": [item],
    }
    if promised_in_hours is not None:
        extra["promised_delivery_at"] = at(hours + promised_in_hours)
    extra.update(fields)
    return body("order_placed", order_id, hours, **extra)


def support(type_: str, order_id: str, hours: float, **fields: Any) -> dict[str, Any]:
    """A support event with a ticket id."""
    fields.setdefault("ticket_id", f"t-{order_id}")
    return body(type_, order_id, hours, **fields)


def event(record: dict[str, Any], stream: str | None = None) -> Event:
    """Decode a wire-format record; fail loudly if it is not a valid event."""
    result = decode(stream or STREAM_OF[record["type"]], record, received_at=0.0)
    if isinstance(result, DeadLetter):
        raise AssertionError(f"test event did not decode: {result.reason}")
    return result


def events(*records: dict[str, Any]) -> list[Event]:
    return [event(r) for r in records]


def item(record: dict[str, Any], received_hours: float = 0.0) -> tuple[str, Any, float]:
    """A dataflow input item ``(stream, payload, received_at)``."""
    return (STREAM_OF[record["type"]], record, epoch(received_hours))


class RecordingDecider:
    """A ``Decider`` that records every call and emits one small decision per call."""

    def __init__(self) -> None:
        self.decided: list[tuple[str, str]] = []  # (order_id, trigger event_id)
        self.closed: list[dict[str, Any]] = []

    def decide(self, case: OrderCase, trigger: Event) -> list[tuple[str, dict[str, Any]]]:
        self.decided.append((case.order_id, trigger.event_id))
        case.arm = case.arm or "treatment"
        return [("decision", {"order_id": case.order_id, "trigger_event_id": trigger.event_id})]

    def on_close(
        self, case: OrderCase, outcome: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        self.closed.append(outcome)
        return []
