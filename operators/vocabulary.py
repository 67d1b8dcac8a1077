"""The closed vocabulary of Salvage: every name that crosses a module boundary.

Each is a ``StrEnum``, so a member *is* its string: records stay plain JSON, comparisons
with strings read from files keep working, and a typo in code is an ``AttributeError``
instead of a silent miss.

>>> Action.PROACTIVE_REASSURANCE == "proactive_reassurance"
True
>>> Outcome("refunded").is_refund, Outcome.KEPT.is_refund
(True, False)
>>> [p.value for p in DecisionPoint]
['order', 'delay', 'ticket', 'request', 'other']
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What the engine can do about a case (``NONE``: nothing)."""

    NONE = "none"
    PROACTIVE_REASSURANCE = "proactive_reassurance"
    EXCHANGE_FIRST_OFFER = "exchange_first_offer"
    PRODUCT_GUIDANCE = "product_guidance"
    DELAYED_SHIPMENT_INTERVENTION = "delayed_shipment_intervention"
    HUMAN_REVIEW = "human_review"

    @classmethod
    def interventions(cls) -> tuple[Action, ...]:
        """Every action except ``NONE``, in declaration order."""
        return tuple(a for a in cls if a is not cls.NONE)


class Outcome(StrEnum):
    """How a case ended. ``CENSORED``: the input ended before the case resolved; it counts
    as "no refund as of the end" in money figures and is never a learning label."""

    KEPT = "kept"
    EXCHANGED = "exchanged"
    REFUNDED = "refunded"
    CHARGEBACK = "chargeback"
    CANCELLED = "cancelled"
    CENSORED = "censored"

    @property
    def is_refund(self) -> bool:
        """Money went back to the customer (a refund or a chargeback)."""
        return self in (Outcome.REFUNDED, Outcome.CHARGEBACK)


class Stream(StrEnum):
    """The four input streams."""

    ORDERS = "orders"
    DELIVERY = "delivery"
    SUPPORT = "support"
    REFUNDS = "refunds"


class Arm(StrEnum):
    """Holdout arm of a case: treatment cases get interventions, control cases never do."""

    TREATMENT = "treatment"
    CONTROL = "control"


class DecisionPoint(StrEnum):
    """Which moment of a case a decision was made at, from its trigger event: model
    quality and learning are reported per point, not pooled."""

    ORDER = "order"  # order_placed
    DELAY = "delay"  # a delivery problem: delayed, exception, failed attempt, lost
    TICKET = "ticket"  # a support contact
    REQUEST = "request"  # a refund, return or exchange request
    OTHER = "other"


class Covariance(StrEnum):
    """How the learned policy's posterior treats its weights (``learning.covariance``)."""

    DIAGONAL = "diagonal"  # an independent Gaussian per weight
    FULL = "full"  # one Gaussian over every weight, with their covariance


class SegmentCross(StrEnum):
    """Keys the bandit's segments can add beside their one-hot keys
    (``learning.segment_crosses``): a decision point crossed with something else."""

    POINT_LANE = "point_x_lane"  # the point and the courier lane
    POINT_FAMILY = "point_x_family"  # the point and the SKU family
    POINT_ELIGIBLE_SET = "point_x_eligible_set"  # the point and the actions eligible there


class DeadLetterKind(StrEnum):
    """Why a record was dead-lettered; metrics count by kind, never by message text."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"  # over a size limit: payload bytes, items, an id's length
    TOO_DEEP = "too_deep"  # nested deeper than the limit
    TOO_MANY_EVENTS = "too_many_events"  # the order's case already has the most events
    LATE = "late"
    FUTURE = "future"
    AFTER_CLOSE = "after_close"
    DISPATCH_FAILED = "dispatch_failed"
    REVIEW_REJECTED = "review_rejected"


__all__ = ["Action", "Arm", "DeadLetterKind", "DecisionPoint", "Outcome", "Stream"]
