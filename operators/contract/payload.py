"""Payload limits and redaction: the size, depth and value checks a raw record must pass,
and the allowlisted, bounded text a dead letter keeps instead of the payload (part of
:mod:`operators.contract`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import orjson

from operators.contract.errors import ContractError, _kind, _show
from operators.contract.schema import (
    MAX_ID_CHARS,
    MAX_NESTING_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_RAW_CHARS,
)
from operators.vocabulary import DeadLetterKind


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
