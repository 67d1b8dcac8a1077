"""Kafka output: JSON records keyed by ``order_id`` (one order, one partition, ordered)
with headers ``type`` and ``contract_version``. :class:`KafkaRecordSink` writes one stream
to one topic; :class:`KafkaRoutedSink` writes tagged records ``(type, record)`` to the topic
of their type, so that the records a step emits for several topics leave in one produce
and one wait for the broker. Each batch is flushed before ``write_batch`` returns, so a
record is acknowledged before the epoch that produced it can be snapshotted (at-least-once;
a resume re-emits the last epoch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer

from flows.connectors.kafka.serde import Headers, record_headers
from flows.settings import KafkaSettings

log = logging.getLogger("salvage.kafka")

X = TypeVar("X")
#: One record to produce: (topic, headers, record).
Outgoing = tuple[str, Headers, dict[str, Any]]

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


class _ProducerPartition(StatelessSinkPartition[X], Generic[X]):
    """Produces each batch and waits until the broker has acknowledged all of it: one
    flush per batch, whatever the number of topics in it."""

    def __init__(
        self, make: Callable[[], Producer], name: str, route: Callable[[list[X]], list[Outgoing]]
    ) -> None:
        self._make = make
        self._producer = make()
        self._generation = BROKER_STATE.generation
        self._name = name  # the topic, or the topics, for log lines and errors
        self._route = route
        self._failed: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def _produce_all(self, batch: list[Outgoing]) -> None:
        produce, dumps = self._producer.produce, orjson.dumps
        for topic, headers, record in batch:
            key = record.get("order_id")
            while True:
                try:
                    produce(
                        topic,
                        value=dumps(record),
                        key=key.encode() if isinstance(key, str) else None,
                        headers=headers,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self._producer.poll(0.1)

    def _renew(self, items: list[Outgoing], why: str) -> None:
        """Replace the producer and send the batch again. An idempotent producer whose
        broker lost its state (restarted without storage) is never acknowledged again, or
        fails fatally (``OUT_OF_ORDER_SEQUENCE_NUMBER``); a new one is acknowledged.
        Records the old one did get written are written twice: outputs are at least once,
        and consumers deduplicate by key (see docs/operations.md)."""
        log.warning(
            "Kafka %s: %s; replacing the producer and sending the batch of %d again",
            self._name, why, len(items),
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

    def _flush(self, items: list[Outgoing]) -> int:
        """Records not yet acknowledged after one flush slice; a fatal producer error
        (raised from the flush, by confluent-kafka as a SystemError around it) renews the
        producer."""
        try:
            return int(self._producer.flush(FLUSH_SLICE_SECONDS))
        except (KafkaException, SystemError) as exc:
            broker_lost_state()
            self._renew(items, f"the producer failed ({_cause(exc)})")
            return len(items)

    def write_batch(self, batch: list[X]) -> None:
        items = self._route(batch)
        if self._generation != BROKER_STATE.generation:
            log.warning("Kafka %s: a broker lost its state; replacing the producer", self._name)
            self._producer.flush(0)
            self._producer = self._make()
            self._generation = BROKER_STATE.generation
        try:
            self._produce_all(items)
        except (KafkaException, SystemError) as exc:
            self._renew(items, f"the producer failed ({_cause(exc)})")
        remaining = self._flush(items)
        waited = since_renew = FLUSH_SLICE_SECONDS
        while remaining and not self._failed and waited < GIVE_UP_SECONDS:
            # A paused, restarting or restarted broker: keep waiting (librdkafka retries
            # the sends), say so, and renew the producer now and then.
            log.warning(
                "Kafka %s: %d records not acknowledged after %.0f s (broker paused "
                "or down?): waiting",
                self._name, remaining, waited,
            )  # fmt: skip
            if since_renew >= RENEW_AFTER_SECONDS:
                self._renew(items, f"{remaining} records still not acknowledged")
                since_renew = 0.0
            remaining = self._flush(items)
            waited += FLUSH_SLICE_SECONDS
            since_renew += FLUSH_SLICE_SECONDS
        if waited > FLUSH_SLICE_SECONDS and not remaining and not self._failed:
            log.warning("Kafka %s: acknowledged again after %.0f s", self._name, waited)
        if remaining or self._failed:
            why = self._failed[0] if self._failed else f"{remaining} records not acknowledged"
            self._failed.clear()
            # Crash the flow: a restart resumes from the last snapshot and re-emits.
            raise RuntimeError(f"writing to Kafka {self._name} failed: {why}")

    def close(self) -> None:
        self._producer.flush(30.0)


class KafkaRecordSink(DynamicSink[dict[str, Any]]):
    """Writes JSON records to one topic, keyed by ``order_id``, with type/version headers."""

    def __init__(self, settings: KafkaSettings, topic: str, event_type: str) -> None:
        self.settings = settings
        self.topic = topic
        self.event_type = event_type

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> _ProducerPartition[dict[str, Any]]:
        return _ProducerPartition(
            lambda: make_producer(self.settings),
            f"topic {self.topic!r}",
            to_topic(self.topic, self.event_type),
        )


def to_topic(topic: str, event_type: str) -> Callable[[list[dict[str, Any]]], list[Outgoing]]:
    """Routes every record of a batch to ``topic`` with ``event_type`` in its headers.

    >>> to_topic("t.decisions", "decision")([{"order_id": "o1"}])[0][0]
    't.decisions'
    """
    headers = record_headers(event_type)

    def route(records: list[dict[str, Any]]) -> list[Outgoing]:
        return [(topic, headers, record) for record in records]

    return route


class KafkaRoutedSink(DynamicSink[tuple[str, dict[str, Any]]]):
    """Writes tagged records ``(type, record)`` to the topic ``routes`` gives their type,
    with that type in the ``type`` header; several types may share a topic. A record of a
    type without a route is an error (the flow stops): outputs are a closed set.

    One produce and one flush per batch for every topic in it: where a step's records go
    to three topics, the flow waits for the broker once per batch instead of once per
    topic (docs/performance.md, "Live latency and backlog").
    """

    def __init__(self, settings: KafkaSettings, routes: Mapping[str, str]) -> None:
        self.settings = settings
        self.routes = dict(routes)

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> _ProducerPartition[tuple[str, dict[str, Any]]]:
        name = "topics " + ", ".join(repr(t) for t in sorted(set(self.routes.values())))
        return _ProducerPartition(lambda: make_producer(self.settings), name, by_type(self.routes))


def by_type(
    routes: Mapping[str, str],
) -> Callable[[list[tuple[str, dict[str, Any]]]], list[Outgoing]]:
    """Routes each tagged record ``(type, record)`` to the topic of its type, with the type
    in its headers; raises ValueError for a type without a topic.

    >>> route = by_type({"decision": "t.decisions", "review": "t.decisions"})
    >>> [(topic, dict(headers)["type"]) for topic, headers, _ in
    ...  route([("decision", {"order_id": "o1"}), ("review", {"order_id": "o1"})])]
    [('t.decisions', b'decision'), ('t.decisions', b'review')]
    >>> route([("outcome", {"order_id": "o1"})])
    Traceback (most recent call last):
    ...
    ValueError: no Kafka topic for records of type 'outcome'
    """
    targets = {kind: (topic, record_headers(kind)) for kind, topic in routes.items()}

    def route(tagged: list[tuple[str, dict[str, Any]]]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for kind, record in tagged:
            target = targets.get(kind)
            if target is None:
                raise ValueError(f"no Kafka topic for records of type {kind!r}")
            out.append((target[0], target[1], record))
        return out

    return route


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
