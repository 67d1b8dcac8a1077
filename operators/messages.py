"""Customer message text: an action's template rendered with a case's non-identifying fields.

Both the engine (from the live case) and an approved human review (from the review request
record) render through here, from the same :class:`MessageFields`.

>>> fields = MessageFields("o-1", sku_family="makeup", currency="EUR")
>>> render_message("Your {sku_family} order {order_id}: {credit}", fields, None)
'Your makeup order o-1: '
>>> render_message("{credit}", fields, {"amount": 5, "currency": "EUR"})
'5.00 EUR'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from operators.contract import format_ts, parse_ts

if TYPE_CHECKING:
    from operators.case import OrderCase
    from operators.policy import ActionSpec


@dataclass(frozen=True, slots=True)
class MessageFields:
    """What a message template may use. Only non-identifying fields (no name, email or
    address: the messaging system adds those from its own customer record)."""

    order_id: str
    sku_family: str | None = None
    currency: str | None = None
    estimated_delivery_at: float | None = None

    @classmethod
    def of_case(cls, case: OrderCase) -> MessageFields:
        return cls(
            case.order_id,
            sku_family=case.sku_family,
            currency=case.currency,
            estimated_delivery_at=case.estimate_at or case.promised_at,
        )

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> MessageFields:
        """From an intervention record (a human-review request)."""
        eta = record.get("estimated_delivery_at")
        return cls(
            record["order_id"],
            sku_family=record.get("sku_family"),
            currency=record.get("currency"),
            estimated_delivery_at=parse_ts(eta, "estimated_delivery_at") if eta else None,
        )


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # an unknown placeholder stays as written


def message_text(spec: ActionSpec, fields: MessageFields, offer: dict[str, Any] | None) -> str:
    """An action's message: its template, plus its credit sentence when the intervention
    offers credit."""
    template = spec.message_template or ""
    if offer and spec.message_credit_template:
        template = f"{template} {spec.message_credit_template}"
    return render_message(template, fields, offer)


def render_message(template: str, fields: MessageFields, offer: dict[str, Any] | None) -> str:
    """Render an action's message template with the fields."""
    eta = fields.estimated_delivery_at
    values = _Fields(
        order_id=fields.order_id,
        sku_family=fields.sku_family or "",
        estimated_delivery=format_ts(eta)[:10] if eta else "",
        credit=f"{offer['amount']:.2f} {offer['currency']}" if offer else "",
        currency=fields.currency or "",
    )
    return template.format_map(values)


__all__ = ["MessageFields", "message_text", "render_message"]
