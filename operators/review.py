"""The human-review loop: review requests wait for a person's decision, per order.

A case past the automation boundary gets a ``human_review`` intervention (a *review
request*, its ``intervention_id`` is the ``review_id``). A reviewer answers on the
``review-decisions`` topic::

    {"review_id": "iv-…", "order_id": "o-1", "decision": "approve",
     "reviewer_id": "agent-7", "decided_at": "2026-06-03T10:00:00Z",
     "edits": {"action": "exchange_first_offer", "credit_amount": 5.0}, "note": "…"}

``decision`` is ``approve`` or ``reject``; ``edits`` (approve only, all optional) may
change the action to another customer-facing policy action, set the store credit (at most
the policy's ``limits.max_credit_per_order``) or replace the message text. ``decided_at``
defaults to the time the decision was read.

:class:`ReviewBook` is the per-order state. An approval emits the intervention as
``automated: false`` with the reviewer's id; every decision, expiry and close produces a
``review`` record (the audit trail). A decision for a closed case, an expired or unknown
request, or a request already decided is recorded and otherwise ignored. Requests expire
by **wall-clock** time counted from when the request was seen (reviewers work in wall
time; event time in a backlog replay can be days behind).

>>> from operators.policy import RecoveryPolicy
>>> policy = RecoveryPolicy.default()
>>> book = ReviewBook(expires_seconds=3600)
>>> book.on_request({"intervention_id": "iv-r1", "order_id": "o1", "action": "human_review",
...     "proposed_action": "exchange_first_offer", "currency": "EUR", "offer": None,
...     "policy_version": policy.version}, now=1000.0)
[]
>>> d = parse_decision({"review_id": "iv-r1", "order_id": "o1", "decision": "approve",
...     "reviewer_id": "agent-7"}, received_at=1500.0)
>>> [(tag, r["action"], r["automated"]) for tag, r in book.on_decision(d, policy, 1500.0)
...  if tag == "intervention"]
[('intervention', 'exchange_first_offer', False)]
>>> book.on_decision(d, policy, 1600.0)[0][1]["status"]  # the same decision again
'ignored'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from operators.caps import CapCheck, check_caps, offered_credit
from operators.contract import (
    ContractError,
    DeadLetter,
    dead_letter,
    format_ts,
    load_json,
    parse_ts,
)
from operators.credit import CreditLedger
from operators.decision import intervention_id
from operators.messages import MessageFields, message_text
from operators.policy import RecoveryPolicy
from operators.records import CustomerMessage, Offer, Output
from operators.review_auth import (
    DEFAULT_MAX_MESSAGE_CHARS,
    DEFAULT_SIGNATURE_MAX_AGE_SECONDS,
    ReviewAuth,
    _open_envelope,
    check_message_text,
    sign_decision,
)
from operators.stores import ContactBook
from operators.vocabulary import Action

REVIEW_ACTION: str = Action.HUMAN_REVIEW.value
APPROVE = "approve"
REJECT = "reject"
MAX_MESSAGE_CHARS = 2000  # notes, and message text when decisions are not authenticated
REVIEW_STREAM = "review_decisions"

#: Tagged outputs: ("intervention" | "review", record).


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """One reviewer's answer to a review request."""

    review_id: str
    order_id: str
    decision: str
    reviewer_id: str
    decided_at: float
    action: str | None = None
    credit_amount: float | None = None
    message_text: str | None = None
    note: str | None = None


def _opt_str(obj: dict[str, Any], key: str, limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"{key} must be a string")
    if len(value) > limit:
        raise ContractError(f"{key} is longer than {limit} characters")
    return value


def _req_str(obj: dict[str, Any], key: str) -> str:
    value = _opt_str(obj, key)
    if not value:
        raise ContractError(f"missing required field {key}")
    return value


def parse_decision(
    raw: Any, received_at: float, auth: ReviewAuth | None = None
) -> ReviewDecision | DeadLetter:
    """Parse a review decision (JSON bytes or a parsed object); a DeadLetter if invalid.

    With ``auth`` (live mode), ``raw`` must be a signed envelope (:func:`sign_decision`)
    under the review secret, from a reviewer on the allowlist, and edited text must pass
    :func:`check_message_text`; anything else is a dead letter with the reason.

    >>> parse_decision(b'{"review_id": "r", "order_id": "o", "decision": "maybe", '
    ...                b'"reviewer_id": "a"}', 0.0).reason
    "decision must be 'approve' or 'reject', got 'maybe'"
    """
    obj: Any = raw
    try:
        obj = load_json(raw)
        if auth is not None:
            obj = load_json(_open_envelope(obj, auth, received_at))
        if not isinstance(obj, dict):
            raise ContractError("a review decision must be a JSON object")
        review_id = _req_str(obj, "review_id")
        order_id = _req_str(obj, "order_id")
        decision = obj.get("decision")
        if decision not in (APPROVE, REJECT):
            raise ContractError(f"decision must be 'approve' or 'reject', got {decision!r}")
        reviewer_id = _req_str(obj, "reviewer_id")
        decided_at = received_at
        if obj.get("decided_at") is not None:
            decided_at = parse_ts(obj["decided_at"], "decided_at")
        edits = obj.get("edits") or {}
        if not isinstance(edits, dict):
            raise ContractError("edits must be an object")
        unknown = sorted(set(edits) - {"action", "credit_amount", "message_text"})
        if unknown:
            raise ContractError(f"edits.{unknown[0]} is not an editable field")
        if edits and decision == REJECT:
            raise ContractError("edits are only allowed with decision approve")
        credit = edits.get("credit_amount")
        if credit is not None and (
            isinstance(credit, bool) or not isinstance(credit, (int, float)) or credit < 0
        ):
            raise ContractError(f"edits.credit_amount must be a number >= 0, got {credit!r}")
        if auth is not None and reviewer_id not in auth.reviewers:
            raise ContractError("reviewer_id is not on the reviewer allowlist (review.reviewers)")
        text = _opt_str(edits, "message_text", MAX_MESSAGE_CHARS)
        if auth is not None and text is not None:
            refused = check_message_text(text, auth)
            if refused is not None:
                raise ContractError(refused)
        return ReviewDecision(
            review_id=review_id,
            order_id=order_id,
            decision=decision,
            reviewer_id=reviewer_id,
            decided_at=decided_at,
            action=_opt_str(edits, "action"),
            credit_amount=float(credit) if credit is not None else None,
            message_text=text,
            note=_opt_str(obj, "note", MAX_MESSAGE_CHARS),
        )
    except ContractError as exc:
        return dead_letter(REVIEW_STREAM, str(exc), raw, obj, received_at, "review_id")


@dataclass(slots=True)
class PendingReview:
    """A review request waiting for a decision."""

    request: dict[str, Any]
    raised_at: float  # wall clock
    expires_at: float  # wall clock


@dataclass
class ReviewBook:
    """The review state of one order: open requests, settled ones, and whether it closed.

    ``expires_seconds``: how long a request waits for a decision (wall clock).
    ``retention_seconds``: how long settled requests are remembered, so a repeated or late
    decision is recorded as such rather than as an unknown review.
    """

    expires_seconds: float = 48 * 3600.0
    retention_seconds: float = 72 * 3600.0
    pending: dict[str, PendingReview] = field(default_factory=dict)
    settled: dict[str, str] = field(default_factory=dict)  # review_id -> final status
    closed: bool = False
    retain_until: float = 0.0

    # --- inputs ----------------------------------------------------------------------------

    def on_request(
        self, request: dict[str, Any], now: float, policy: RecoveryPolicy | None = None
    ) -> list[Output]:
        """A human_review intervention was emitted: wait for its decision. (``policy`` is
        not used; kept for callers of the earlier signature.)"""
        review_id = request["intervention_id"]
        if review_id in self.pending or review_id in self.settled:
            return []  # re-emitted after a resume
        if self.closed:
            self.settled[review_id] = "closed"
            return [record_tuple(_system_review(request, "closed", "case already closed", now))]
        self.pending[review_id] = PendingReview(request, now, now + self.expires_seconds)
        return []

    def on_decision(
        self,
        decision: ReviewDecision,
        policy: RecoveryPolicy,
        now: float,
        stores: CapStores | None = None,
    ) -> list[Output]:
        """Apply a reviewer's decision; ignored (but recorded) when it cannot apply.

        A decision for a request that was never issued here (forged, mistyped, or for a
        request still to come) is refused: recorded and dead-lettered, never kept to be
        applied later. ``stores`` (live mode) hold the contacts and credit the caps are
        checked against; without them the earlier contacts and credit count as none.
        """
        rid = decision.review_id
        if rid in self.settled:
            status = self.settled[rid]
            why = (
                "the case closed before the decision"
                if status == "closed"
                else (f"review already {status}")
            )
            return [_review(decision, "ignored", why, now)]
        pending = self.pending.get(rid)
        if pending is None:
            if self.closed:
                return [_review(decision, "ignored", "the case closed before the decision", now)]
            why = "no review request with this review_id was issued for the order"
            self.retain_until = max(self.retain_until, now + self.retention_seconds)
            return [_review(decision, "ignored", why, now), _dead_decision(decision, why, now)]
        if now >= pending.expires_at:
            out = self._settle(rid, pending, "expired", self._expiry_reason(pending), now)
            return [*out, _review(decision, "ignored", "review expired", now, pending.request)]
        if decision.decision == REJECT:
            self._forget(rid, "rejected", now)
            return [_review(decision, "rejected", decision.note or "", now, pending.request)]
        try:
            intervention = approved_intervention(pending.request, decision, policy, now, stores)
        except ValueError as exc:
            # The request stays open: the reviewer can send a corrected decision.
            return [_review(decision, "invalid", str(exc), now, pending.request)]
        self._forget(rid, "approved", now)
        tag, record = _review(decision, "approved", decision.note or "", now, pending.request)
        record["intervention_id"] = intervention["intervention_id"]
        record["action"] = intervention["action"]
        return [("intervention", intervention), (tag, record)]

    def on_close(self, outcome: dict[str, Any], now: float) -> list[Output]:
        """The case closed: open requests are closed without a decision."""
        self.closed = True
        out: list[Output] = []
        reason = f"case closed: {outcome.get('outcome')}"
        for rid, pending in sorted(self.pending.items()):
            out.extend(self._settle(rid, pending, "closed", reason, now))
        self.retain_until = max(self.retain_until, now + self.retention_seconds)
        return out

    def on_time(self, now: float) -> list[Output]:
        """Expire requests whose time is up."""
        out: list[Output] = []
        for rid, pending in sorted(self.pending.items()):
            if now >= pending.expires_at:
                out.extend(self._settle(rid, pending, "expired", self._expiry_reason(pending), now))
        return out

    def _expiry_reason(self, pending: PendingReview) -> str:
        return f"no decision within {(pending.expires_at - pending.raised_at) / 3600:g} h"

    def _forget(self, rid: str, status: str, now: float) -> None:
        del self.pending[rid]
        self.settled[rid] = status
        self.retain_until = max(self.retain_until, now + self.retention_seconds)

    def _settle(
        self, rid: str, pending: PendingReview, status: str, reason: str, now: float
    ) -> list[Output]:
        self._forget(rid, status, now)
        return [record_tuple(_system_review(pending.request, status, reason, now))]

    # --- lifetime --------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """Wall-clock time of the next expiry, or of forgetting this order."""
        times = [p.expires_at for p in self.pending.values()]
        if times:
            return min(times)
        return self.retain_until or None

    def finished(self, now: float) -> bool:
        """Nothing open and the retention of settled requests has passed."""
        return not self.pending and now >= self.retain_until

    def empty(self) -> bool:
        """Nothing was ever raised or decided for this order."""
        return not self.pending and not self.settled and not self.retain_until


def _dead_decision(d: ReviewDecision, reason: str, now: float) -> Output:
    """A dead letter for a decision refused by the book (ids only: no text, no note)."""
    raw = {"review_id": d.review_id, "order_id": d.order_id, "decision": d.decision}
    letter = dead_letter(REVIEW_STREAM, reason, raw, raw, now, "review_id")
    return ("dead_letter", letter.to_record())


def record_tuple(record: dict[str, Any]) -> Output:
    return ("review", record)


def _review(
    d: ReviewDecision,
    status: str,
    reason: str,
    now: float,
    request: dict[str, Any] | None = None,
) -> Output:
    return record_tuple(
        {
            "review_id": d.review_id,
            "order_id": d.order_id,
            "status": status,
            "reason": reason,
            "decision": d.decision,
            "reviewer_id": d.reviewer_id,
            "decided_at": format_ts(d.decided_at),
            "recorded_at": format_ts(now),
            "proposed_action": request.get("proposed_action") if request else None,
            "action": None,
            "intervention_id": None,
            "policy_version": request.get("policy_version") if request else None,
        }
    )


def _system_review(request: dict[str, Any], status: str, reason: str, now: float) -> dict[str, Any]:
    return {
        "review_id": request["intervention_id"],
        "order_id": request["order_id"],
        "status": status,
        "reason": reason,
        "decision": None,
        "reviewer_id": None,
        "decided_at": None,
        "recorded_at": format_ts(now),
        "proposed_action": request.get("proposed_action"),
        "action": None,
        "intervention_id": None,
        "policy_version": request.get("policy_version"),
    }


@dataclass
class CapStores:
    """What the caps of an approval are checked against: the contacts the order had
    (the dispatcher's contact book) and the customer's credit (the credit ledger, where an
    approved credit is reserved)."""

    credit: CreditLedger
    contacts: ContactBook


def approved_intervention(
    request: dict[str, Any],
    d: ReviewDecision,
    policy: RecoveryPolicy,
    now: float,
    stores: CapStores | None = None,
) -> dict[str, Any]:
    """The intervention a reviewer approved: the proposed (or edited) action, within every
    cap of the policy (:func:`operators.caps.check_caps`). An approved credit is reserved
    in ``stores.credit`` under the new intervention id.

    Raises ValueError if the approval cannot be carried out under the policy.
    """
    action = d.action or request.get("proposed_action")
    if not action:
        raise ValueError("approve needs edits.action: the review proposed no action")
    spec = policy.actions.get(action)
    if spec is None or action == REVIEW_ACTION or not spec.customer_facing:
        allowed = sorted(a for a, s in policy.actions.items() if s.customer_facing)
        raise ValueError(f"action {action!r} cannot be approved; expected one of {allowed}")
    currency = request.get("currency")
    offer = request.get("offer")
    if d.credit_amount is not None:
        offer = (
            Offer(round(d.credit_amount, 2), currency).to_record() if d.credit_amount > 0 else None
        )
    elif spec.credit_share <= 0 and action != request.get("proposed_action"):
        offer = None  # the proposed action's credit does not carry over to another action
    message = None
    # Held for quiet hours from the later of the reviewer's time and now.
    at = max(now, d.decided_at)
    if d.message_text is not None or spec.message_template is not None:
        text = d.message_text
        if text is None:
            text = message_text(spec, MessageFields.of_record(request), offer)
        held = policy.quiet_hours.send_after(at) if policy.quiet_hours is not None else None
        message = CustomerMessage(spec.channel, action, text, held)
    credit = offered_credit({"offer": offer})
    customer = request.get("customer_id")
    order_value = request.get("order_value")
    check = CapCheck(
        action=action,
        credit=credit,
        order_value=float(order_value) if isinstance(order_value, (int, float)) else None,
        contacts_before=stores.contacts.count(request["order_id"]) if stores else 0,
        credit_used_30d=(
            stores.credit.used(customer, now) if stores and isinstance(customer, str) else 0.0
        ),
        at=at if message else None,
        send_after=message.send_after if message else None,
        proposed_action=request.get("proposed_action"),
        policy_credit=offered_credit(request),
    )
    broken = check_caps(policy, check)
    if broken:
        raise ValueError("; ".join(broken))
    review_id = request["intervention_id"]
    version = request.get("policy_version") or policy.version
    new_id = intervention_id(request["order_id"], action, review_id, version)
    if credit > 0 and stores is not None and isinstance(customer, str) and customer:
        cap = policy.max_credit_per_customer_30d
        granted = stores.credit.reserve(customer, now, credit, cap, grant_id=new_id)
        if granted < credit:
            # Another process spent the room between the check and the reservation. What
            # was granted stays reserved under this id (a corrected approval re-uses it).
            raise ValueError(
                f"credit {credit:.2f} is over what is left of "
                f"max_credit_per_customer_30d={cap:g} ({granted:.2f})"
            )
    return {
        **request,
        "intervention_id": new_id,
        "action": action,
        "automated": False,
        "proposed_action": None,
        "decided_at": format_ts(d.decided_at),
        "trigger_event_id": request.get("trigger_event_id"),
        "rule": "human_review.approved",
        "reasons": [*request.get("reasons", []), f"approved by reviewer {d.reviewer_id}"],
        "offer": offer,
        "message": message.to_record() if message else None,
        "review_expires_at": None,
        "review_id": review_id,
        "reviewer_id": d.reviewer_id,
    }


def wall_now() -> float:
    """The current wall-clock time in epoch seconds (UTC)."""
    return datetime.now(UTC).timestamp()


__all__ = [
    "APPROVE",
    "DEFAULT_MAX_MESSAGE_CHARS",
    "DEFAULT_SIGNATURE_MAX_AGE_SECONDS",
    "REJECT",
    "REVIEW_ACTION",
    "REVIEW_STREAM",
    "CapStores",
    "PendingReview",
    "ReviewAuth",
    "ReviewBook",
    "ReviewDecision",
    "approved_intervention",
    "check_message_text",
    "parse_decision",
    "record_tuple",
    "sign_decision",
    "wall_now",
]
