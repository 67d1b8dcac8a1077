"""Tests of the event simulator: determinism, contract v1, injected noise and ground truth.

The validator below is written from the event contract alone (not from the simulator code),
so it doubles as a check that the generated files follow the contract.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from operators.simulation import SCENARIOS, SimulationStats, iter_scenario_names, simulate

STREAMS = ("orders", "delivery", "support", "refunds")
ACTIONS = (
    "none",
    "blanket_refund",
    "proactive_reassurance",
    "exchange_first_offer",
    "product_guidance",
    "delayed_shipment_intervention",
    "human_review",
)
OUTCOMES = {"refunded", "exchanged", "kept", "cancelled", "chargeback"}
STREAM_TYPES = {
    "orders": {"order_placed", "order_cancelled"},
    "delivery": {
        "shipped",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "delayed",
        "exception",
        "failed_attempt",
        "returned_to_sender",
        "lost",
    },
    "support": {"ticket_opened", "customer_message", "ticket_resolved"},
    "refunds": {
        "return_requested",
        "refund_requested",
        "exchange_requested",
        "refund_issued",
        "exchange_completed",
        "return_received",
        "request_withdrawn",
        "chargeback_opened",
    },
}
INTENTS = {
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
REASONS = {
    "size_fit",
    "damaged",
    "late_delivery",
    "not_as_described",
    "wrong_item",
    "changed_mind",
    "other",
}
REQUESTS = {"return_requested", "refund_requested", "exchange_requested"}
CLOSING = {"refund_issued", "exchange_completed", "order_cancelled", "chargeback_opened"}
BACKLOG_LANES = {"dhl:DE-NL", "ups:FR-ES"}


# --------------------------------------------------------------------------- validator
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _timestamp(value: Any) -> datetime | None:
    """RFC 3339 with an explicit offset, or None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _check_item(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["item is not an object"]
    errors = []
    if not _is_text(item.get("sku")) or not _is_text(item.get("sku_family")):
        errors.append("item sku/sku_family")
    qty = item.get("quantity")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
        errors.append("item quantity")
    if not _is_number(item.get("unit_price")) or item["unit_price"] < 0:
        errors.append("item unit_price")
    if "unit_cost" in item and (not _is_number(item["unit_cost"]) or item["unit_cost"] < 0):
        errors.append("item unit_cost")
    return errors


def _check_order_placed(event: dict[str, Any]) -> list[str]:
    errors = []
    if not isinstance(event.get("customer_id"), str):
        errors.append("customer_id")
    currency = event.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
        errors.append("currency")
    if not _is_number(event.get("total")) or event["total"] < 0:
        errors.append("total")
    items = event.get("items")
    if not isinstance(items, list) or not items:
        errors.append("items")
    else:
        for item in items:
            errors += _check_item(item)
    if "promised_delivery_at" in event and _timestamp(event["promised_delivery_at"]) is None:
        errors.append("promised_delivery_at")
    for key in ("courier", "lane"):
        if key in event and not isinstance(event[key], str):
            errors.append(key)
    if "campaign" in event and not (
        event["campaign"] is None or isinstance(event["campaign"], str)
    ):
        errors.append("campaign")
    if "customer" in event:
        customer = event["customer"]
        if not isinstance(customer, dict):
            errors.append("customer")
        else:
            for key in ("orders_count", "returns_count"):
                if key in customer and (not isinstance(customer[key], int) or customer[key] < 0):
                    errors.append(f"customer.{key}")
            if "lifetime_value" in customer and not _is_number(customer["lifetime_value"]):
                errors.append("customer.lifetime_value")
    return errors


def _check_delivery(event: dict[str, Any]) -> list[str]:
    errors = [
        k
        for k in ("shipment_id", "courier", "lane", "exception_code")
        if k in event and not isinstance(event[k], str)
    ]
    if "estimated_delivery_at" in event and _timestamp(event["estimated_delivery_at"]) is None:
        errors.append("estimated_delivery_at")
    return errors


def _check_support(event: dict[str, Any]) -> list[str]:
    errors = []
    if not _is_text(event.get("ticket_id")):
        errors.append("ticket_id")
    if "channel" in event and not isinstance(event["channel"], str):
        errors.append("channel")
    if "intent" in event and event["intent"] not in INTENTS:
        errors.append("intent")
    if "sentiment" in event:
        s = event["sentiment"]
        if not _is_number(s) or not -1 <= s <= 1:
            errors.append("sentiment")
    return errors


def _check_refunds(event: dict[str, Any]) -> list[str]:
    errors = []
    if "request_id" in event and not isinstance(event["request_id"], str):
        errors.append("request_id")
    if "reason" in event and event["reason"] not in REASONS:
        errors.append("reason")
    if "amount" in event and (not _is_number(event["amount"]) or event["amount"] < 0):
        errors.append("amount")
    if event["type"] == "refund_issued" and "amount" not in event:
        errors.append("refund_issued without amount")
    skus = event.get("skus")
    if skus is not None and not (isinstance(skus, list) and all(isinstance(s, str) for s in skus)):
        errors.append("skus")
    return errors


def contract_errors(stream: str, line: bytes) -> list[str]:
    """Why ``line`` of ``stream`` violates event contract v1 (empty when it is valid)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ["not JSON"]
    if not isinstance(event, dict):
        return ["not an object"]
    errors = []
    if not _is_text(event.get("event_id")):
        errors.append("event_id")
    if not _is_text(event.get("order_id")):
        errors.append("order_id")
    if _timestamp(event.get("occurred_at")) is None:
        errors.append("occurred_at")
    if event.get("type") not in STREAM_TYPES[stream]:
        return [*errors, "type"]
    if event["type"] == "order_placed":
        errors += _check_order_placed(event)
    elif stream == "delivery":
        errors += _check_delivery(event)
    elif stream == "support":
        errors += _check_support(event)
    elif stream == "refunds":
        errors += _check_refunds(event)
    return errors


# ---------------------------------------------------------------------------- fixtures
@dataclass
class Run:
    """A simulated directory, loaded: raw lines per stream, distinct events and truth."""

    out: Path
    stats: SimulationStats
    lines: dict[str, list[bytes]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truth: list[dict[str, Any]] = field(default_factory=list)

    def by_order(self, stream: str) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.events[stream]:
            grouped[event["order_id"]].append(event)
        return grouped


def _load(out: Path, stats: SimulationStats) -> Run:
    run = Run(out, stats)
    for stream in STREAMS:
        run.lines[stream] = (out / f"{stream}.jsonl").read_bytes().splitlines()
        seen: set[str] = set()
        distinct = []
        for line in run.lines[stream]:
            event = orjson.loads(line)
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                distinct.append(event)
        run.events[stream] = distinct
    run.truth = [orjson.loads(x) for x in (out / "ground_truth.jsonl").read_bytes().splitlines()]
    return run


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("launch")
    return _load(out, simulate("launch-week-backlog", 5000, 11, out))


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("steady")
    return _load(out, simulate("steady-state", 5000, 11, out))


def _ts(event: dict[str, Any], key: str = "occurred_at") -> datetime:
    parsed = _timestamp(event[key])
    assert parsed is not None
    return parsed


def _main_family(order: dict[str, Any]) -> str:
    value: Counter[str] = Counter()
    for item in order["items"]:
        value[item["sku_family"]] += item["quantity"] * item["unit_price"]
    return max(sorted(value), key=value.__getitem__)


# ------------------------------------------------------------------------------- tests
def test_registry_and_stories() -> None:
    names = list(iter_scenario_names())
    assert {"launch-week-backlog", "steady-state"} <= set(names)
    assert names == list(SCENARIOS)
    for name in names:
        params = SCENARIOS[name]
        assert params.name == name
        assert len(params.description) > 80  # the factory docstring tells the story
    with pytest.raises(KeyError, match="unknown scenario"):
        simulate("no-such-scenario", 10, 1, Path("/nonexistent"))


def test_the_season_is_sixteen_steady_weeks(tmp_path: Path, steady: Run) -> None:
    """``steady-season`` is the steady-state shop four times as long: orders spread evenly
    over 16 weeks (each four-week block holds about a quarter), nothing else differs."""
    season_params, steady_params = SCENARIOS["steady-season"], SCENARIOS["steady-state"]
    assert season_params.days == 4 * steady_params.days == 112
    assert season_params.lanes == steady_params.lanes
    assert season_params.campaigns == steady_params.campaigns
    season = _load(tmp_path, simulate("steady-season", 4000, 11, tmp_path))
    placed = sorted(_ts(e) for e in season.events["orders"] if e["type"] == "order_placed")
    first = placed[0]
    blocks = Counter(min((t - first).days // 28, 3) for t in placed)
    assert (placed[-1] - first).days >= 105
    for block in range(4):
        assert 0.2 < blocks[block] / len(placed) < 0.3, blocks

    def request_rate(run: Run) -> float:
        asked = {e["order_id"] for e in run.events["refunds"] if e["type"] in REQUESTS}
        return len(asked) / run.stats.orders

    assert abs(request_rate(season) - request_rate(steady)) < 0.03


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    files = [f"{s}.jsonl" for s in STREAMS] + ["ground_truth.jsonl", "scenario.json", "world.json"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate("launch-week-backlog", 800, 5, a)
    simulate("launch-week-backlog", 800, 5, b)
    simulate("launch-week-backlog", 800, 6, c)
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "orders.jsonl").read_bytes() != (c / "orders.jsonl").read_bytes()
    assert (a / "ground_truth.jsonl").read_bytes() != (c / "ground_truth.jsonl").read_bytes()
    assert (a / "world.json").read_bytes() == (c / "world.json").read_bytes()  # same world seed
    assert not [p for p in a.iterdir() if p.name not in files]  # no temp files left behind


def test_compressed_output_is_reproducible_and_equal_to_plain(tmp_path: Path) -> None:
    plain, gz1, gz2 = tmp_path / "plain", tmp_path / "gz1", tmp_path / "gz2"
    simulate("steady-state", 600, 3, plain)
    simulate("steady-state", 600, 3, gz1, compress=True)
    simulate("steady-state", 600, 3, gz2, compress=True)
    for stream in STREAMS:
        packed = (gz1 / f"{stream}.jsonl.gz").read_bytes()
        assert packed == (gz2 / f"{stream}.jsonl.gz").read_bytes()
        assert gzip.decompress(packed) == (plain / f"{stream}.jsonl").read_bytes()
        assert not (gz1 / f"{stream}.jsonl").exists()


def test_scenario_file(launch: Run) -> None:
    doc = orjson.loads((launch.out / "scenario.json").read_bytes())
    assert doc["scenario"] == "launch-week-backlog"
    assert (doc["seed"], doc["orders"]) == (11, 5000)
    assert doc["start"] == "2026-06-01T00:00:00Z"
    assert doc["parameters"]["backlog"]["lanes"] == ["dhl:DE-NL", "ups:FR-ES"]


@pytest.mark.parametrize("scenario", ["launch", "steady"])
def test_every_line_follows_the_contract(scenario: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(scenario)
    for stream in STREAMS:
        bad = [(line, err) for line in run.lines[stream] if (err := contract_errors(stream, line))]
        assert not bad, bad[:3]
        # event_id is unique except for exact re-deliveries of the same bytes.
        first: dict[str, bytes] = {}
        for line in run.lines[stream]:
            event_id = orjson.loads(line)["event_id"]
            assert first.setdefault(event_id, line) == line
    placed = [e for e in run.events["orders"] if e["type"] == "order_placed"]
    assert len(placed) == run.stats.orders
    assert run.stats.events == {s: len(run.events[s]) for s in STREAMS}
    assert run.stats.invalid == 0


def test_stats_count_duplicates(launch: Run) -> None:
    lines = sum(len(v) for v in launch.lines.values())
    distinct = sum(len(v) for v in launch.events.values())
    assert lines - distinct == launch.stats.duplicates


def test_duplicates_and_disorder_at_small_rates(launch: Run, steady: Run) -> None:
    for run in (launch, steady):
        lines = sum(len(v) for v in run.lines.values())
        assert 0.004 <= run.stats.duplicates / lines <= 0.012
        disorder = 0
        for stream in STREAMS:
            latest = None
            seen: set[str] = set()
            for line in run.lines[stream]:
                event = orjson.loads(line)
                if event["event_id"] in seen:
                    continue  # redeliveries are expected to be late
                seen.add(event["event_id"])
                at = _ts(event)
                if latest is not None and at < latest:
                    disorder += 1
                    assert latest - at < timedelta(hours=4)  # bounded, "a few hours"
                latest = at if latest is None else max(latest, at)
        # Only the deliberately delayed events may be out of order.
        assert 0 < disorder <= run.stats.out_of_order
        assert 0.001 <= disorder / lines <= 0.01


def test_a_few_signals_precede_order_placed(launch: Run, steady: Run) -> None:
    total_early = 0
    for run in (launch, steady):
        placed = {
            e["order_id"]: _ts(e) for e in run.events["orders"] if e["type"] == "order_placed"
        }
        signals = run.events["support"] + run.events["refunds"]
        early = [e for e in signals if _ts(e) < placed[e["order_id"]]]
        assert len(early) == run.stats.early_signals
        assert len(early) / len(signals) < 0.003
        total_early += len(early)
    assert total_early > 0


def test_invalid_lines_only_on_request(tmp_path: Path) -> None:
    stats = simulate("launch-week-backlog", 800, 2, tmp_path, invalid_rate=0.02)
    flagged = sum(
        1
        for stream in STREAMS
        for line in (tmp_path / f"{stream}.jsonl").read_bytes().splitlines()
        if contract_errors(stream, line)
    )
    assert stats.invalid > 0
    assert flagged == stats.invalid


def test_backlog_lanes_slip_far_more(launch: Run) -> None:
    placed = {e["order_id"]: e for e in launch.events["orders"] if e["type"] == "order_placed"}
    slips: dict[bool, list[float]] = {True: [], False: []}
    for event in launch.events["delivery"]:
        order = placed[event["order_id"]]
        if event["type"] != "delivered" or "promised_delivery_at" not in order:
            continue
        lane = order.get("lane") or event.get("lane")
        if lane is None:
            continue
        slip = (_ts(event) - _ts(order, "promised_delivery_at")).total_seconds() / 86_400
        slips[lane in BACKLOG_LANES].append(slip)
    backlog = sum(slips[True]) / len(slips[True])
    others = sum(slips[False]) / len(slips[False])
    assert backlog > 2.0
    assert backlog - others > 2.0
    delayed = Counter(
        e.get("lane") in BACKLOG_LANES for e in launch.events["delivery"] if e["type"] == "delayed"
    )
    assert delayed[True] > 3 * delayed[False]


def test_backlog_drives_wismo_and_late_refunds(launch: Run) -> None:
    opened = [e for e in launch.events["support"] if e["type"] == "ticket_opened"]
    wismo = [e for e in opened if e.get("intent") == "where_is_my_order"]
    assert len(wismo) > 0.3 * len(opened)
    sentiments = [e["sentiment"] for e in wismo if "sentiment" in e]
    assert sum(sentiments) / len(sentiments) < -0.2
    requests = [e for e in launch.events["refunds"] if e["type"] in REQUESTS]
    reasons = Counter(e.get("reason") for e in requests)
    assert reasons.most_common(1)[0][0] == "late_delivery"


def test_risk_rates(launch: Run, steady: Run) -> None:
    def request_rate(run: Run) -> float:
        asked = {e["order_id"] for e in run.events["refunds"] if e["type"] in REQUESTS}
        return len(asked) / run.stats.orders

    assert 0.05 <= request_rate(steady) <= 0.12
    assert 0.12 <= request_rate(launch) <= 0.25
    assert request_rate(launch) > request_rate(steady)


def test_size_fit_is_top_reason_for_loungewear(launch: Run, steady: Run) -> None:
    for run in (launch, steady):
        family = {e["order_id"]: _main_family(e) for e in run.events["orders"] if "items" in e}
        reasons = Counter(
            e["reason"]
            for e in run.events["refunds"]
            if e["type"] in REQUESTS and "reason" in e and family[e["order_id"]] == "loungewear"
        )
        assert reasons.most_common(1)[0][0] == "size_fit"


def test_values_margins_and_repeat_customers(launch: Run) -> None:
    placed = [e for e in launch.events["orders"] if e["type"] == "order_placed"]
    totals = sorted(e["total"] for e in placed)
    median = totals[len(totals) // 2]
    assert 40 <= median <= 150
    assert totals[int(0.99 * len(totals))] > 250  # long tail
    costed = [i for e in placed for i in e["items"] if "unit_cost" in i]
    margin = 1 - sum(i["unit_cost"] for i in costed) / sum(i["unit_price"] for i in costed)
    assert 0.5 <= margin <= 0.75
    customers = Counter(e["customer_id"] for e in placed)
    assert len(customers) < 0.8 * len(placed)
    assert 0.02 <= sum(e["campaign"] is None for e in placed) / len(placed) <= 0.9
    assert any("customer" not in e for e in placed)
    assert any("lane" not in e for e in launch.events["delivery"])


def test_ground_truth_rows(launch: Run) -> None:
    truth = launch.truth
    order_ids = [e["order_id"] for e in launch.events["orders"] if e["type"] == "order_placed"]
    assert sorted(r["order_id"] for r in truth) == sorted(order_ids)
    assert len({r["order_id"] for r in truth}) == len(truth)
    for row in truth:
        assert set(row["outcomes"]) == set(ACTIONS)
        assert set(row["outcomes_late"]) == set(ACTIONS) - {"none", "blanket_refund"}
        for outcome in [*row["outcomes"].values(), *row["outcomes_late"].values()]:
            assert outcome["outcome"] in OUTCOMES
            assert outcome["refund_value"] >= 0 and outcome["retained_value"] >= 0
        assert isinstance(row["abusive"], bool)
        assert row["margin"] <= row["order_value"]
        assert row["world_seed"] == 100
        blanket = row["outcomes"]["blanket_refund"]
        if not row["at_risk"]:
            assert row["request_at"] is None
            assert row["outcomes_late"] == {a: row["outcomes"][a] for a in row["outcomes_late"]}
            assert blanket == row["outcomes"]["none"]
        else:
            assert _timestamp(row["request_at"]) is not None
            # Blanket refund: the request refunded in full, at once, without inspection.
            assert blanket == {
                "outcome": "refunded",
                "refund_value": row["order_value"],
                "retained_value": 0.0,
            }
    abusive = [r for r in truth if r["abusive"]]
    assert 0.02 <= len(abusive) / len(truth) <= 0.07


def test_request_at_is_the_first_request_in_the_streams(launch: Run) -> None:
    refunds = launch.by_order("refunds")
    for row in launch.truth:
        asked = [_ts(e) for e in refunds.get(row["order_id"], []) if e["type"] in REQUESTS]
        if row["at_risk"]:
            assert _timestamp(row["request_at"]) == min(asked)
        else:
            assert not asked


def test_none_world_matches_the_streams(launch: Run) -> None:
    refunds = launch.by_order("refunds")
    for row in launch.truth:
        events = refunds.get(row["order_id"], [])
        types = {e["type"] for e in events}
        none = row["outcomes"]["none"]
        assert row["at_risk"] == bool(types & (REQUESTS | {"chargeback_opened"}))
        issued = sum(e["amount"] for e in events if e["type"] == "refund_issued")
        if none["outcome"] == "refunded":
            assert issued == pytest.approx(none["refund_value"])
        elif none["outcome"] == "chargeback":
            assert "chargeback_opened" in types
        elif none["outcome"] == "exchanged":
            assert "exchange_completed" in types
        else:
            assert issued == 0


def test_cases_close_once_and_inside_the_window(launch: Run) -> None:
    refunds = launch.by_order("refunds")
    delivery = launch.by_order("delivery")
    placed = {e["order_id"]: _ts(e) for e in launch.events["orders"] if e["type"] == "order_placed"}
    for order_id, events in refunds.items():
        closing = [e for e in events if e["type"] in CLOSING]
        assert len(closing) <= 1
        delivered = [_ts(e) for e in delivery.get(order_id, []) if e["type"] == "delivered"]
        window_end = (
            delivered[0] + timedelta(days=30)
            if delivered
            else placed[order_id] + timedelta(days=45)
        )
        last = max(_ts(e) for e in events)
        assert last <= window_end
        if closing:
            assert last == _ts(closing[0])  # nothing happens on a closed case


def test_parcel_scans_are_causal(launch: Run) -> None:
    for events in launch.by_order("delivery").values():
        when = {e["type"]: _ts(e) for e in events}
        assert when["shipped"] < when["in_transit"]
        if "delivered" in when:
            assert when["in_transit"] < when["out_for_delivery"] <= when["delivered"]
