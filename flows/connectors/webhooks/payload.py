"""What a webhook request carries, and the dead letter of a delivery that failed for good."""

from __future__ import annotations

from typing import Any

import orjson

from operators.contract import CONTRACT_VERSION, format_ts, payload_digest, redact
from operators.vocabulary import DeadLetterKind

DISPATCH_STREAM = "dispatch"


def message_text(intervention: dict[str, Any]) -> str:
    """A one-line text for chat-style receivers (Slack-style incoming webhooks read
    ``text``). Customer messages use the rendered template; review requests a summary.

    >>> message_text({"action": "human_review", "order_id": "o1",
    ...               "proposed_action": "exchange_first_offer", "reasons": ["P(refund)=0.6"],
    ...               "review_expires_at": "2026-06-03T10:00:00Z"})
    'Review order o1: proposed exchange_first_offer (P(refund)=0.6); decide by 2026-06-03T10:00:00Z'
    """
    message = intervention.get("message")
    if isinstance(message, dict) and message.get("text"):
        return str(message["text"])
    proposed = intervention.get("proposed_action") or "no action"
    reasons = "; ".join(str(r) for r in intervention.get("reasons") or [])
    text = f"Review order {intervention.get('order_id')}: proposed {proposed}"
    if reasons:
        text += f" ({reasons})"
    if intervention.get("review_expires_at"):
        text += f"; decide by {intervention['review_expires_at']}"
    return text


def webhook_body(intervention: dict[str, Any]) -> bytes:
    """The JSON body POSTed for an intervention."""
    message = intervention.get("message") or {}
    return orjson.dumps(
        {
            "type": "intervention",
            "contract_version": CONTRACT_VERSION,
            "intervention_id": intervention["intervention_id"],
            "order_id": intervention.get("order_id"),
            "action": intervention.get("action"),
            "automated": intervention.get("automated"),
            "text": message_text(intervention),
            "send_after": message.get("send_after") if isinstance(message, dict) else None,
            "intervention": intervention,
        }
    )


def dead_letter_record(
    intervention: dict[str, Any], endpoint: str, reason: str, now: float
) -> dict[str, Any]:
    """The dead-letter record of a delivery that failed for good: ids, action and times of
    the intervention, not its message text or customer fields."""
    return {
        "stream": DISPATCH_STREAM,
        "kind": str(DeadLetterKind.DISPATCH_FAILED),
        "reason": f"webhook {endpoint}: {reason}",
        "raw": redact(intervention),
        "payload_sha256": payload_digest(intervention),
        "received_at": format_ts(now),
        "event_id": intervention.get("intervention_id"),
        "order_id": intervention.get("order_id"),
    }
