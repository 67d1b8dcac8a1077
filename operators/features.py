"""Feature builder: an ``OrderCase`` plus context aggregates, as a flat numeric dict.

Every feature is computed from what is known at the decision time ``now``: the case's
events up to now and aggregates of *other, already closed* cases. Nothing reads the
case's own outcome. The same dict is stored with the case so that a model learns from the
features it scored with, not from ones recomputed after the label arrived.

>>> from operators.case import OrderCase
>>> case = OrderCase("o1", placed=True, order_value=120.0, order_cost=40.0, promised_at=0.0)
>>> f = build_features(case, None, now=36 * 3600.0)
>>> f["slip_hours"], f["margin_share"], f["has_request"]
(36.0, 0.6667, 0.0)
"""

from __future__ import annotations

import math
import struct

from operators.case import HOUR, OrderCase
from operators.stores import ContextStore, CustomerHistory

_INTENT_FLAGS = (
    "where_is_my_order",
    "delivery_problem",
    "damaged_item",
    "size_fit",
    "not_as_described",
    "product_question",
    "refund_request",
    "return_request",
)
_REASON_FLAGS = ("size_fit", "damaged", "late_delivery", "not_as_described", "changed_mind")
_DEFAULT_REFUND_RATE = 0.08
_DEFAULT_DELAY_RATE = 0.1


#: (feature name, flag value) of the one-hot intent and reason features, in order.
_INTENT_KEYS = tuple((f"intent_{intent}", intent) for intent in _INTENT_FLAGS)
_REASON_KEYS = tuple((f"reason_{reason}", reason) for reason in _REASON_FLAGS)


def build_features(case: OrderCase, context: ContextStore | None, now: float) -> dict[str, float]:
    """Numeric features of ``case`` at event time ``now`` (a new dict every call)."""
    slip = case.slip_hours(now)
    value = case.order_value
    margin = case.margin
    orders = case.customer_orders or 0
    returns = case.customer_returns or 0
    ltv = case.customer_ltv or 0.0
    delivered_at = case.delivered_at
    open_request = case.has_open_request()
    sentiment = case.last_sentiment
    min_sentiment = case.min_sentiment
    f: dict[str, float] = {
        "log_order_value": round(math.log1p(value), 4),
        "margin_share": round(margin / value, 4) if value > 0 else 0.0,
        "slip_hours": round(slip, 2),
        "slip_over_48h": 1.0 if slip > 48 else 0.0,
        "delays": float(case.delays),
        "delivery_problems": float(case.exceptions + case.failed_attempts),
        "lost": 1.0 if case.lost or case.returned_to_sender else 0.0,
        "delivered": 1.0 if delivered_at is not None else 0.0,
        "hours_since_delivery": (
            round(max(now - delivered_at, 0.0) / HOUR, 2) if delivered_at is not None else 0.0
        ),
        "contacts": float(case.contacts),
        "sentiment": sentiment if sentiment is not None else 0.0,
        "min_sentiment": min_sentiment if min_sentiment is not None else 0.0,
        "has_request": 1.0 if open_request else 0.0,
        "refund_request": 1.0 if open_request and case.request_type == "refund_requested" else 0.0,
        "request_age_hours": round(case.request_age_hours(now) or 0.0, 2),
        "exchange_preferred": 1.0 if case.exchange_preferred else 0.0,
        "customer_orders": float(orders),
        "customer_return_rate": round((returns + 0.5) / (orders + 5.0), 4),
        "log_customer_ltv": round(math.log1p(ltv), 4),
        "new_customer": 1.0 if orders == 0 else 0.0,
    }
    intent = case.last_intent
    for key, flag in _INTENT_KEYS:
        f[key] = 1.0 if intent == flag else 0.0
    reason = case.request_reason
    for key, flag in _REASON_KEYS:
        f[key] = 1.0 if reason == flag else 0.0
    if context is not None:
        f["family_refund_rate"] = round(context.family_rate(case.sku_family, now), 4)
        f["lane_refund_rate"] = round(context.lane_refund_rate(case.lane, now), 4)
        f["lane_delay_rate"] = round(context.lane_delay_rate(case.lane, now), 4)
        seen = _customer(context, case.customer_id, now) if case.customer_id else None
        if seen is not None and seen.orders:
            f["seen_refund_rate"] = round((seen.refunds + 0.5) / (seen.orders + 5.0), 4)
            f["seen_chargebacks"] = float(seen.chargebacks)
        else:
            f["seen_refund_rate"] = round(0.5 / 5.0, 4)
            f["seen_chargebacks"] = 0.0
    else:
        f["family_refund_rate"] = _DEFAULT_REFUND_RATE
        f["lane_refund_rate"] = _DEFAULT_REFUND_RATE
        f["lane_delay_rate"] = _DEFAULT_DELAY_RATE
        f["seen_refund_rate"] = 0.1
        f["seen_chargebacks"] = 0.0
    return f


def _customer(context: ContextStore, customer_id: str, now: float) -> CustomerHistory | None:
    """The customer as a decision at ``now`` may know it: stores versioned by event time
    (``InMemoryContextStore`` with a clock, see ``operators.versions``) answer as of the
    decision's boundary; others with everything recorded so far."""
    customer_at = getattr(context, "customer_at", None)
    if customer_at is not None:
        seen: CustomerHistory | None = customer_at(customer_id, now)
        return seen
    return context.customer(customer_id)


def _names() -> tuple[str, ...]:
    from operators.case import OrderCase

    return tuple(build_features(OrderCase("_"), None, 0.0))


#: Feature names in the order build_features returns them (fixed: vectors are stored so).
FEATURE_NAMES: tuple[str, ...] = _names()


_MASK = struct.Struct("<Q")  # which features are stored (not +0.0); at most 64 features
assert len(FEATURE_NAMES) <= 64


def to_vector(features: dict[str, float]) -> tuple[float, ...]:
    """The feature values in FEATURE_NAMES order (what the compiled models score)."""
    if len(features) == len(FEATURE_NAMES):
        values = tuple(features.values())
        # build_features fills the dict in FEATURE_NAMES order: its values are the vector.
        if tuple(features) == FEATURE_NAMES:
            return values
    return tuple(features[name] for name in FEATURE_NAMES)


def pack_vector(features: dict[str, float]) -> bytes:
    """The features packed for storing a decision point in an open case: a 64-bit mask of
    the features that are not +0.0, then those as doubles. Most features of a point are
    0 (flags, counts): about 150 bytes instead of a 38-float tuple's 1,000. Exact: every
    double comes back bit for bit, -0.0 included (all features are floats)."""
    mask = 0
    kept: list[float] = []
    for i, name in enumerate(FEATURE_NAMES):
        value = features[name]
        if value != 0.0 or math.copysign(1.0, value) < 0:
            mask |= 1 << i
            kept.append(value)
    return _MASK.pack(mask) + struct.pack(f"<{len(kept)}d", *kept)


def _unpack(blob: bytes) -> tuple[float, ...]:
    (mask,) = _MASK.unpack_from(blob)
    kept = iter(struct.unpack_from(f"<{(len(blob) - 8) // 8}d", blob, 8))
    return tuple(next(kept) if mask >> i & 1 else 0.0 for i in range(len(FEATURE_NAMES)))


def from_vector(vector: tuple[float, ...] | bytes) -> dict[str, float]:
    """The feature dict of a stored vector (a tuple, or packed by :func:`pack_vector`).

    >>> f = build_features(__import__("operators.case").case.OrderCase("o"), None, 0.0)
    >>> from_vector(to_vector(f)) == f == from_vector(pack_vector(f))
    True
    """
    if isinstance(vector, bytes):
        vector = _unpack(vector)
    return dict(zip(FEATURE_NAMES, vector, strict=True))
