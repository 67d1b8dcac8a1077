"""Every cap of the policy, in one function, checked again wherever money or a message leaves.

The decision engine keeps within the policy's limits when it chooses. Two later places can
still break them: a reviewer's approval (edits set credit, action and text) and the
dispatcher (a decision re-made after a restart, another process's grant). Both call
:func:`check_caps` with what they know; it returns the broken caps, each as a short reason
with the numbers (no customer ids, no message text), or ``[]``.

The caps (``limits`` and ``quiet_hours`` of the policy, see docs/policy.md):

- **per order credit**: the credit is at most ``limits.max_credit_per_order``;
- **credit share**: the credit is at most the action's ``credit_share`` of the order value
  (for an approval, the share of the approved or of the proposed action, whichever is
  larger). Without the order value the bound is the credit the policy itself offered;
- **per customer over 30 days**: credit already granted to the customer in the 30 days
  before plus this credit is at most ``limits.max_credit_per_customer_30d``;
- **contact limit**: a customer-facing action needs fewer than
  ``limits.max_contacts_per_order`` earlier contacts of the order;
- **quiet hours**: a customer message decided in quiet hours is held (``send_after``) at
  least until they end.

>>> from operators.policy import RecoveryPolicy
>>> policy = RecoveryPolicy.default()
>>> check_caps(policy, CapCheck("delayed_shipment_intervention", credit=12.0,
...     order_value=200.0, contacts_before=0, credit_used_30d=0.0, at=None))
[]
>>> for reason in check_caps(policy, CapCheck("delayed_shipment_intervention", credit=12.0,
...         order_value=100.0, contacts_before=2, credit_used_30d=25.0, at=None)):
...     print(reason)
credit 12.00 is above credit_share 0.1 of the order value 100.00 (10.00)
credit 12.00 takes the customer to 37.00 in 30 days, over max_credit_per_customer_30d=30
contact limit: the order already had 2 contacts (max_contacts_per_order=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from operators.contract import ContractError, format_ts, parse_ts
from operators.credit import CreditLedger
from operators.policy import RecoveryPolicy
from operators.stores import ContactBook
from operators.vocabulary import Action

#: Amounts are compared at cent precision: 20.000000001 is not above a cap of 20.
EPSILON = 1e-6
REVIEW_ACTION: str = Action.HUMAN_REVIEW.value


@dataclass(frozen=True, slots=True)
class CapCheck:
    """What is about to happen, as far as the caps care."""

    action: str
    #: Store credit offered (0: none).
    credit: float = 0.0
    #: The order's value, if known (None: the credit share is checked against
    #: ``policy_credit``).
    order_value: float | None = None
    #: Customer-facing contacts the order had before this one.
    contacts_before: int = 0
    #: Credit granted to the customer in the 30 days before, not counting this credit.
    credit_used_30d: float = 0.0
    #: When the message is decided (epoch seconds); None: quiet hours are not checked.
    at: float | None = None
    #: When the message is held until (None: sent at once).
    send_after: float | None = None
    #: The action the policy proposed, for an approval (its credit share also counts).
    proposed_action: str | None = None
    #: The credit the policy itself offered (the credit-share bound without an order value).
    policy_credit: float | None = None
    #: False where the credit share was checked before with more to go on (a reviewed
    #: intervention at dispatch: checked at approval against the review request).
    check_share: bool = True


def check_caps(policy: RecoveryPolicy, c: CapCheck) -> list[str]:
    """The caps ``c`` breaks under ``policy``, as reasons; ``[]`` if it keeps them all."""
    spec = policy.actions.get(c.action)
    if spec is None:
        return [f"action {c.action!r} is not in the policy"]
    broken: list[str] = []
    credit = c.credit or 0.0
    if credit < 0:
        broken.append(f"credit {credit:.2f} is negative")
    if credit > 0:
        if credit > policy.max_credit_per_order + EPSILON:
            broken.append(
                f"credit {credit:.2f} is over max_credit_per_order={policy.max_credit_per_order:g}"
            )
        proposed = policy.actions.get(c.proposed_action or "")
        share = max(spec.credit_share, proposed.credit_share if proposed else 0.0)
        if not c.check_share:
            pass
        elif c.order_value is not None:
            bound = round(share * c.order_value, 2)
            if credit > bound + EPSILON:
                broken.append(
                    f"credit {credit:.2f} is above credit_share {share:g} of the order value "
                    f"{c.order_value:.2f} ({bound:.2f})"
                )
        elif share <= 0:
            broken.append(f"credit {credit:.2f} for {c.action}, which has no credit_share")
        elif c.policy_credit is None or credit > c.policy_credit + EPSILON:
            offered = "none" if c.policy_credit is None else f"{c.policy_credit:.2f}"
            broken.append(
                f"credit {credit:.2f} is above the credit the policy offered ({offered}); "
                "without the order value the credit share cannot allow more"
            )
        total = c.credit_used_30d + credit
        if total > policy.max_credit_per_customer_30d + EPSILON:
            broken.append(
                f"credit {credit:.2f} takes the customer to {total:.2f} in 30 days, "
                f"over max_credit_per_customer_30d={policy.max_credit_per_customer_30d:g}"
            )
    facing = spec.customer_facing and c.action != REVIEW_ACTION
    if facing and c.contacts_before >= policy.max_contacts_per_order:
        broken.append(
            f"contact limit: the order already had {c.contacts_before} contacts "
            f"(max_contacts_per_order={policy.max_contacts_per_order})"
        )
    if facing and c.at is not None and policy.quiet_hours is not None:
        held_until = policy.quiet_hours.send_after(c.at)
        if held_until is not None and (c.send_after is None or c.send_after < held_until):
            broken.append(
                f"quiet hours: a message decided at {format_ts(c.at)} must be held until "
                f"{format_ts(held_until)}"
            )
    return broken


def _ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_ts(value)
    except ContractError:
        return None


def offered_credit(intervention: dict[str, Any]) -> float:
    """The store credit an intervention offers (0.0 if none)."""
    offer = intervention.get("offer")
    if isinstance(offer, dict) and offer.get("type") == "store_credit":
        amount = offer.get("amount")
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            return float(amount)
    return 0.0


@dataclass
class DispatchCaps:
    """The dispatcher's guard: called once per intervention before its first delivery.

    Admits the contact in the :class:`~state.contacts.ContactBook` and reserves the credit
    in the :class:`~operators.credit.CreditLedger`, both keyed by the intervention id (so a
    re-emitted or retried intervention is admitted again at no cost), and returns the
    broken caps as one reason, or None to send it.
    """

    policy: RecoveryPolicy
    credit: CreditLedger
    contacts: ContactBook
    contact_ttl_seconds: int = 90 * 86400

    def __call__(self, intervention: dict[str, Any]) -> str | None:
        return self.check_many([intervention])[0]

    def check_many(self, interventions: Sequence[dict[str, Any]]) -> list[str | None]:
        """:meth:`__call__` of each intervention, in order, with the contact admissions of
        the batch in one call to the book (``admit_many``: one round trip to Redis, not one
        per contact on the dataflow's thread). The same answers as one by one: admissions
        touch only the book and reservations only the ledger, so admitting the batch first
        and then reserving changes nothing."""
        checks = [self._check(iv) for iv in interventions]
        admit = [c for c in checks if not c.broken and c.facing and c.order_id]
        if admit:
            limit = self.policy.max_contacts_per_order
            answers = self.contacts.admit_many(
                [(c.order_id, c.iid) for c in admit], limit, self.contact_ttl_seconds
            )
            for c, admitted in zip(admit, answers, strict=True):
                if not admitted:
                    c.broken.append(
                        f"contact limit: the order already had {self.contacts.count(c.order_id)} "
                        f"contacts (max_contacts_per_order={limit})"
                    )
        for c in checks:
            if not c.broken and c.credit > 0 and c.customer:
                now = c.decided_at if c.decided_at is not None else 0.0
                cap = self.policy.max_credit_per_customer_30d
                granted = self.credit.reserve(c.customer, now, c.credit, cap, grant_id=c.iid)
                if granted + EPSILON < c.credit:
                    c.broken.append(
                        f"credit {c.credit:.2f} is over what is left of "
                        f"max_credit_per_customer_30d={cap:g} ({granted:.2f})"
                    )
        return ["; ".join(c.broken) if c.broken else None for c in checks]

    def _check(self, intervention: dict[str, Any]) -> _Pending:
        """The caps that need no store; the contact limit and the 30-day credit are
        checked by :meth:`check_many`, atomically."""
        iid = str(intervention.get("intervention_id"))
        action = str(intervention.get("action"))
        customer = intervention.get("customer_id")
        spec = self.policy.actions.get(action)
        message = intervention.get("message")
        message = message if isinstance(message, dict) else {}
        decided_at = _ts(intervention.get("decided_at"))
        facing = spec is not None and spec.customer_facing and action != REVIEW_ACTION
        # A review request's offer is a proposal to a person, not credit given: it is
        # checked and reserved when (and if) it is approved.
        credit = offered_credit(intervention) if action != REVIEW_ACTION else 0.0
        order_value = intervention.get("order_value")
        check = CapCheck(
            action=action,
            credit=credit,
            order_value=float(order_value) if isinstance(order_value, (int, float)) else None,
            at=decided_at if message else None,
            send_after=_ts(message.get("send_after")),
            proposed_action=intervention.get("proposed_action"),
            # Without the order value the credit share is not checked again here: the
            # engine computed the offer from it, and an approval was checked against the
            # engine's offer when it was approved.
            policy_credit=credit,
            check_share=not (intervention.get("review_id") and not intervention.get("automated")),
        )
        return _Pending(
            check_caps(self.policy, check),
            iid,
            str(intervention.get("order_id") or ""),
            customer if isinstance(customer, str) else "",
            facing,
            credit,
            decided_at,
        )


@dataclass(slots=True)
class _Pending:
    """One intervention's check in :meth:`DispatchCaps.check_many`."""

    broken: list[str]
    iid: str
    order_id: str
    customer: str
    facing: bool
    credit: float
    decided_at: float | None


__all__ = ["CapCheck", "DispatchCaps", "check_caps", "offered_credit"]
