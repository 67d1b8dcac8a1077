"""The segment of a decision: which decision point a trigger is, and the context keys the
bandit's models condition on (decision point, courier lane, SKU family, support intent,
customer tier, campaign).

>>> Context.of("delay", "dhl:DE-NL", "skincare", None, 0, "spring").keys()[:4]
('*', 'p=delay', 'l=DE-NL', 'f=skincare')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from operators.vocabulary import DecisionPoint, SegmentCross

#: Event type -> decision point (Interface B of the decision records).
POINT_OF_TYPE: dict[str, DecisionPoint] = {
    "order_placed": DecisionPoint.ORDER,
    "delayed": DecisionPoint.DELAY,
    "exception": DecisionPoint.DELAY,
    "failed_attempt": DecisionPoint.DELAY,
    "lost": DecisionPoint.DELAY,
    "returned_to_sender": DecisionPoint.DELAY,
    "ticket_opened": DecisionPoint.TICKET,
    "customer_message": DecisionPoint.TICKET,
    "refund_requested": DecisionPoint.REQUEST,
    "return_requested": DecisionPoint.REQUEST,
    "exchange_requested": DecisionPoint.REQUEST,
}


def point_of(event_type: str) -> DecisionPoint:
    """The decision point of a trigger event type.

    >>> point_of("delayed"), point_of("ticket_resolved")
    (<DecisionPoint.DELAY: 'delay'>, <DecisionPoint.OTHER: 'other'>)
    """
    return POINT_OF_TYPE.get(event_type, DecisionPoint.OTHER)


def customer_tier(orders_before: int | None) -> str:
    """``new`` (no earlier order), ``regular`` (1-5) or ``loyal`` (6 or more).

    >>> [customer_tier(n) for n in (None, 0, 3, 9)]
    ['new', 'new', 'regular', 'loyal']
    """
    if not orders_before:
        return "new"
    return "loyal" if orders_before >= 6 else "regular"


def _lane(lane: str | None) -> str:
    # "dhl:DE-NL" -> "DE-NL": the route is what the effect depends on, the courier is in it.
    if not lane:
        return "-"
    return lane.rsplit(":", 1)[-1]


@dataclass(frozen=True, slots=True)
class Context:
    """The segment of a decision: what the bandit's models condition on."""

    point: str
    lane: str
    family: str
    intent: str
    tier: str
    campaign: str

    @classmethod
    def of(
        cls,
        point: str,
        lane: str | None,
        family: str | None,
        intent: str | None,
        orders_before: int | None,
        campaign: str | None,
    ) -> Context:
        """
        >>> c = Context.of("request", "dhl:DE-NL", "skincare", None, 2, None)
        >>> c.segment
        'request|DE-NL|skincare|regular'
        >>> c.keys()
        ('*', 'p=request', 'l=DE-NL', 'f=skincare', 'i=-', 't=regular', 'c=-')
        """
        return cls(
            str(point), _lane(lane), family or "-", intent or "-",
            customer_tier(orders_before), campaign or "-",
        )  # fmt: skip

    @property
    def segment(self) -> str:
        """The short key logged on decision records."""
        return f"{self.point}|{self.lane}|{self.family}|{self.tier}"

    def keys(
        self, eligible: tuple[str, ...] = (), crosses: tuple[SegmentCross, ...] = ()
    ) -> tuple[str, ...]:
        """The one-hot features (``*``: the intercept, shared by every case of an arm), and
        the policy's ``crosses`` (``learning.segment_crosses``); ``eligible``: the actions
        eligible at the decision, sorted.

        >>> c = Context.of("delay", "dhl:DE-NL", "skincare", None, 0, None)
        >>> c.keys(("a", "b"), (SegmentCross.POINT_ELIGIBLE_SET, SegmentCross.POINT_LANE))[7:]
        ('pe=delay/a+b', 'pl=delay/DE-NL')
        """
        keys: tuple[str, ...] = (
            "*", f"p={self.point}", f"l={self.lane}", f"f={self.family}",
            f"i={self.intent}", f"t={self.tier}", f"c={self.campaign}",
        )  # fmt: skip
        for cross in crosses:
            if cross is SegmentCross.POINT_LANE:
                keys += (f"pl={self.point}/{self.lane}",)
            elif cross is SegmentCross.POINT_FAMILY:
                keys += (f"pf={self.point}/{self.family}",)
            elif cross is SegmentCross.POINT_ELIGIBLE_SET:
                # What is eligible says how far a case has gone (the delayed-shipment credit
                # only from 48 h late, say), which none of the other keys tells apart.
                if eligible:
                    keys += (f"pe={self.point}/{'+'.join(eligible)}",)
            else:
                assert_never(cross)
        return keys


__all__ = ["POINT_OF_TYPE", "Context", "customer_tier", "point_of"]
