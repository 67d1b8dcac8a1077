"""Per-order generative model: the no-intervention history plus counterfactual outcomes.

For every order the model simulates the world without interventions (the events written to
the stream files). Causality runs one way: latent customer traits and courier slippage drive
the visible signals (delays, tickets, sentiment, requests), and the same latents drive the
refund decision, so the signals predict refunds without giving them away.

What each action would have led to (the ground truth) is not decided here but by a
:class:`~operators.simulation.response.World` drawn from its own prior, with draws from a
separate generator: the history of a seed is the same in every world, except where a world
twist changes it (a new campaign that returns more).

Each stream has its model: :mod:`~operators.simulation.delivery` (the parcel),
:mod:`~operators.simulation.support` (helpdesk contacts) and
:mod:`~operators.simulation.refunds` (the refund case); this module places the order, runs
them in a fixed order on one generator, and writes the ground-truth row.
"""

from __future__ import annotations

import random
from typing import Any

from operators.actions import action_names
from operators.contract import STREAMS
from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter
from operators.simulation.delivery import DeliveryModel
from operators.simulation.order import (
    ORDERS,
    SUPPORT,
    Emit,
    OrderDraft,
    RefundCase,
    StreamModel,
    day_start,
)
from operators.simulation.refunds import RefundModel
from operators.simulation.response import Facts, Latents, World, customer_tier
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.support import SupportModel
from operators.simulation.world import Catalog, CustomerPool, cumulative, pick_index
from operators.vocabulary import Outcome

STREAM_NAMES: tuple[str, ...] = STREAMS


def ground_truth_arms() -> tuple[str, ...]:
    """What the ground truth has an outcome under: no action, refunding every request, and
    each registered action (``scenario.json`` lists them)."""
    return ("none", "blanket_refund", *action_names())


class OrderModel(StreamModel):
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
        super().__init__(params, rng, fmt)
        self.world = world
        self.response_rng = response_rng
        self.catalog = catalog
        self.customers = customers
        self.delivery = DeliveryModel(params, rng, fmt)
        self.support = SupportModel(params, rng, fmt, customers)
        self.refunds = RefundModel(params, rng, fmt, catalog, customers, self.support)
        self.lane_cum = cumulative([lane.weight for lane in params.lanes])
        self.campaign_cum = cumulative([c.weight for c in params.campaigns])
        self.sim_orders = [0] * customers.size
        self.sim_value = [0.0] * customers.size
        self.sim_refunds: dict[int, list[int]] = {}

    @property
    def early_signals(self) -> int:
        """Contacts stamped before their order so far (the run's stats report them)."""
        return self.support.early_signals

    # ------------------------------------------------------------------ public
    def generate(self, idx: int, t0: int, emit: Emit) -> dict[str, Any]:
        """Simulate order ``idx`` placed at ``t0``; emit its events and return ground truth."""
        o = self._new_order(idx, t0)
        self._place(o)
        if self.rnd() < self.p.cancel_rate:
            self._cancel(o)
            self._flush(o, emit)
            return self._truth(o, None)
        self.delivery.ship(o)
        self.support.wismo(o)
        case = self.refunds.case(o)
        self.support.noise_ticket(o)
        if self.rnd() < self.p.early_signal_rate:
            self.support.early_signal(o)
        if case is not None and case.outcome in (Outcome.REFUNDED, Outcome.CHARGEBACK):
            self.sim_refunds.setdefault(o.customer, []).append(o.close_ts or t0)
        self._flush(o, emit)
        return self._truth(o, case)

    # ------------------------------------------------------------- placement
    def _new_order(self, idx: int, t0: int) -> OrderDraft:
        """Pick the customer and snapshot their history as of ``t0``."""
        rnd = self.rnd
        pool = self.customers
        if rnd() < self.p.loyal_order_share:
            c = int(rnd() * pool.loyal_size)
        else:
            c = int(rnd() * pool.size)
        refunds = self.sim_refunds.get(c)
        done = sum(1 for ts in refunds if ts <= t0) if refunds else 0
        return OrderDraft(
            idx=idx,
            order_id=f"{self.p.order_prefix}-{idx + 1:07d}",
            t0=t0,
            customer=c,
            orders_count=pool.prior_orders[c] + self.sim_orders[c],
            returns_count=pool.prior_returns[c] + done,
        )

    def _place(self, o: OrderDraft) -> None:
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
        o.promised = day_start(o.t0) + (1 + lane.transit_days) * DAY + 20 * HOUR

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
        o.add(ORDERS, o.t0, body)
        self.sim_orders[c] += 1
        self.sim_value[c] += o.total

    def _cancel(self, o: OrderDraft) -> None:
        """Cancel before dispatch, sometimes after a cancel-request ticket."""
        rnd = self.rnd
        ts = o.t0 + int(10 * MINUTE + rnd() * 11 * HOUR)
        if rnd() < 0.4:
            opened = max(o.t0 + MINUTE, ts - int(rnd() * 2 * HOUR))
            self.support.ticket(o, opened, "cancel_request", self.rng.gauss(-0.1, 0.3), ts)
        o.add(ORDERS, ts, {"type": "order_cancelled", "order_id": o.order_id})
        o.close_ts = ts
        o.cancelled = True

    # ---------------------------------------------------------- counterfactuals
    def _support_intent(self, o: OrderDraft) -> str | None:
        """Intent of the order's first ticket (by time), or None without one."""
        first: tuple[int, str] | None = None
        for ts, _, stream, body in o.events:
            opened = stream == SUPPORT and body["type"] == "ticket_opened"
            if opened and (first is None or ts < first[0]):
                first = (ts, body["intent"])
        return first[1] if first else None

    def _truth(self, o: OrderDraft, case: RefundCase | None) -> dict[str, Any]:
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
            placed_at=o.t0,
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
    def _flush(self, o: OrderDraft, emit: Emit) -> None:
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
