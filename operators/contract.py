"""Event contract v1: the input streams, their types, and decoding with validation.

Decoding turns one raw record (JSON bytes from Kafka or a file line, or an already
parsed object) into an :class:`Event`, or into a :class:`DeadLetter` with a reason a
person can act on. Unknown fields are ignored. See ``docs/events.md``.

>>> ev = decode("orders", b'{"event_id": "e1", "type": "order_cancelled", '
...             b'"order_id": "o1", "occurred_at": "2026-06-03T14:05:00Z"}')
>>> ev.type, ev.order_id, ev.occurred_at
('order_cancelled', 'o1', 1780495500.0)
>>> bad = decode("orders", b'{"event_id": "e2", "type": "order_placed"}', received_at=0.0)
>>> bad.reason
'missing required field order_id'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

CONTRACT_VERSION = "1"

#: Stream name -> the event types it may carry.
STREAM_TYPES: dict[str, frozenset[str]] = {
    "orders": frozenset({"order_placed", "order_cancelled"}),
    "delivery": frozenset(
        {
            "shipped",
            "in_transit",
            "out_for_delivery",
            "delivered",
            "delayed",
            "exception",
            "failed_attempt",
            "returned_to_sender",
            "lost",
        }
    ),
    "support": frozenset({"ticket_opened", "customer_message", "ticket_resolved"}),
    "refunds": frozenset(
        {
            "return_requested",
            "refund_requested",
            "exchange_requested",
            "refund_issued",
            "exchange_completed",
            "return_received",
            "request_withdrawn",
            "chargeback_opened",
        }
    ),
}
STREAMS: tuple[str, ...] = ("orders", "delivery", "support", "refunds")

INTENTS = frozenset(
    {
        "where_is_my_order",
        "delivery_problem",
        "damaged_item",
        "wrong_item",
        "size_fit",
        "not_as_described",
        "product_question",
        "cancel_request",
        "return_request",
        "refund_request",
        "other",
    }
)
#: Refund and return reasons, in the contract's order (tools index by it).
REFUND_REASON_ORDER: tuple[str, ...] = (
    "size_fit",
    "damaged",
    "late_delivery",
    "not_as_described",
    "wrong_item",
    "changed_mind",
    "other",
)
REFUND_REASONS = frozenset(REFUND_REASON_ORDER)
#: Event types that resolve (close) a case.
RESOLVING_TYPES = frozenset(
    {"refund_issued", "exchange_completed", "order_cancelled", "chargeback_opened"}
)

#: Raw payloads kept in dead-letter records are cut to this many characters.
MAX_RAW_CHARS = 2048


class ContractError(ValueError):
    """A record that does not follow the contract; the message is the dead-letter reason."""


@dataclass(slots=True, frozen=True)
class Event:
    """One valid input event. ``occurred_at`` is epoch seconds (UTC); ``body`` is the JSON
    object as received (unknown fields included, never re-validated downstream)."""

    stream: str
    type: str
    event_id: str
    order_id: str
    occurred_at: float
    body: dict[str, Any]
    #: Wall-clock (``time.monotonic``) when decoded; for latency metrics, never written out.
    ingested_at: float = 0.0
    #: When the record was received (epoch seconds, as given to :func:`decode`); dead
    #: letters made later (late, after close) report it.
    received_at: float = 0.0
    #: The input partition it was read from (live: ``p<i>``); the event-time watermark is
    #: the minimum over partitions, so a partition read ahead of the others makes no
    #: event late. Empty for a replay's single merged input.
    source: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the body, or ``default``."""
        return self.body.get(key, default)


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A record that could not be used, with why. ``raw`` is truncated to MAX_RAW_CHARS."""

    stream: str
    reason: str
    raw: str
    received_at: float
    event_id: str | None = None
    order_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``dead_letter`` output record of the contract."""
        return {
            "stream": self.stream,
            "reason": self.reason,
            "raw": self.raw,
            "received_at": format_ts(self.received_at),
            "event_id": self.event_id,
            "order_id": self.order_id,
        }


# --- timestamps -------------------------------------------------------------------------

_TS_CACHE: dict[str, float] = {}
#: Accepted range of timestamps (epoch seconds, exclusive): 1970-01-01 to 9998-12-31 UTC.
MIN_TS = 0.0
MAX_TS = 253370764800.0  # 9999-01-01T00:00:00Z


def parse_ts(value: Any, field: str = "occurred_at") -> float:
    """Parse an RFC 3339 timestamp with an offset into epoch seconds.

    >>> parse_ts("2026-06-03T16:05:00+02:00")
    1780495500.0
    """
    if not isinstance(value, str):
        raise ContractError(f"{field} must be an RFC 3339 string, got {_kind(value)}")
    cached = _TS_CACHE.get(value)
    if cached is not None:
        return cached
    if len(value) < 19 or value[10] not in "Tt ":
        raise ContractError(f"{field} is not an RFC 3339 timestamp: {value[:40]!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{field} is not an RFC 3339 timestamp: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise ContractError(f"{field} has no UTC offset: {value[:40]!r}")
    ts = dt.timestamp()
    # Outside this range the time cannot be formatted back (outputs add up to 45 days), and
    # 0.0 is the "no event yet" value of a case: reject rather than fail later.
    if not MIN_TS < ts < MAX_TS:
        raise ContractError(f"{field} is out of range (1970-01-01 to 9998-12-31): {value[:40]!r}")
    if len(_TS_CACHE) > 200_000:  # feeds repeat timestamps a lot; keep the memo bounded
        _TS_CACHE.clear()
    _TS_CACHE[value] = ts
    return ts


def format_ts(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC (``Z``), second precision unless sub-second.

    >>> format_ts(1780495500.0)
    '2026-06-03T14:05:00Z'
    """
    dt = datetime.fromtimestamp(ts, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- validation helpers -----------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _require_str(obj: dict[str, Any], field: str, *, non_empty: bool = True) -> str:
    if field not in obj:
        raise ContractError(f"missing required field {field}")
    value = obj[field]
    if not isinstance(value, str):
        raise ContractError(f"{field} must be a string, got {_kind(value)}")
    if non_empty and not value:
        raise ContractError(f"{field} must not be empty")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(obj: dict[str, Any], field: str, *, required: bool, minimum: float = 0.0) -> None:
    if field not in obj or obj[field] is None:
        if required:
            raise ContractError(f"missing required field {field}")
        return
    value = obj[field]
    if not _is_number(value):
        raise ContractError(f"{field} must be a number, got {_kind(value)}")
    if value < minimum or value != value:  # NaN fails both
        raise ContractError(f"{field} must be >= {minimum:g}, got {value}")


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
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ContractError(f"items[{i}] must be an object, got {_kind(item)}")
        try:
            _require_str(item, "sku")
            _require_str(item, "sku_family")
            qty = item.get("quantity")
            if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
                raise ContractError(f"quantity must be an integer >= 1, got {qty!r}")
            _check_number(item, "unit_price", required=True)
            _check_number(item, "unit_cost", required=False)
        except ContractError as exc:
            raise ContractError(f"items[{i}].{exc}") from None
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
                raise ContractError(f"customer.{exc}") from None


def _check_delivery(obj: dict[str, Any]) -> None:
    for field in ("shipment_id", "courier", "lane", "exception_code"):
        _check_optional_str(obj, field)
    _check_optional_ts(obj, "estimated_delivery_at")


def _check_support(obj: dict[str, Any]) -> None:
    _require_str(obj, "ticket_id")
    _check_optional_str(obj, "channel")
    intent = obj.get("intent")
    # isinstance first: a list or object here is unhashable and must not raise.
    if intent is not None and (not isinstance(intent, str) or intent not in INTENTS):
        raise ContractError(f"intent {str(intent)[:40]!r} is not one of {sorted(INTENTS)}")
    sentiment = obj.get("sentiment")
    if sentiment is not None and (not _is_number(sentiment) or not -1.0 <= sentiment <= 1.0):
        raise ContractError(f"sentiment must be a number in [-1, 1], got {sentiment!r}")


def _check_refunds(obj: dict[str, Any], type_: str) -> None:
    _check_optional_str(obj, "request_id")
    reason = obj.get("reason")
    if reason is not None and (not isinstance(reason, str) or reason not in REFUND_REASONS):
        raise ContractError(f"reason {str(reason)[:40]!r} is not one of {sorted(REFUND_REASONS)}")
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
        raise ContractError(f"event must be a JSON object, got {_kind(obj)}")
    event_id = _require_str(obj, "event_id")
    type_ = _require_str(obj, "type")
    types = STREAM_TYPES[stream]
    if type_ not in types:
        raise ContractError(
            f"type {type_[:40]!r} is not a {stream} event type (one of {sorted(types)})"
        )
    order_id = _require_str(obj, "order_id")
    if "occurred_at" not in obj:
        raise ContractError("missing required field occurred_at")
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


def truncate_raw(raw: bytes | str | Any) -> str:
    """A bounded, printable copy of a raw payload for a dead-letter record."""
    if isinstance(raw, bytes):
        text = raw[: MAX_RAW_CHARS * 4].decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            text = repr(raw)
    if len(text) > MAX_RAW_CHARS:
        text = text[:MAX_RAW_CHARS] + "…"
    # Lone surrogates (possible in a str payload) cannot be written as JSON: replace them.
    return text.encode("utf-8", errors="replace").decode("utf-8")


def load_json(raw: bytes | str | Any) -> Any:
    """Parse JSON text (bytes or str); anything else is taken as already parsed."""
    if isinstance(raw, (bytes, bytearray, memoryview, str)):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"not valid JSON: {exc}") from None
    return raw


def dead_letter(
    stream: str,
    reason: str,
    raw: bytes | str | Any,
    obj: Any,
    received_at: float,
    id_field: str = "event_id",
) -> DeadLetter:
    """A dead letter for ``raw``, with the record's id and order id where readable."""
    record_id = order_id = None
    if isinstance(obj, dict):
        rid, oid = obj.get(id_field), obj.get("order_id")
        record_id = rid if isinstance(rid, str) else None
        order_id = oid if isinstance(oid, str) and oid else None
    return DeadLetter(stream, reason, truncate_raw(raw), received_at, record_id, order_id)


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
        obj = load_json(raw)
        return validate(stream, obj, time.monotonic(), received_at or 0.0, source)
    except ContractError as exc:
        if received_at is None:
            received_at = datetime.now(UTC).timestamp()
        return dead_letter(stream, str(exc), raw, obj, received_at)
