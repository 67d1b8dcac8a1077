"""The contract's vocabulary and limits, and the two records decoding yields: an
:class:`Event` or a :class:`DeadLetter` (part of :mod:`operators.contract`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.contract.timestamps import _format_ts_safe
from operators.vocabulary import DeadLetterKind

CONTRACT_VERSION = "1"

#: Stream name -> the event types it may carry.
STREAM_TYPES: dict[str, frozenset[str]] = {
    "orders": frozenset({"order_placed", "order_cancelled"}),
    "delivery": frozenset(
        {
            "shipped",
            "in_transit",
            "out_for_delivery",
            "delivered",
            "delayed",
            "exception",
            "failed_attempt",
            "returned_to_sender",
            "lost",
        }
    ),
    "support": frozenset({"ticket_opened", "customer_message", "ticket_resolved"}),
    "refunds": frozenset(
        {
            "return_requested",
            "refund_requested",
            "exchange_requested",
            "refund_issued",
            "exchange_completed",
            "return_received",
            "request_withdrawn",
            "chargeback_opened",
        }
    ),
}
STREAMS: tuple[str, ...] = ("orders", "delivery", "support", "refunds")

INTENTS = frozenset(
    {
        "where_is_my_order",
        "delivery_problem",
        "damaged_item",
        "wrong_item",
        "size_fit",
        "not_as_described",
        "product_question",
        "cancel_request",
        "return_request",
        "refund_request",
        "other",
    }
)
#: Refund and return reasons, in the contract's order (tools index by it).
REFUND_REASON_ORDER: tuple[str, ...] = (
    "size_fit",
    "damaged",
    "late_delivery",
    "not_as_described",
    "wrong_item",
    "changed_mind",
    "other",
)
REFUND_REASONS = frozenset(REFUND_REASON_ORDER)
#: Event types that resolve (close) a case.
RESOLVING_TYPES = frozenset(
    {"refund_issued", "exchange_completed", "order_cancelled", "chargeback_opened"}
)

#: Text kept in a dead-letter record (its ``raw``) is cut to this many characters.
MAX_RAW_CHARS = 2048

# --- limits (docs/events.md "Limits"): a record over one is dead-lettered, never processed,
# so no single record can exhaust memory, the stack or the time of a step.
#: Largest accepted payload, in bytes of JSON (or characters of strings, for parsed input).
MAX_PAYLOAD_BYTES = 256 * 1024
#: Deepest accepted nesting of objects and lists (the event object itself is depth 1).
#: Deep enough for any real event; far below the depth at which serialisers give up (255).
MAX_NESTING_DEPTH = 32
#: Most line items one ``order_placed`` may carry.
MAX_ITEMS_PER_ORDER = 1000
#: Most events one order's case accepts; more are dead-lettered (enforced by the clock).
MAX_EVENTS_PER_CASE = 1000
#: Longest accepted identifier (``event_id``, ``order_id`` and the other ``*_id`` fields).
MAX_ID_CHARS = 256
#: Largest magnitude of an accepted number (money, counts, quantities): beyond it, sums
#: and floats downstream lose meaning or overflow.
MAX_NUMBER = 1e15
#: Largest accepted ``quantity`` of one line item.
MAX_QUANTITY = 1_000_000


@dataclass(slots=True, frozen=True)
class Event:
    """One valid input event. ``occurred_at`` is epoch seconds (UTC); ``body`` is the JSON
    object as received (unknown fields included, never re-validated downstream)."""

    stream: str
    type: str
    event_id: str
    order_id: str
    occurred_at: float
    body: dict[str, Any]
    #: Wall-clock (``time.monotonic``) when decoded; for latency metrics, never written out.
    ingested_at: float = 0.0
    #: When the record was received (epoch seconds, as given to :func:`decode`); dead
    #: letters made later (late, after close) report it.
    received_at: float = 0.0
    #: The input partition it was read from (live: ``p<i>``); the event-time watermark is
    #: the minimum over partitions, so a partition read ahead of the others makes no
    #: event late. Empty for a replay's single merged input.
    source: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the body, or ``default``."""
        return self.body.get(key, default)


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A record that could not be used, with why.

    ``raw`` is not the payload: payloads carry names, addresses and e-mails, so it is a
    JSON object of the allowlisted fields of the payload (:data:`RAW_FIELDS`, short
    scalars only), at most MAX_RAW_CHARS characters; ``payload_sha256`` identifies the
    payload itself (to find it in the source). ``kind`` is the category metrics count.
    """

    stream: str
    reason: str
    raw: str
    received_at: float
    event_id: str | None = None
    order_id: str | None = None
    kind: DeadLetterKind = DeadLetterKind.INVALID_FIELD
    payload_sha256: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``dead_letter`` output record of the contract."""
        return {
            "stream": self.stream,
            "kind": str(self.kind),
            "reason": self.reason,
            "raw": self.raw,
            "payload_sha256": self.payload_sha256,
            "received_at": _format_ts_safe(self.received_at),
            "event_id": self.event_id,
            "order_id": self.order_id,
        }
