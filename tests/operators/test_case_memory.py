"""The compact representation of open cases (benchmarks/memory_per_case.py measures it):
shared low-cardinality strings, event ids in a tuple, decision points as packed doubles.
Each must keep behaviour exact: dedup, snapshots, restored old snapshots, learning input."""

from __future__ import annotations

import pickle
import random
import struct
from typing import Any

import orjson
import pytest

import operators.case as case_module
from operators.case import OrderCase, Timeline
from operators.contract import Event, decode
from operators.features import FEATURE_NAMES, build_features, from_vector, pack_vector

PLACED = {
    "type": "order_placed", "occurred_at": "2026-06-01T10:00:00Z", "customer_id": "c1",
    "currency": "EUR", "total": 80, "promised_delivery_at": "2026-06-03T10:00:00Z",
    "lane": "dhl:DE-NL", "courier": "dhl", "campaign": "launch-email",
    "items": [{"sku": "s1", "sku_family": "skincare", "quantity": 1, "unit_price": 80,
               "unit_cost": 30}],
}  # fmt: skip


def event(stream: str, order_id: str, n: int, **body: Any) -> Event:
    """Decoded from JSON bytes, as the flow does: every string is a new object."""
    raw = orjson.dumps({"order_id": order_id, "event_id": f"{order_id}-{n:02d}", **body})
    decoded = decode(stream, raw)
    assert isinstance(decoded, Event), decoded
    return decoded


def opened(order_id: str) -> OrderCase:
    case = OrderCase(order_id)
    case.apply(event("orders", order_id, 1, **PLACED))
    case.apply(
        event("support", order_id, 2, type="ticket_opened", occurred_at="2026-06-02T10:00:00Z",
              ticket_id="t1", intent="where_is_my_order", sentiment=-0.5)
    )  # fmt: skip
    case.apply(
        event("refunds", order_id, 3, type="refund_requested",
              occurred_at="2026-06-02T11:00:00Z", reason="late_delivery")
    )  # fmt: skip
    return case


def test_cases_share_their_low_cardinality_strings() -> None:
    a, b = opened("o-a"), opened("o-b")
    for name in ("currency", "sku_family", "courier", "lane", "campaign", "last_intent",
                 "request_type", "request_reason"):  # fmt: skip
        value_a, value_b = getattr(a, name), getattr(b, name)
        assert value_a is not None, name
        assert value_a == value_b and value_a is value_b, name
    assert all(x[1] is y[1] for x, y in zip(a.timeline, b.timeline, strict=True))
    assert a.customer_id == b.customer_id  # high cardinality: equal, not shared by design


def test_the_shared_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(case_module, "_SHARED", {})
    monkeypatch.setattr(case_module, "_SHARED_LIMIT", 3)
    values = ["".join(["v", str(i)]) for i in range(10)]  # distinct objects, not literals
    out = [case_module._shared(v) for v in values]
    assert out == values
    assert len(case_module._SHARED) == 3
    again = "".join(["v", "1"])
    assert case_module._shared(again) is values[1]  # shared
    late = "".join(["v", "9"])
    assert case_module._shared(late) is late  # beyond the limit: kept as it is
    long = "x" * 65
    assert case_module._shared(long) is long and long not in case_module._SHARED
    assert case_module._shared(3.5) == 3.5 and case_module._shared(None) is None


def test_dedup_and_snapshots_with_the_string_of_event_ids() -> None:
    case = opened("o1")
    assert isinstance(case.seen, str) and case.seen.count("\x1f") == 4  # three ids
    again = event("refunds", "o1", 3, type="refund_requested",
                  occurred_at="2026-06-02T11:00:00Z", reason="late_delivery")  # fmt: skip
    assert case.is_duplicate(again)
    copy = pickle.loads(pickle.dumps(case, pickle.HIGHEST_PROTOCOL))
    assert copy == case and copy.is_duplicate(again)
    # A snapshot taken before this representation holds a set: it still dedups and grows.
    old = pickle.loads(pickle.dumps(case, pickle.HIGHEST_PROTOCOL))
    old.seen = {"o1-01", "o1-02", "o1-03"}  # type: ignore[assignment]  # an old snapshot
    assert old.is_duplicate(again)
    new = event("delivery", "o1", 4, type="delayed", occurred_at="2026-06-02T12:00:00Z")
    assert not old.is_duplicate(new)
    old.apply(new)
    assert old.is_duplicate(new) and old.is_duplicate(again) and old.delays == 1


def test_packed_decision_points_give_back_every_feature_bit_for_bit() -> None:
    features = build_features(opened("o1"), None, 1_780_400_000.0)
    packed = pack_vector(features)
    nonzero = sum(1 for v in features.values() if v != 0.0)
    assert isinstance(packed, bytes) and len(packed) == 8 + 8 * nonzero < 8 * len(FEATURE_NAMES)
    assert from_vector(packed) == features
    rng = random.Random(3)
    for _ in range(200):
        values = {n: rng.choice([0.0, -0.0, 1.0, 1e-300, rng.uniform(-1e6, 1e6)])
                  for n in FEATURE_NAMES}  # fmt: skip
        back = from_vector(pack_vector(values))
        assert [struct.pack("<d", back[n]) for n in FEATURE_NAMES] == [
            struct.pack("<d", values[n]) for n in FEATURE_NAMES
        ]
    assert from_vector(tuple(features[n] for n in FEATURE_NAMES)) == features  # old snapshots


def test_event_ids_cannot_match_across_their_neighbours() -> None:
    """Ids holding the separator or backslashes are escaped: no false duplicates."""
    tricky = ["a", "b", "a\x1fb", "a\\x1fb", "\\", "\\1", "\x1f", "a\\1b"]
    for applied in range(len(tricky)):
        case = OrderCase("o1")
        for eid in tricky[:applied]:
            case.apply(_with_id(eid))
        for i, eid in enumerate(tricky):
            assert case.is_duplicate(_with_id(eid)) == (i < applied), (applied, eid)


def _with_id(event_id: str) -> Event:
    raw = orjson.dumps({"order_id": "o1", "event_id": event_id, "type": "in_transit",
                        "occurred_at": "2026-06-02T12:00:00Z"})  # fmt: skip
    decoded = decode("delivery", raw)
    assert isinstance(decoded, Event), decoded
    return decoded


def test_the_packed_timeline_behaves_like_the_list_it_replaces() -> None:
    from operators.case import TIMELINE_LIMIT, Timeline

    case = OrderCase("o1")
    reference: list[tuple[float, str]] = []
    rng = random.Random(5)
    types = ["shipped", "in_transit", "delayed", "ticket_opened", "refund_requested"]
    for i in range(TIMELINE_LIMIT + 20):
        ts = 1_780_000_000.0 + rng.uniform(0, 10 * 86400)
        type_ = rng.choice(types)
        case._record(ts, type_)
        reference.append((ts, type_))
        reference.sort(key=lambda e: e[0])  # stable: ties keep arrival order, as inserted
        del reference[: max(len(reference) - TIMELINE_LIMIT, 0)]
        assert list(case.timeline) == reference, i
    assert case.timeline == reference and len(case.timeline) == TIMELINE_LIMIT
    assert case.timeline[-1] == reference[-1] and case.timeline[2:5] == reference[2:5]
    copy = pickle.loads(pickle.dumps(case, pickle.HIGHEST_PROTOCOL))
    assert copy == case and isinstance(copy.timeline, Timeline)
    assert pickle.loads(pickle.dumps(case.timeline)) == reference
    old = OrderCase("o2")
    old.timeline = [(1.0, "shipped")]  # type: ignore[assignment]  # a snapshot from before
    old._record(0.5, "order_placed")
    assert isinstance(old.timeline, Timeline)
    assert list(old.timeline) == [(0.5, "order_placed"), (1.0, "shipped")]
    with pytest.raises(IndexError):
        Timeline()[0]


def test_timeline_add_keeps_event_time_order_and_the_limit_like_a_list() -> None:
    # Timeline.add (what a case does per event) against the list it stands for: insert
    # after entries at the same time, keep it sorted, drop the oldest past the limit.
    rnd = random.Random(11)
    types = ["order_placed", "shipped", "delayed", "delivered", "ticket_opened"]
    for _ in range(200):
        timeline, model = Timeline(), []
        for _ in range(rnd.randint(0, 70)):
            ts, type_ = float(rnd.randint(0, 30)), rnd.choice(types)
            timeline.add(ts, type_, 12)
            i = len(model)
            while i and model[i - 1][0] > ts:
                i -= 1
            model.insert(i, (ts, type_))
            del model[:-12]
            assert list(timeline) == model
