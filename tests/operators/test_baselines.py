"""Baselines and the captured share: every arm scored by one rule on the same truth."""

from __future__ import annotations

import random

import pytest

from operators.baselines import (
    ActionCosts,
    Choice,
    always_contact_choices,
    captured_share,
    compare_arms,
    evaluate_arm,
    oracle_choices,
    policy_choices,
    random_eligible_choices,
    regret_by_day,
)

ACTIONS = ("proactive_reassurance", "exchange_first_offer", "delayed_shipment_intervention")
COSTS = ActionCosts(
    {"proactive_reassurance": 0.15, "exchange_first_offer": 1.0,
     "delayed_shipment_intervention": 2.5, "human_review": 4.0},
    {"delayed_shipment_intervention": 0.1},
    15.0,
)  # fmt: skip


def _o(kind: str, value: float) -> dict:
    refunded = kind in ("refunded", "chargeback")
    return {
        "outcome": kind,
        "refund_value": value if refunded else 0.0,
        "retained_value": 0.0 if refunded else value,
    }


def random_truth(n: int, seed: int) -> dict[str, dict]:
    """Orders whose actions save, do nothing or backfire at random, with late versions
    that save no more than the early ones."""
    rng = random.Random(seed)
    truth = {}
    for i in range(n):
        value = round(rng.uniform(10, 300), 2)
        at_risk = rng.random() < 0.4
        none = _o("refunded" if at_risk else "kept", value)
        outcomes = {"none": none, "blanket_refund": _o("refunded" if at_risk else "kept", value)}
        late = {}
        for a in (*ACTIONS, "human_review"):
            if at_risk:
                saved = rng.random() < 0.5
                outcomes[a] = _o("kept", value) if saved else none
                late[a] = _o("kept", value) if saved and rng.random() < 0.5 else none
            else:
                backfire = a != "human_review" and rng.random() < 0.05
                outcomes[a] = _o("refunded", value) if backfire else none
                late[a] = outcomes[a]
        truth[f"o{i}"] = {
            "order_id": f"o{i}",
            "order_value": value,
            "request_at": "2026-06-03T00:00:00Z" if at_risk else None,
            "outcomes": outcomes,
            "outcomes_late": late,
        }
    return truth


def test_the_oracle_is_a_lower_bound_on_every_arms_loss() -> None:
    truth = random_truth(400, 1)
    rng = random.Random(2)
    oracle = evaluate_arm("oracle", truth, oracle_choices(truth, COSTS), COSTS)
    for trial in range(20):
        choices = {oid: Choice(rng.choice(ACTIONS), None) for oid in truth if rng.random() < 0.5}
        arm = evaluate_arm(f"arm{trial}", truth, choices, COSTS)
        assert oracle.loss <= arm.loss + 1e-6


def test_captured_share_is_zero_for_status_quo_one_for_oracle_negative_for_harm() -> None:
    truth = random_truth(300, 3)
    sq = evaluate_arm("status_quo", truth, {}, COSTS)
    oracle = evaluate_arm("oracle", truth, oracle_choices(truth, COSTS), COSTS)
    assert captured_share(sq, sq, oracle) == 0.0
    assert captured_share(sq, oracle, oracle) == 1.0
    # Contacting every keeper only costs money and triggers returns: it does harm.
    keepers = {
        oid: Choice("proactive_reassurance", None)
        for oid, row in truth.items()
        if row["outcomes"]["none"]["outcome"] == "kept"
    }
    harm = evaluate_arm("harm", truth, keepers, COSTS)
    share = captured_share(sq, harm, oracle)
    assert share is not None and share < 0
    assert harm.contacted_keepers == len(keepers)
    assert harm.triggered_refunds == sum(
        truth[oid]["outcomes"]["proactive_reassurance"]["outcome"] == "refunded" for oid in keepers
    )
    assert harm.triggered_refunds > 0


def test_an_action_after_the_request_uses_the_late_outcome() -> None:
    truth = {
        "o": {
            "order_id": "o",
            "order_value": 50.0,
            "request_at": "2026-06-03T00:00:00Z",
            "outcomes": {"none": _o("refunded", 50.0), "exchange_first_offer": _o("kept", 50.0)},
            "outcomes_late": {"exchange_first_offer": _o("refunded", 50.0)},
        }
    }
    early = [{"order_id": "o", "action": "exchange_first_offer",
              "decided_at": "2026-06-02T00:00:00Z"}]  # fmt: skip
    late = [{**early[0], "decided_at": "2026-06-03T00:00:00Z"}]
    assert evaluate_arm("e", truth, policy_choices(early), COSTS).refund_leakage == 0.0
    assert evaluate_arm("l", truth, policy_choices(late), COSTS).refund_leakage == 50.0


def test_costs_count_every_action_and_credit_once_per_order() -> None:
    truth = random_truth(1, 4)
    oid = "o0"
    value = truth[oid]["order_value"]
    decisions = [
        {"order_id": oid, "action": "delayed_shipment_intervention",
         "decided_at": "2026-06-01T00:00:00Z"},
        {"order_id": oid, "action": "none", "decided_at": "2026-06-01T05:00:00Z"},
        {"order_id": oid, "action": "delayed_shipment_intervention",
         "decided_at": "2026-06-02T00:00:00Z"},
    ]  # fmt: skip
    arm = evaluate_arm("p", truth, policy_choices(decisions), COSTS)
    assert arm.contact_cost == pytest.approx(5.0)
    assert arm.credit_cost == pytest.approx(min(0.1 * value, 15.0), abs=0.01)


def test_baseline_choices_follow_their_definitions() -> None:
    decisions = [
        {"order_id": "a", "point": "order", "action": "none", "eligible": [],
         "decided_at": "2026-06-01T00:00:00Z"},
        {"order_id": "a", "point": "delay", "action": "none",
         "eligible": ["delayed_shipment_intervention", "proactive_reassurance"],
         "decided_at": "2026-06-02T00:00:00Z"},
        {"order_id": "b", "point": "order", "action": "none", "eligible": [],
         "decided_at": "2026-06-01T01:00:00Z"},
    ]  # fmt: skip
    contact = always_contact_choices(decisions)
    assert set(contact) == {"a"} and contact["a"].action == "proactive_reassurance"
    assert contact["a"].at == pytest.approx(1780358400.0)
    picks = random_eligible_choices(decisions)
    assert set(picks) == {"a"}
    assert picks["a"].action in decisions[1]["eligible"]
    assert random_eligible_choices(decisions) == picks  # seeded per order


def test_compare_arms_and_regret_cover_the_same_orders() -> None:
    truth = random_truth(200, 5)
    decisions = []
    for i, oid in enumerate(truth):
        placed = f"2026-06-0{1 + i % 3}T00:00:00Z"
        action = ACTIONS[i % 3] if i % 2 else "none"
        decisions += [
            {"order_id": oid, "point": "order", "action": "none", "eligible": [],
             "decided_at": placed},
            {"order_id": oid, "point": "request", "action": action,
             "eligible": list(ACTIONS), "decided_at": "2026-06-05T00:00:00Z"},
        ]  # fmt: skip
    block = compare_arms(truth, COSTS, decisions, decisions)
    arms = block["arms"]
    assert {a["orders"] for a in arms.values()} == {200}
    assert arms["static_rules"]["loss"] == arms["policy"]["loss"]
    assert arms["oracle"]["captured_share"] == 1.0
    days = regret_by_day(truth, COSTS, decisions)
    assert [d["day"] for d in days] == sorted(d["day"] for d in days) and len(days) == 3
    regret = sum(d["regret"] for d in days)
    assert regret == pytest.approx(arms["policy"]["loss"] - arms["oracle"]["loss"], abs=0.05)
    assert days[-1]["cumulative_regret"] == pytest.approx(regret, abs=0.05)
