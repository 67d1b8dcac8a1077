"""Kafka output: :class:`KafkaRecordSink` writes JSON records keyed by ``order_id`` (one
order, one partition, ordered) with headers ``type`` and ``contract_version``. Each batch is
flushed before ``write_batch`` returns, so a record is acknowledged before the epoch that
produced it can be snapshotted (at-least-once; a resume re-emits the last epoch).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer

from flows.connectors.kafka.serde import record_headers
from flows.settings import KafkaSettings

log = logging.getLogger("salvage.kafka")


class _ProducerPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, producer: Producer, topic: str, event_type: str) -> None:
        self._producer = producer
        self._topic = topic
        self._headers = record_headers(event_type)
        self._failed: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        produce, dumps = self._producer.produce, orjson.dumps
        for record in items:
            key = record.get("order_id")
            while True:
                try:
                    produce(
                        self._topic,
                        value=dumps(record),
                        key=key.encode() if isinstance(key, str) else None,
                        headers=self._headers,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self._producer.poll(0.1)
        remaining = self._producer.flush(60.0)
        if remaining or self._failed:
            why = self._failed[0] if self._failed else f"{remaining} records not acknowledged"
            self._failed.clear()
            # Crash the flow: a restart resumes from the last snapshot and re-emits.
            raise RuntimeError(f"writing to Kafka topic {self._topic!r} failed: {why}")

    def close(self) -> None:
        self._producer.flush(30.0)


class KafkaRecordSink(DynamicSink[dict[str, Any]]):
    """Writes JSON records to one topic, keyed by ``order_id``, with type/version headers."""

    def __init__(self, settings: KafkaSettings, topic: str, event_type: str) -> None:
        self.settings = settings
        self.topic = topic
        self.event_type = event_type

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProducerPartition:
        return _ProducerPartition(make_producer(self.settings), self.topic, self.event_type)


def make_producer(settings: KafkaSettings, **extra: Any) -> Producer:
    """A producer with the security passthrough, low linger and idempotence on."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "linger.ms": 5,
        "enable.idempotence": True,
        **settings.producer,
        **extra,
    }
    return Producer(config)
