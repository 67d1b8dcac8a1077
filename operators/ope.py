"""Off-policy evaluation: what policy B would have cost, from decisions logged under A.

No ground truth is needed, only what a live system logs for every decision: the context,
the action, the probability with which it was chosen (``propensity``, or the whole
``probabilities`` table) and, later, the order's outcome. Together with the holdout (a
known share of orders that never get an action) this makes the logging policy's
probabilities non-degenerate, which is what off-policy evaluation needs.

The unit is an order and its *first* action (the one the truth of a simulation is keyed on
and the one that changes the customer's path the most). For order ``i`` with logged first
action ``a_i``, logging probability ``mu_i`` of that first action, observed loss ``l_i``
(refunded value plus action cost) and B's first action ``b_i`` (from replaying B over the
same history), the doubly robust estimate of B's total loss is (Dudík, Langford & Li 2011)::

    L_B = sum_i  q(x_i, b_i) + 1[a_i = b_i] / mu_i * (l_i - q(x_i, a_i))

where ``q`` is an outcome model: here the refund share of order value per action and
segment (courier lane x SKU family), shrunk towards the action's overall rate, plus the
action's cost. The estimate is unbiased if either ``q`` or the logged probabilities are
right. The 95 % interval is normal, from the variance of the per-order terms.

``mu_i`` of an order whose first action came at decision point ``k`` is
``(1 - h) * prod_{j<k} pi_j(none) * pi_k(a)``; of an order with no action it is
``h + (1 - h) * prod_j pi_j(none)``, with ``h`` the holdout share: each point's draw is
independent and seeded per order and point, and control orders see the same states as
treated ones up to their first action.

Assumptions (checked where possible, see ``warnings``): overlap (B only picks actions that
A could pick for that order with non-zero probability), no unmeasured confounding beyond
the logged context, and outcomes of one order independent of another's actions. The
timing of B's action is not modelled: B's first action counts as the logged one when the
two are the same action.

>>> logged = [LoggedOrder("o1", "none", 0.5, 10.0, 100.0, "s"),
...           LoggedOrder("o2", "a", 0.5, 0.5, 100.0, "s")]
>>> est = doubly_robust(logged, {"o1": "a", "o2": "a"}, {"a": 0.5}, {})
>>> round(est.value, 2), est.matched
(1.0, 1)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.contract import parse_ts
from operators.uplift import Z95
from operators.vocabulary import Action, Arm

#: Pseudo-orders with which a segment's refund share is shrunk to the action's overall one.
SHRINK = 20.0


@dataclass(frozen=True, slots=True)
class LoggedOrder:
    """One order of the log: its first applied action, that action's logging probability,
    the observed loss (refunded value + action cost), order value and context segment."""

    order_id: str
    action: str
    probability: float
    loss: float
    order_value: float
    segment: str


@dataclass
class Estimate:
    """A doubly robust estimate of a policy's total loss with its 95 % interval, and the
    self-normalised estimate from the same log (see :func:`doubly_robust`)."""

    value: float
    ci_low: float
    ci_high: float
    orders: int
    matched: int
    direct_method: float
    warnings: list[str] = field(default_factory=list)
    self_normalized: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "loss": round(self.value, 2),
            "ci_low": round(self.ci_low, 2),
            "ci_high": round(self.ci_high, 2),
            "orders": self.orders,
            "matched_orders": self.matched,
            "direct_method_loss": round(self.direct_method, 2),
            "warnings": self.warnings,
        }
        sn = self.self_normalized
        if sn is not None:
            out["self_normalized"] = {
                "loss": round(sn.value, 2),
                "ci_low": round(sn.ci_low, 2),
                "ci_high": round(sn.ci_high, 2),
            }
        return out


def _none_probability(d: Mapping[str, Any]) -> float:
    """The probability that the logging policy chose no action at this decision."""
    table = d.get("probabilities")
    if table:
        return float(table.get(Action.NONE, 0.0))
    p = float(d.get("propensity", 1.0))
    return p if d["action"] == Action.NONE else max(1.0 - p, 0.0)


def logged_first_actions(
    decisions: Iterable[Mapping[str, Any]], holdout_share: float
) -> dict[str, tuple[str, float, float | None]]:
    """order_id -> (applied first action, its logging probability, when), from the
    decisions of both arms.

    >>> ds = [{"order_id": "o", "arm": "treatment", "action": "none", "propensity": 0.8,
    ...        "decided_at": "2026-06-01T00:00:00Z"},
    ...       {"order_id": "o", "arm": "treatment", "action": "a", "propensity": 0.5,
    ...        "decided_at": "2026-06-02T00:00:00Z"}]
    >>> action, p, _ = logged_first_actions(ds, 0.1)["o"]
    >>> action, round(p, 3)
    ('a', 0.36)
    """
    still_none: dict[str, float] = {}
    arm_of: dict[str, str] = {}
    decided: dict[str, tuple[str, float, float | None]] = {}
    for d in decisions:
        oid = d["order_id"]
        if oid in decided:
            continue
        arm_of.setdefault(oid, d.get("arm") or Arm.TREATMENT)
        before = still_none.get(oid, 1.0)
        if d["action"] == Action.NONE:
            still_none[oid] = before * _none_probability(d)
            continue
        at = parse_ts(d["decided_at"])
        if arm_of[oid] == Arm.TREATMENT:
            p = (1.0 - holdout_share) * before * float(d.get("propensity", 1.0))
            decided[oid] = (str(d["action"]), p, at)
        else:
            # A control order gets nothing; its path left "no action" at this point.
            still_none[oid] = before * _none_probability(d)
            decided[oid] = (Action.NONE.value, _p_none(holdout_share, still_none[oid]), None)
    for oid, before in still_none.items():
        if oid not in decided:
            decided[oid] = (Action.NONE.value, _p_none(holdout_share, before), None)
    return decided


def _p_none(holdout_share: float, path_none: float) -> float:
    return holdout_share + (1.0 - holdout_share) * path_none


class RefundShareModel:
    """The direct-method outcome model: refunded share of order value per action and
    segment, shrunk to the action's overall share, which is shrunk to the overall one."""

    def __init__(self, logged: Iterable[LoggedOrder], costs: Mapping[str, float]) -> None:
        self.costs = costs
        cell: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        action: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        total = [0.0, 0.0]
        for o in logged:
            refund = max(o.loss - costs.get(o.action, 0.0), 0.0)
            share = refund / o.order_value if o.order_value > 0 else 0.0
            for acc in (cell[(o.action, o.segment)], action[o.action], total):
                acc[0] += share
                acc[1] += 1
        self.overall = total[0] / total[1] if total[1] else 0.0
        self.action = {
            a: (s + SHRINK * self.overall) / (n + SHRINK) for a, (s, n) in action.items()
        }
        self.cell = {
            k: (s + SHRINK * self.action[k[0]]) / (n + SHRINK) for k, (s, n) in cell.items()
        }

    def loss(self, action: str, segment: str, order_value: float) -> float:
        share = self.cell.get((action, segment))
        if share is None:
            share = self.action.get(action, self.overall)
        return share * order_value + self.costs.get(action, 0.0)


def doubly_robust(
    logged: list[LoggedOrder],
    target: Mapping[str, str],
    costs: Mapping[str, float],
    explored: Mapping[str, set[str]],
) -> Estimate:
    """Doubly robust estimate of the total loss of the policy whose first action per order
    is ``target`` (orders not in it: none). ``explored`` maps a segment to the actions the
    log applied there at least once, for the overlap warning.

    Its ``self_normalized`` estimate, from the same outcome model and log: the correction
    term is divided by the mean importance weight
    ``sum_i w_i / n`` (``w_i = 1[a_i = b_i] / mu_i``, expected 1) instead of 1, so a few
    orders with tiny logged probabilities cannot move the estimate beyond the range of the
    observed residuals (Swaminathan & Joachims 2015; Kallus & Uehara 2019). Slightly biased,
    much less variable; the interval is from the delta method on the ratio."""
    model = RefundShareModel(logged, costs)
    direct_terms: list[float] = []
    weights: list[float] = []
    residuals: list[float] = []
    matched = 0
    unexplored: dict[tuple[str, str], int] = defaultdict(int)
    for o in logged:
        b = target.get(o.order_id, Action.NONE.value)
        direct_terms.append(model.loss(b, o.segment, o.order_value))
        w = residual = 0.0
        if b == o.action and o.probability > 0:
            matched += 1
            w = 1.0 / o.probability
            residual = o.loss - model.loss(o.action, o.segment, o.order_value)
        weights.append(w)
        residuals.append(residual)
        if b not in explored.get(o.segment, set()):
            unexplored[(o.segment, b)] += 1
    n = len(direct_terms)
    direct = sum(direct_terms)
    weight_sum = sum(weights)
    terms = [q + w * r for q, w, r in zip(direct_terms, weights, residuals, strict=True)]
    normalized_terms = terms
    if weight_sum > 0:
        # Total = sum q_b + n R, R = sum w r / sum w; per order (linearised around R):
        # q_b + R + (n / sum w) w (r - R), which sums to the total.
        ratio = sum(w * r for w, r in zip(weights, residuals, strict=True)) / weight_sum
        scale = n / weight_sum
        normalized_terms = [
            q + ratio + scale * w * (r - ratio)
            for q, w, r in zip(direct_terms, weights, residuals, strict=True)
        ]
    warnings = []
    if unexplored:
        orders = sum(unexplored.values())
        worst = sorted(unexplored.items(), key=lambda kv: -kv[1])[:3]
        listed = ", ".join(f"{a} in {s} ({k})" for (s, a), k in worst)
        warnings.append(
            f"overlap: for {orders} orders B picks an action the log never applied in that "
            f"segment (e.g. {listed}); those terms rest on the outcome model alone"
        )
    small = sum(1 for o in logged if 0 < o.probability < 0.01)
    if small:
        warnings.append(f"{small} logged actions had a probability below 1%: the interval is wide")
    normalized = Estimate(*_interval(normalized_terms), n, matched, direct, warnings)
    return Estimate(*_interval(terms), n, matched, direct, warnings, normalized)


def _interval(terms: list[float]) -> tuple[float, float, float]:
    """The total of per-order terms and its normal 95 % interval."""
    n = len(terms)
    total = sum(terms)
    mean = total / n if n else 0.0
    var = sum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(var * n)
    return total, total - half, total + half


def build_log(
    decisions: Iterable[Mapping[str, Any]],
    losses: Mapping[str, float],
    order_values: Mapping[str, float],
    segments: Mapping[str, str],
    holdout_share: float,
) -> tuple[list[LoggedOrder], dict[str, set[str]]]:
    """The log OPE reads: one :class:`LoggedOrder` per order with an observed loss, and the
    actions applied per segment."""
    firsts = logged_first_actions(decisions, holdout_share)
    logged = []
    explored: dict[str, set[str]] = defaultdict(set)
    for oid, (action, p, _) in firsts.items():
        if oid not in losses:
            continue
        seg = segments.get(oid, "")
        logged.append(LoggedOrder(oid, action, p, losses[oid], order_values.get(oid, 0.0), seg))
        explored[seg].add(action)
    return logged, explored
