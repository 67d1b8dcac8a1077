"""The delivery stream of one simulated order: dispatch, courier slippage, exceptions, the
carrier's revised ETAs and the final scan (or a lost / returned-to-sender parcel)."""

from __future__ import annotations

import random
from typing import Any

from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter, parse_timestamp
from operators.simulation.order import DELIVERY, OrderDraft, StreamModel, day_start
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.world import cumulative, pick_index

_EXCEPTIONS = ("address_issue", "customs_hold", "damaged_in_transit", "weather", "capacity_backlog")
_EXCEPTION_CUM = cumulative((0.35, 0.15, 0.2, 0.15, 0.15))


class DeliveryModel(StreamModel):
    """Plays out the parcel of an order on the delivery stream."""

    def __init__(self, params: ScenarioParams, rng: random.Random, fmt: TimestampFormatter) -> None:
        super().__init__(params, rng, fmt)
        backlog = params.backlog
        self.backlog_lanes = frozenset(
            i for i, lane in enumerate(params.lanes) if backlog and lane.key in backlog.lanes
        )
        self.start = day_start(parse_timestamp(params.start))

    def _backlog_intensity(self, o: OrderDraft) -> float:
        """How hard the backlog hits this order's lane on its placement day (0 = not at all)."""
        backlog = self.p.backlog
        if backlog is None or o.lane not in self.backlog_lanes:
            return 0.0
        day = (o.t0 - self.start) // DAY
        curve = backlog.intensity_by_day
        return curve[min(max(day, 0), len(curve) - 1)]

    def _delivery_event(self, o: OrderDraft, ts: int, kind: str, **extra: Any) -> None:
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
        o.add(DELIVERY, ts, body)

    def ship(self, o: OrderDraft) -> None:
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
        delivered = day_start(target) + int(HOUR * (8 + 11 * rnd()))
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
                extra["estimated_delivery_at"] = self.fmt(day_start(delivered) + 20 * HOUR)
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
        self, o: OrderDraft, in_transit: int, ofd: int, delivered: int, slip: float, lost: bool
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
            eta = day_start(delivered) + 20 * HOUR
            self._delivery_event(o, second, "delayed", estimated_delivery_at=self.fmt(eta))
