"""The support stream of one simulated order: helpdesk tickets and messages, "where is my
order" contacts that grow likelier and angrier as the parcel slips, everyday contacts that
lead nowhere, and contacts stamped before the order (clock skew between systems)."""

from __future__ import annotations

import random
from typing import Any

from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter
from operators.simulation.order import SUPPORT, OrderDraft, StreamModel, clip
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.world import CustomerPool, cumulative, pick_index

_CHANNELS = ("email", "chat", "phone", "social")
_CHANNEL_CUM = cumulative((0.45, 0.35, 0.12, 0.08))
_NOISE_INTENTS = (
    "product_question",
    "return_request",
    "size_fit",
    "delivery_problem",
    "other",
    "refund_request",
    "cancel_request",
)
_NOISE_INTENT_CUM = cumulative((0.45, 0.12, 0.08, 0.08, 0.17, 0.04, 0.06))


class SupportModel(StreamModel):
    """Queues an order's helpdesk contacts on the support stream."""

    def __init__(
        self,
        params: ScenarioParams,
        rng: random.Random,
        fmt: TimestampFormatter,
        customers: CustomerPool,
    ) -> None:
        super().__init__(params, rng, fmt)
        self.customers = customers
        self.early_signals = 0

    def ticket(
        self,
        o: OrderDraft,
        ts: int,
        intent: str,
        sentiment: float,
        close_by: int | None = None,
        *,
        follow_up: float = 0.4,
        resolve: float = 0.85,
    ) -> int:
        """Queue a ticket (opened, maybe a message, maybe resolved); return its open time."""
        rnd = self.rnd
        omit = self.p.optional_omit_rate
        o.tickets += 1
        ticket_id = f"T{o.idx + 1:07d}-{o.tickets}"
        sentiment = clip(sentiment, -1.0, 1.0)
        body: dict[str, Any] = {
            "type": "ticket_opened",
            "order_id": o.order_id,
            "ticket_id": ticket_id,
            "intent": intent,
        }
        if rnd() > omit:
            body["channel"] = _CHANNELS[pick_index(_CHANNEL_CUM, rnd())]
        if rnd() > 2.5 * omit:
            body["sentiment"] = round(sentiment, 2)
        o.add(SUPPORT, ts, body)
        last = ts
        if rnd() < follow_up:
            last = ts + int(20 * MINUTE + rnd() * 20 * HOUR)
            message: dict[str, Any] = {
                "type": "customer_message",
                "order_id": o.order_id,
                "ticket_id": ticket_id,
            }
            if rnd() < 0.6:
                message["intent"] = intent
            if rnd() > 2.5 * omit:
                later = sentiment - 0.15 + self.rng.gauss(0.0, 0.15)
                message["sentiment"] = round(clip(later, -1.0, 1.0), 2)
            o.add(SUPPORT, last, message)
        if rnd() < resolve:
            done = last + int(HOUR + rnd() * 30 * HOUR)
            if close_by is not None and done >= close_by:
                # Agents wrap the ticket up just before the case-closing event.
                done = close_by - int(MINUTE * (1 + 29 * rnd()))
            if done > last:
                o.add(
                    SUPPORT,
                    done,
                    {"type": "ticket_resolved", "order_id": o.order_id, "ticket_id": ticket_id},
                )
        return ts

    def wismo(self, o: OrderDraft) -> None:
        """'Where is my order' contacts: likelier and angrier the longer the parcel slips."""
        rnd = self.rnd
        rng = self.rng
        temper = self.customers.temper[o.customer]
        delayed = o.slip > 0.5 or o.undeliverable is not None
        if delayed:
            lost_penalty = 1.2 if o.undeliverable else 0.0
            o.frustration = (
                0.35 * min(max(o.slip, 0.0), 10.0) + lost_penalty - temper + rng.gauss(0.0, 0.45)
            )
            p = 0.85 if o.undeliverable else min(0.9, 0.12 + 0.11 * o.slip + 0.1 * o.frustration)
        else:
            p = self.p.wismo_base_rate
        if rnd() >= p:
            return
        deadline = (o.delivered or o.terminal or o.promised) - HOUR
        if delayed:
            anchor = max(o.promised - DAY // 2, (o.first_delay or o.in_transit) + HOUR)
            ts = anchor + int(rng.expovariate(1 / (12 * HOUR)))
            if ts >= deadline:
                if deadline <= anchor:
                    return
                ts = anchor + int((deadline - anchor) * rnd())
            sentiment = 0.25 - 0.4 * o.frustration + rng.gauss(0.0, 0.25)
        else:
            if deadline <= o.in_transit:
                return
            ts = o.in_transit + int((deadline - o.in_transit) * rnd())
            sentiment = rng.gauss(0.05, 0.3)
        intent = "where_is_my_order" if rnd() < 0.85 else "delivery_problem"
        o.wismo_ts = self.ticket(o, ts, intent, sentiment)
        o.wismo_sentiment = clip(sentiment, -1.0, 1.0)

    def noise_ticket(self, o: OrderDraft) -> None:
        """Everyday contacts that do not lead to a refund (keeps tickets from being a tell)."""
        rnd = self.rnd
        if rnd() >= self.p.noise_ticket_rate:
            return
        end = (o.delivered or o.terminal or o.t0 + 2 * DAY) + 10 * DAY
        if o.close_ts is not None:
            end = min(end, o.close_ts - HOUR)
        if end <= o.t0 + HOUR:
            return
        ts = o.t0 + HOUR + int((end - o.t0 - HOUR) * rnd())
        intent = _NOISE_INTENTS[pick_index(_NOISE_INTENT_CUM, rnd())]
        self.ticket(o, ts, intent, self.rng.gauss(0.15, 0.35), o.close_ts, follow_up=0.25)

    def early_signal(self, o: OrderDraft) -> None:
        """A helpdesk contact stamped before ``order_placed`` (checkout and helpdesk clocks)."""
        ts = o.t0 - int(MINUTE + self.rnd() * 14 * MINUTE)
        intent = "product_question" if self.rnd() < 0.7 else "other"
        self.ticket(o, ts, intent, self.rng.gauss(0.1, 0.3), o.close_ts, follow_up=0.0)
        self.early_signals += 1
