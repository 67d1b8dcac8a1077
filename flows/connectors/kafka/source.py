"""Kafka input: :class:`KafkaInputSource`, a Bytewax ``FixedPartitionedSource``.

Its partition ``p<i>`` reads partition ``i`` of every input topic with ``assign()`` (no
consumer group: Bytewax recovery owns the offsets), in batches of up to ``batch_size``
records, merged by event time, and yields ``(stream, payload, received_at, partition)`` with
``received_at`` the wall-clock time of the read. The resume state is the next offset to emit
per topic. Without a snapshot a partition starts at ``earliest`` or ``latest``, resolved to
concrete offsets when the partition is built, so the first snapshot already pins them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from flows.connectors.kafka.admin import topic_partitions
from flows.connectors.kafka.serde import InputItem
from flows.connectors.kafka.sink import broker_lost_state
from flows.settings import KafkaSettings
from flows.sources import occurred_at

log = logging.getLogger("salvage.kafka")

#: Seconds between two warnings of the same kind (a broker outage repeats them).
WARN_EVERY = 10.0
#: A backlog arriving after a silence (see _AlignedPartition._settling): records spanning
#: more event time than this wait SETTLE_FACTOR * max_idle for the other topics' records.
SETTLE_SPAN_SECONDS = 60.0
SETTLE_FACTOR = 4.0

#: Errors a read can get while a broker is paused, restarting or unreachable; librdkafka
#: recovers from them by itself.
_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._AUTO_OFFSET_RESET,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.OFFSET_OUT_OF_RANGE,
    KafkaError.REQUEST_TIMED_OUT,
}


def _transient(err: KafkaError) -> bool:
    return err.code() in _TRANSIENT or bool(err.retriable())


_client_warned: dict[int, float] = {}


def _on_client_error(err: KafkaError) -> None:
    """librdkafka's client-level errors (a broker that stopped answering, all brokers
    down), in the Salvage log at most every WARN_EVERY seconds per kind: a stalled broker
    stalls the input, and the log must say why."""
    now = time.monotonic()
    if now - _client_warned.get(err.code(), -math.inf) >= WARN_EVERY:
        _client_warned[err.code()] = now
        log.warning("Kafka client: %s (input waits; librdkafka retries)", err.str())


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
        batch_size: int,
        idle_poll: timedelta,
        max_idle: float,
        on_lag: Callable[[str, int, int], None] | None = None,
        lag_every: float = 5.0,
        end_when_idle: float | None = None,
    ) -> None:
        self._consumer = Consumer(config)
        self._end_when_idle = end_when_idle
        self._at_end_since: float | None = None
        self._warned: dict[str, float] = {}
        self._silent_since: float | None = None
        self._settle_until: float | None = None
        self._source = f"p{index}"  # the clock keeps a watermark per input partition
        self._on_lag = on_lag
        self._lag_every = lag_every
        self._lag_at = float("-inf")
        self._consumer.assign([TopicPartition(t, index, offsets[t]) for t in streams])
        self._index = index
        self._streams = streams
        self._next = dict(offsets)  # next offset to read, per topic
        self._eof: dict[str, int] = {}  # offset of the last partition-end event, per topic
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
                    # The only trustworthy "read to the end": some brokers (Tansu) report
                    # high watermarks that lag behind the log.
                    topic, end = msg.topic(), msg.offset()
                    if topic is not None and end is not None:
                        self._eof[topic] = end
                    continue
                if err.fatal() or not _transient(err):
                    raise RuntimeError(f"error reading Kafka topic {msg.topic()!r}: {err}")
                # A broker paused, restarting or unreachable: librdkafka reconnects and
                # fetches again by itself; say so instead of crashing the flow.
                self._warn(f"reading {msg.topic()!r} partition {self._index}: {err.str()}")
                continue
            raw = msg.value() or b""
            try:
                payload: Any = loads(raw)
            except orjson.JSONDecodeError:
                payload = raw  # decoded downstream into a dead letter with the reason
            topic = msg.topic()
            offset = msg.offset()
            if topic is None or offset is None:
                continue  # only error events lack them, and those were handled above
            # An unreadable time sorts first: the record is emitted (and dead-lettered) at once.
            at = occurred_at(payload)
            self._buffers[topic].append((-math.inf if at is None else at, offset, payload))
            self._next[topic] = offset + 1

    def _warn(self, message: str) -> None:
        """A warning at most every ``WARN_EVERY`` seconds per message (an outage repeats)."""
        now = time.monotonic()
        if now - self._warned.get(message, -math.inf) >= WARN_EVERY:
            self._warned[message] = now
            log.warning("%s", message)

    def _check_log_ends(self) -> None:
        """A partition whose log now ends before our position was truncated or recreated:
        a broker restarted without its storage (Tansu keeps topics in memory), or a topic
        deleted and created again. Say what is lost and read the new log from its start,
        so what is produced next is not skipped."""
        for topic, buf in self._buffers.items():
            if buf:
                continue
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, self._index), cached=True
            )
            if high is None or high < 0 or high >= self._next[topic]:
                continue
            start = max(low or 0, 0)
            log.warning(
                "%s partition %d: the log now ends at offset %d, before our position %d: the "
                "broker lost records (restarted without its storage, or the topic was "
                "recreated); records it held past offset %d that were not read yet are lost. "
                "Reading again from offset %d",
                topic, self._index, high, self._next[topic], self._next[topic] - 1, start,
            )  # fmt: skip
            self._consumer.seek(TopicPartition(topic, self._index, start))
            self._next[topic] = start
            self._eof.pop(topic, None)
            broker_lost_state()  # the output producers are unknown to it too

    def _at_end(self, topic: str) -> bool:
        """Whether ``topic`` has been read to its end: the consumer said so with a
        partition-end event at our position, and no later high watermark says there is
        more. A watermark alone is not enough: brokers may report one that lags behind the
        log (Tansu does, by tens of records under load), and a topic taken as caught up
        too early lets the others run ahead in event time and makes its records late
        (seen after a resume, when the first watermark comes from a query)."""
        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, self._index), cached=True
        )
        if high is not None and high > self._next[topic]:
            return False
        # >=: offsets can skip (transaction markers), so the end may lie past our position.
        return self._eof.get(topic, -1) >= self._next[topic]

    def _caught_up(self, topic: str, now: float) -> bool:
        if self._at_end(topic):
            return True
        since = self._empty_since.setdefault(topic, now)
        return now - since >= self._max_idle

    def next_batch(self) -> list[InputItem]:
        self._read()
        self._check_log_ends()
        buffers = self._buffers
        now = time.monotonic()
        blocked = self._settling(now)
        batch: list[InputItem] = []
        received = time.time()
        limit = 0 if blocked else self._batch_size
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
        if self._end_when_idle is not None:
            self._maybe_end(bool(batch), now)
        if not batch:
            # Nothing to emit: come back after the idle interval instead of spinning.
            wait = min(self._idle_poll, timedelta(milliseconds=1)) if blocked else self._idle_poll
            self._awake = datetime.now(UTC) + wait
        else:
            self._awake = None
        return batch

    def _settling(self, now: float) -> bool:
        """Whether to hold a backlog that just arrived after a silence, to let the other
        topics' backlogs arrive too.

        After a broker pause or outage, the records sent meanwhile arrive topic by topic:
        one topic's backlog can be read while another's is still on its way, and that
        topic then looks caught up. Emitting the first backlog at once would run event
        time ahead by the length of the backlog and make the other topic's records late.
        So when records arrive after the input was silent for more than ``max_idle`` and
        they span more than ``SETTLE_SPAN_SECONDS`` of event time (a backlog, not one new
        event of a quiet shop), they wait ``SETTLE_FACTOR * max_idle`` unless every topic
        has records buffered by then."""
        buffers = self._buffers
        if not any(buffers.values()):
            if self._silent_since is None:
                self._silent_since = now
            self._settle_until = None
            return False
        silent_since, self._silent_since = self._silent_since, None
        if silent_since is not None and now - silent_since > self._max_idle:
            heads = [buf[0][0] for buf in buffers.values() if buf]
            tails = [buf[-1][0] for buf in buffers.values() if buf]
            if max(tails) - min(heads) > SETTLE_SPAN_SECONDS:
                self._settle_until = now + SETTLE_FACTOR * self._max_idle
                log.info(
                    "input partition %d: a backlog arrived after %.0f s of silence; "
                    "waiting up to %.1f s for every topic's backlog before merging",
                    self._index, now - silent_since, SETTLE_FACTOR * self._max_idle,
                )  # fmt: skip
        if self._settle_until is None:
            return False
        if now >= self._settle_until or all(buffers.values()):
            self._settle_until = None
            return False
        return True

    def _maybe_end(self, emitted: bool, now: float) -> None:
        """``close at end``: raise StopIteration (Bytewax's end of input) once every topic
        has been read to its end (see ``_at_end``), with nothing buffered, for ``end_when_idle``
        seconds in a row."""
        assert self._end_when_idle is not None
        at_end = not emitted and all(
            not buf and self._at_end(t) for t, buf in self._buffers.items()
        )
        if not at_end:
            self._at_end_since = None
            return
        if self._at_end_since is None:
            self._at_end_since = now
        elif now - self._at_end_since >= self._end_when_idle:
            log.info(
                "input partition %d read to its end for %g s: ending the input (close at end)",
                self._index,
                self._end_when_idle,
            )
            raise StopIteration

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
        end_when_idle: float | None = None,
    ) -> None:
        self.settings = settings
        #: Seconds at the end of every topic after which the partition ends (demos and
        #: drills: ``salvage run --close-at-end``); None: never.
        self.end_when_idle = end_when_idle
        self.topics = dict(topics)
        self.batch_size = batch_size
        self.consumer_config = dict(consumer_config or {})
        self.on_lag = on_lag

    def _partition_map(self) -> dict[str, list[int]]:
        config: dict[str, str | int | float | bool] = {**self.settings.client_config()}
        admin = AdminClient(config)
        return {topic: topic_partitions(admin, topic) for topic in self.topics}

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
            # A position past the end of a log the broker lost is reset to the new log's
            # start, not its end (which would skip what is produced meanwhile); the loss is
            # logged by _check_log_ends.
            "auto.offset.reset": "earliest",
            "error_cb": _on_client_error,
            **self.consumer_config,
            # The merge takes a topic as caught up only at a partition-end event.
            "enable.partition.eof": True,
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
        try:
            for topic in streams:
                low, high = probe.get_watermark_offsets(TopicPartition(topic, index), timeout=10.0)
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
            self.batch_size,
            timedelta(milliseconds=self.settings.idle_poll_ms),
            self.settings.max_idle_ms / 1000.0,
            self.on_lag,
            end_when_idle=self.end_when_idle,
        )
