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

import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from operators.vocabulary import DeadLetterKind

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

#: Text kept in a dead-letter record (its ``raw``) is cut to this many characters.
MAX_RAW_CHARS = 2048

# --- limits (docs/events.md "Limits"): a record over one is dead-lettered, never processed,
# so no single record can exhaust memory, the stack or the time of a step.
#: Largest accepted payload, in bytes of JSON (or characters of strings, for parsed input).
MAX_PAYLOAD_BYTES = 256 * 1024
#: Deepest accepted nesting of objects and lists (the event object itself is depth 1).
#: Deep enough for any real event; far below the depth at which serialisers give up (255).
MAX_NESTING_DEPTH = 32
#: Most line items one ``order_placed`` may carry.
MAX_ITEMS_PER_ORDER = 1000
#: Most events one order's case accepts; more are dead-lettered (enforced by the clock).
MAX_EVENTS_PER_CASE = 1000
#: Longest accepted identifier (``event_id``, ``order_id`` and the other ``*_id`` fields).
MAX_ID_CHARS = 256
#: Largest magnitude of an accepted number (money, counts, quantities): beyond it, sums
#: and floats downstream lose meaning or overflow.
MAX_NUMBER = 1e15
#: Largest accepted ``quantity`` of one line item.
MAX_QUANTITY = 1_000_000


class ContractError(ValueError):
    """A record that does not follow the contract; the message is the dead-letter reason
    and ``kind`` its category (what metrics count)."""

    def __init__(self, message: str, kind: DeadLetterKind = DeadLetterKind.INVALID_FIELD):
        super().__init__(message)
        self.kind = kind


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
    """A record that could not be used, with why.

    ``raw`` is not the payload: payloads carry names, addresses and e-mails, so it is a
    JSON object of the allowlisted fields of the payload (:data:`RAW_FIELDS`, short
    scalars only), at most MAX_RAW_CHARS characters; ``payload_sha256`` identifies the
    payload itself (to find it in the source). ``kind`` is the category metrics count.
    """

    stream: str
    reason: str
    raw: str
    received_at: float
    event_id: str | None = None
    order_id: str | None = None
    kind: DeadLetterKind = DeadLetterKind.INVALID_FIELD
    payload_sha256: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``dead_letter`` output record of the contract."""
        return {
            "stream": self.stream,
            "kind": str(self.kind),
            "reason": self.reason,
            "raw": self.raw,
            "payload_sha256": self.payload_sha256,
            "received_at": _format_ts_safe(self.received_at),
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


def _format_ts_safe(ts: float) -> str:
    try:
        return format_ts(ts)
    except (ValueError, OverflowError, OSError, TypeError):
        return format_ts(0.0)  # a dead letter must be writable whatever its clock said


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


def _show(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a bad value for a reason text: bounded, never raising,
    never recursing (a reason must not carry a megabyte string or a nested structure)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    return _kind(value)


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
    event_id = _require_str(obj, "event_id")
    type_ = _require_str(obj, "type")
    types = STREAM_TYPES[stream]
    if type_ not in types:
        raise ContractError(
            f"type {_show(type_)} is not a {stream} event type (one of {sorted(types)})",
            DeadLetterKind.UNKNOWN_TYPE,
        )
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


# --- shape limits -------------------------------------------------------------------------


def _raw_size(raw: bytes | bytearray | memoryview | str) -> int:
    return raw.nbytes if isinstance(raw, memoryview) else len(raw)


def check_shape(obj: Any) -> None:
    """Raise ContractError if a parsed payload is too deep, too large or holds a value JSON
    cannot carry (a non-string key, a non-finite or 64-bit-overflowing number, a string
    that is not valid UTF-8). Iterative: a hostile payload cannot exhaust the stack.

    Input parsed by orjson from bytes can only fail on depth and size; a payload handed
    over already parsed (a Python object) can fail on any of these.
    """
    budget = MAX_PAYLOAD_BYTES
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise ContractError(
                f"payload is nested deeper than the limit of {MAX_NESTING_DEPTH} levels",
                DeadLetterKind.TOO_DEEP,
            )
        if isinstance(value, dict):
            budget -= 2 + len(value)
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ContractError(f"object keys must be strings, got {_kind(key)}")
                budget -= len(key)
                if isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
                else:
                    budget -= _scalar_size(item)
        elif isinstance(value, list):
            budget -= 2 + len(value)
            for item in value:
                if isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
                else:
                    budget -= _scalar_size(item)
        else:
            budget -= _scalar_size(value)
        if budget < 0:
            raise ContractError(
                f"payload is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
                DeadLetterKind.TOO_LARGE,
            )


def _scalar_size(value: Any) -> int:
    """Approximate JSON size of a scalar; raises ContractError for one JSON cannot carry."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ContractError("a string is not valid UTF-8 (lone surrogate)") from None
        return len(value) + 2
    if value is None or isinstance(value, bool):
        return 4
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ContractError(f"number {_show(value)} is too large for a JSON value")
        return 8
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError(f"number {value!r} is not finite")
        return 8
    raise ContractError(f"value of type {_kind(value)} is not JSON")


# --- dead-letter payloads ------------------------------------------------------------------

#: Fields of a payload that a dead letter keeps (ids, types, times, codes, amounts): the
#: rest (names, addresses, e-mails, free text, campaign) may be personal data.
RAW_FIELDS: frozenset[str] = frozenset(
    {
        "event_id",
        "type",
        "order_id",
        "occurred_at",
        "currency",
        "total",
        "courier",
        "lane",
        "shipment_id",
        "exception_code",
        "estimated_delivery_at",
        "promised_delivery_at",
        "ticket_id",
        "channel",
        "intent",
        "sentiment",
        "request_id",
        "reason",
        "amount",
        # review decisions and interventions (dispatch dead letters)
        "review_id",
        "decision",
        "intervention_id",
        "action",
        "decided_at",
        "arm",
        "automated",
    }
)
_RAW_VALUE_CHARS = 64


class _Lit(str):
    """Literal text of the bounded serialiser (as opposed to a string value)."""


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f'"<{_show(value)}>"'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'"{value!r}"'
    if isinstance(value, str):
        text = value[:MAX_RAW_CHARS].encode("utf-8", errors="replace").decode()
        return orjson.dumps(text).decode()
    return f'"<{type(value).__name__}>"'


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield _Lit("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                yield _Lit(",")
            yield _Lit(_scalar_text(key if isinstance(key, str) else str(type(key).__name__)))
            yield _Lit(":")
            yield item
        yield _Lit("}")
    else:
        yield _Lit("[")
        for i, item in enumerate(value):
            if i:
                yield _Lit(",")
            yield item
        yield _Lit("]")


def _bounded_text(value: Any, limit: int) -> str:
    """JSON-like text of any value, cut at ``limit`` characters, nesting cut at
    MAX_NESTING_DEPTH: iterative, so no payload can recurse it, and lazy, so a huge one
    costs only the characters kept."""
    out: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack and size <= limit:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if type(item) is _Lit:
            text = str(item)
        elif isinstance(item, (dict, list, tuple, set, frozenset)):
            if len(stack) > MAX_NESTING_DEPTH:
                text = '"…"'
            else:
                stack.append(_children(item))
                continue
        else:
            text = _scalar_text(item)
        out.append(text)
        size += len(text)
    return "".join(out)


def truncate_raw(raw: bytes | str | Any) -> str:
    """A bounded, printable copy of a raw payload. Never raises, never recurses: payloads
    too deep or too odd for JSON get a bounded JSON-like rendering."""
    try:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            text = bytes(raw[: MAX_RAW_CHARS * 4]).decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            text = raw[: MAX_RAW_CHARS * 2]
        else:
            text = _bounded_text(raw, MAX_RAW_CHARS)
        if len(text) > MAX_RAW_CHARS:
            text = text[:MAX_RAW_CHARS] + "…"
        # Lone surrogates (possible in a str payload) cannot be written as JSON: replace them.
        return text.encode("utf-8", errors="replace").decode("utf-8")
    except Exception:  # a dead letter must be buildable from anything
        return f"<unprintable {type(raw).__name__}>"


def payload_digest(raw: bytes | str | Any) -> str:
    """``sha256:<hex>`` of a payload: its bytes as received, or (already parsed) its JSON
    with sorted keys. Identifies a record without keeping its content. Never raises."""
    try:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            data = bytes(raw)
        elif isinstance(raw, str):
            data = raw.encode("utf-8", errors="surrogatepass")
        else:
            try:
                data = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
            except TypeError:  # too deep, odd keys, huge ints: a bounded rendering
                data = _bounded_text(raw, MAX_PAYLOAD_BYTES).encode("utf-8", errors="replace")
        return "sha256:" + hashlib.sha256(data).hexdigest()
    except Exception:
        return "sha256:" + hashlib.sha256(type(raw).__name__.encode()).hexdigest()


def redact(obj: Any, raw: bytes | str | Any = None, fields: frozenset[str] = RAW_FIELDS) -> str:
    """The ``raw`` text of a dead letter: the allowlisted fields of ``obj`` whose values
    are short scalars (other values are named by their kind, ``items`` by its length),
    as JSON; for a payload that is not an object, its kind and size. Never raises."""
    try:
        kept: dict[str, Any] = {}
        if isinstance(obj, dict):
            for key in sorted(k for k in obj if isinstance(k, str) and k in fields):
                value = obj[key]
                if isinstance(value, str):
                    value = value[:_RAW_VALUE_CHARS].encode("utf-8", errors="replace").decode()
                elif isinstance(value, bool) or value is None:
                    pass
                elif isinstance(value, int):
                    value = value if value.bit_length() <= 64 else _show(value)
                elif isinstance(value, float):
                    value = value if math.isfinite(value) else repr(value)
                else:
                    value = f"<{_kind(value)}>"
                kept[key] = value
            items = obj.get("items")
            if isinstance(items, list):
                kept["items"] = f"<{len(items)} items>"
        else:
            source = raw if raw is not None else obj
            if isinstance(source, (bytes, bytearray, memoryview, str)):
                unit = "characters" if isinstance(source, str) else "bytes"
                kept["payload"] = f"<{_raw_size(source)} {unit}>"
            else:
                kept["payload"] = f"<{_kind(source)}>"
        return orjson.dumps(kept).decode()[:MAX_RAW_CHARS]
    except Exception:
        return "{}"


def _bounded_id(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:MAX_ID_CHARS].encode("utf-8", errors="replace").decode()


def load_json(raw: bytes | str | Any) -> Any:
    """Parse JSON text (bytes or str); anything else is taken as already parsed. Checks
    the limits (:func:`check_payload`) and raises ContractError if one is exceeded."""
    obj = parse_json(raw)
    check_payload(raw, obj)
    return obj


def parse_json(raw: bytes | str | Any) -> Any:
    """Parse JSON text of at most MAX_PAYLOAD_BYTES; anything else is returned as is."""
    if isinstance(raw, (bytes, bytearray, memoryview, str)):
        if _raw_size(raw) > MAX_PAYLOAD_BYTES:
            raise ContractError(
                f"payload is {_raw_size(raw)} bytes, above the limit of {MAX_PAYLOAD_BYTES}",
                DeadLetterKind.TOO_LARGE,
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"not valid JSON: {exc}", DeadLetterKind.INVALID_JSON) from None
    return raw


def check_payload(raw: bytes | str | Any, obj: Any) -> None:
    """Check the limits of ``obj`` parsed from ``raw``. JSON text already passed the size
    limit and orjson's value checks; its brackets bound the depth from above, so only text
    with many of them is walked. An already parsed value is serialised once by orjson (in
    C: it refuses odd keys, huge integers, lone surrogates and depths over 255, and gives
    the size), and walked only when that fails or shows many brackets."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    elif isinstance(raw, str):
        if raw.count("[") + raw.count("{") > MAX_NESTING_DEPTH:
            check_shape(obj)
        return
    else:
        try:
            data = orjson.dumps(obj)
        except TypeError:  # orjson.JSONEncodeError: the walk names the problem
            check_shape(obj)
            raise ContractError("payload cannot be written as JSON") from None
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ContractError(
                f"payload is larger than the limit of {MAX_PAYLOAD_BYTES} bytes",
                DeadLetterKind.TOO_LARGE,
            )
    if data.count(b"[") + data.count(b"{") > MAX_NESTING_DEPTH:
        check_shape(obj)


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
