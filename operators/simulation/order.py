"""What the per-stream models of the simulator share: the order being generated, its
refund case, the stream ids and the small maths they all use.

An order's events are queued on its :class:`OrderDraft` by each stream's model
(:mod:`~operators.simulation.delivery`, :mod:`~operators.simulation.support`,
:mod:`~operators.simulation.refunds`) and stamped in time order by
:class:`~operators.simulation.model.OrderModel` when the order is done.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operators.simulation.clock import DAY, TimestampFormatter
from operators.simulation.scenarios import ScenarioParams
from operators.simulation.world import Sku

ORDERS, DELIVERY, SUPPORT, REFUNDS = range(4)

Emit = Callable[[int, int, dict[str, Any]], None]


def clip(x: float, lo: float, hi: float) -> float:
    """Clamp ``x`` into ``[lo, hi]``."""
    return lo if x < lo else hi if x > hi else x


def sigmoid(x: float) -> float:
    """Logistic function."""
    return 1.0 / (1.0 + math.exp(-x))


def day_start(ts: int) -> int:
    """Midnight UTC of the day containing ``ts``."""
    return ts - ts % DAY


@dataclass(slots=True)
class OrderDraft:
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

    def add(self, stream: int, ts: int, body: dict[str, Any]) -> None:
        """Queue an event of this order; ids and timestamps are stamped when it is flushed."""
        self.events.append((ts, len(self.events), stream, body))


@dataclass(slots=True)
class RefundCase:
    """The refund/return case of an at-risk order in the no-intervention world."""

    driver: str
    reason: str
    request_ts: int
    signal_ts: int
    outcome: str
    refund: float


class StreamModel:
    """What every stream's model draws with: the scenario, the one generator of the history
    (shared, so the draws happen in the same order as ever) and the timestamp format."""

    def __init__(self, params: ScenarioParams, rng: random.Random, fmt: TimestampFormatter) -> None:
        self.p = params
        self.rng = rng
        self.rnd = rng.random
        self.fmt = fmt
