"""The output records, typed: one frozen dataclass per record, built in one place, written
by ``to_record()`` as the plain JSON object of contract v1 (``docs/events.md``; checked by
the validators in ``operators.contract.outputs``).

- ``decisions``: :class:`~operators.decision.Decision`, chosen in
  ``DecisionEngine._choose`` and stamped (versions, labels) in ``DecisionEngine.decide``;
- ``interventions``: :class:`Intervention`, built by ``DecisionEngine._intervention``; an
  approved human review is a transform of the review request record
  (``operators.review.approved_intervention``), with a typed :class:`Offer` and
  :class:`CustomerMessage`;
- ``outcomes``: :class:`OutcomeRecord`, built by :meth:`OutcomeRecord.of_case`;
- ``dead_letter``: :class:`~operators.contract.DeadLetter`, built by
  ``operators.contract.dead_letter``.

>>> Offer(5.0, "EUR").to_record()
{'type': 'store_credit', 'amount': 5.0, 'currency': 'EUR'}
>>> CustomerMessage("email", "exchange_first_offer", "Hi", None).to_record()["send_after"] is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from operators.contract import DeadLetter, format_ts
from operators.decision import CaseLabels, Decision
from operators.vocabulary import Outcome

if TYPE_CHECKING:
    from operators.case import OrderCase

#: A tagged output of the case window: ("decision" | "intervention" | "outcome" | "case",
#: record) and, for the learner step, ("pending", Pending) and ("resolution", Resolution).
Output = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Offer:
    """Store credit offered with an intervention."""

    amount: float
    currency: str | None
    type: str = "store_credit"

    def to_record(self) -> dict[str, Any]:
        return {"type": self.type, "amount": self.amount, "currency": self.currency}


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """The message an intervention sends: rendered text (no personal data; the messaging
    system adds the name), held until ``send_after`` in quiet hours."""

    channel: str | None
    template: str
    text: str
    send_after: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "template": self.template,
            "text": self.text,
            "send_after": format_ts(self.send_after) if self.send_after else None,
        }


@dataclass(frozen=True, slots=True)
class Intervention:
    """An ``interventions`` record: the decision it carries out plus what the receiving
    system needs to act (the offer, the message, the review deadline)."""

    intervention_id: str
    decision: Decision
    customer_id: str | None
    order_value: float
    currency: str | None
    offer: Offer | None
    message: CustomerMessage | None
    estimated_delivery_at: float | None
    review_expires_at: float | None

    def to_record(self) -> dict[str, Any]:
        """The ``interventions`` output record of contract v1."""
        d = self.decision
        return {
            "intervention_id": self.intervention_id,
            "order_id": d.order_id,
            "customer_id": self.customer_id,
            "order_value": round(self.order_value, 2),
            "action": d.action,
            "automated": d.automated,
            "proposed_action": d.proposed_action,
            "decided_at": format_ts(d.decided_at),
            "trigger_event_id": d.trigger_event_id,
            "policy_version": d.policy_version,
            "model_version": d.model_version,
            "rule": d.rule,
            "reasons": list(d.reasons),
            "scores": d.scores.to_record(),
            "value_at_risk": d.value_at_risk,
            "expected_saving": d.expected_saving,
            "currency": self.currency,
            "offer": self.offer.to_record() if self.offer else None,
            "message": self.message.to_record() if self.message else None,
            "estimated_delivery_at": (
                format_ts(self.estimated_delivery_at) if self.estimated_delivery_at else None
            ),
            "review_expires_at": (
                format_ts(self.review_expires_at) if self.review_expires_at else None
            ),
            **d.labels.to_record(),
        }


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """An ``outcomes`` record: how a case ended, what it cost, and what was done."""

    order_id: str
    customer_id: str | None
    outcome: str  # an Outcome value
    resolved_at: float
    refund_value: float
    retained_value: float
    order_value: float
    currency: str | None
    arm: str | None
    actions: tuple[str, ...]
    predicted_return_propensity: float | None
    labels: CaseLabels
    at_risk: bool

    @classmethod
    def of_case(cls, case: OrderCase, closed_at: float, *, censored: bool = False) -> OutcomeRecord:
        """``censored``: the input ended (at ``closed_at``) before the case resolved; it
        counts as no refund as of then."""
        outcome = Outcome.CENSORED.value if censored else (case.outcome or Outcome.KEPT.value)
        refunded = case.refund_value if Outcome(outcome).is_refund else 0.0
        if outcome in (Outcome.KEPT, Outcome.EXCHANGED, Outcome.CENSORED):
            retained = case.order_value
        elif outcome == Outcome.REFUNDED:
            retained = max(case.order_value - refunded, 0.0)
        else:
            retained = 0.0
        return cls(
            order_id=case.order_id,
            customer_id=case.customer_id,
            outcome=outcome,
            resolved_at=closed_at if censored else (case.resolved_at or closed_at),
            refund_value=refunded,
            retained_value=retained,
            order_value=case.order_value,
            currency=case.currency,
            arm=case.arm,
            actions=tuple(a for _, a in case.actions),
            predicted_return_propensity=case.first_propensity,
            labels=CaseLabels.of_case(case),
            at_risk=case.is_at_risk(),
        )

    def to_record(self) -> dict[str, Any]:
        """The ``outcomes`` output record of contract v1."""
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "outcome": self.outcome,
            "resolved_at": format_ts(self.resolved_at),
            "refund_value": round(self.refund_value, 2),
            "retained_value": round(self.retained_value, 2),
            "order_value": round(self.order_value, 2),
            "currency": self.currency,
            "arm": self.arm,
            "actions": list(self.actions),
            "predicted_return_propensity": self.predicted_return_propensity,
            **self.labels.to_record(),
            "at_risk": self.at_risk,
        }


__all__ = [
    "CaseLabels",
    "CustomerMessage",
    "DeadLetter",
    "Decision",
    "Intervention",
    "Offer",
    "OutcomeRecord",
]
