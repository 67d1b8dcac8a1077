"""The per-segment hindsight bound of ``benchmarks/decision_worlds.py --bounds``."""

from __future__ import annotations

from typing import Any

from benchmarks.decision_worlds import SEGMENTATIONS, segment_oracle
from operators.baselines import ActionCosts

COSTS = ActionCosts({"a": 1.0, "b": 1.0}, {}, 15.0)
AT = "2026-03-05T00:00:00Z"


def _row(none: float, a: float, b: float) -> dict[str, Any]:
    out = {k: {"outcome": "refunded" if v else "kept", "refund_value": v, "retained_value": 0.0}
           for k, v in (("none", none), ("a", a), ("b", b))}  # fmt: skip
    return {"order_value": 50.0, "outcomes": out}


def _decision(oid: str, lane: str, action: str) -> dict[str, Any]:
    return {
        "order_id": oid, "decided_at": AT, "action": action, "rule": "x", "point": "request",
        "courier_lane": lane, "sku_family": "f", "eligible": ["a", "b"],
    }  # fmt: skip


def test_one_choice_per_segment_not_per_order() -> None:
    # Lane X: "a" saves both orders; lane Y: "b" saves one order, "a" the other.
    truth = {
        "x1": _row(40.0, 0.0, 40.0),
        "x2": _row(40.0, 0.0, 40.0),
        "y1": _row(40.0, 40.0, 0.0),
        "y2": _row(40.0, 0.0, 40.0),
        "z": _row(30.0, 0.0, 0.0),  # no decision where the policy chooses: the run's none
    }
    run = [_decision(o, "X" if o[0] == "x" else "Y", "b") for o in ("x1", "x2", "y1", "y2")]
    coarse = segment_oracle(truth, COSTS, run, SEGMENTATIONS["point"])
    fine = segment_oracle(truth, COSTS, run, SEGMENTATIONS["point_lane_family"])
    # Coarse: one segment of four orders; "a" loses 40 + 4 costs, "b" (the run) 120 + 4.
    assert coarse == 30.0 + 44.0
    # Fine: lane X takes "a" (2), lane Y either action (40 + 2): better than coarse.
    assert fine == 30.0 + 2.0 + 42.0
    # Never worse than what the run did (it is one of the options in every segment).
    run_loss = 30.0 + 4 * 1.0 + 40.0 + 40.0 + 0.0 + 40.0
    assert fine <= coarse <= run_loss
