"""Per-order generative model: the no-intervention history plus counterfactual outcomes.

For every order the model simulates the world without interventions (the events written to
the stream files). Causality runs one way: latent customer traits and courier slippage drive
the visible signals (delays, tickets, sentiment, requests), and the same latents drive the
refund decision, so the signals predict refunds without giving them away.

What each action would have led to (the ground truth) is not decided here but by a
:class:`~operators.simulation.response.World` drawn from its own prior, with draws from a
separate generator: the history of a seed is the same in every world, except where a world
twist changes it (a new campaign that returns more).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operators.actions import action_names
from operators.contract import STREAMS
from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter, parse_timestamp
from operators.simulation.response import Facts, Latents, World, customer_tier
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.world import Catalog, CustomerPool, Sku, cumulative, pick_index
from operators.vocabulary import Outcome

ORDERS, DELIVERY, SUPPORT, REFUNDS = range(4)
STREAM_NAMES: tuple[str, ...] = STREAMS


def ground_truth_arms() -> tuple[str, ...]:
    """What the ground truth has an outcome under: no action, refunding every request, and
    each registered action (``scenario.json`` lists them)."""
    return ("none", "blanket_refund", *action_names())


Emit = Callable[[int, int, dict[str, Any]], None]

_CHANNELS = ("email", "chat", "phone", "social")
_CHANNEL_CUM = cumulative((0.45, 0.35, 0.12, 0.08))
_EXCEPTIONS = ("address_issue", "customs_hold", "damaged_in_transit", "weather", "capacity_backlog")
_EXCEPTION_CUM = cumulative((0.35, 0.15, 0.2, 0.15, 0.15))
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


def _clip(x: float, lo: float, hi: float) -> float:
    """Clamp ``x`` into ``[lo, hi]``."""
    return lo if x < lo else hi if x > hi else x


def _sigmoid(x: float) -> float:
    """Logistic function."""
    return 1.0 / (1.0 + math.exp(-x))


def _day_start(ts: int) -> int:
    """Midnight UTC of the day containing ``ts``."""
    return ts - ts % DAY


@dataclass(slots=True)
class _Order:
    """Scratch state of the order being generated."""

    idx: int
    order_id: str
    t0: int
    customer: int
    orders_count: int
    returns_count: int
    events: list[tuple[int, int, int, dict[str, Any]]] = field(default_factory=list)
    items: list[tuple[Sku, int]] = field(default_factory=list)
    total: float = 0.0
    cost: float = 0.0
    main_family: int = 0
    main_value: float = 0.0
    lane: int = 0
    campaign: int = 0
    promised: int = 0
    in_transit: int = 0
    delivered: int | None = None
    terminal: int | None = None
    undeliverable: str | None = None
    slip: float = 0.0
    first_delay: int | None = None
    damaged_in_transit: bool = False
    frustration: float = 0.0
    wismo_ts: int | None = None
    wismo_sentiment: float | None = None
    tickets: int = 0
    close_ts: int | None = None
    cancelled: bool = False


@dataclass(slots=True)
class _Case:
    """The refund/return case of an at-risk order in the no-intervention world."""

    driver: str
    reason: str
    request_ts: int
    signal_ts: int
    outcome: str
    refund: float


class OrderModel:
    """Generates one order at a time; call :meth:`generate` in placement-time order."""

    def __init__(
        self,
        params: ScenarioParams,
        catalog: Catalog,
        customers: CustomerPool,
        rng: random.Random,
        fmt: TimestampFormatter,
        world: World,
        response_rng: random.Random,
    ) -> None:
        self.p = params
        self.world = world
        self.response_rng = response_rng
        self.catalog = catalog
        self.customers = customers
        self.rng = rng
        self.rnd = rng.random
        self.fmt = fmt
        self.lane_cum = cumulative([lane.weight for lane in params.lanes])
        self.campaign_cum = cumulative([c.weight for c in params.campaigns])
        self.sim_orders = [0] * customers.size
        self.sim_value = [0.0] * customers.size
        self.sim_refunds: dict[int, list[int]] = {}
        backlog = params.backlog
        self.backlog_lanes = frozenset(
            i for i, lane in enumerate(params.lanes) if backlog and lane.key in backlog.lanes
        )
        self.start = _day_start(parse_timestamp(params.start))
        self.early_signals = 0

    # ------------------------------------------------------------------ public
    def generate(self, idx: int, t0: int, emit: Emit) -> dict[str, Any]:
        """Simulate order ``idx`` placed at ``t0``; emit its events and return ground truth."""
        o = self._new_order(idx, t0)
        self._place(o)
        if self.rnd() < self.p.cancel_rate:
            self._cancel(o)
            self._flush(o, emit)
            return self._truth(o, None)
        self._ship(o)
        self._wismo(o)
        case = self._case(o)
        self._noise_ticket(o)
        if self.rnd() < self.p.early_signal_rate:
            self._early_signal(o)
        if case is not None and case.outcome in (Outcome.REFUNDED, Outcome.CHARGEBACK):
            self.sim_refunds.setdefault(o.customer, []).append(o.close_ts or t0)
        self._flush(o, emit)
        return self._truth(o, case)

    # ------------------------------------------------------------- placement
    def _new_order(self, idx: int, t0: int) -> _Order:
        """Pick the customer and snapshot their history as of ``t0``."""
        rnd = self.rnd
        pool = self.customers
        if rnd() < self.p.loyal_order_share:
            c = int(rnd() * pool.loyal_size)
        else:
            c = int(rnd() * pool.size)
        refunds = self.sim_refunds.get(c)
        done = sum(1 for ts in refunds if ts <= t0) if refunds else 0
        return _Order(
            idx=idx,
            order_id=f"{self.p.order_prefix}-{idx + 1:07d}",
            t0=t0,
            customer=c,
            orders_count=pool.prior_orders[c] + self.sim_orders[c],
            returns_count=pool.prior_returns[c] + done,
        )

    def _add(self, o: _Order, stream: int, ts: int, body: dict[str, Any]) -> None:
        """Queue an event of order ``o``; ids and timestamps are stamped in :meth:`_flush`."""
        o.events.append((ts, len(o.events), stream, body))

    def _place(self, o: _Order) -> None:
        """Draw basket, lane, campaign and promise, and queue ``order_placed``."""
        rnd = self.rnd
        cat = self.catalog
        n_items = 1 + (rnd() < 0.38) + (rnd() < 0.14) + (rnd() < 0.04)
        first = pick_index(cat.family_cum, rnd())
        chosen: dict[str, list[Any]] = {}
        for _ in range(n_items):
            fam = first if rnd() < 0.55 else pick_index(cat.family_cum, rnd())
            skus = cat.skus[fam]
            sku = skus[int(rnd() * len(skus))]
            qty = 1 if rnd() < 0.86 else 2 if rnd() < 0.8 else 3
            if sku.sku in chosen:
                chosen[sku.sku][1] += qty
            else:
                chosen[sku.sku] = [sku, qty]
        family_value: dict[int, float] = {}
        total = cost = 0.0
        items = []
        for sku, qty in chosen.values():
            o.items.append((sku, qty))
            total += sku.price * qty
            cost += sku.cost * qty
            family_value[sku.family] = family_value.get(sku.family, 0.0) + sku.price * qty
            item: dict[str, Any] = {
                "sku": sku.sku,
                "sku_family": cat.families[sku.family].name,
                "quantity": qty,
                "unit_price": sku.price,
            }
            if rnd() > 0.05:
                item["unit_cost"] = sku.cost
            items.append(item)
        o.total = round(total, 2)
        o.cost = round(cost, 2)
        # Main family by value; ties go to the alphabetically first family name.
        names = self.catalog.families
        o.main_family = max(
            sorted(family_value, key=lambda f: names[f].name), key=family_value.__getitem__
        )
        o.main_value = round(family_value[o.main_family], 2)
        o.lane = pick_index(self.lane_cum, rnd())
        o.campaign = pick_index(self.campaign_cum, rnd())
        lane = self.p.lanes[o.lane]
        # Promise: dispatch next day, then the lane's transit days, by 20:00 UTC.
        o.promised = _day_start(o.t0) + (1 + lane.transit_days) * DAY + 20 * HOUR

        pool = self.customers
        c = o.customer
        body: dict[str, Any] = {
            "type": "order_placed",
            "order_id": o.order_id,
            "customer_id": f"C{c + 1:07d}",
            "currency": self.p.currency,
            "total": o.total,
            "items": items,
            "campaign": self.p.campaigns[o.campaign].name,
        }
        omit = self.p.optional_omit_rate
        if rnd() > omit:
            body["promised_delivery_at"] = self.fmt(o.promised)
        if rnd() > omit * 0.5:
            body["courier"] = lane.courier
        if rnd() > omit:
            body["lane"] = lane.key
        if rnd() > self.p.history_omit_rate:
            body["customer"] = {
                "orders_count": o.orders_count,
                "returns_count": o.returns_count,
                "lifetime_value": round(pool.prior_value[c] + self.sim_value[c], 2),
            }
        self._add(o, ORDERS, o.t0, body)
        self.sim_orders[c] += 1
        self.sim_value[c] += o.total

    def _cancel(self, o: _Order) -> None:
        """Cancel before dispatch, sometimes after a cancel-request ticket."""
        rnd = self.rnd
        ts = o.t0 + int(10 * MINUTE + rnd() * 11 * HOUR)
        if rnd() < 0.4:
            opened = max(o.t0 + MINUTE, ts - int(rnd() * 2 * HOUR))
            self._ticket(o, opened, "cancel_request", self.rng.gauss(-0.1, 0.3), ts)
        self._add(o, ORDERS, ts, {"type": "order_cancelled", "order_id": o.order_id})
        o.close_ts = ts
        o.cancelled = True

    # ------------------------------------------------------------- delivery
    def _backlog_intensity(self, o: _Order) -> float:
        """How hard the backlog hits this order's lane on its placement day (0 = not at all)."""
        backlog = self.p.backlog
        if backlog is None or o.lane not in self.backlog_lanes:
            return 0.0
        day = (o.t0 - self.start) // DAY
        curve = backlog.intensity_by_day
        return curve[min(max(day, 0), len(curve) - 1)]

    def _delivery_event(self, o: _Order, ts: int, kind: str, **extra: Any) -> None:
        """Queue a delivery event with the optional shipment/courier/lane fields."""
        rnd = self.rnd
        lane = self.p.lanes[o.lane]
        omit = self.p.optional_omit_rate
        body: dict[str, Any] = {"type": kind, "order_id": o.order_id}
        if rnd() > omit:
            body["shipment_id"] = f"{lane.courier.upper()}{o.idx + 1:09d}"
        if rnd() > omit * 0.5:
            body["courier"] = lane.courier
        if rnd() > omit:
            body["lane"] = lane.key
        body.update(extra)
        self._add(o, DELIVERY, ts, body)

    def _ship(self, o: _Order) -> None:
        """Simulate the parcel: dispatch, slippage, exceptions and the final scan."""
        rnd = self.rnd
        rng = self.rng
        lane = self.p.lanes[o.lane]
        backlog = self.p.backlog
        intensity = self._backlog_intensity(o)
        shipped = o.t0 + min(int(HOUR * (2.0 + rng.expovariate(1 / 10))), 3 * DAY)
        o.in_transit = in_transit = shipped + int(HOUR * (2 + 8 * rnd()))
        self._delivery_event(o, shipped, "shipped")
        self._delivery_event(o, in_transit, "in_transit")

        if intensity > 0 and backlog is not None and rnd() < backlog.delay_prob:
            slip = 0.6 + rng.gammavariate(2.0, backlog.slip_mean_days / 2) * intensity
        elif rnd() < lane.delay_prob:
            slip = 0.6 + rng.expovariate(1 / lane.delay_mean_days)
        else:
            slip = -1.0 if rnd() < 0.15 else 0.0  # on the promised day, sometimes a day early
        extra_exc = backlog.extra_exception_rate * intensity if backlog else 0.0
        extra_lost = backlog.extra_lost_rate * intensity if backlog else 0.0
        exception = None
        if rnd() < lane.exception_rate + extra_exc:
            if intensity > 0 and rnd() < 0.7:
                exception = "capacity_backlog"
            else:
                exception = _EXCEPTIONS[pick_index(_EXCEPTION_CUM, rnd())]
            o.damaged_in_transit = exception == "damaged_in_transit"
            slip += 0.5 + 1.5 * rnd()
        lost = rnd() < lane.lost_rate + extra_lost
        failed = not lost and rnd() < lane.failed_attempt_rate
        if failed:
            slip += 1.0
        rts = failed and rnd() < 0.12

        # Final scan during delivery hours (08-19h) on the slipped day.
        target = (o.promised - 20 * HOUR if slip <= 0 else o.promised) + int(slip * DAY)
        delivered = _day_start(target) + int(HOUR * (8 + 11 * rnd()))
        while delivered < in_transit + 6 * HOUR:
            delivered += DAY
        o.slip = slip = (delivered - o.promised) / DAY
        van = int(HOUR * (0.5 + 3.5 * rnd()))  # time on the van before the final scan
        out_for_delivery = max(delivered - van, in_transit + 15 * MINUTE)
        horizon = out_for_delivery
        if lost:
            o.undeliverable = "lost"
            o.terminal = o.promised + int(DAY * (3 + 6 * rnd()))
            horizon = min(horizon, o.terminal - HOUR)

        if slip > 0.5 or lost:
            self._delays(o, in_transit, out_for_delivery, delivered, slip, lost)
        if exception is not None:
            ts = in_transit + int((horizon - in_transit) * (0.1 + 0.5 * rnd()))
            extra: dict[str, Any] = {"exception_code": exception}
            if rnd() < 0.5 and slip > 0.5 and not lost:
                extra["estimated_delivery_at"] = self.fmt(_day_start(delivered) + 20 * HOUR)
            self._delivery_event(o, ts, "exception", **extra)
            o.first_delay = ts if o.first_delay is None else min(o.first_delay, ts)

        if o.terminal is not None:
            self._delivery_event(o, o.terminal, "lost")
            o.slip = (o.terminal - o.promised) / DAY
            return
        # A failed attempt happens on the previous round, about a day before delivery.
        attempt = max(delivered - DAY + int(HOUR * (2 * rnd() - 1)), in_transit + 4 * HOUR)
        if failed and attempt < out_for_delivery - 2 * HOUR:
            self._delivery_event(o, attempt - int(HOUR * (0.5 + 2.5 * rnd())), "out_for_delivery")
            self._delivery_event(o, attempt, "failed_attempt")
            o.first_delay = attempt if o.first_delay is None else min(o.first_delay, attempt)
            if rts:
                o.undeliverable = "returned_to_sender"
                o.terminal = delivered + int(DAY * (2 + 3 * rnd()))
                self._delivery_event(o, out_for_delivery, "out_for_delivery")
                self._delivery_event(o, delivered, "failed_attempt")
                self._delivery_event(o, o.terminal, "returned_to_sender")
                return
        self._delivery_event(o, out_for_delivery, "out_for_delivery")
        self._delivery_event(o, delivered, "delivered")
        o.delivered = delivered

    def _delays(
        self, o: _Order, in_transit: int, ofd: int, delivered: int, slip: float, lost: bool
    ) -> None:
        """Carrier ``delayed`` scans with revised ETAs that under-promise the real slip."""
        rnd = self.rnd
        if lost and rnd() < 0.4:
            return
        first = max(in_transit + 2 * HOUR, o.promised - int(DAY * (0.2 + rnd())))
        horizon = ofd if not lost else o.promised + 2 * DAY
        if first >= horizon - HOUR:
            return
        est_days = max(1, round(max(slip, 1.0) * (0.55 + 0.5 * rnd())))
        eta = o.promised + est_days * DAY
        self._delivery_event(o, first, "delayed", estimated_delivery_at=self.fmt(eta))
        o.first_delay = first
        if slip > 3 and not lost:
            second = first + int((ofd - first) * (0.35 + 0.4 * rnd()))
            eta = _day_start(delivered) + 20 * HOUR
            self._delivery_event(o, second, "delayed", estimated_delivery_at=self.fmt(eta))

    # --------------------------------------------------------------- support
    def _ticket(
        self,
        o: _Order,
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
        sentiment = _clip(sentiment, -1.0, 1.0)
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
        self._add(o, SUPPORT, ts, body)
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
                message["sentiment"] = round(_clip(later, -1.0, 1.0), 2)
            self._add(o, SUPPORT, last, message)
        if rnd() < resolve:
            done = last + int(HOUR + rnd() * 30 * HOUR)
            if close_by is not None and done >= close_by:
                # Agents wrap the ticket up just before the case-closing event.
                done = close_by - int(MINUTE * (1 + 29 * rnd()))
            if done > last:
                self._add(
                    o,
                    SUPPORT,
                    done,
                    {"type": "ticket_resolved", "order_id": o.order_id, "ticket_id": ticket_id},
                )
        return ts

    def _wismo(self, o: _Order) -> None:
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
        o.wismo_ts = self._ticket(o, ts, intent, sentiment)
        o.wismo_sentiment = _clip(sentiment, -1.0, 1.0)

    def _noise_ticket(self, o: _Order) -> None:
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
        self._ticket(o, ts, intent, self.rng.gauss(0.15, 0.35), o.close_ts, follow_up=0.25)

    def _early_signal(self, o: _Order) -> None:
        """A helpdesk contact stamped before ``order_placed`` (checkout and helpdesk clocks)."""
        ts = o.t0 - int(MINUTE + self.rnd() * 14 * MINUTE)
        intent = "product_question" if self.rnd() < 0.7 else "other"
        self._ticket(o, ts, intent, self.rng.gauss(0.1, 0.3), o.close_ts, follow_up=0.0)
        self.early_signals += 1

    # --------------------------------------------------------------- refunds
    def _case(self, o: _Order) -> _Case | None:
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

    def _late_intent(self, o: _Order, mult: float) -> bool:
        """Late parcels: frustrated customers with a refund habit ask for their money."""
        angry = o.wismo_sentiment is not None and o.wismo_sentiment < -0.4
        logit = (
            self.p.late_intent_bias
            + 1.0 * o.frustration
            + 0.7 * math.log(mult)
            + (0.9 if angry else 0.0)
            + self.rng.gauss(0.0, 0.5)
        )
        return self.rnd() < _sigmoid(logit)

    def _return_probability(self, o: _Order, mult: float) -> float:
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
        o: _Order,
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
        self._add(o, REFUNDS, ts, body)

    def _resolution(
        self, o: _Order, ts: int, kind: str, request_id: str, amount: float | None = None
    ) -> None:
        """Queue the merchant's side of a request (issued, received, completed, withdrawn)."""
        body: dict[str, Any] = {"type": kind, "order_id": o.order_id, "request_id": request_id}
        if amount is not None:
            body["amount"] = amount
        self._add(o, REFUNDS, ts, body)

    def _refund_flow(
        self,
        o: _Order,
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

    def _late_case(self, o: _Order) -> _Case:
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
        return _Case(
            "late_delivery",
            "late_delivery",
            req_ts,
            min(s for s in signals if s is not None),
            outcome,
            refund,
        )

    def _undeliverable_case(self, o: _Order) -> _Case:
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
        return _Case(
            "undeliverable",
            reason,
            req_ts,
            min(s for s in signals if s is not None),
            outcome,
            o.total,
        )

    def _product_case(self, o: _Order) -> _Case:
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
                signal = self._ticket(o, ts, intent, mood + rng.gauss(0.0, 0.3), follow_up=0.3)
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
        return _Case(reason, reason, req_ts, signal, outcome, refund)

    def _abuse_case(self, o: _Order) -> _Case:
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
                signal = self._ticket(o, ts, intent, self.rng.gauss(-0.45, 0.3), follow_up=0.5)
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
            return _Case("abuse", reason, req_ts, signal, Outcome.KEPT.value, 0.0)
        else:
            o.close_ts = self._refund_flow(o, req_ts, "refund_requested", request_id, o.total)
            outcome = Outcome.REFUNDED.value
        return _Case("abuse", reason, req_ts, signal, outcome, o.total)

    # ---------------------------------------------------------- counterfactuals
    def _support_intent(self, o: _Order) -> str | None:
        """Intent of the order's first ticket (by time), or None without one."""
        first: tuple[int, str] | None = None
        for ts, _, stream, body in o.events:
            opened = stream == SUPPORT and body["type"] == "ticket_opened"
            if opened and (first is None or ts < first[0]):
                first = (ts, body["intent"])
        return first[1] if first else None

    def _truth(self, o: _Order, case: _Case | None) -> dict[str, Any]:
        """Ground-truth row: order facts, risk, and the outcome under every action."""
        latents = Latents.draw(self.response_rng)  # always drawn: orders never shift others
        total = o.total
        lane = self.p.lanes[o.lane]
        fam = self.catalog.families[o.main_family].name
        intent = self._support_intent(o)
        tier = customer_tier(o.orders_count)
        if case is None:
            none = (
                {"outcome": Outcome.CANCELLED.value, "refund_value": 0.0, "retained_value": 0.0}
                if o.cancelled
                else {"outcome": Outcome.KEPT.value, "refund_value": 0.0, "retained_value": total}
            )
        else:
            none = {
                "outcome": case.outcome,
                "refund_value": case.refund,
                "retained_value": 0.0
                if case.outcome == Outcome.CHARGEBACK
                else round(total - case.refund, 2),
            }
        facts = Facts(
            driver=case.driver if case else None,
            none=none,
            total=total,
            family_value=o.main_value,
            lane=lane.key,
            family=fam,
            intent=intent,
            tier=tier,
            cancelled=o.cancelled,
        )
        outcomes, late = self.world.respond(facts, latents)
        return {
            "order_id": o.order_id,
            "customer_id": f"C{o.customer + 1:07d}",
            "currency": self.p.currency,
            "order_value": total,
            "margin": round(total - o.cost, 2),
            "sku_family": fam,
            "courier_lane": lane.key,
            "campaign": self.p.campaigns[o.campaign].name,
            "customer_tier": tier,
            "support_intent": intent,
            "abusive": self.customers.abusive[o.customer],
            "at_risk": case is not None,
            "risk_driver": case.driver if case else None,
            "request_at": self.fmt(case.request_ts) if case else None,
            "slip_days": round(o.slip, 2) if o.delivered is not None else None,
            "cancelled": o.cancelled,
            "world_seed": self.world.world_seed,
            "outcomes": outcomes,
            "outcomes_late": late,
        }

    # ----------------------------------------------------------------- output
    def _flush(self, o: _Order, emit: Emit) -> None:
        """Stamp ids/timestamps in time order and hand the order's events to ``emit``."""
        fmt = self.fmt
        close = o.close_ts
        o.events.sort()
        k = 0
        for ts, _, stream, body in o.events:
            # Nothing on the helpdesk after the case closed (tickets stay open instead).
            if stream == SUPPORT and close is not None and ts > close:
                continue
            k += 1
            body["event_id"] = f"{o.order_id}-{k:02d}"
            body["occurred_at"] = fmt(ts)
            emit(stream, ts, body)
