"""How Salvage records look on Kafka: input items in, JSON with headers out."""

from __future__ import annotations

from typing import Any

from operators.contract import CONTRACT_VERSION

#: An input item: (stream, parsed JSON or raw bytes, wall-clock receive time in epoch
#: seconds, partition ``p<i>``); the partition feeds the clock's per-partition watermark.
InputItem = tuple[str, Any, float, str]


#: The headers of an output record, as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


def record_headers(event_type: str) -> Headers:
    """The headers of an output record.

    >>> record_headers("intervention")
    [('type', b'intervention'), ('contract_version', b'1')]
    """
    return [("type", event_type.encode()), ("contract_version", CONTRACT_VERSION.encode())]
