"""Producing a replay directory's events to the input topics (``salvage produce``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson
from confluent_kafka import Producer

from flows.settings import KafkaSettings

log = logging.getLogger("salvage.kafka")


def iter_input_dir(input_dir: Path) -> Iterator[tuple[str, bytes, str | None, str | None]]:
    """``(stream, value, order_id, event_id)`` of a replay directory in event-time order."""
    from flows.sources import MergedFiles, find_stream_files

    merged = MergedFiles(find_stream_files(Path(input_dir)))
    try:
        for stream, payload, _ in merged:
            if isinstance(payload, dict):
                oid, eid = payload.get("order_id"), payload.get("event_id")
                yield (
                    stream,
                    orjson.dumps(payload),
                    oid if isinstance(oid, str) else None,
                    eid if isinstance(eid, str) else None,
                )
            else:
                yield stream, bytes(payload), None, None
    finally:
        merged.close()


def produce_events(
    producer: Producer,
    settings: KafkaSettings,
    events: Iterable[tuple[str, bytes, str | None, str | None]],
    rate: float | None = None,
    on_produced: Callable[[str | None, float], None] | None = None,
    limit: int | None = None,
) -> int:
    """Produce ``(stream, value, order_id, event_id)`` items to the input topics, keyed by
    order id, at ``rate`` events per second (None: as fast as possible). Calls
    ``on_produced(event_id, wall_time)`` just before each produce. Returns the count."""
    interval = 1.0 / rate if rate else 0.0
    started = time.perf_counter()
    n = 0
    for stream, value, order_id, event_id in events:
        if limit is not None and n >= limit:
            break
        if interval:
            due = started + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        if on_produced is not None:
            on_produced(event_id, time.time())
        while True:
            try:
                producer.produce(
                    settings.topic_of(stream),
                    value=value,
                    key=order_id.encode() if order_id else None,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        n += 1
    producer.flush(60.0)
    return n
