"""OrderCase: the per-order join of the four streams, with derived signals and a stage.

An ``OrderCase`` is what the dataflow keeps per ``order_id``. It folds events in (in any
order within the allowed lateness), keeps a compact timeline, and derives the signals the
policy and the models read: delivery slip against the promise, exceptions, support
contacts with the latest intent and sentiment, refund urgency and exchange preference.

Signals may arrive before ``order_placed`` (topics lag differently). The case is then
*pending*: signals are folded in as usual, but no decision is made until the order itself
arrives, because value, margin and the customer are unknown. Its recovery window is
counted from the first signal until ``order_placed`` shows up.

>>> from operators.contract import decode
>>> case = OrderCase("o1")
>>> _ = case.apply(decode("orders", {"event_id": "e1", "type": "order_placed",
...     "order_id": "o1", "occurred_at": "2026-06-01T10:00:00Z", "customer_id": "c1",
...     "currency": "EUR", "total": 80, "promised_delivery_at": "2026-06-03T10:00:00Z",
...     "items": [{"sku": "s1", "sku_family": "skincare", "quantity": 1,
...                "unit_price": 80, "unit_cost": 30}]}))
>>> case.apply(decode("delivery", {"event_id": "e2", "type": "delayed", "order_id": "o1",
...     "occurred_at": "2026-06-03T09:00:00Z", "estimated_delivery_at": "2026-06-06T10:00:00Z"}))
True
>>> case.stage, case.slip_hours(case.last_event_at)
('at_risk', 72.0)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from operators.contract import RESOLVING_TYPES, STREAM_TYPES, Event, format_ts, parse_ts
from operators.vocabulary import Outcome

HOUR = 3600.0
DAY = 86400.0

STAGE_OPEN = "open"
STAGE_AT_RISK = "at_risk"
STAGE_RESOLVED = "resolved"

#: Outcome of a case, by the event that resolved it.
OUTCOME_BY_TYPE: dict[str, str] = {
    "refund_issued": Outcome.REFUNDED.value,
    "exchange_completed": Outcome.EXCHANGED.value,
    "order_cancelled": Outcome.CANCELLED.value,
    "chargeback_opened": Outcome.CHARGEBACK.value,
}

#: Event types that can change a decision; routine tracking scans do not.
DECISION_TYPES = frozenset(
    {
        "order_placed",
        "delayed",
        "exception",
        "failed_attempt",
        "returned_to_sender",
        "lost",
        "ticket_opened",
        "customer_message",
        "return_requested",
        "refund_requested",
        "exchange_requested",
    }
)
DELIVERY_PROBLEMS = frozenset({"exception", "failed_attempt", "returned_to_sender", "lost"})
REQUEST_TYPES = frozenset({"return_requested", "refund_requested", "exchange_requested"})
NEGATIVE_SENTIMENT = -0.3

#: Timeline entries kept per case; older ones are dropped (the counters keep the totals).
TIMELINE_LIMIT = 48

# --- memory -------------------------------------------------------------------------------
# The target is about 2 KB per open case (benchmarks/memory_per_case.py). Every JSON
# string decoded from an event is a new object, so low-cardinality values (currency, SKU
# family, courier, lane, campaign, intents, reasons, event types) would be stored once per
# case; they are shared through a bounded table instead. Bounded, so arbitrary input
# cannot grow it without limit (values beyond it are simply kept unshared).
_SHARED_LIMIT = 65_536
_SHARED: dict[str, str] = {t: t for types in STREAM_TYPES.values() for t in types}


_SEP = "\x1f"


def _seen_key(event_id: str) -> str:
    """``event_id`` as kept in ``OrderCase.seen``: backslashes and separators escaped, so
    that no id can match across two others (an injective mapping, rarely needed).

    >>> _seen_key("e1"), _seen_key("a\x1fb") == _seen_key("a\\\\1b")
    ('e1', False)
    """
    if _SEP in event_id or "\\" in event_id:
        return event_id.replace("\\", "\\\\").replace(_SEP, "\\1")
    return event_id


class Timeline:
    """A case's timeline, ``(event time, event type)`` entries, used like a list of tuples.

    Kept as 9-byte records (a double and a type code) in one bytearray: five entries take
    about 150 bytes instead of 440 as a list of tuples (memory per open case). It pickles
    as a plain list of tuples, so snapshots do not depend on the codes.
    """

    __slots__ = ("_data",)
    _REC = struct.Struct("<dB")

    def __init__(self, entries: Iterable[tuple[float, str]] = ()) -> None:
        self._data = bytearray()
        for entry in entries:
            self.append(entry)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Timeline, (list(self),))

    def __len__(self) -> int:
        return len(self._data) // 9

    def _at(self, i: int) -> tuple[float, str]:
        ts, code = self._REC.unpack_from(self._data, 9 * i)
        return ts, _TYPE_NAMES[code]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("timeline index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[tuple[float, str]]:
        return (self._at(i) for i in range(len(self)))

    @staticmethod
    def _pack(entry: tuple[float, str]) -> bytes:
        ts, type_ = entry
        return Timeline._REC.pack(ts, _type_code(type_))

    def append(self, entry: tuple[float, str]) -> None:
        self._data += self._pack(entry)

    def add(self, ts: float, type_: str, limit: int) -> None:
        """Insert an entry in event-time order (after those at the same time), then drop
        the oldest beyond ``limit``: what ``OrderCase`` does for every event, without
        unpacking entries it does not need to look at."""
        data = self._data
        record = self._REC.pack(ts, _type_code(type_))
        end = len(data)
        if end and ts < _TIME.unpack_from(data, end - 9)[0]:
            # Out-of-order arrival: keep the timeline sorted by event time.
            i = end - 9
            while i and _TIME.unpack_from(data, i - 9)[0] > ts:
                i -= 9
            data[i:i] = record
        else:
            data += record
        if len(data) > 9 * limit:
            del data[:9]

    def insert(self, index: int, entry: tuple[float, str]) -> None:
        i = max(0, min(index + len(self) if index < 0 else index, len(self)))
        self._data[9 * i : 9 * i] = self._pack(entry)

    def __delitem__(self, index: int) -> None:
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError("timeline index out of range")
        del self._data[9 * i : 9 * i + 9]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Timeline):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Timeline({list(self)!r})"


_TIME = struct.Struct("<d")  # the time of a timeline record
#: Event type codes of timelines (per process; snapshots carry the names).
_TYPE_NAMES: list[str] = sorted({t for types in STREAM_TYPES.values() for t in types})
_TYPE_CODES: dict[str, int] = {t: i for i, t in enumerate(_TYPE_NAMES)}


def _type_code(type_: str) -> int:
    code = _TYPE_CODES.get(type_)
    if code is None:  # not a contract type: only possible for a hand-made case
        if len(_TYPE_NAMES) >= 256:
            raise ValueError(f"too many distinct event types for a timeline: {type_!r}")
        code = _TYPE_CODES.setdefault(type_, len(_TYPE_NAMES))
        if code == len(_TYPE_NAMES):
            _TYPE_NAMES.append(type_)
    return code


def _shared(value: Any) -> Any:
    """One shared object per distinct short string value (others returned as they are)."""
    if type(value) is not str:
        return value
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_LIMIT and len(value) <= 64:
        _SHARED[value] = value
    return value


@dataclass(slots=True)
class OrderCase:
    """The joined, windowed state of one order. Plain data: picklable for snapshots."""

    order_id: str
    placed: bool = False
    customer_id: str | None = None
    currency: str | None = None
    order_value: float = 0.0
    order_cost: float | None = None
    sku_family: str | None = None
    courier: str | None = None
    lane: str | None = None
    campaign: str | None = None
    customer_orders: int | None = None
    customer_returns: int | None = None
    customer_ltv: float | None = None
    placed_at: float | None = None
    first_event_at: float | None = None
    last_event_at: float = 0.0
    promised_at: float | None = None
    estimate_at: float | None = None
    shipped_at: float | None = None
    delivered_at: float | None = None
    delays: int = 0
    exceptions: int = 0
    failed_attempts: int = 0
    lost: bool = False
    returned_to_sender: bool = False
    contacts: int = 0
    first_contact_at: float | None = None
    last_intent: str | None = None
    last_sentiment: float | None = None
    min_sentiment: float | None = None
    request_type: str | None = None
    request_reason: str | None = None
    request_at: float | None = None
    request_withdrawn: bool = False
    exchange_preferred: bool = False
    stage: str = STAGE_OPEN
    outcome: str | None = None
    resolved_at: float | None = None
    refund_value: float = 0.0
    timeline: Timeline = field(default_factory=Timeline)
    #: Event ids applied so far, as one string ``<US>id<US>id<US>`` (US = \x1f; ids holding
    #: it or a backslash are escaped, see ``_seen_key``): a set of five ids takes about
    #: 400 bytes, this string about 130 (memory per open case).
    seen: str = ""
    # Decision bookkeeping (written by the decide step, kept for cooldowns and outcomes).
    arm: str | None = None
    actions: list[tuple[float, str]] = field(default_factory=list)
    first_propensity: float | None = None
    #: Decision points emitted as pending learning examples (the first is flagged).
    example_points: int = 0

    # --- folding events in -------------------------------------------------------------

    def is_duplicate(self, event: Event) -> bool:
        """Whether this event_id was already applied (re-delivery is a no-op)."""
        seen = self.seen
        if not isinstance(seen, str):  # a snapshot from before: a set of ids
            return event.event_id in seen
        return f"{_SEP}{_seen_key(event.event_id)}{_SEP}" in seen

    def apply(self, event: Event) -> bool:
        """Fold one event in. Returns whether the change matters for a decision."""
        seen = self.seen
        if not isinstance(seen, str):
            seen = "".join(f"{_SEP}{_seen_key(e)}" for e in sorted(seen)) + _SEP if seen else ""
        self.seen = f"{seen or _SEP}{_seen_key(event.event_id)}{_SEP}"
        ts = event.occurred_at
        if self.first_event_at is None or ts < self.first_event_at:
            self.first_event_at = ts
        if ts > self.last_event_at:
            self.last_event_at = ts
        self._record(ts, event.type)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)
        if event.type in RESOLVING_TYPES:
            self._resolve(event)
            return False
        self._update_stage()
        return self.placed and event.type in DECISION_TYPES

    def _record(self, ts: float, type_: str) -> None:
        timeline = self.timeline
        if not isinstance(timeline, Timeline):  # a snapshot from before: a list
            timeline = self.timeline = Timeline(timeline)
        timeline.add(ts, type_, TIMELINE_LIMIT)

    def _resolve(self, event: Event) -> None:
        if self.outcome is not None:
            return
        self.outcome = OUTCOME_BY_TYPE[event.type]
        self.resolved_at = event.occurred_at
        self.stage = STAGE_RESOLVED
        if event.type == "refund_issued":
            self.refund_value = float(event.get("amount") or 0.0)
        elif event.type == "chargeback_opened":
            self.refund_value = float(event.get("amount") or self.order_value)

    def _update_stage(self) -> None:
        if self.stage == STAGE_RESOLVED:
            return
        if self.is_at_risk():
            self.stage = STAGE_AT_RISK

    # --- derived signals ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Resolved cases are closed; expiry closes the rest (see ExpiryClock)."""
        return self.stage == STAGE_RESOLVED

    @property
    def margin(self) -> float:
        """Order value minus cost; without costs, a conservative 50 % of value."""
        if self.order_cost is None:
            return self.order_value * 0.5
        return max(self.order_value - self.order_cost, 0.0)

    def slip_hours(self, now: float) -> float:
        """Hours the delivery is (or was, or is now expected to be) late against the
        original promise; 0 if on time or no promise is known."""
        if self.promised_at is None:
            return 0.0
        if self.delivered_at is not None:
            late = self.delivered_at - self.promised_at
        else:
            late = now - self.promised_at
            if self.estimate_at is not None:
                late = max(late, self.estimate_at - self.promised_at)
        return max(late, 0.0) / HOUR

    def request_age_hours(self, now: float) -> float | None:
        """Hours since the open refund/return/exchange request, or None."""
        if self.request_at is None or self.request_withdrawn:
            return None
        return max(now - self.request_at, 0.0) / HOUR

    def has_open_request(self) -> bool:
        return self.request_type is not None and not self.request_withdrawn

    def is_at_risk(self) -> bool:
        """At risk: a refund path has opened (request, delivery trouble, unhappy contact)."""
        if self.has_open_request() or self.lost or self.returned_to_sender:
            return True
        if self.exceptions or self.failed_attempts or self.delays:
            return True
        return self.min_sentiment is not None and self.min_sentiment <= NEGATIVE_SENTIMENT

    def deadline(self, window_after_delivery: float, window_after_placed: float) -> float:
        """Event time at which the recovery window expires."""
        if self.delivered_at is not None:
            return self.delivered_at + window_after_delivery
        start = self.placed_at if self.placed_at is not None else self.first_event_at
        return (start or 0.0) + window_after_placed

    def support_reason(self) -> str | None:
        """The latest reason the customer gave: a support intent or a refund reason."""
        return self.last_intent or self.request_reason

    def view(self, now: float) -> dict[str, Any]:
        """A JSON-able view of the case for people (``salvage case``), at event time ``now``."""
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "stage": self.stage,
            "placed": self.placed,
            "as_of": format_ts(now),
            "order_value": round(self.order_value, 2),
            "currency": self.currency,
            "sku_family": self.sku_family,
            "courier_lane": self.lane,
            "campaign": self.campaign,
            "signals": {
                "slip_hours": round(self.slip_hours(now), 1),
                "delays": self.delays,
                "exceptions": self.exceptions,
                "failed_attempts": self.failed_attempts,
                "lost": self.lost,
                "contacts": self.contacts,
                "last_intent": self.last_intent,
                "last_sentiment": self.last_sentiment,
                "request": self.request_type if self.has_open_request() else None,
                "request_reason": self.request_reason,
                "exchange_preferred": self.exchange_preferred,
            },
            "timeline": [[format_ts(ts), type_] for ts, type_ in self.timeline],
            "arm": self.arm,
            "actions": [[format_ts(ts), a] for ts, a in self.actions],
            "outcome": self.outcome,
        }

    def record_action(self, ts: float, action: str) -> None:
        self.actions.append((ts, action))


# --- per-type handlers --------------------------------------------------------------------


def _opt_ts(event: Event, key: str) -> float | None:
    value = event.get(key)
    return parse_ts(value, key) if value is not None else None


def _on_order_placed(case: OrderCase, event: Event) -> None:
    body = event.body
    case.placed = True
    case.placed_at = event.occurred_at
    case.customer_id = body["customer_id"]
    case.currency = _shared(body["currency"])
    case.order_value = float(body["total"])
    cost = 0.0
    known_cost = True
    by_family: dict[str, float] = {}
    for item in body["items"]:
        qty = item["quantity"]
        by_family[item["sku_family"]] = by_family.get(item["sku_family"], 0.0) + (
            qty * item["unit_price"]
        )
        unit_cost = item.get("unit_cost")
        if unit_cost is None:
            known_cost = False
        else:
            cost += qty * unit_cost
    case.order_cost = cost if known_cost else None
    # Main family by value; ties broken by name so the choice is deterministic.
    case.sku_family = _shared(max(sorted(by_family), key=by_family.__getitem__))
    case.promised_at = _opt_ts(event, "promised_delivery_at")
    case.courier = _shared(body.get("courier")) or case.courier
    case.lane = _shared(body.get("lane")) or case.lane
    case.campaign = _shared(body.get("campaign"))
    customer = body.get("customer")
    if isinstance(customer, dict):
        oc, rc, ltv = (customer.get(k) for k in ("orders_count", "returns_count", "lifetime_value"))
        case.customer_orders = int(oc) if oc is not None else None
        case.customer_returns = int(rc) if rc is not None else None
        case.customer_ltv = float(ltv) if ltv is not None else None


def _on_delivery(case: OrderCase, event: Event) -> None:
    type_ = event.type
    estimate = _opt_ts(event, "estimated_delivery_at")
    if estimate is not None:
        case.estimate_at = estimate
    lane = event.get("lane")
    if lane and case.lane is None:
        case.lane = _shared(lane)
    courier = event.get("courier")
    if courier and case.courier is None:
        case.courier = _shared(courier)
    if type_ == "shipped":
        case.shipped_at = event.occurred_at
    elif type_ == "delivered":
        case.delivered_at = event.occurred_at
    elif type_ == "delayed":
        case.delays += 1
    elif type_ == "exception":
        case.exceptions += 1
    elif type_ == "failed_attempt":
        case.failed_attempts += 1
    elif type_ == "lost":
        case.lost = True
    elif type_ == "returned_to_sender":
        case.returned_to_sender = True


def _on_support(case: OrderCase, event: Event) -> None:
    if event.type == "ticket_resolved":
        return
    case.contacts += 1
    if case.first_contact_at is None or event.occurred_at < case.first_contact_at:
        case.first_contact_at = event.occurred_at
    intent = event.get("intent")
    if intent is not None:
        case.last_intent = _shared(intent)
    sentiment = event.get("sentiment")
    if sentiment is not None:
        case.last_sentiment = float(sentiment)
        if case.min_sentiment is None or sentiment < case.min_sentiment:
            case.min_sentiment = float(sentiment)
    if intent == "size_fit":
        case.exchange_preferred = True


def _on_request(case: OrderCase, event: Event) -> None:
    if case.request_type is None or case.request_withdrawn:
        case.request_type = _shared(event.type)
        case.request_at = event.occurred_at
        case.request_withdrawn = False
    reason = event.get("reason")
    if reason is not None:
        case.request_reason = _shared(reason)
    if event.type == "exchange_requested" or reason == "size_fit":
        case.exchange_preferred = True


def _on_withdrawn(case: OrderCase, event: Event) -> None:
    case.request_withdrawn = True


_HANDLERS = {
    "order_placed": _on_order_placed,
    "ticket_opened": _on_support,
    "customer_message": _on_support,
    "ticket_resolved": _on_support,
    "return_requested": _on_request,
    "refund_requested": _on_request,
    "exchange_requested": _on_request,
    "request_withdrawn": _on_withdrawn,
}
for _t in STREAM_TYPES["delivery"]:
    _HANDLERS[_t] = _on_delivery
