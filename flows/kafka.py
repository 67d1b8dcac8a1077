"""Kafka wiring of live mode: the input source, the output sink, topic creation, a producer.

Broker-agnostic: only the Kafka protocol through librdkafka (confluent-kafka), so Apache
Kafka, Redpanda and Tansu all work. Security settings are passed through unchanged.

Input
    :class:`KafkaInputSource` is a Bytewax ``FixedPartitionedSource``; its partition
    ``p<i>`` reads partition ``i`` of every input topic with ``assign()`` (no consumer
    group: Bytewax recovery owns the offsets), in batches of up to ``batch_size`` records,
    merged by event time, and yields ``(stream, payload, received_at)`` with
    ``received_at`` the wall-clock time of the read. The resume state is the next offset
    to emit per topic. Without a snapshot a partition starts at ``earliest`` or
    ``latest``, resolved to concrete offsets when the partition is built, so the first
    snapshot already pins them.

Output
    :class:`KafkaRecordSink` writes JSON records keyed by ``order_id`` (one order, one
    partition, ordered) with headers ``type`` and ``contract_version``. Each batch is
    flushed before ``write_batch`` returns, so a record is acknowledged before the epoch
    that produced it can be snapshotted (at-least-once; a resume re-emits the last epoch).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flows.settings import KafkaSettings
from operators.contract import CONTRACT_VERSION, ContractError, parse_ts

log = logging.getLogger("salvage.kafka")

#: An input item: (stream, parsed JSON or raw bytes, wall-clock receive time in epoch
#: seconds, partition ``p<i>``); the partition feeds the clock's per-partition watermark.
InputItem = tuple[str, Any, float, str]


class TopicMissingError(RuntimeError):
    """An input or output topic does not exist on the brokers."""


def _partitions(admin: AdminClient, topic: str, timeout: float = 10.0) -> list[int]:
    meta = admin.list_topics(topic, timeout=timeout)
    tm = meta.topics.get(topic)
    if tm is None or tm.error is not None or not tm.partitions:
        why = tm.error.str() if tm is not None and tm.error is not None else "no partitions"
        raise TopicMissingError(
            f"Kafka topic {topic!r} is not available ({why}); create it with "
            "`salvage topics create`"
        )
    return sorted(tm.partitions)


def _event_time(payload: Any) -> float:
    """``occurred_at`` of a parsed payload, or -inf (unreadable: emitted at once)."""
    if isinstance(payload, dict):
        try:
            return parse_ts(payload.get("occurred_at"))
        except ContractError:
            pass
    return float("-inf")


class _AlignedPartition(StatefulSourcePartition[InputItem, dict[str, int]]):
    """Partition ``index`` of every input topic, merged by event time.

    Topics are read at different speeds (a backlog on one, a slow producer on another),
    but the event-time clock downstream wants the streams interleaved as they happened.
    Records are buffered per topic and the one with the smallest ``occurred_at`` goes
    first, as long as every other topic has a buffered record too, is caught up (nothing
    more to read now), or has been empty for ``max_idle``. Live, every topic is caught up
    nearly all the time, so this adds no latency; on a backlog it keeps the topics in
    step, like the replay merge. The resume state is, per topic, the offset of the first
    record not yet emitted.
    """

    def __init__(
        self,
        config: dict[str, Any],
        index: int,
        streams: dict[str, str],
        offsets: dict[str, int],
        highs: dict[str, int],
        batch_size: int,
        idle_poll: timedelta,
        max_idle: float,
        on_lag: Callable[[str, int, int], None] | None = None,
        lag_every: float = 5.0,
    ) -> None:
        self._consumer = Consumer(config)
        self._source = f"p{index}"  # the clock keeps a watermark per input partition
        self._on_lag = on_lag
        self._lag_every = lag_every
        self._lag_at = float("-inf")
        self._consumer.assign([TopicPartition(t, index, offsets[t]) for t in streams])
        self._index = index
        self._streams = streams
        self._next = dict(offsets)  # next offset to read, per topic
        self._high = dict(highs)  # last known high watermark, per topic
        self._buffers: dict[str, deque[tuple[float, int, Any]]] = {t: deque() for t in streams}
        self._empty_since: dict[str, float] = {}
        self._batch_size = batch_size
        self._idle_poll = idle_poll
        self._max_idle = max_idle
        self._awake: datetime | None = None

    def _read(self) -> None:
        msgs = self._consumer.consume(self._batch_size, 0)
        loads = orjson.loads
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"error reading Kafka topic {msg.topic()!r}: {err}")
            raw = msg.value() or b""
            try:
                payload: Any = loads(raw)
            except orjson.JSONDecodeError:
                payload = raw  # decoded downstream into a dead letter with the reason
            topic = msg.topic()
            offset = msg.offset()
            self._buffers[topic].append((_event_time(payload), offset, payload))
            self._next[topic] = offset + 1

    def _caught_up(self, topic: str, now: float) -> bool:
        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, self._index), cached=True
        )
        if high is not None and high >= 0:
            self._high[topic] = high
        if self._next[topic] >= self._high.get(topic, -1) >= 0:
            return True
        since = self._empty_since.setdefault(topic, now)
        return now - since >= self._max_idle

    def next_batch(self) -> list[InputItem]:
        self._read()
        buffers = self._buffers
        now = time.monotonic()
        blocked = False
        batch: list[InputItem] = []
        received = time.time()
        limit = self._batch_size
        while len(batch) < limit:
            head_topic = None
            head_ts = float("inf")
            for topic, buf in buffers.items():
                if buf and buf[0][0] < head_ts:
                    head_topic, head_ts = topic, buf[0][0]
            if head_topic is None:
                break
            # Every empty topic must be caught up (or idle too long) before we go on.
            if any(
                not buf and not self._caught_up(t, now)
                for t, buf in buffers.items()
                if t != head_topic
            ):
                blocked = True
                break
            _, _, payload = buffers[head_topic].popleft()
            batch.append((self._streams[head_topic], payload, received, self._source))
        for topic, buf in buffers.items():
            if buf:
                self._empty_since.pop(topic, None)
        if self._on_lag is not None and now - self._lag_at >= self._lag_every:
            self._lag_at = now
            self._report_lag()
        if not batch:
            # Nothing to emit: come back after the idle interval instead of spinning.
            wait = min(self._idle_poll, timedelta(milliseconds=1)) if blocked else self._idle_poll
            self._awake = datetime.now(UTC) + wait
        else:
            self._awake = None
        return batch

    def _report_lag(self) -> None:
        """Lag per topic: from the first record not yet emitted to the end of the partition
        (the watermark cached by the consumer: no broker round trip)."""
        assert self._on_lag is not None
        for topic, position in self.snapshot().items():
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, self._index), cached=True
            )
            if high is not None and high >= 0:
                self._on_lag(topic, self._index, max(high - position, 0))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, int]:
        # Buffered records were read but not emitted: resume from the first of them.
        return {t: (buf[0][1] if buf else self._next[t]) for t, buf in self._buffers.items()}

    def close(self) -> None:
        self._consumer.close()


class KafkaInputSource(FixedPartitionedSource[InputItem, dict[str, int]]):
    """Bytewax source over several co-partitioned topics, each mapped to a stream name.

    ``topics`` maps topic -> stream name. Bytewax partition ``p<i>`` reads partition ``i``
    of every topic, merged by event time (see :class:`_AlignedPartition`); since records
    are keyed by ``order_id`` and the topics have the same partition count, all events of
    an order are in the same Bytewax partition. Items are ``(stream, payload, received_at)``
    with the payload parsed JSON (or the raw bytes if it is not JSON).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Mapping[str, str],
        batch_size: int = 1000,
        consumer_config: Mapping[str, Any] | None = None,
        on_lag: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = dict(topics)
        self.batch_size = batch_size
        self.consumer_config = dict(consumer_config or {})
        self.on_lag = on_lag

    def _partition_map(self) -> dict[str, list[int]]:
        admin = AdminClient(self.settings.client_config())
        return {topic: _partitions(admin, topic) for topic in self.topics}

    def list_parts(self) -> list[str]:
        counts = {t: len(p) for t, p in self._partition_map().items()}
        if len(set(counts.values())) > 1:
            log.warning(
                "input topics have different partition counts %s: events of one order may "
                "be read by different workers; create them with the same count",
                counts,
            )
        return [f"p{i}" for i in range(max(counts.values()))]

    def _config(self) -> dict[str, Any]:
        return {
            **self.settings.client_config(),
            "group.id": "salvage-assign-only",  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Low fetch wait: an idle partition answers quickly when a record arrives.
            "fetch.wait.max.ms": 20,
            **self.consumer_config,
        }

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, int] | None
    ) -> _AlignedPartition:
        index = int(for_part.removeprefix("p"))
        present = {t for t, parts in self._partition_map().items() if index in parts}
        streams = {t: s for t, s in self.topics.items() if t in present}
        config = self._config()
        probe = Consumer(config)
        offsets: dict[str, int] = {}
        highs: dict[str, int] = {}
        try:
            for topic in streams:
                low, high = probe.get_watermark_offsets(TopicPartition(topic, index), timeout=10.0)
                highs[topic] = high
                if resume_state is not None and topic in resume_state:
                    offsets[topic] = resume_state[topic]
                elif self.settings.starting_offset == "latest":
                    offsets[topic] = high
                else:
                    offsets[topic] = low
        finally:
            probe.close()
        if resume_state is not None:
            dropped = sorted(set(resume_state) - set(streams))
            if dropped:
                log.warning("recovery state has topics no longer configured: %s", dropped)
        return _AlignedPartition(
            config,
            index,
            streams,
            offsets,
            highs,
            self.batch_size,
            timedelta(milliseconds=self.settings.idle_poll_ms),
            self.settings.max_idle_ms / 1000.0,
            self.on_lag,
        )


# --- output ------------------------------------------------------------------------------


def record_headers(event_type: str) -> list[tuple[str, bytes]]:
    """The headers of an output record.

    >>> record_headers("intervention")
    [('type', b'intervention'), ('contract_version', b'1')]
    """
    return [("type", event_type.encode()), ("contract_version", CONTRACT_VERSION.encode())]


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


# --- topics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicResult:
    """What ``create_topics`` did for one topic."""

    topic: str
    created: bool
    partitions: int
    note: str = ""


def all_topics(settings: KafkaSettings) -> list[str]:
    """Input, review-decision and output topics, in that order."""
    return [
        *settings.topics.values(),
        settings.review_decisions_topic,
        *settings.output_topics.values(),
    ]


def create_topics(
    settings: KafkaSettings,
    partitions: int = 3,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[TopicResult]:
    """Create every topic Salvage uses; existing topics are left as they are (idempotent)."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    if replication_factor < 1:
        raise ValueError("replication factor must be >= 1")
    admin = AdminClient(settings.client_config())
    existing = admin.list_topics(timeout=timeout).topics
    wanted = all_topics(settings)
    results: dict[str, TopicResult] = {}
    new = []
    for topic in wanted:
        meta = existing.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            n = len(meta.partitions)
            note = f"exists with {n} partitions" + (
                f" (asked for {partitions}; not changed)" if n != partitions else ""
            )
            results[topic] = TopicResult(topic, False, n, note)
        else:
            new.append(
                NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)
            )
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for topic, future in futures.items():
            try:
                future.result(timeout)
                results[topic] = TopicResult(topic, True, partitions, "created")
            except KafkaException as exc:
                err = exc.args[0]
                if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    results[topic] = TopicResult(topic, False, partitions, "exists")
                else:
                    raise RuntimeError(f"creating topic {topic!r} failed: {err}") from None
    return [results[t] for t in wanted]


# --- producing a replay directory --------------------------------------------------------


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
