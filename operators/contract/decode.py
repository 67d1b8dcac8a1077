"""Decoding: one raw record into an :class:`Event`, or a :class:`DeadLetter` with the
reason (part of :mod:`operators.contract`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from operators.contract.errors import ContractError, _kind, _show
from operators.contract.payload import (
    _bounded_id,
    check_payload,
    parse_json,
    payload_digest,
    redact,
)
from operators.contract.schema import (
    INTENTS,
    MAX_ID_CHARS,
    MAX_ITEMS_PER_ORDER,
    MAX_NUMBER,
    MAX_QUANTITY,
    REFUND_REASONS,
    STREAM_TYPES,
    STREAMS,
    DeadLetter,
    Event,
)
from operators.contract.timestamps import parse_ts
from operators.vocabulary import DeadLetterKind


def _require_str(obj: dict[str, Any], field: str, *, non_empty: bool = True) -> str:
    if field not in obj:
        raise ContractError(f"missing required field {field}", DeadLetterKind.MISSING_FIELD)
    value = obj[field]
    if not isinstance(value, str):
        raise ContractError(f"{field} must be a string, got {_kind(value)}")
    if non_empty and not value:
        raise ContractError(f"{field} must not be empty")
    if field.endswith("_id") and len(value) > MAX_ID_CHARS:
        raise ContractError(
            f"{field} is {len(value)} characters, above the limit of {MAX_ID_CHARS}",
            DeadLetterKind.TOO_LARGE,
        )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(obj: dict[str, Any], field: str, *, required: bool, minimum: float = 0.0) -> None:
    if field not in obj or obj[field] is None:
        if required:
            raise ContractError(f"missing required field {field}", DeadLetterKind.MISSING_FIELD)
        return
    value = obj[field]
    if not _is_number(value):
        raise ContractError(f"{field} must be a number, got {_kind(value)}")
    # Giant integers and infinities are numbers too, but sums and floats downstream break.
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise ContractError(f"{field} is out of range (|x| <= {MAX_NUMBER:g}), got {_show(value)}")
    if value < minimum or value != value:  # NaN fails both
        raise ContractError(f"{field} must be >= {minimum:g}, got {_show(value)}")


def _check_optional_str(obj: dict[str, Any], field: str) -> None:
    value = obj.get(field)
    if value is not None and not isinstance(value, str):
        raise ContractError(f"{field} must be a string or null, got {_kind(value)}")


def _check_optional_ts(obj: dict[str, Any], field: str) -> None:
    value = obj.get(field)
    if value is not None:
        parse_ts(value, field)


def _check_order_placed(obj: dict[str, Any]) -> None:
    _require_str(obj, "customer_id")
    currency = _require_str(obj, "currency")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise ContractError(f"currency must be an ISO 4217 code like EUR, got {currency[:10]!r}")
    _check_number(obj, "total", required=True)
    items = obj.get("items")
    if not isinstance(items, list) or not items:
        raise ContractError("items must be a non-empty list")
    if len(items) > MAX_ITEMS_PER_ORDER:
        raise ContractError(
            f"items has {len(items)} entries, above the limit of {MAX_ITEMS_PER_ORDER}",
            DeadLetterKind.TOO_LARGE,
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ContractError(f"items[{i}] must be an object, got {_kind(item)}")
        try:
            _require_str(item, "sku")
            _require_str(item, "sku_family")
            qty = item.get("quantity")
            if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= MAX_QUANTITY:
                raise ContractError(
                    f"quantity must be an integer from 1 to {MAX_QUANTITY}, got {_show(qty)}"
                )
            _check_number(item, "unit_price", required=True)
            _check_number(item, "unit_cost", required=False)
        except ContractError as exc:
            raise ContractError(f"items[{i}].{exc}", exc.kind) from None
    _check_optional_ts(obj, "promised_delivery_at")
    for field in ("courier", "lane", "campaign"):
        _check_optional_str(obj, field)
    customer = obj.get("customer")
    if customer is not None:
        if not isinstance(customer, dict):
            raise ContractError(f"customer must be an object, got {_kind(customer)}")
        for field in ("orders_count", "returns_count", "lifetime_value"):
            try:
                _check_number(customer, field, required=False)
            except ContractError as exc:
                raise ContractError(f"customer.{exc}", exc.kind) from None


_DELIVERY_STRINGS = ("shipment_id", "courier", "lane", "exception_code")


def _check_delivery(obj: dict[str, Any]) -> None:
    # The most frequent event: _check_optional_str inlined.
    get = obj.get
    for field in _DELIVERY_STRINGS:
        value = get(field)
        if value is not None and not isinstance(value, str):
            raise ContractError(f"{field} must be a string or null, got {_kind(value)}")
    estimate = get("estimated_delivery_at")
    if estimate is not None:
        parse_ts(estimate, "estimated_delivery_at")


def _check_support(obj: dict[str, Any]) -> None:
    _require_str(obj, "ticket_id")
    _check_optional_str(obj, "channel")
    intent = obj.get("intent")
    # isinstance first: a list or object here is unhashable and must not raise.
    if intent is not None and (not isinstance(intent, str) or intent not in INTENTS):
        raise ContractError(f"intent {_show(intent)} is not one of {sorted(INTENTS)}")
    sentiment = obj.get("sentiment")
    if sentiment is not None and (not _is_number(sentiment) or not -1.0 <= sentiment <= 1.0):
        raise ContractError(f"sentiment must be a number in [-1, 1], got {_show(sentiment)}")


def _check_refunds(obj: dict[str, Any], type_: str) -> None:
    _check_optional_str(obj, "request_id")
    reason = obj.get("reason")
    if reason is not None and (not isinstance(reason, str) or reason not in REFUND_REASONS):
        raise ContractError(f"reason {_show(reason)} is not one of {sorted(REFUND_REASONS)}")
    _check_number(obj, "amount", required=type_ == "refund_issued")
    skus = obj.get("skus")
    if skus is not None and (
        not isinstance(skus, list) or not all(isinstance(s, str) for s in skus)
    ):
        raise ContractError("skus must be a list of strings")


def validate(
    stream: str, obj: Any, ingested_at: float = 0.0, received_at: float = 0.0, source: str = ""
) -> Event:
    """Validate a parsed JSON value as an event of ``stream``; raise ContractError if not."""
    if not isinstance(obj, dict):
        raise ContractError(
            f"event must be a JSON object, got {_kind(obj)}", DeadLetterKind.NOT_AN_OBJECT
        )
    get = obj.get
    # The fields every event has: accepted here when plainly valid; anything else goes
    # through _require_str, which accepts or rejects it with its reason.
    event_id = get("event_id")
    if type(event_id) is not str or not event_id or len(event_id) > MAX_ID_CHARS:
        event_id = _require_str(obj, "event_id")
    type_ = get("type")
    if type(type_) is not str or not type_:
        type_ = _require_str(obj, "type")
    types = STREAM_TYPES[stream]
    if type_ not in types:
        raise ContractError(
            f"type {_show(type_)} is not a {stream} event type (one of {sorted(types)})",
            DeadLetterKind.UNKNOWN_TYPE,
        )
    order_id = get("order_id")
    if type(order_id) is not str or not order_id or len(order_id) > MAX_ID_CHARS:
        order_id = _require_str(obj, "order_id")
    if "occurred_at" not in obj:
        raise ContractError("missing required field occurred_at", DeadLetterKind.MISSING_FIELD)
    occurred_at = parse_ts(obj["occurred_at"])
    if stream == "orders":
        if type_ == "order_placed":
            _check_order_placed(obj)
    elif stream == "delivery":
        _check_delivery(obj)
    elif stream == "support":
        _check_support(obj)
    else:
        _check_refunds(obj, type_)
    return Event(
        stream, type_, event_id, order_id, occurred_at, obj, ingested_at, received_at, source
    )


def dead_letter(
    stream: str,
    reason: str,
    raw: bytes | str | Any,
    obj: Any,
    received_at: float,
    id_field: str = "event_id",
    kind: DeadLetterKind = DeadLetterKind.INVALID_FIELD,
) -> DeadLetter:
    """A dead letter for ``raw``, with the record's id and order id where readable, the
    allowlisted fields and a digest of the payload (never the payload). Never raises."""
    record_id = order_id = None
    if isinstance(obj, dict):
        record_id, order_id = _bounded_id(obj.get(id_field)), _bounded_id(obj.get("order_id"))
    return DeadLetter(
        stream,
        reason,
        redact(obj, raw),
        received_at,
        record_id,
        order_id,
        kind,
        payload_digest(raw),
    )


def decode(
    stream: str, raw: bytes | str | Any, received_at: float | None = None, source: str = ""
) -> Event | DeadLetter:
    """Decode one raw record of ``stream`` into an Event, or a DeadLetter with the reason.

    ``raw`` is JSON text (bytes or str) or an already parsed JSON value. Never raises for
    bad input; ``received_at`` defaults to the current wall-clock time.
    """
    if stream not in STREAM_TYPES:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    obj: Any = raw
    try:
        obj = parse_json(raw)
        check_payload(raw, obj)
        return validate(stream, obj, time.monotonic(), received_at or 0.0, source)
    except ContractError as exc:
        if received_at is None:
            received_at = datetime.now(UTC).timestamp()
        return dead_letter(stream, str(exc), raw, obj, received_at, kind=exc.kind)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        # Not expected after the checks above; should one slip through, it costs only this
        # record, never the flow.
        if received_at is None:
            received_at = datetime.now(UTC).timestamp()
        reason = f"unreadable record: {type(exc).__name__}"
        return dead_letter(stream, reason, raw, obj, received_at, kind=DeadLetterKind.INVALID_FIELD)
