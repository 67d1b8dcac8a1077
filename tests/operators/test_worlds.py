"""Figures over many worlds (``operators/worlds.py``): the captured share per period of
event time, which shows whether learning pulls ahead as outcomes accumulate."""

from __future__ import annotations

from typing import Any

from operators.baselines import ActionCosts
from operators.worlds import captured_by_period, format_worlds, summarize_worlds

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
