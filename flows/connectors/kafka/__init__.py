"""Kafka wiring of live mode: the input source, the output sink, topic creation, a producer.

Broker-agnostic: only the Kafka protocol through librdkafka (confluent-kafka), so Apache
Kafka, Redpanda and Tansu all work. Security settings are passed through unchanged.

One concern per module:

- :mod:`~flows.connectors.kafka.source`: :class:`KafkaInputSource`, partitions read with
  ``assign()`` and merged by event time, offsets in the Bytewax snapshot;
- :mod:`~flows.connectors.kafka.sink`: :class:`KafkaRecordSink`, :class:`KafkaRoutedSink`
  and :func:`make_producer`;
- :mod:`~flows.connectors.kafka.serde`: input items, event times, output record headers;
- :mod:`~flows.connectors.kafka.admin`: the topics Salvage uses and ``salvage topics create``;
- :mod:`~flows.connectors.kafka.produce`: a replay directory produced to the input topics.
"""

from flows.connectors.kafka.admin import TopicMissingError, TopicResult, all_topics, create_topics
from flows.connectors.kafka.produce import iter_input_dir, produce_events
from flows.connectors.kafka.serde import InputItem, record_headers
from flows.connectors.kafka.sink import KafkaRecordSink, KafkaRoutedSink, make_producer
from flows.connectors.kafka.source import KafkaInputSource

__all__ = [
    "InputItem",
    "KafkaInputSource",
    "KafkaRecordSink",
    "KafkaRoutedSink",
    "TopicMissingError",
    "TopicResult",
    "all_topics",
    "create_topics",
    "iter_input_dir",
    "make_producer",
    "produce_events",
    "record_headers",
]
