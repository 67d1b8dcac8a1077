"""Decisions and intervention events: the records the decide step emits.

>>> [str(arm_of("order-1", share, "s")) for share in (0.0, 1.0)]
['treatment', 'control']
>>> intervention_id("o1", "proactive_reassurance", "e9", "v1") == intervention_id(
...     "o1", "proactive_reassurance", "e9", "v1")
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from operators.contract import format_ts
from operators.vocabulary import Action, Arm

if TYPE_CHECKING:
    from operators.case import OrderCase

# Plain strings (``.value``): they become keys of output records, which orjson requires to
# be exactly ``str``.
NO_ACTION: str = Action.NONE.value
TREATMENT: str = Arm.TREATMENT.value
CONTROL: str = Arm.CONTROL.value


@dataclass(frozen=True, slots=True)
class Scores:
    """The case classification; every score is a number in [0, 1].

    - ``recoverability``: P(no refund | the best eligible action), from the models.
    - ``customer_value``: the customer's value to the business, squashed to [0, 1].
    - ``product_margin``: the order's margin as a share of its value.
    - ``return_propensity``: P(the case ends in a refund | no action).
    - ``promise_sensitivity``: how strongly the customer reacts to the delivery promise.
    - ``abuse_risk``: how likely the case is refund abuse.
    """

    recoverability: float
    customer_value: float
    product_margin: float
    return_propensity: float
    promise_sensitivity: float
    abuse_risk: float

    def to_record(self) -> dict[str, float]:
        return {
            "recoverability": round(self.recoverability, 4),
            "customer_value": round(self.customer_value, 4),
            "product_margin": round(self.product_margin, 4),
            "return_propensity": round(self.return_propensity, 4),
            "promise_sensitivity": round(self.promise_sensitivity, 4),
            "abuse_risk": round(self.abuse_risk, 4),
        }


@dataclass(frozen=True, slots=True)
class CaseLabels:
    """The segment labels every output record of a case carries (for reports and metrics;
    never personal data)."""

    sku_family: str | None = None
    courier_lane: str | None = None
    campaign: str | None = None
    support_reason: str | None = None

    @classmethod
    def of_case(cls, case: OrderCase) -> CaseLabels:
        return cls(case.sku_family, case.lane, case.campaign, case.support_reason())

    def to_record(self) -> dict[str, str | None]:
        return {
            "sku_family": self.sku_family,
            "courier_lane": self.courier_lane,
            "campaign": self.campaign,
            "support_reason": self.support_reason,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one decision point for one case: chosen in
    ``DecisionEngine._choose``, stamped with the versions and the case's labels in
    ``DecisionEngine.decide``, written by :meth:`to_record` (the ``decisions`` output)."""

    order_id: str
    decided_at: float
    trigger_event_id: str
    action: str  # a registered action (operators.actions) or NO_ACTION
    arm: str
    automated: bool
    rule: str
    reasons: tuple[str, ...]
    scores: Scores
    value_at_risk: float
    expected_saving: float
    proposed_action: str | None = None  # what human review is asked to approve
    point: str = "other"  # the DecisionPoint of the trigger
    eligible: tuple[str, ...] = ()  # eligible and not blocked, before the propensity threshold
    propensity: float = 1.0  # probability the policy chose ``action`` here
    segment: str | None = None  # the bandit's context key (None: static rules)
    #: Each option's probability at this point (off-policy evaluation needs the chance of
    #: "none" where something else was chosen); empty for a deterministic decision.
    probabilities: tuple[tuple[str, float], ...] = ()
    policy_version: str = ""
    model_version: str = ""
    labels: CaseLabels = field(default_factory=CaseLabels)

    def to_record(self) -> dict[str, Any]:
        """The ``decisions`` output record of contract v1."""
        labels = self.labels
        return {
            "order_id": self.order_id,
            "decided_at": format_ts(self.decided_at),
            "trigger_event_id": self.trigger_event_id,
            "arm": self.arm,
            "action": self.action,
            "automated": self.automated,
            "proposed_action": self.proposed_action,
            "rule": self.rule,
            "reasons": list(self.reasons),
            "scores": self.scores.to_record(),
            "value_at_risk": self.value_at_risk,
            "expected_saving": self.expected_saving,
            "policy_version": self.policy_version,
            "model_version": self.model_version,
            "sku_family": labels.sku_family,
            "courier_lane": labels.courier_lane,
            "campaign": labels.campaign,
            "support_reason": labels.support_reason,
            "point": self.point,
            "eligible": list(self.eligible),
            "propensity": self.propensity,
            "probabilities": dict(self.probabilities) if self.probabilities else None,
            "segment": self.segment,
        }


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (no process salt, unlike ``hash``)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def arm_of(order_id: str, holdout_share: float, salt: str) -> str:
    """Deterministic arm assignment from the order id: the same order is always in the
    same arm for the same salt, on every worker and in every replay."""
    return CONTROL if unit_hash(f"{salt}:{order_id}") < holdout_share else TREATMENT


def intervention_id(order_id: str, action: str, trigger_event_id: str, policy_version: str) -> str:
    """Stable id (the downstream idempotency key): same input and policy, same id."""
    digest = hashlib.blake2b(
        f"{order_id}\x1f{action}\x1f{trigger_event_id}\x1f{policy_version}".encode(),
        digest_size=16,
    ).hexdigest()
    return f"iv-{digest}"
