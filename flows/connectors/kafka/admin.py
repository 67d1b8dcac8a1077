"""Kafka topics: which ones Salvage uses, their partitions, creating them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from flows.settings import KafkaSettings

log = logging.getLogger("salvage.kafka")


class TopicMissingError(RuntimeError):
    """An input or output topic does not exist on the brokers."""


def topic_partitions(admin: AdminClient, topic: str, timeout: float = 10.0) -> list[int]:
    meta = admin.list_topics(topic, timeout=timeout)
    tm = meta.topics.get(topic)
    if tm is None or tm.error is not None or not tm.partitions:
        why = tm.error.str() if tm is not None and tm.error is not None else "no partitions"
        raise TopicMissingError(
            f"Kafka topic {topic!r} is not available ({why}); create it with "
            "`salvage topics create`"
        )
    return sorted(tm.partitions)


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
    config: dict[str, str | int | float | bool] = {**settings.client_config()}
    admin = AdminClient(config)
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
