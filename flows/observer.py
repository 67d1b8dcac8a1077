"""The hooks a flow calls as items pass (metrics, progress and tests plug in here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from operators.contract import DeadLetter, Event


@dataclass
class FlowObserver:
    """Hooks the flow calls as items pass; metrics plug in here. Unset hooks cost nothing.

    - ``on_input(stream, payload)``: every raw input record, before decoding.
    - ``on_event(event)``: every valid decoded event.
    - ``on_dead_letter(dead_letter)``: every dead letter (invalid, late, after close).
    - ``on_output(name, record)``: every output record, by output name.
    - ``on_clock(shard, watermark, max_event_at, tracked)``: after each clock batch;
      ``tracked`` is the number of open orders plus tombstones held by the shard.
    - ``on_latency(seconds)``: wall time from decoding an event to its decision.
    - ``on_model(stats)``: after the learner updates a model; ``stats`` has ``model``,
      ``version``, ``examples``, ``roc_auc``, ``log_loss``, ``calibration_error`` (None
      until known), ``learning_lag_seconds`` (event time from decision to label) and
      ``version_boundary`` (the event-time boundary the version was cut at; None for
      the last one, at end of input).
    - ``on_kafka_lag(topic, partition, lag)``: live input only, every few seconds per
      partition: messages between the end of the partition and the next one to emit.
    """

    on_input: Callable[[str, Any], None] | None = None
    on_event: Callable[[Event], None] | None = None
    on_dead_letter: Callable[[DeadLetter], None] | None = None
    on_output: Callable[[str, dict[str, Any]], None] | None = None
    on_clock: Callable[[str, float | None, float | None, int], None] | None = None
    on_latency: Callable[[float], None] | None = None
    on_model: Callable[[dict[str, Any]], None] | None = None
    on_kafka_lag: Callable[[str, int, int], None] | None = None
