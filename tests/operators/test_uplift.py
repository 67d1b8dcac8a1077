"""Holdout uplift against answers worked out by hand.

Wald interval for a difference of proportions: ``(pc - pt) ± 1.96 * sqrt(pt(1-pt)/nt +
pc(1-pc)/nc)``; Welch interval for a difference of means: ``(mc - mt) ± 1.96 * sqrt(st²/nt +
sc²/nc)`` with sample variances (n - 1).
"""

from __future__ import annotations

import pytest

from operators.uplift import (
    SEGMENTS,
    Uplift,
    UpliftRow,
    estimate,
    rows_from_outcomes,
    uplift_by_action,
    uplift_by_segment,
)

EXCHANGE = "exchange_first_offer"
REASSURE = "proactive_reassurance"


def rows(
    arm: str, action: str, refunds: list[float], kept: int, **segments: str
) -> list[UpliftRow]:
    """One row per refund (with its value) and ``kept`` rows without a refund."""
    seg = tuple(segments.items())
    return [UpliftRow(arm, action, True, v, seg) for v in refunds] + [
        UpliftRow(arm, action, False, 0.0, seg) for _ in range(kept)
    ]


def test_small_groups_known_answer() -> None:
    # Treated: 10 orders, refunds of 50 and 30. Control: 8 orders, refunds of 40, 40, 60, 20.
    treated = rows("treatment", EXCHANGE, [50.0, 30.0], kept=8)
    control = rows("control", EXCHANGE, [40.0, 40.0, 60.0, 20.0], kept=4)
    u = estimate(treated, control)
    assert (u.treated, u.control) == (10, 8)
    assert (u.treated_refund_rate, u.control_refund_rate) == (0.2, 0.5)
    assert u.refund_rate_reduction == pytest.approx(0.3)
    # SE = sqrt(0.2*0.8/10 + 0.5*0.5/8) = sqrt(0.016 + 0.03125) = sqrt(0.04725) = 0.2173707
    # 0.3 -/+ 1.959964 * 0.2173707 = -0.1260386 .. 0.7260386: not significant.
    assert u.ci_low == pytest.approx(-0.126039, abs=1e-6)
    assert u.ci_high == pytest.approx(0.726039, abs=1e-6)
    # Means 8 and 20: 12 saved per case. Sample variances 2760/9 = 306.667 and
    # 4000/7 = 571.429; SE = sqrt(30.6667 + 71.4286) = sqrt(102.0952) = 10.10422;
    # 12 -/+ 1.959964 * 10.10422 = -7.8039 .. 31.8039.
    assert u.value_saved_per_case == pytest.approx(12.0)
    assert u.value_ci_low == pytest.approx(-7.8039, abs=1e-4)
    assert u.value_ci_high == pytest.approx(31.8039, abs=1e-4)


def test_large_groups_known_answer_is_significant() -> None:
    # 100 treated with 20 refunds of 50; 100 control with 60 refunds of 50.
    treated = rows("treatment", EXCHANGE, [50.0] * 20, kept=80)
    control = rows("control", EXCHANGE, [50.0] * 60, kept=40)
    u = estimate(treated, control)
    # SE = sqrt(0.2*0.8/100 + 0.6*0.4/100) = sqrt(0.004) = 0.0632456;
    # 0.4 -/+ 1.959964 * 0.0632456 = 0.4 -/+ 0.1239588 = 0.276041 .. 0.523959.
    assert u.refund_rate_reduction == pytest.approx(0.4)
    assert (u.ci_low, u.ci_high) == (
        pytest.approx(0.276041, abs=1e-6),
        pytest.approx(0.523959, abs=1e-6),
    )
    # Values: means 10 and 30 (20 saved). Variances: 20*40² + 80*10² over 99 = 40000/99 and
    # 60*20² + 40*30² over 99 = 60000/99; SE = sqrt(404.04/100 + 606.06/100) = 3.17821;
    # 20 -/+ 1.959964 * 3.17821 = 13.7709 .. 26.2291.
    assert u.value_saved_per_case == pytest.approx(20.0)
    assert u.value_ci_low == pytest.approx(13.7709, abs=1e-4)
    assert u.value_ci_high == pytest.approx(26.2291, abs=1e-4)


def test_equal_groups_have_no_uplift() -> None:
    same = estimate(
        rows("treatment", REASSURE, [30.0] * 3, kept=7),
        rows("control", REASSURE, [30.0] * 3, kept=7),
    )
    assert same.refund_rate_reduction == 0.0 and same.value_saved_per_case == 0.0
    assert same.ci_low == -same.ci_high


def test_a_missing_arm_gives_rates_but_no_difference() -> None:
    only_treated = estimate(rows("treatment", REASSURE, [10.0], kept=3), [])
    assert (only_treated.treated, only_treated.control) == (4, 0)
    assert only_treated.treated_refund_rate == 0.25 and only_treated.control_refund_rate is None
    assert only_treated.refund_rate_reduction is None and only_treated.ci_low is None
    assert estimate([], []).treated_refund_rate is None


def test_uplift_by_action_compares_each_action_with_its_own_control() -> None:
    data = (
        rows("treatment", EXCHANGE, [50.0] * 20, kept=80)
        + rows("control", EXCHANGE, [50.0] * 60, kept=40)
        + rows("treatment", REASSURE, [20.0] * 5, kept=5)
        + rows("control", REASSURE, [20.0] * 5, kept=5)
    )
    by_action = uplift_by_action(data)
    assert list(by_action) == sorted([EXCHANGE, REASSURE])
    assert by_action[EXCHANGE].refund_rate_reduction == pytest.approx(0.4)
    assert by_action[REASSURE].refund_rate_reduction == 0.0
    assert (by_action[REASSURE].treated, by_action[REASSURE].control) == (10, 10)


def test_uplift_by_segment_leaves_out_thin_segments() -> None:
    data = (
        rows("treatment", EXCHANGE, [40.0] * 2, kept=8, sku_family="skincare")
        + rows("control", EXCHANGE, [40.0] * 6, kept=4, sku_family="skincare")
        + rows("treatment", EXCHANGE, [40.0], kept=1, sku_family="haircare")
        + rows("control", EXCHANGE, [40.0], kept=10, sku_family="haircare")
    )
    segments = uplift_by_segment(data, min_cases=5)
    assert list(segments) == ["sku_family"]
    assert list(segments["sku_family"]) == ["skincare"]  # haircare has 2 treated orders
    skincare = segments["sku_family"]["skincare"][EXCHANGE]
    assert skincare.refund_rate_reduction == pytest.approx(0.6 - 0.2)
    assert "haircare" in uplift_by_segment(data, min_cases=1)["sku_family"]


def test_rows_from_outcomes_keep_decided_closed_orders_with_an_action() -> None:
    def outcome(order: str, kind: str, arm: str | None, actions: list[str], value: float = 0.0):
        return {
            "order_id": order, "outcome": kind, "arm": arm, "actions": actions,
            "refund_value": value, "sku_family": "skincare", "courier_lane": None,
            "campaign": "launch", "support_reason": "size_fit",
        }  # fmt: skip

    outcomes = [
        outcome("a", "refunded", "treatment", [EXCHANGE, REASSURE], 40.0),
        outcome("b", "chargeback", "control", [EXCHANGE], 55.0),
        outcome("c", "kept", "control", [REASSURE]),
        outcome("d", "censored", "treatment", [EXCHANGE]),  # no label yet
        outcome("e", "cancelled", "treatment", [EXCHANGE]),  # never a refund question
        outcome("f", "refunded", "treatment", [], 10.0),  # no action: nothing to compare
        outcome("g", "refunded", None, [EXCHANGE], 10.0),  # never decided
    ]
    got = rows_from_outcomes(outcomes)
    assert [(r.arm, r.action, r.refunded, r.refund_value) for r in got] == [
        ("treatment", EXCHANGE, True, 40.0),  # the first action counts
        ("control", EXCHANGE, True, 55.0),
        ("control", REASSURE, False, 0.0),
    ]
    assert dict(got[0].segments) == {
        "sku_family": "skincare",
        "courier_lane": "none",
        "campaign": "launch",
        "support_reason": "size_fit",
    }
    assert tuple(dict(got[0].segments)) == SEGMENTS


def test_to_dict_rounds_floats_only() -> None:
    u = Uplift(3, 4, 1 / 3, 0.5, 0.5 - 1 / 3, None, None, 2 / 3, None, None)
    assert u.to_dict() == {
        "treated": 3,
        "control": 4,
        "treated_refund_rate": 0.3333,
        "control_refund_rate": 0.5,
        "refund_rate_reduction": 0.1667,
        "ci_low": None,
        "ci_high": None,
        "value_saved_per_case": 0.6667,
        "value_ci_low": None,
        "value_ci_high": None,
    }
