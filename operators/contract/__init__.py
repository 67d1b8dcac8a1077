"""Event contract v1: the input streams, their types, and decoding with validation.

Decoding turns one raw record (JSON bytes from Kafka or a file line, or an already
parsed object) into an :class:`Event`, or into a :class:`DeadLetter` with a reason a
person can act on. Unknown fields are ignored. See ``docs/events.md``.

>>> ev = decode("orders", b'{"event_id": "e1", "type": "order_cancelled", '
...             b'"order_id": "o1", "occurred_at": "2026-06-03T14:05:00Z"}')
>>> ev.type, ev.order_id, ev.occurred_at
('order_cancelled', 'o1', 1780495500.0)
>>> bad = decode("orders", b'{"event_id": "e2", "type": "order_placed"}', received_at=0.0)
>>> bad.reason
'missing required field order_id'
"""

from __future__ import annotations

from operators.contract.decode import dead_letter, decode, validate
from operators.contract.errors import ContractError
from operators.contract.outputs import (
    VALIDATORS,
    validate_dead_letter,
    validate_decision,
    validate_intervention,
    validate_outcome,
)
from operators.contract.payload import (
    RAW_FIELDS,
    check_payload,
    check_shape,
    load_json,
    parse_json,
    payload_digest,
    redact,
    truncate_raw,
)
from operators.contract.schema import (
    CONTRACT_VERSION,
    INTENTS,
    MAX_EVENTS_PER_CASE,
    MAX_ID_CHARS,
    MAX_ITEMS_PER_ORDER,
    MAX_NESTING_DEPTH,
    MAX_NUMBER,
    MAX_PAYLOAD_BYTES,
    MAX_QUANTITY,
    MAX_RAW_CHARS,
    REFUND_REASON_ORDER,
    REFUND_REASONS,
    RESOLVING_TYPES,
    STREAM_TYPES,
    STREAMS,
    DeadLetter,
    Event,
)
from operators.contract.timestamps import MAX_TS, MIN_TS, format_ts, parse_ts

# Errors raised here read as ``operators.contract.ContractError`` (the name to catch).
ContractError.__module__ = __name__

__all__ = [
    "CONTRACT_VERSION",
    "INTENTS",
    "MAX_EVENTS_PER_CASE",
    "MAX_ID_CHARS",
    "MAX_ITEMS_PER_ORDER",
    "MAX_NESTING_DEPTH",
    "MAX_NUMBER",
    "MAX_PAYLOAD_BYTES",
    "MAX_QUANTITY",
    "MAX_RAW_CHARS",
    "MAX_TS",
    "MIN_TS",
    "RAW_FIELDS",
    "REFUND_REASONS",
    "REFUND_REASON_ORDER",
    "RESOLVING_TYPES",
    "STREAMS",
    "STREAM_TYPES",
    "VALIDATORS",
    "ContractError",
    "DeadLetter",
    "Event",
    "check_payload",
    "check_shape",
    "dead_letter",
    "decode",
    "format_ts",
    "load_json",
    "parse_json",
    "parse_ts",
    "payload_digest",
    "redact",
    "truncate_raw",
    "validate",
    "validate_dead_letter",
    "validate_decision",
    "validate_intervention",
    "validate_outcome",
]
