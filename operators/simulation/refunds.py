"""The refunds stream of one simulated order: whether (and why) the customer asks for money
back in the world without interventions (late or lost parcel, a product return, a serial
refunder's claim), and how the request plays out (refund, return, exchange, withdrawal,
chargeback)."""

from __future__ import annotations

import math
import random
from typing import Any

from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter
from operators.simulation.order import REFUNDS, OrderDraft, RefundCase, StreamModel, sigmoid
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.support import SupportModel
from operators.simulation.world import Catalog, CustomerPool, cumulative, pick_index
from operators.vocabulary import Outcome

_ABUSE_REASONS = ("damaged", "not_as_described", "other", "wrong_item")
_ABUSE_REASON_CUM = cumulative((0.3, 0.25, 0.25, 0.2))
_TICKET_INTENT = {
    "size_fit": "size_fit",
    "damaged": "damaged_item",
    "wrong_item": "wrong_item",
    "not_as_described": "not_as_described",
    "changed_mind": "return_request",
    "other": "other",
}
_WITHDRAW = {
    "size_fit": 0.08,
    "not_as_described": 0.12,
    "damaged": 0.03,
    "wrong_item": 0.03,
    "changed_mind": 0.16,
    "other": 0.1,
}


class RefundModel(StreamModel):
    """Decides an order's refund case and queues its requests on the refunds stream (and the
    tickets that come with them on the support stream)."""

    def __init__(
        self,
        params: ScenarioParams,
        rng: random.Random,
        fmt: TimestampFormatter,
        catalog: Catalog,
        customers: CustomerPool,
        support: SupportModel,
    ) -> None:
        super().__init__(params, rng, fmt)
        self.catalog = catalog
        self.customers = customers
        self.support = support

    def case(self, o: OrderDraft) -> RefundCase | None:
        """Decide whether (and why) the customer asks for money back, and play it out."""
        rnd = self.rnd
        pool = self.customers
        c = o.customer
        mult = pool.multiplier[c]
        if pool.abusive[c] and o.delivered is not None and rnd() < self.p.abusive_claim_rate:
            case = self._abuse_case(o)
        elif o.undeliverable is not None:
            case = self._undeliverable_case(o)
        elif o.slip > 0.5 and self._late_intent(o, mult):
            case = self._late_case(o)
        elif o.delivered is not None and rnd() < self._return_probability(o, mult):
            case = self._product_case(o)
        else:
            return None
        return case

    def _late_intent(self, o: OrderDraft, mult: float) -> bool:
        """Late parcels: frustrated customers with a refund habit ask for their money."""
        angry = o.wismo_sentiment is not None and o.wismo_sentiment < -0.4
        logit = (
            self.p.late_intent_bias
            + 1.0 * o.frustration
            + 0.7 * math.log(mult)
            + (0.9 if angry else 0.0)
            + self.rng.gauss(0.0, 0.5)
        )
        return self.rnd() < sigmoid(logit)

    def _return_probability(self, o: OrderDraft, mult: float) -> float:
        """Hazard of a product return: family rate x customer habit x campaign x basket."""
        fam = self.catalog.families[o.main_family]
        p = fam.return_rate * self.p.return_rate_scale * mult
        p *= self.p.campaigns[o.campaign].return_multiplier
        p *= 1.0 + 0.12 * (len(o.items) - 1)
        if o.damaged_in_transit:
            p *= 1.8
        if o.slip > 0.5:
            p *= 1.1
        return min(p, 0.85)

    def _request(
        self,
        o: OrderDraft,
        ts: int,
        kind: str,
        request_id: str,
        reason: str | None,
        skus: list[str] | None = None,
        amount: float | None = None,
    ) -> None:
        """Queue a customer request on the refunds stream."""
        rnd = self.rnd
        omit = self.p.optional_omit_rate
        body: dict[str, Any] = {"type": kind, "order_id": o.order_id}
        if rnd() > omit * 0.5:
            body["request_id"] = request_id
        if reason is not None and rnd() > omit:
            body["reason"] = reason
        if skus and rnd() > omit:
            body["skus"] = skus
        if amount is not None and rnd() < 0.5:
            body["amount"] = amount
        o.add(REFUNDS, ts, body)

    def _resolution(
        self, o: OrderDraft, ts: int, kind: str, request_id: str, amount: float | None = None
    ) -> None:
        """Queue the merchant's side of a request (issued, received, completed, withdrawn)."""
        body: dict[str, Any] = {"type": kind, "order_id": o.order_id, "request_id": request_id}
        if amount is not None:
            body["amount"] = amount
        o.add(REFUNDS, ts, body)

    def _refund_flow(
        self,
        o: OrderDraft,
        req_ts: int,
        kind: str,
        request_id: str,
        amount: float,
        earliest: int | None = None,
    ) -> int:
        """Play out a refund (through a physical return if ``kind`` is a return); close time."""
        rnd = self.rnd
        if kind == "return_requested":
            received = req_ts + int(DAY * (2 + 5 * rnd()))
            self._resolution(o, received, "return_received", request_id)
            issued = received + int(DAY * (0.5 + 2 * rnd()))
        else:
            issued = req_ts + int(HOUR * (6 + 60 * rnd()))
        if earliest is not None:
            issued = max(issued, earliest)
        self._resolution(o, issued, "refund_issued", request_id, amount)
        return issued

    def _late_case(self, o: OrderDraft) -> RefundCase:
        """Refund for late delivery, asked while in transit or right after the late arrival."""
        rnd = self.rnd
        delivered = o.delivered
        assert delivered is not None
        request_id = f"R{o.idx + 1:07d}-1"
        req_ts = None
        if o.wismo_ts is not None and rnd() < 0.6:
            candidate = o.wismo_ts + int(HOUR * (1 + 23 * rnd()))
            if candidate < delivered - HOUR:
                req_ts = candidate
        if req_ts is not None:
            kind = "refund_requested"
        else:
            req_ts = delivered + int(HOUR * (1 + 71 * rnd()))
            kind = "return_requested" if rnd() < 0.55 else "refund_requested"
        self._request(o, req_ts, kind, request_id, "late_delivery", amount=o.total)
        after = max(req_ts, delivered)
        if o.frustration > 2.5 and rnd() < 3 * self.p.chargeback_rate:
            o.close_ts = after + int(DAY * (2 + 8 * rnd()))
            self._resolution(o, o.close_ts, "chargeback_opened", request_id)
            outcome, refund = Outcome.CHARGEBACK.value, o.total
        elif rnd() < 0.18:
            o.close_ts = after + int(HOUR * (1 + 35 * rnd()))
            self._resolution(o, o.close_ts, "request_withdrawn", request_id)
            outcome, refund = Outcome.KEPT.value, 0.0
        else:
            earliest = delivered + int(HOUR * (1 + 23 * rnd()))
            o.close_ts = self._refund_flow(o, req_ts, kind, request_id, o.total, earliest)
            outcome, refund = Outcome.REFUNDED.value, o.total
        signals = [req_ts, o.first_delay, o.wismo_ts]
        return RefundCase(
            "late_delivery",
            "late_delivery",
            req_ts,
            min(s for s in signals if s is not None),
            outcome,
            refund,
        )

    def _undeliverable_case(self, o: OrderDraft) -> RefundCase:
        """Lost or returned-to-sender parcels: the customer asks for a refund."""
        rnd = self.rnd
        terminal = o.terminal
        assert terminal is not None
        request_id = f"R{o.idx + 1:07d}-1"
        reason = "late_delivery" if o.undeliverable == "lost" else "other"
        req_ts = terminal + int(HOUR * (1 + 47 * rnd()))
        self._request(o, req_ts, "refund_requested", request_id, reason, amount=o.total)
        if rnd() < self.p.chargeback_rate:
            o.close_ts = req_ts + int(DAY * (3 + 7 * rnd()))
            self._resolution(o, o.close_ts, "chargeback_opened", request_id)
            outcome = Outcome.CHARGEBACK.value
        else:
            o.close_ts = self._refund_flow(o, req_ts, "refund_requested", request_id, o.total)
            outcome = Outcome.REFUNDED.value
        signals = [req_ts, terminal, o.first_delay, o.wismo_ts]
        return RefundCase(
            "undeliverable",
            reason,
            req_ts,
            min(s for s in signals if s is not None),
            outcome,
            o.total,
        )

    def _product_case(self, o: OrderDraft) -> RefundCase:
        """A return of the main family's items for the family's typical reasons."""
        rnd = self.rnd
        rng = self.rng
        delivered = o.delivered
        assert delivered is not None
        cat = self.catalog
        fam = o.main_family
        reason = cat.reason_names[fam][pick_index(cat.reason_cum[fam], rnd())]
        if o.damaged_in_transit and rnd() < 0.6:
            reason = "damaged"
        lines = [(sku, qty) for sku, qty in o.items if sku.family == fam]
        skus = [sku.sku for sku, _ in lines]
        amount = round(sum(sku.price * qty for sku, qty in lines), 2)
        request_id = f"R{o.idx + 1:07d}-1"
        delay = min(6 * HOUR + int(rng.expovariate(1 / (4 * DAY))), 19 * DAY)
        req_ts = delivered + delay
        signal = req_ts
        if rnd() < 0.45:
            intent = _TICKET_INTENT[reason]
            if reason == "not_as_described" and rnd() < 0.4:
                intent = "product_question"
            earliest = delivered + 30 * MINUTE
            ts = max(earliest, req_ts - int(HOUR * (2 + 46 * rnd())))
            if ts < req_ts:
                mood = 0.1 if intent == "product_question" else -0.25
                signal = self.support.ticket(
                    o, ts, intent, mood + rng.gauss(0.0, 0.3), follow_up=0.3
                )
        u = rnd()
        if reason == "size_fit":
            kind = "exchange_requested" if u < 0.3 else "return_requested"
        elif reason in ("damaged", "wrong_item"):
            kind = (
                "exchange_requested"
                if u < 0.25
                else "refund_requested"
                if u < 0.6
                else "return_requested"
            )
        else:
            kind = "return_requested" if u < 0.85 else "refund_requested"
        self._request(
            o,
            req_ts,
            kind,
            request_id,
            reason,
            skus,
            amount if kind == "refund_requested" else None,
        )
        if rnd() < _WITHDRAW[reason]:
            o.close_ts = req_ts + int(HOUR * (2 + 46 * rnd()))
            self._resolution(o, o.close_ts, "request_withdrawn", request_id)
            outcome, refund = Outcome.KEPT.value, 0.0
        elif kind == "exchange_requested":
            received = req_ts + int(DAY * (2 + 4 * rnd()))
            self._resolution(o, received, "return_received", request_id)
            o.close_ts = received + int(DAY * (1 + 2 * rnd()))
            self._resolution(o, o.close_ts, "exchange_completed", request_id)
            outcome, refund = Outcome.EXCHANGED.value, 0.0
        else:
            o.close_ts = self._refund_flow(o, req_ts, kind, request_id, amount)
            outcome, refund = Outcome.REFUNDED.value, amount
        return RefundCase(reason, reason, req_ts, signal, outcome, refund)

    def _abuse_case(self, o: OrderDraft) -> RefundCase:
        """A serial refunder claims after delivery was confirmed, sometimes via chargeback."""
        rnd = self.rnd
        delivered = o.delivered
        assert delivered is not None
        reason = _ABUSE_REASONS[pick_index(_ABUSE_REASON_CUM, rnd())]
        request_id = f"R{o.idx + 1:07d}-1"
        req_ts = delivered + int(HOUR * (6 + 138 * rnd()))
        signal = req_ts
        if rnd() < 0.5:
            intent = "refund_request" if reason == "other" else _TICKET_INTENT[reason]
            ts = max(delivered + 30 * MINUTE, req_ts - int(HOUR * (1 + 23 * rnd())))
            if ts < req_ts:
                signal = self.support.ticket(
                    o, ts, intent, self.rng.gauss(-0.45, 0.3), follow_up=0.5
                )
        skus = [sku.sku for sku, _ in o.items]
        self._request(o, req_ts, "refund_requested", request_id, reason, skus, o.total)
        u = rnd()
        if u < 0.25:
            o.close_ts = req_ts + int(DAY * (4 + 10 * rnd()))
            self._resolution(o, o.close_ts, "chargeback_opened", request_id)
            outcome = Outcome.CHARGEBACK.value
        elif u < 0.3:
            o.close_ts = req_ts + int(HOUR * (2 + 46 * rnd()))
            self._resolution(o, o.close_ts, "request_withdrawn", request_id)
            return RefundCase("abuse", reason, req_ts, signal, Outcome.KEPT.value, 0.0)
        else:
            o.close_ts = self._refund_flow(o, req_ts, "refund_requested", request_id, o.total)
            outcome = Outcome.REFUNDED.value
        return RefundCase("abuse", reason, req_ts, signal, outcome, o.total)
