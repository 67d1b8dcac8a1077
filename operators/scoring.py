"""Case scoring: turns features into the six scores and per-action recovery chances.

``Scorer`` is the seam the policy reads. ``HeuristicScorer`` is a transparent, fixed
scorer (the cold-start prior and a baseline); ``operators.models.OnlineScorer`` learns the
return propensity and the per-action recoverability online with River.

>>> s = HeuristicScorer()
>>> scores, recover = s.score({"slip_hours": 96.0, "intent_where_is_my_order": 1.0,
...                            "min_sentiment": -0.6, "margin_share": 0.6})
>>> 0.0 <= scores.return_propensity <= 1.0 and recover["proactive_reassurance"] > 0.3
True
"""

from __future__ import annotations

import math
from operator import mul
from typing import Any, Protocol

from operators.actions import action_names, definition, generation
from operators.decision import Scores


def _sigmoid(x: float) -> float:
    if x < -30:
        return 0.0
    if x > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


def abuse_risk(f: dict[str, float]) -> tuple[float, list[str]]:
    """A transparent abuse score in [0, 1] and the reasons that raised it.

    >>> abuse_risk({"customer_return_rate": 0.8, "customer_orders": 10.0})[1]
    ['serial returns (80% of 10 orders)']
    """
    score = 0.0
    reasons: list[str] = []
    rate = f.get("customer_return_rate", 0.0)
    orders = f.get("customer_orders", 0.0)
    if rate >= 0.4 and orders >= 3:
        score += min(0.3 + (rate - 0.4), 0.6)
        reasons.append(f"serial returns ({rate:.0%} of {orders:.0f} orders)")
    if f.get("seen_chargebacks", 0.0) > 0:
        score += 0.4
        reasons.append(f"{f['seen_chargebacks']:.0f} earlier chargeback(s)")
    if f.get("seen_refund_rate", 0.0) >= 0.5:
        score += 0.2
        reasons.append(f"refunded {f['seen_refund_rate']:.0%} of recent orders")
    claim = f.get("reason_not_as_described", 0.0) or f.get("reason_damaged", 0.0)
    if f.get("delivered", 0.0) and f.get("refund_request", 0.0) and claim and not f.get("lost"):
        score += 0.1
        reasons.append("refund claim after confirmed delivery")
    return min(score, 1.0), reasons


def customer_value(f: dict[str, float]) -> float:
    """Lifetime value squashed to [0, 1] (about 0.5 at a lifetime value of 400)."""
    ltv = math.expm1(f.get("log_customer_ltv", 0.0))
    return round(1.0 - math.exp(-ltv / 577.0), 4)


def promise_sensitivity(f: dict[str, float]) -> float:
    """How much the customer reacts to delivery promises: where-is-my-order contacts,
    negative sentiment while late, and the lane's delay history."""
    x = -1.5
    x += 1.2 * f.get("intent_where_is_my_order", 0.0) + 0.8 * f.get("intent_delivery_problem", 0.0)
    x += 0.4 * min(f.get("contacts", 0.0), 3.0)
    x += -1.0 * min(f.get("min_sentiment", 0.0), 0.0)
    x += 2.0 * f.get("lane_delay_rate", 0.1)
    return round(_sigmoid(x), 4)


#: Per action: its name, the prior's intercept, feature names, weights and as many zeros.
_Prior = tuple[str, float, tuple[str, ...], tuple[float, ...], tuple[float, ...]]
#: (registry generation, the registered priors): read at every decision point, so not
#: looked up in the registry each time.
_PRIORS: list[tuple[int, tuple[_Prior, ...]]] = []


def _priors() -> tuple[_Prior, ...]:
    gen = generation()
    if not _PRIORS or _PRIORS[0][0] != gen:
        priors = tuple(
            (
                a,
                p.intercept,
                tuple(p.weights),
                tuple(p.weights.values()),
                (0.0,) * len(p.weights),
            )
            for a in action_names()
            for p in (definition(a).recovery_prior,)
        )
        _PRIORS[:] = [(gen, priors)]
    return _PRIORS[0][1]


class Scorer(Protocol):
    """Scores a case from its features; learns from outcomes if it can."""

    @property
    def version(self) -> str:
        """Written into every decision (``model_version``)."""
        ...

    def score(self, features: dict[str, float]) -> tuple[Scores, dict[str, float]]:
        """The scores and, per action, P(no refund | action, context)."""
        ...

    def learn(self, features: dict[str, float], outcome: dict[str, Any]) -> None: ...


class HeuristicScorer:
    """A fixed, explainable scorer: the prior before models have learned anything."""

    version = "heuristic-1"

    def return_propensity(self, f: dict[str, float]) -> float:
        x = -3.0
        x += 2.2 * f.get("has_request", 0.0) + 0.6 * f.get("refund_request", 0.0)
        x += 0.9 * min(f.get("slip_hours", 0.0) / 72.0, 2.0)
        x += 0.9 * f.get("delivery_problems", 0.0) + 1.2 * f.get("lost", 0.0)
        x += -1.2 * min(f.get("min_sentiment", 0.0), 0.0)
        x += 0.25 * min(f.get("contacts", 0.0), 4.0)
        x += 3.0 * (f.get("customer_return_rate", 0.1) - 0.1)
        # Not the flow's family refund rate: it is biased upwards by label delay until the
        # context store has seen a whole recovery window (see operators.models.CONTEXT_RATES).
        return _sigmoid(x)

    def recovery(self, f: dict[str, float], abuse: float | None = None) -> dict[str, float]:
        """P(recovered | action) per registered action, from its registry prior (which
        situation it fits); ``abuse`` is ``abuse_risk(f)[0]`` if known."""
        out = {}
        if abuse is None:
            abuse = abuse_risk(f)[0]
        get = f.get
        for action, intercept, keys, weights, zeros in _priors():
            # sum(w * f.get(k, 0.0)) over the weights in order, iterated in C.
            x = intercept + sum(map(mul, weights, map(get, keys, zeros)))
            x -= 2.5 * abuse
            out[action] = _sigmoid(x)
        return out

    def score(self, features: dict[str, float]) -> tuple[Scores, dict[str, float]]:
        abuse = abuse_risk(features)[0]
        recover = self.recovery(features, abuse)
        scores = Scores(
            recoverability=max(recover.values()),
            customer_value=customer_value(features),
            product_margin=min(max(features.get("margin_share", 0.5), 0.0), 1.0),
            return_propensity=self.return_propensity(features),
            promise_sensitivity=promise_sensitivity(features),
            abuse_risk=abuse,
        )
        return scores, recover

    def learn(self, features: dict[str, float], outcome: dict[str, Any]) -> None:
        """The heuristic does not learn."""
