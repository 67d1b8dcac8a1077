"""The Kafka source under broker faults, without a broker: a fake consumer stands in for
librdkafka (what ``consume`` returns, what the cached watermarks say), and the clock is
driven by hand.

- After a broker pause, the backlog of one topic arrives before another's: the empty
  topic was *quiet*, not lagging, for the length of the pause, so the merge must wait for
  it (up to ``max_idle``) rather than run the first topic hours of event time ahead and
  make the other's events late (issue #11: 1,678 valid events dead-lettered as late).
- A broker restarted without storage (Tansu) comes back with empty logs: positions past
  the end of a partition are noticed, logged with how much was lost, and reading starts
  again from the new log's beginning instead of skipping what is produced next.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

import flows.connectors.kafka.source as source_mod
from flows.connectors.kafka.source import _AlignedPartition

A, B = "t.orders", "t.delivery"
HOUR = 3600.0
T0 = 1_780_000_000.0


class Msg:
    def __init__(
        self, topic: str, offset: int, ts: float | None = None, eof: bool = False,
        code: int | None = None,
    ) -> None:  # fmt: skip
        self._topic, self._offset = topic, offset
        self._code = KafkaError._PARTITION_EOF if eof else code
        record = {"event_id": f"{topic}-{offset}", "order_id": f"o{offset}", "type": "x"}
        if ts is not None:
            from operators.contract import format_ts

            record["occurred_at"] = format_ts(ts)
        self._value = orjson.dumps(record)

    def error(self) -> Any:
        if self._code is None:
            return None
        return KafkaError(self._code)

    def topic(self) -> str:
        return self._topic

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return 0

    def value(self) -> bytes:
        return self._value


class FakeConsumer:
    """``consume`` returns the next scripted batch, then a partition-end event for every
    topic read to its end, as librdkafka does (once each time the end is reached). The end
    of a topic's log is ``end`` if the test sets it, else the reported watermark ``high``:
    a test makes the watermark lag behind the log by setting both."""

    def __init__(self) -> None:
        self.batches: list[list[Msg]] = []
        self.high: dict[str, int] = {A: 0, B: 0}
        self.low: dict[str, int] = {A: 0, B: 0}
        self.end: dict[str, int] = {}
        self.position: dict[str, int] = {A: 0, B: 0}
        self.eof_at: dict[str, int] = {}
        self.seeks: list[tuple[str, int]] = []

    def consume(self, n: int, timeout: float) -> list[Msg]:
        batch = self.batches.pop(0) if self.batches else []
        for msg in batch:
            if msg.error() is None:
                self.position[msg.topic()] = msg.offset() + 1
        for topic, position in self.position.items():
            end = self.end.get(topic, self.high[topic])
            if position >= end and self.eof_at.get(topic) != position:
                self.eof_at[topic] = position
                batch = [*batch, Msg(topic, position, eof=True)]
        return batch

    def get_watermark_offsets(self, tp: Any, cached: bool = False, timeout: float = 0) -> Any:
        return self.low[tp.topic], self.high[tp.topic]

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.offset))
        self.position[tp.topic] = tp.offset

    def assign(self, parts: Any) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(source_mod.time, "monotonic", c)
    return c


def partition(fake: FakeConsumer, offsets: dict[str, int]) -> _AlignedPartition:
    part = _AlignedPartition(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "x"}, 0, {A: "orders", B: "delivery"},
        dict(offsets), 1000, timedelta(milliseconds=5), 0.5,
    )  # fmt: skip
    part._consumer.close()
    part._consumer = fake  # type: ignore[assignment]
    fake.position = dict(offsets)
    return part


def emitted_times(batch: list[Any]) -> list[tuple[str, str]]:
    return [(stream, payload["occurred_at"]) for stream, payload, _, _ in batch]


def test_after_a_broker_pause_the_merge_waits_for_the_topic_whose_backlog_comes_second(
    clock: Clock,
) -> None:
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    # Live: B is a sparse topic (refunds), A a busy one; B is caught up and empty while A's
    # records flow, for a minute.
    fake.batches = [[Msg(B, 0, T0)]]
    fake.high = {A: 0, B: 1}
    assert len(part.next_batch()) == 1
    for i in range(60):
        clock.now += 1.0
        fake.batches = [[Msg(A, i, T0 + i)]]
        fake.high = {A: i + 1, B: 1}
        assert len(part.next_batch()) == 1
    # Then the broker is paused for 75 s: nothing arrives.
    for _ in range(75):
        clock.now += 1.0
        assert part.next_batch() == []
    # The broker resumes. Its first fetch answers for both topics (watermarks move), but
    # the consumer hands out A's backlog first: hours of event time ahead of B's.
    fake.high = {A: 160, B: 51}
    fake.batches = [[Msg(A, i, T0 + i * HOUR) for i in range(60, 160)]]
    first = part.next_batch()
    clock.now += 0.05
    fake.batches = [[Msg(B, i, T0 + i * HOUR + 1) for i in range(1, 51)]]
    second = part.next_batch()
    clock.now += 0.05
    rest = part.next_batch()
    order = emitted_times(first + second + rest)
    assert len(order) == 150
    assert [t for _, t in order] == sorted(t for _, t in order), "merged out of event-time order"


def test_a_topic_that_really_lags_holds_the_others_back_only_for_max_idle(clock: Clock) -> None:
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    fake.high = {A: 3, B: 5}  # B has records the consumer has not handed out yet
    fake.batches = [[Msg(A, i, T0 + i) for i in range(3)]]
    assert part.next_batch() == []  # B is behind: wait for it
    clock.now += 0.6  # past max_idle (0.5 s) with A's records waiting and B still empty
    assert len(part.next_batch()) == 3


def test_a_topic_is_caught_up_only_at_its_partition_end_not_at_a_lagging_watermark(
    clock: Clock,
) -> None:
    """After a resume the first watermarks come from a query, and a broker may report one
    behind its log (Tansu lags by tens of records under load). B's says "nothing past
    your position" while B has three more records: A must wait for them, not run ahead
    and make them late (the SIGKILL drill's few late events, issue #11)."""
    fake = FakeConsumer()
    fake.high = {A: 105, B: 5}
    fake.end = {B: 8}
    part = partition(fake, {A: 100, B: 5})
    fake.batches = [[Msg(A, i, T0 + (i - 100) * 60) for i in range(100, 105)]]
    assert part.next_batch() == []  # B not read to its end yet
    clock.now += 0.1
    fake.high = {A: 105, B: 8}
    fake.batches = [[Msg(B, i, T0 + (i - 5) * 60 + 1) for i in range(5, 8)]]
    merged = part.next_batch() + part.next_batch()
    times = [t for _, t in emitted_times(merged)]
    assert len(times) == 8 and times == sorted(times)


def test_a_broker_restarted_empty_is_noticed_logged_and_read_from_its_new_start(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.connectors.kafka.sink import BROKER_STATE

    generation = BROKER_STATE.generation
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    fake.batches = [[Msg(A, i, T0 + i) for i in range(40)] + [Msg(B, i, T0 + i) for i in range(20)]]
    fake.high = {A: 40, B: 20}
    assert len(part.next_batch()) == 60
    # The broker comes back without its logs: the topics restart at offset 0.
    fake.high = {A: 3, B: 0}
    with caplog.at_level(logging.WARNING, logger="salvage.kafka"):
        part.next_batch()
    assert (A, 0) in fake.seeks and (B, 0) in fake.seeks
    assert part.snapshot() == {A: 0, B: 0}
    assert BROKER_STATE.generation > generation  # the output producers are renewed too
    text = caplog.text
    assert "t.orders partition 0" in text and "40" in text and "lost" in text
    # What is produced next is read, from the new beginning.
    fake.batches = [[Msg(A, i, T0 + 100 + i) for i in range(3)]]
    clock.now += 1.0
    assert len(part.next_batch()) == 3


def test_a_broker_that_is_down_or_restarting_is_logged_not_fatal(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    fake.batches = [
        [Msg(A, 0, code=KafkaError._TRANSPORT), Msg(A, 0, code=KafkaError._ALL_BROKERS_DOWN)],
        [Msg(A, 0, code=KafkaError._TRANSPORT)],
        [Msg(A, 0, code=KafkaError.UNKNOWN_TOPIC_OR_PART)],
    ]
    with caplog.at_level(logging.WARNING, logger="salvage.kafka"):
        for _ in range(3):
            assert part.next_batch() == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3  # one per kind of error within WARN_EVERY, not one per error
    assert all("t.orders" in w for w in warnings)
    fake.batches = [[Msg(A, 0, code=KafkaError._INVALID_ARG)]]
    with pytest.raises(RuntimeError, match=r"t\.orders"):
        part.next_batch()  # not a broker outage: a real error still stops the flow


def test_a_backlog_after_a_silence_waits_for_a_topic_whose_records_are_still_on_their_way(
    clock: Clock,
) -> None:
    """After a broker pause the producer's backlog reaches the broker topic by topic: A's
    is readable while B's is not even written, so B looks caught up. The backlog (days of
    event time) waits up to 4 x max_idle for B's, instead of making B's records late."""
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    fake.batches = [[Msg(A, 0, T0), Msg(B, 0, T0 + 1)]]
    fake.high = {A: 1, B: 1}
    assert len(part.next_batch()) == 2
    for _ in range(20):  # the pause: silence
        clock.now += 1.0
        assert part.next_batch() == []
    fake.high = {A: 101, B: 1}  # B's backlog is not on the broker yet: B looks caught up
    fake.batches = [[Msg(A, i, T0 + i * HOUR) for i in range(1, 101)]]
    first = part.next_batch()
    assert first == []  # held: a backlog after a silence
    clock.now += 0.3
    fake.high = {A: 101, B: 51}
    fake.batches = [[Msg(B, i, T0 + i * HOUR + 1) for i in range(1, 51)]]
    merged = part.next_batch() + part.next_batch()
    times = [t for _, t in emitted_times(merged)]
    assert len(times) == 150 and times == sorted(times)


def test_one_new_event_after_a_silence_is_not_held(clock: Clock) -> None:
    fake = FakeConsumer()
    part = partition(fake, {A: 0, B: 0})
    fake.batches = [[Msg(A, 0, T0)]]
    fake.high = {A: 1, B: 0}
    assert len(part.next_batch()) == 1
    for _ in range(30):  # a quiet shop
        clock.now += 1.0
        assert part.next_batch() == []
    fake.batches = [[Msg(A, 1, T0 + 30)]]
    fake.high = {A: 2, B: 0}
    assert len(part.next_batch()) == 1  # no added latency


class FakeProducer:
    """Records produced values; ``flush`` raises what ``fail_with`` says (once)."""

    made: list[FakeProducer] = []

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.fail_with = fail_with
        self.values: list[bytes] = []
        self.sent: list[tuple[str, bytes]] = []  # (topic, type header)
        self.flushes = 0
        self.purged = False
        FakeProducer.made.append(self)

    def produce(self, topic: str, value: bytes, key: Any, headers: Any, on_delivery: Any):
        self.values.append(value)
        self.sent.append((topic, dict(headers)["type"]))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        if self.fail_with is not None:
            exc, self.fail_with = self.fail_with, None
            raise exc
        return 0

    def poll(self, timeout: float) -> int:
        return 0

    def purge(self) -> None:
        self.purged = True


def test_a_fatal_producer_error_after_a_broker_restart_renews_the_producer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The crash of the issue: an idempotent producer that a restarted broker no longer
    knows fails fatally (``OUT_OF_ORDER_SEQUENCE_NUMBER``), raised from ``flush`` as a
    SystemError. The sink replaces the producer and sends the batch again."""
    from confluent_kafka import KafkaException

    from flows.connectors.kafka.sink import _ProducerPartition, to_topic

    fatal = KafkaException(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True))
    wrapped = SystemError("<function _on_delivery> returned a result with an exception set")
    wrapped.__cause__ = fatal
    FakeProducer.made.clear()
    makes = iter([FakeProducer(fail_with=wrapped), FakeProducer()])
    sink = _ProducerPartition(
        lambda: next(makes), "topic 't.decisions'", to_topic("t.decisions", "decision")
    )
    with caplog.at_level(logging.WARNING, logger="salvage.kafka"):
        sink.write_batch([{"order_id": "o-1"}, {"order_id": "o-2"}])
    old, new = FakeProducer.made
    assert old.purged and len(old.values) == 2 and len(new.values) == 2
    assert "OUT_OF_ORDER_SEQUENCE_NUMBER" in caplog.text and "replacing the producer" in caplog.text


def test_a_batch_for_several_topics_is_produced_to_each_and_flushed_once() -> None:
    """The live flow's one Kafka sink: a batch of decisions, interventions, outcomes and
    reviews goes to the topic of each record's type, with that type in its header, and
    the sink waits for the broker once for all of them."""
    from flows.connectors.kafka.sink import _ProducerPartition, by_type

    routes = {"decision": "t.d", "review": "t.d", "intervention": "t.i", "outcome": "t.o"}
    FakeProducer.made.clear()
    sink = _ProducerPartition(FakeProducer, "topics", by_type(routes))
    batch = [
        ("decision", {"order_id": "o-1"}),
        ("intervention", {"order_id": "o-1"}),
        ("review", {"order_id": "o-2"}),
        ("outcome", {"order_id": "o-1"}),
    ]
    sink.write_batch(batch)
    (producer,) = FakeProducer.made
    assert producer.sent == [
        ("t.d", b"decision"),
        ("t.i", b"intervention"),
        ("t.d", b"review"),
        ("t.o", b"outcome"),
    ]
    assert producer.flushes == 1
    with pytest.raises(ValueError, match="no Kafka topic for records of type 'case'"):
        sink.write_batch([("case", {"order_id": "o-3"})])


def test_when_a_broker_lost_its_state_every_sink_renews_its_producer_first() -> None:
    from flows.connectors.kafka.sink import _ProducerPartition, broker_lost_state, to_topic

    FakeProducer.made.clear()
    sink = _ProducerPartition(FakeProducer, "topic 't.outcomes'", to_topic("t.outcomes", "outcome"))
    sink.write_batch([{"order_id": "o-1"}])
    broker_lost_state()  # seen by the source, or by another sink
    sink.write_batch([{"order_id": "o-2"}])
    sink.write_batch([{"order_id": "o-3"}])
    first, second = FakeProducer.made
    assert len(first.values) == 1 and len(second.values) == 2
