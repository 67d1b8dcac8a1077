"""Decoding and validation of contract v1 input events (the operators.contract package)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.contract import (
    MAX_ID_CHARS,
    MAX_ITEMS_PER_ORDER,
    MAX_NESTING_DEPTH,
    MAX_PAYLOAD_BYTES,
    MAX_RAW_CHARS,
    RAW_FIELDS,
    STREAM_TYPES,
    STREAMS,
    VALIDATORS,
    DeadLetter,
    Event,
    decode,
    format_ts,
    parse_ts,
    payload_digest,
    redact,
    truncate_raw,
)
from operators.contract.timestamps import MAX_TS
from operators.vocabulary import DeadLetterKind
from tests.helpers import STREAM_OF, at, body, order_placed, support


def minimal(type_: str) -> dict[str, Any]:
    """The smallest valid event of ``type_``."""
    if type_ == "order_placed":
        return order_placed("o-1", 0.0, promised_in_hours=None)
    if STREAM_OF[type_] == "support":
        return support(type_, "o-1", 1.0)
    if type_ == "refund_issued":
        return body(type_, "o-1", 1.0, amount=10.0)
    return body(type_, "o-1", 1.0)


ALL_TYPES = sorted(STREAM_OF)


def dead(stream: str, raw: Any) -> DeadLetter:
    result = decode(stream, raw, received_at=1.0)
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r}"
    return result


# --- valid input --------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_minimal_event_of_every_type_decodes(type_: str) -> None:
    record = minimal(type_)
    for raw in (record, orjson.dumps(record), orjson.dumps(record).decode()):
        ev = decode(STREAM_OF[type_], raw)
        assert isinstance(ev, Event)
        assert (ev.stream, ev.type, ev.order_id) == (STREAM_OF[type_], type_, "o-1")
        assert ev.event_id == record["event_id"]
        assert ev.occurred_at == parse_ts(record["occurred_at"])


def test_full_order_placed_decodes_with_all_optional_fields() -> None:
    record = order_placed(
        "o-9",
        2.0,
        courier="dhl",
        lane="DE-NL",
        campaign=None,
        customer={"orders_count": 3, "returns_count": 1, "lifetime_value": 250.5},
    )
    ev = decode("orders", orjson.dumps(record))
    assert isinstance(ev, Event)
    assert ev.get("lane") == "DE-NL" and ev.get("campaign") is None


def test_unknown_fields_are_ignored_and_kept_in_the_body() -> None:
    record = {**minimal("delivered"), "x_vendor_field": {"nested": [1, 2]}, "priority": 3}
    ev = decode("delivery", orjson.dumps(record))
    assert isinstance(ev, Event)
    assert ev.get("x_vendor_field") == {"nested": [1, 2]}


# --- required fields and types ------------------------------------------------------------

#: (type, field path, reason fragment) for every required field of contract v1.
REQUIRED = [(t, f) for t in ALL_TYPES for f in ("event_id", "type", "order_id", "occurred_at")] + [
    ("order_placed", "customer_id"),
    ("order_placed", "currency"),
    ("order_placed", "total"),
    ("order_placed", "items"),
    ("order_placed", "items.0.sku"),
    ("order_placed", "items.0.sku_family"),
    ("order_placed", "items.0.quantity"),
    ("order_placed", "items.0.unit_price"),
    ("ticket_opened", "ticket_id"),
    ("customer_message", "ticket_id"),
    ("ticket_resolved", "ticket_id"),
    ("refund_issued", "amount"),
]


def _edit(record: dict[str, Any], path: str, value: Any = ..., *, delete: bool = False):
    """Copy of ``record`` with ``path`` (dotted, list indexes as numbers) changed or removed."""
    out = copy.deepcopy(record)
    *parents, last = path.split(".")
    target: Any = out
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if delete:
        del target[key]
    else:
        target[key] = value
    return out


def _field_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


@pytest.mark.parametrize(("type_", "path"), REQUIRED)
def test_missing_required_field_is_dead_lettered_naming_the_field(type_: str, path: str) -> None:
    record = _edit(minimal(type_), path, delete=True)
    letter = dead(STREAM_OF[type_], orjson.dumps(record))
    assert _field_name(path) in letter.reason
    if "." in path:  # nested: the reason says where in the list
        assert letter.reason.startswith("items[0].")


#: (type, field path, a value of the wrong type or out of range).
WRONG = [
    *((t, "event_id", 17) for t in ("order_placed", "delivered", "ticket_opened", "refund_issued")),
    *((t, "order_id", ["o"]) for t in ("order_cancelled", "delayed", "customer_message")),
    ("exchange_completed", "order_id", ""),
    ("shipped", "type", 3),
    ("lost", "occurred_at", 1780495500),
    ("lost", "occurred_at", "yesterday"),
    ("order_placed", "customer_id", 42),
    ("order_placed", "currency", "eur"),
    ("order_placed", "currency", "EURO"),
    ("order_placed", "currency", None),
    ("order_placed", "total", "80"),
    ("order_placed", "total", -1),
    ("order_placed", "total", True),
    ("order_placed", "items", []),
    ("order_placed", "items", {"sku": "s"}),
    ("order_placed", "items.0", "SKN-001"),
    ("order_placed", "items.0.sku", 5),
    ("order_placed", "items.0.sku_family", ""),
    ("order_placed", "items.0.quantity", 0),
    ("order_placed", "items.0.quantity", 1.5),
    ("order_placed", "items.0.quantity", True),
    ("order_placed", "items.0.unit_price", -0.01),
    ("order_placed", "items.0.unit_cost", "cheap"),
    ("order_placed", "promised_delivery_at", "2026-06-03"),
    ("order_placed", "courier", 7),
    ("order_placed", "lane", ["DE", "NL"]),
    ("order_placed", "campaign", 1),
    ("order_placed", "customer", "vip"),
    ("order_placed", "customer.orders_count", "many"),
    ("order_placed", "customer.lifetime_value", -5),
    ("delayed", "estimated_delivery_at", "soon"),
    ("in_transit", "shipment_id", 123),
    ("exception", "exception_code", {"code": 1}),
    ("ticket_opened", "ticket_id", 9),
    ("ticket_opened", "channel", 1),
    ("ticket_opened", "intent", "angry"),
    ("ticket_opened", "intent", ["where_is_my_order"]),
    ("customer_message", "sentiment", 1.5),
    ("customer_message", "sentiment", -1.01),
    ("customer_message", "sentiment", "bad"),
    ("customer_message", "sentiment", True),
    ("refund_requested", "reason", "too_expensive"),
    ("refund_requested", "reason", {"why": "x"}),
    ("refund_requested", "request_id", 1),
    ("refund_requested", "amount", -3),
    ("return_requested", "skus", "SKN-001"),
    ("return_requested", "skus", ["SKN-001", 2]),
    ("refund_issued", "amount", "10"),
    ("refund_issued", "amount", None),
]


@pytest.mark.parametrize(("type_", "path", "value"), WRONG)
def test_wrong_type_or_range_is_dead_lettered_naming_the_field(
    type_: str, path: str, value: Any
) -> None:
    record = minimal(type_)
    if path.startswith("customer."):
        record["customer"] = {"orders_count": 1}
    record = _edit(record, path, value)
    letter = dead(STREAM_OF[type_], orjson.dumps(record))
    name = "items[0]" if path == "items.0" else _field_name(path)
    assert name in letter.reason, letter.reason
    if path.startswith("customer."):
        assert letter.reason.startswith("customer.")


def test_valid_edge_values_are_accepted() -> None:
    """The bounds themselves are valid: sentiment -1 and 1, zero amounts and prices."""
    for sentiment in (-1, -1.0, 0, 1.0):
        assert isinstance(
            decode("support", {**minimal("ticket_opened"), "sentiment": sentiment}), Event
        )
    assert isinstance(decode("refunds", {**minimal("refund_issued"), "amount": 0}), Event)
    free = order_placed("o-1", total=0.0, cost=0.0)
    assert isinstance(decode("orders", free), Event)
    assert isinstance(decode("orders", {**free, "campaign": None, "courier": None}), Event)


def test_refund_issued_needs_an_amount_but_other_refund_types_do_not() -> None:
    letter = dead("refunds", body("refund_issued", "o-1", 1.0))
    assert letter.reason == "missing required field amount"
    assert isinstance(decode("refunds", body("refund_requested", "o-1", 1.0)), Event)


def test_dead_letter_keeps_event_id_and_order_id_when_readable() -> None:
    letter = dead("refunds", body("refund_issued", "o-7", 1.0, event_id="e-7"))
    assert (letter.event_id, letter.order_id, letter.stream) == ("e-7", "o-7", "refunds")
    letter = dead("refunds", {"event_id": 5, "order_id": "", "type": "refund_issued"})
    assert (letter.event_id, letter.order_id) == (None, None)


# --- stream, JSON and shape errors --------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", "{'single': 'quotes'}", b"[1,"])
def test_non_json_is_dead_lettered(raw: bytes | str) -> None:
    letter = dead("support", raw)
    assert letter.reason.startswith("not valid JSON")
    assert (letter.event_id, letter.order_id) == (None, None)


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_dead_lettered(raw: bytes) -> None:
    assert dead("orders", raw).reason.startswith("event must be a JSON object")


@pytest.mark.parametrize(
    ("stream", "type_"),
    [("orders", "delivered"), ("delivery", "order_placed"), ("support", "refund_issued"),
     ("refunds", "ticket_opened"), ("orders", "order_shipped")],
)  # fmt: skip
def test_type_of_another_stream_is_dead_lettered(stream: str, type_: str) -> None:
    record = body(type_, "o-1", 1.0, ticket_id="t", amount=1.0)
    letter = dead(stream, orjson.dumps(record))
    assert f"is not a {stream} event type" in letter.reason
    assert "type" in letter.reason


def test_unknown_stream_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown stream"):
        decode("payments", b"{}")


# --- raw payload bound --------------------------------------------------------------------


@pytest.mark.parametrize("as_bytes", [True, False])
def test_unparseable_payload_is_kept_as_its_size_and_digest_only(as_bytes: bool) -> None:
    text = '{"event_id": "' + "x" * (MAX_RAW_CHARS * 3) + '"'  # not valid JSON, and long
    raw = text.encode() if as_bytes else text
    letter = dead("delivery", raw)
    assert "xxxx" not in letter.raw and len(letter.raw) < 100
    assert letter.payload_sha256 == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert letter.kind == DeadLetterKind.INVALID_JSON


def test_dead_letter_keeps_allowlisted_fields_and_no_personal_data() -> None:
    record = order_placed("o-1", 0.0)
    record.update(
        total=-1,  # invalid
        email="jane.doe@example.com",
        shipping_address={"street": "Hauptstr. 5", "name": "Jane Doe"},
        campaign="promo-for-jane.doe@example.com",
        phone="+49 170 1234567",
    )
    for raw in (record, orjson.dumps(record)):
        letter = dead("orders", raw)
        kept = orjson.loads(letter.raw)
        assert kept["event_id"] == record["event_id"] and kept["total"] == -1
        assert kept["items"] == f"<{len(record['items'])} items>"
        for secret in ("jane", "Hauptstr", "1234567", "customer_id"):
            assert secret not in letter.raw, secret
        assert set(kept) - {"items"} <= RAW_FIELDS
    expected = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert dead("orders", record).payload_sha256 == "sha256:" + expected


def test_truncate_raw_bounds_multibyte_and_unserialisable_payloads() -> None:
    assert len(truncate_raw(("é" * MAX_RAW_CHARS * 2).encode())) == MAX_RAW_CHARS + 1
    assert truncate_raw({1, 2}).startswith("[")  # not JSON-able: a JSON-like rendering
    assert "\ud800" not in truncate_raw('"\ud800"')  # lone surrogates cannot be written out


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    "payload",
    [
        _nested(300),  # deeper than orjson serialises (255)
        _nested(5000),  # deeper than Python's recursion limit
        {"n": 10**5000},  # int too large for str() and for orjson
        {1: 2, (3,): [float("nan")]},
        {"s": "x" * (10 * MAX_RAW_CHARS)},
        [object()],
    ],
    ids=["depth300", "depth5000", "bigint", "oddkeys", "long", "object"],
)
def test_dead_letter_parts_never_raise_and_stay_bounded(payload: Any) -> None:
    text = truncate_raw(payload)
    assert len(text) <= MAX_RAW_CHARS + 1
    assert payload_digest(payload).startswith("sha256:")
    assert len(redact(payload, payload)) <= MAX_RAW_CHARS
    letter = decode("orders", payload, received_at=1.0)
    assert isinstance(letter, DeadLetter)
    orjson.dumps(letter.to_record())  # writable


def test_a_record_nested_1000_levels_is_a_dead_letter_in_every_form() -> None:
    head = json.dumps(minimal("delivered"))[:-1]
    text = head + ', "extra": ' + "[" * 1000 + "]" * 1000 + "}"
    event = orjson.loads(text)  # orjson reads 1,000 levels (its limit is 1,024)
    for raw in (text, text.encode(), event):
        letter = dead("delivery", raw)
        assert letter.kind == DeadLetterKind.TOO_DEEP and letter.event_id == event["event_id"]


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (lambda e: e.update(items=e["items"] * (MAX_ITEMS_PER_ORDER + 1)), "too_large"),
        (lambda e: e.update(note="x" * MAX_PAYLOAD_BYTES), "too_large"),
        (lambda e: e.update(event_id="e" * (MAX_ID_CHARS + 1)), "too_large"),
        (lambda e: e.update(extra=_nested(MAX_NESTING_DEPTH)), "too_deep"),
        (lambda e: e.update(total=float("inf")), "invalid_field"),
        (lambda e: e.update(total=10**400), "invalid_field"),
        (lambda e: e["items"][0].update(quantity=10**31), "invalid_field"),
        (lambda e: e.update(order_id="o\ud800"), "invalid_field"),
        (lambda e: e.update(event_id=None), "invalid_field"),
        (lambda e: e.pop("currency"), "missing_field"),
    ],
    ids=["items", "size", "idlen", "depth", "inf", "bigint", "qty", "surrogate", "null", "missing"],
)
def test_limits_are_enforced_with_a_dead_letter_of_their_kind(mutate: Any, kind: str) -> None:
    event = order_placed("o-1", 0.0)
    mutate(event)
    letter = dead("orders", event)
    assert letter.kind == kind, letter.reason
    assert len(letter.reason) < 300


def test_limits_leave_room_for_real_events() -> None:
    event = order_placed("o-1", 0.0)
    event["items"] = event["items"] * (MAX_ITEMS_PER_ORDER // len(event["items"]))
    event["extra"] = _nested(MAX_NESTING_DEPTH - 2)
    assert isinstance(decode("orders", event), Event)
    assert isinstance(decode("orders", orjson.dumps(event)), Event)


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2026-06-03T14:05:00Z", "2026-06-03T16:05:00+02:00", "2026-06-03T08:35:00-05:30",
     "2026-06-03T14:05:00.000Z", "2026-06-03T14:05:00+00:00"],
)  # fmt: skip
def test_timestamps_with_offsets_are_the_same_instant(value: str) -> None:
    assert parse_ts(value) == 1780495500.0
    ev = decode("delivery", {**minimal("delivered"), "occurred_at": value})
    assert isinstance(ev, Event) and ev.occurred_at == 1780495500.0


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("2026-06-03T14:05:00", "no UTC offset"), ("2026-06-03", "not an RFC 3339"),
     ("03/06/2026 14:05", "not an RFC 3339"), ("2026-13-03T14:05:00Z", "not an RFC 3339"),
     (1780495500, "must be an RFC 3339 string"), (None, "must be an RFC 3339 string"),
     ("1969-12-31T23:59:59Z", "out of range")],
)  # fmt: skip
def test_bad_timestamps_are_dead_lettered(value: Any, fragment: str) -> None:
    letter = dead("delivery", {**minimal("delivered"), "occurred_at": value})
    assert "occurred_at" in letter.reason and fragment in letter.reason


def test_format_ts_round_trips() -> None:
    for value in ("2026-06-03T14:05:00Z", "2026-06-03T14:05:00.250000Z"):
        assert format_ts(parse_ts(value)) == value


def _isoformat_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()[:-6] + "Z"


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(10**10), max_value=int(MAX_TS) - 1),
        st.integers(min_value=0, max_value=int(MAX_TS) - 1).map(float),
        st.floats(min_value=-(10**10), max_value=MAX_TS - 1, allow_nan=False),
    )
)
def test_format_ts_writes_what_isoformat_writes(ts: float) -> None:
    # Whole seconds take a cached path; its text must be datetime's, to the character.
    assert format_ts(ts) == _isoformat_z(ts)


def test_format_ts_edges_of_hours_days_and_years() -> None:
    for ts in (0, 0.0, -0.0, 59.0, 3_599.0, 3_600.0, 86_399.0, 86_400.0, 951_782_400.0,
               1_798_761_599.0, 1_798_761_600.0, MAX_TS - 1):  # fmt: skip
        assert format_ts(ts) == _isoformat_z(ts)


# --- the dead-letter record ---------------------------------------------------------------


def test_dead_letter_record_has_the_contract_fields() -> None:
    letter = dead("orders", b'{"event_id": "e1", "order_id": "o1"}')
    record = letter.to_record()
    assert set(record) == {
        "stream",
        "kind",
        "reason",
        "raw",
        "payload_sha256",
        "received_at",
        "event_id",
        "order_id",
    }
    assert record["kind"] == "missing_field"
    assert record["received_at"] == "1970-01-01T00:00:01Z"
    assert (record["event_id"], record["order_id"]) == ("e1", "o1")


def test_received_at_defaults_to_wall_clock() -> None:
    before = time.time()
    letter = decode("orders", b"nope")
    assert isinstance(letter, DeadLetter)
    assert before - 1 <= letter.received_at <= time.time() + 1


# --- decode never raises ------------------------------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=5),
    max_leaves=12,
)
_streams = st.sampled_from(STREAMS)


def _check_result(stream: str, result: Any) -> None:
    assert isinstance(result, (Event, DeadLetter))
    if isinstance(result, DeadLetter):
        assert result.reason and result.stream == stream
        assert len(result.raw) <= MAX_RAW_CHARS + 1
        orjson.dumps(result.to_record())  # always writable to the dead-letter output
    else:
        assert result.type in STREAM_TYPES[stream]


@settings(max_examples=300, deadline=None)
@given(_streams, st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(stream: str, raw: bytes) -> None:
    _check_result(stream, decode(stream, raw, received_at=0.0))


@settings(max_examples=300, deadline=None)
@given(_streams, _json)
def test_decode_never_raises_on_arbitrary_json(stream: str, value: Any) -> None:
    _check_result(stream, decode(stream, orjson.dumps(value), received_at=0.0))
    _check_result(stream, decode(stream, value, received_at=0.0))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_TYPES), st.data())
def test_decode_never_raises_on_valid_events_with_one_field_replaced(type_: str, data) -> None:
    """Near-valid input is where validators break: any field, any JSON value."""
    record = minimal(type_)
    if type_ == "order_placed":
        record["customer"] = {"orders_count": 1}
        record["promised_delivery_at"] = at(48)
    paths = [k for k in record if k not in ("items", "customer")]
    if type_ == "order_placed":
        paths += [f"items.0.{k}" for k in record["items"][0]] + ["customer.orders_count"]
    path = data.draw(st.sampled_from(paths))
    new = _edit(record, path, data.draw(_json))
    _check_result(STREAM_OF[type_], decode(STREAM_OF[type_], orjson.dumps(new), received_at=0.0))


# --- the examples in docs/events.md ------------------------------------------------------


def _doc_examples() -> list[dict[str, Any]]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.S):
        pos = 0
        while pos < len(block):
            if block[pos].isspace():
                pos += 1
                continue
            obj, pos = decoder.raw_decode(block, pos)
            found.append(obj)
    return found


def test_examples_in_the_contract_document_are_valid() -> None:
    examples = _doc_examples()
    kinds: Counter[str] = Counter()
    for obj in examples:
        if "intervention_id" in obj:
            kind = "interventions"
        elif "outcome" in obj:
            kind = "outcomes"
        elif "arm" in obj:
            kind = "decisions"
        elif "raw" in obj:
            kind = "dead_letter"
        else:
            result = decode(STREAM_OF[obj["type"]], obj)
            assert isinstance(result, Event), (obj, getattr(result, "reason", None))
            kinds["input"] += 1
            continue
        assert VALIDATORS[kind](obj) == [], (kind, obj)
        kinds[kind] += 1
    assert kinds["input"] >= 6
    assert {"interventions", "decisions", "outcomes", "dead_letter"} <= set(kinds)
