"""Evaluation of a run: business totals from outputs, and counterfactuals from ground truth.

Plain functions over output records (``outcomes``, ``decisions``, ``interventions``) so the
replay summary, the backtest and the report share one set of definitions:

- *refund leakage*: value refunded (refunds and chargebacks).
- *retained revenue*: the value of every order that was not refunded (cancelled orders
  count nothing). The same definition holds for observed outcomes and every arm scored on
  a ground truth.

With a simulator ground-truth file, every arm (the policy, the baselines, the oracle) is
scored by :mod:`operators.baselines`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from operators.vocabulary import Outcome

REFUNDED = frozenset({Outcome.REFUNDED, Outcome.CHARGEBACK})


def load_ground_truth(path: Path) -> dict[str, dict[str, Any]]:
    """order_id -> ground-truth row of a simulator ``ground_truth.jsonl``."""
    truth: dict[str, dict[str, Any]] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                truth[row["order_id"]] = row
    return truth


@dataclass
class Totals:
    """Money and counts of one evaluated world (observed, policy, baseline...)."""

    orders: int = 0
    refund_leakage: float = 0.0
    retained_revenue: float = 0.0
    refunded_orders: int = 0

    def add(self, refund: float, retained: float) -> None:
        self.orders += 1
        self.refund_leakage += refund
        self.retained_revenue += retained
        if refund > 0:
            self.refunded_orders += 1

    def to_dict(self) -> dict[str, float]:
        return {
            "orders": self.orders,
            "refund_leakage": round(self.refund_leakage, 2),
            "retained_revenue": round(self.retained_revenue, 2),
            "refunded_orders": self.refunded_orders,
        }


def observed_totals(outcomes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What the outputs say happened: leakage, retained revenue, outcomes by kind."""
    totals = Totals()
    by_outcome: Counter[str] = Counter()
    by_arm: dict[str, Totals] = defaultdict(Totals)
    for o in outcomes:
        by_outcome[o["outcome"]] += 1
        retained = o["retained_value"]
        totals.add(o["refund_value"], retained)
        by_arm[o.get("arm") or "undecided"].add(o["refund_value"], retained)
    return {
        **totals.to_dict(),
        "outcomes": dict(sorted(by_outcome.items())),
        "by_arm": {k: v.to_dict() for k, v in sorted(by_arm.items())},
    }


def intervention_costs(
    interventions: Iterable[dict[str, Any]], action_costs: dict[str, float]
) -> tuple[float, float]:
    """What the emitted interventions cost: every intervention's contact cost (by its
    action), and the credit offered by the automated ones (approved reviews grant theirs
    separately).

    >>> intervention_costs([{"action": "a", "automated": True, "offer": {"amount": 5.0}},
    ...                     {"action": "a", "automated": False, "offer": {"amount": 9.0}}],
    ...                    {"a": 0.5})
    (1.0, 5.0)
    """
    contact = credit = 0.0
    for iv in interventions:
        contact += action_costs.get(iv["action"], 0.0)
        if iv.get("offer") and iv["automated"]:
            credit += iv["offer"]["amount"]
    return round(contact, 2), round(credit, 2)


def ground_truth_block(truth: dict[str, dict[str, Any]], arms: dict[str, Any]) -> dict[str, Any]:
    """Leakage and retained revenue under the policy, the blanket-refund practice and no
    action, from the arms of :func:`operators.baselines.compare_arms` (one definition:
    retained revenue is the value of every order not refunded, on every line)."""

    def totals(arm: dict[str, Any]) -> dict[str, Any]:
        keys = ("orders", "refund_leakage", "retained_revenue", "refunded_orders")
        return {k: arm[k] for k in keys}

    policy, blanket, none = (
        arms["arms"][name] for name in ("policy", "blanket_refund", "status_quo")
    )
    revenue = sum(r.get("order_value", 0.0) for r in truth.values())

    def cut(base: float) -> float:
        return round((base - policy["refund_leakage"]) / base, 4) if base > 0 else 0.0

    return {
        "policy": totals(policy),
        "blanket_refund": totals(blanket),
        "no_action": totals(none),
        "leakage_cut_vs_blanket": cut(blanket["refund_leakage"]),
        "leakage_cut_vs_no_action": cut(none["refund_leakage"]),
        "contact_cost": policy["contact_cost"],
        "credit_cost": policy["credit_cost"],
        "order_revenue": round(revenue, 2),
        "cost_share_of_revenue": round(policy["cost"] / revenue, 5) if revenue else 0.0,
    }


def roc_auc(labels: list[int], scores: list[float]) -> float | None:
    """ROC AUC by ranks (ties averaged); None if only one class is present.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(labels: list[int], probs: list[float]) -> float | None:
    """Mean binary log loss (probabilities clipped to [1e-6, 1 - 1e-6])."""
    if not labels:
        return None
    total = 0.0
    for y, p in zip(labels, probs, strict=True):
        p = min(max(p, 1e-6), 1 - 1e-6)
        total -= math.log(p) if y else math.log(1 - p)
    return total / len(labels)


def calibration(labels: list[int], probs: list[float], bins: int = 10) -> dict[str, Any]:
    """Reliability table and expected calibration error (ECE) over equal-width bins."""
    counts = [0] * bins
    sum_p = [0.0] * bins
    sum_y = [0] * bins
    for y, p in zip(labels, probs, strict=True):
        b = min(int(p * bins), bins - 1)
        counts[b] += 1
        sum_p[b] += p
        sum_y[b] += y
    n = len(labels)
    ece = 0.0
    table = []
    for b in range(bins):
        if counts[b]:
            mean_p, rate = sum_p[b] / counts[b], sum_y[b] / counts[b]
            ece += counts[b] / n * abs(mean_p - rate)
            table.append(
                {"bin": b, "count": counts[b], "mean_predicted": round(mean_p, 4),
                 "observed_rate": round(rate, 4)}
            )  # fmt: skip
    return {"ece": round(ece, 4) if n else None, "bins": table}
