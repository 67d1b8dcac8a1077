"""Figures over many worlds (``operators/worlds.py``): the captured share per period of
event time, which shows whether learning pulls ahead as outcomes accumulate."""

from __future__ import annotations

from typing import Any

from operators.baselines import ActionCosts
from operators.contract import parse_ts
from operators.worlds import captured_by_period, evaluate_world, format_worlds, summarize_worlds

COSTS = ActionCosts({"proactive_reassurance": 1.0}, {}, 15.0)


def _row(saved_by_reassurance: bool) -> dict[str, Any]:
    refunded = {"outcome": "refunded", "refund_value": 40.0, "retained_value": 0.0}
    kept = {"outcome": "kept", "refund_value": 0.0, "retained_value": 40.0}
    action = kept if saved_by_reassurance else refunded
    return {"order_value": 40.0, "outcomes": {"none": refunded, "proactive_reassurance": action}}


def _decision(oid: str, day: int, action: str) -> dict[str, Any]:
    return {
        "order_id": oid,
        "decided_at": f"2026-03-{day:02d}T10:00:00Z",
        "action": action,
        "arm": "treatment",
    }


def _world(late_action: str) -> dict[str, Any]:
    # Four orders on day 1 and four on day 30; reassurance saves orders 0 and 1 of each.
    truth = {f"{d}-{i}": _row(i < 2) for d in (1, 30) for i in range(4)}
    static = [_decision(oid, int(oid.split("-")[0]), "none") for oid in truth]
    learned = [
        _decision(oid, day, late_action if day == 30 and int(i) < 2 else "none")
        for oid in truth
        for day, i in [map(int, oid.split("-"))]
    ]
    return {
        "arms": {},
        "by_period": captured_by_period(truth, COSTS, learned, static),
    }


def test_periods_follow_each_orders_first_decision() -> None:
    rows = _world("proactive_reassurance")["by_period"]
    assert [(r["period"], r["orders"]) for r in rows] == [(0, 4), (1, 4)]
    # Day 1: both arms do nothing. Day 30: the learned arm saves the two savable orders at
    # a cost of 1 each; the oracle does the same, so it captures all of the avoidable loss.
    assert rows[0]["static_rules"] == rows[0]["learned"] == 0.0
    assert rows[1]["static_rules"] == 0.0
    assert rows[1]["learned"] == 1.0


def test_summary_spreads_the_gap_per_period_over_worlds() -> None:
    worlds = [_world("proactive_reassurance"), _world("none")]
    summary = summarize_worlds(worlds)
    late = summary["by_period"][1]
    assert late["learned_minus_static"]["max"] == 1.0
    assert late["learned_minus_static"]["min"] == 0.0
    table = format_worlds(summary)
    assert "| weeks of the first decision |" in table
    assert "| 5-8 | 0.0% |" in table


def test_drift_figures_follow_the_twisted_lane_from_the_change_on() -> None:
    """Reassurance stops working in lane x on March 15 (an exchange offer still saves half
    of the orders there): the week table counts decisions in x where reassurance was
    eligible, by week from the change, and the money view scores the orders of x first
    decided on from then on; lane y and earlier orders are left out."""
    change = parse_ts("2026-03-15T00:00:00Z")
    twist = {
        "kind": "stops_working_in_lane", "action": "proactive_reassurance",
        "courier_lane": "x", "from_ts": change,
    }  # fmt: skip
    costs = ActionCosts({"proactive_reassurance": 1.0, "exchange_first_offer": 1.0}, {}, 15.0)
    kept = {"outcome": "kept", "refund_value": 0.0, "retained_value": 40.0}
    refunded = {"outcome": "refunded", "refund_value": 40.0, "retained_value": 0.0}

    def row(day: int, i: int, lane: str = "x") -> dict[str, Any]:
        out = _row(day < 15 and i < 2)
        out["outcomes"]["exchange_first_offer"] = kept if i < 2 else refunded
        return {**out, "courier_lane": lane}

    truth = {f"{d}-{i}": row(d, i) for d in (1, 20) for i in range(4)}
    truth["20-y"] = row(20, 0, "y")

    def decide(oid: str, action: str) -> dict[str, Any]:
        return {**_decision(oid, int(oid.split("-")[0]), action),
                "eligible": ["exchange_first_offer", "proactive_reassurance"]}  # fmt: skip

    # The static rules reassure everyone; the learned policy offers the exchange instead in
    # lane x once reassurance stopped working there.
    static = [decide(oid, "proactive_reassurance") for oid in truth]
    learned = [
        decide(oid, "exchange_first_offer" if oid.startswith("20-") else "proactive_reassurance")
        for oid in truth
    ]
    world = evaluate_world(truth, costs, learned, static, 0.0, [twist])
    drift = world["drift"]
    assert [(r["week"], r["decisions"], r["share"]) for r in drift["static_rules"]] == [
        (-2, 4, 1.0), (0, 4, 1.0),
    ]  # fmt: skip
    assert [(r["week"], r["share"]) for r in drift["learned"]] == [(-2, 1.0), (0, 0.0)]
    # After the change the static rules save nobody in lane x and pay for four contacts;
    # the learned policy saves the two orders the exchange saves, at the oracle's cost
    # plus two contacts the oracle does not make.
    after = drift["lane_after"]
    assert after["orders"] == 4
    assert after["static_rules"] < 0.0 < after["learned"] < 1.0
    summary = summarize_worlds([world, world])
    assert summary["drift"]["lane_after"]["learned_minus_static"]["median"] > 0.5
    table = format_worlds(summary)
    assert "| static rules | 100.0% | 100.0% |" in table
    assert "| learned | 100.0% | 0.0% |" in table
