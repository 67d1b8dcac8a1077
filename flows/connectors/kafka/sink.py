"""Kafka output: :class:`KafkaRecordSink` writes JSON records keyed by ``order_id`` (one
order, one partition, ordered) with headers ``type`` and ``contract_version``.

Records are acknowledged before the epoch that produced them is snapshotted, not before
each batch returns: ``write_batch`` hands them to the producer (which sends them within
``linger.ms``), and the partition's ``snapshot``, which Bytewax calls at the end of every
epoch before the epoch can be committed, waits for the broker's acknowledgements. A crash
before that re-emits the epoch on resume (at-least-once), as before; what changed is that
the dataflow no longer stops for a broker round trip per sink and batch (measured: a fifth
of a live flow's time at 1,000 events/s). The sink is therefore a Bytewax
``FixedPartitionedSink`` (the only sink told of epochs): its input is (order id, record),
and its partitions share one producer per topic and process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaException, Producer

from flows.connectors.kafka.serde import record_headers
from flows.settings import KafkaSettings

log = logging.getLogger("salvage.kafka")

#: How long one flush waits before the sink logs that the broker is not acknowledging.
FLUSH_SLICE_SECONDS = 10.0
#: After this long without acknowledgements the producer is replaced (see _renew).
RENEW_AFTER_SECONDS = 20.0
#: After this long the batch fails and the flow stops (a supervisor restarts it).
GIVE_UP_SECONDS = 300.0


class _BrokerState:
    """How many times this process saw a broker lose its state (a log that ends before
    our read position, a producer failing fatally): every sink replaces its producer
    before its next batch instead of waiting for it to stall (an idempotent producer a
    broker no longer knows is never acknowledged)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0

    def lost(self) -> None:
        with self._lock:
            self.generation += 1


BROKER_STATE = _BrokerState()


def broker_lost_state() -> None:
    """Tell every Kafka sink of this process that a broker lost its state."""
    BROKER_STATE.lost()


def _cause(exc: BaseException) -> str:
    """The Kafka error behind ``exc`` (confluent-kafka wraps a fatal error raised in a
    delivery report in a SystemError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException):
            return str(seen.args[0]) if seen.args else str(seen)
        seen = seen.__cause__ or seen.__context__
    return str(exc)[:300]


#: Records kept for a renewal before the writer waits for acknowledgements mid-epoch (a
#: bound on memory at high rates with long epochs).
MAX_UNACKNOWLEDGED = 50_000


class _TopicWriter:
    """One producer for one topic in this process: ``write`` hands records to it, and
    ``acknowledge`` waits until the broker has them all (renewing the producer and sending
    them again if it must). Shared by the sink's partitions; thread-safe."""

    def __init__(self, make: Callable[[], Producer], topic: str, event_type: str) -> None:
        self._make = make
        self._producer = make()
        self._generation = BROKER_STATE.generation
        self._topic = topic
        self._headers = record_headers(event_type)
        self._failed: list[str] = []
        #: Records produced since the last acknowledgement (sent again on a renewal).
        self._unacked: list[dict[str, Any]] = []
        self._lock = threading.RLock()

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def _produce_all(self, items: list[dict[str, Any]]) -> None:
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

    def _renew(self, items: list[dict[str, Any]], why: str) -> None:
        """Replace the producer and send the batch again. An idempotent producer whose
        broker lost its state (restarted without storage) is never acknowledged again, or
        fails fatally (``OUT_OF_ORDER_SEQUENCE_NUMBER``); a new one is acknowledged.
        Records the old one did get written are written twice: outputs are at least once,
        and consumers deduplicate by key (see docs/operations.md)."""
        log.warning(
            "Kafka topic %r: %s; replacing the producer and sending the batch of %d again",
            self._topic, why, len(items),
        )  # fmt: skip
        try:
            self._producer.purge()
            self._producer.poll(0)  # serve the purge's delivery reports ...
        except (KafkaException, SystemError):
            pass  # a producer in a fatal state: dropped all the same
        self._failed.clear()  # ... which are not failures of the records
        self._producer = self._make()
        self._generation = BROKER_STATE.generation
        self._produce_all(items)

    def _flush(self, items: list[dict[str, Any]]) -> int:
        """Records not yet acknowledged after one flush slice; a fatal producer error
        (raised from the flush, by confluent-kafka as a SystemError around it) renews the
        producer."""
        try:
            return int(self._producer.flush(FLUSH_SLICE_SECONDS))
        except (KafkaException, SystemError) as exc:
            broker_lost_state()
            self._renew(items, f"the producer failed ({_cause(exc)})")
            return len(items)

    def write(self, items: list[dict[str, Any]]) -> None:
        """Hand ``items`` to the producer (sent in the background); not yet acknowledged."""
        with self._lock:
            if self._generation != BROKER_STATE.generation:
                log.warning(
                    "Kafka topic %r: a broker lost its state; replacing the producer", self._topic
                )
                self._producer.flush(0)
                self._producer = self._make()
                self._generation = BROKER_STATE.generation
                # What the old producer had not had acknowledged goes again with the new one.
                self._produce_all(self._unacked)
            try:
                self._produce_all(items)
            except (KafkaException, SystemError) as exc:
                self._unacked.extend(items)
                self._renew(self._unacked, f"the producer failed ({_cause(exc)})")
            else:
                self._unacked.extend(items)
            self._producer.poll(0)  # serve delivery reports
            if len(self._unacked) > MAX_UNACKNOWLEDGED:
                self.acknowledge()

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        """``write`` and ``acknowledge`` (tools and tests that write one batch)."""
        self.write(items)
        self.acknowledge()

    def acknowledge(self) -> None:
        """Wait until the broker acknowledged every record written so far; raise (the flow
        stops, a restart resumes from the last snapshot and re-emits) if it never does."""
        with self._lock:
            if not self._unacked and not self._failed:
                return
            items = self._unacked
            remaining = self._flush(items)
            waited = since_renew = FLUSH_SLICE_SECONDS
            while remaining and not self._failed and waited < GIVE_UP_SECONDS:
                # A paused, restarting or restarted broker: keep waiting (librdkafka retries
                # the sends), say so, and renew the producer now and then.
                log.warning(
                    "Kafka topic %r: %d records not acknowledged after %.0f s (broker paused "
                    "or down?): waiting",
                    self._topic, remaining, waited,
                )  # fmt: skip
                if since_renew >= RENEW_AFTER_SECONDS:
                    self._renew(items, f"{remaining} records still not acknowledged")
                    since_renew = 0.0
                remaining = self._flush(items)
                waited += FLUSH_SLICE_SECONDS
                since_renew += FLUSH_SLICE_SECONDS
            if waited > FLUSH_SLICE_SECONDS and not remaining and not self._failed:
                log.warning("Kafka topic %r: acknowledged again after %.0f s", self._topic, waited)
            if remaining or self._failed:
                why = self._failed[0] if self._failed else f"{remaining} records not acknowledged"
                self._failed.clear()
                raise RuntimeError(f"writing to Kafka topic {self._topic!r} failed: {why}")
            self._unacked = []

    def close(self) -> None:
        with self._lock:
            self._producer.flush(30.0)


class _RecordPart(StatefulSinkPartition[dict[str, Any], None]):
    """One partition of :class:`KafkaRecordSink`: writes through the shared writer and,
    at the end of each epoch, waits for its acknowledgements (no state to resume)."""

    def __init__(self, writer: _TopicWriter) -> None:
        self.writer = writer

    def write_batch(self, values: list[dict[str, Any]]) -> None:
        self.writer.write(values)

    def snapshot(self) -> None:
        self.writer.acknowledge()

    def close(self) -> None:
        self.writer.close()


#: Partitions of a record sink. Records are routed to them by order id (one order, one
#: partition, so its records keep their order); Bytewax spreads them over the workers of
#: every process. More than the workers of a large cluster; they cost nothing apart.
RECORD_SINK_PARTS = 16

_WRITERS_LOCK = threading.Lock()


class KafkaRecordSink(FixedPartitionedSink[dict[str, Any], None]):
    """Writes JSON records to one topic, keyed by ``order_id``, with type/version headers.
    Takes (order id, record) pairs (``flows.dataflow.attach_outputs`` keys them)."""

    def __init__(self, settings: KafkaSettings, topic: str, event_type: str) -> None:
        self.settings = settings
        self.topic = topic
        self.event_type = event_type
        self._writer: _TopicWriter | None = None

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(RECORD_SINK_PARTS)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[dict[str, Any], None]:
        with _WRITERS_LOCK:  # the workers of a process build their parts concurrently
            if self._writer is None:
                self._writer = _TopicWriter(
                    lambda: make_producer(self.settings), self.topic, self.event_type
                )
            return _RecordPart(self._writer)


def make_producer(settings: KafkaSettings, **extra: Any) -> Producer:
    """A producer with the security passthrough, low linger and idempotence on."""
    config: dict[str, Any] = {
        **settings.client_config(),
        "linger.ms": 5,
        "enable.idempotence": True,
        # Topics are created by the operator (`salvage topics create`), with the partition
        # count the flow needs. A producer that creates a missing topic by asking for it
        # gets the broker's default count, and several clients asking at once (all sinks
        # after a broker came back empty) can race the operator's creation.
        "allow.auto.create.topics": False,
        **settings.producer,
        **extra,
    }
    return Producer(config)
