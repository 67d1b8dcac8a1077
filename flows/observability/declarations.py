"""Every Prometheus metric Salvage declares, on one registry (``docs/metrics.md`` lists them).

Names follow the Prometheus conventions: counters end in ``_total``, durations and
timestamps are in seconds, ratios are 0..1 and end in ``_ratio``. Money is in the orders'
currency units, without a unit suffix (Prometheus has no base unit for money).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

# No ``*_created`` series: they double the series count and nothing here reads them.
disable_created_metrics()
#: Event in -> decision out, seconds (hot path: a few ms is normal, seconds is trouble).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Redis call durations, seconds.
CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
#: Webhook deliveries, seconds, retries included (same buckets as flows.connectors.webhooks).
WEBHOOK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def shared_collector(
    registry: CollectorRegistry, name: str, labels: tuple[str, ...], make: Any
) -> Any:
    """The collector ``name`` already on ``registry`` (same labels), or a new one."""
    existing = registry._names_to_collectors.get(name)
    if existing is None:
        existing = registry._names_to_collectors.get(name + "_total")
    if existing is None:
        return make()
    if tuple(getattr(existing, "_labelnames", ())) != labels:
        raise ValueError(f"metric {name} is registered with other labels than {labels}")
    return existing


class MetricDeclarations:
    """The metric objects of one process on ``reg``; :class:`SalvageMetrics
    <flows.observability.metrics.SalvageMetrics>` adds the behaviour that keeps them current."""

    def __init__(self, reg: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=reg)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=reg)

        seg = ("dimension", "segment")
        # Business.
        self.refund_leakage = counter(
            "salvage_refund_leakage",
            "Value refunded (refunds and chargebacks), in currency units.",
            ("arm", "outcome"),
        )
        self.retained_revenue = counter(
            "salvage_retained_revenue",
            "Value kept on at-risk cases that closed kept, exchanged or partly refunded, "
            "by first action taken (none if no action).",
            ("arm", "action", "outcome"),
        )
        self.refunds_avoided = counter(
            "salvage_refunds_avoided",
            "At-risk cases that closed kept or exchanged, by first action taken.",
            ("arm", "action"),
        )
        self.at_risk_closed = counter(
            "salvage_at_risk_cases_closed",
            "At-risk cases that closed refunded, charged back, kept or exchanged "
            "(the denominator of the recovery rate).",
            ("arm", "action"),
        )
        self.case_outcomes = counter(
            "salvage_case_outcomes",
            "Outcome records by outcome (open: still open at the end of a replay).",
            ("outcome", "arm"),
        )
        self.decisions = counter(
            "salvage_decisions",
            "Decisions by action (none: no action), arm and whether automated.",
            ("action", "arm", "automated"),
        )
        self.interventions = counter(
            "salvage_interventions",
            "Intervention events emitted, by action, arm and whether automated.",
            ("action", "arm", "automated"),
        )
        self.reviews = counter(
            "salvage_reviews",
            "Human-review records by status (approved, rejected, expired, closed, ignored).",
            ("status",),
        )
        self.segment_leakage = counter(
            "salvage_segment_refund_leakage",
            "Value refunded, by one segment dimension at a time.",
            seg,
        )
        self.segment_retained = counter(
            "salvage_segment_retained_revenue",
            "Value kept on at-risk cases, by one segment dimension at a time.",
            seg,
        )
        self.segment_avoided = counter(
            "salvage_segment_refunds_avoided",
            "At-risk cases closed kept or exchanged, by one segment dimension at a time.",
            seg,
        )
        self.segment_at_risk_closed = counter(
            "salvage_segment_at_risk_cases_closed",
            "At-risk cases closed (recovery-rate denominator), by one segment dimension.",
            seg,
        )
        self.segment_interventions = counter(
            "salvage_segment_interventions",
            "Intervention events by action and one segment dimension at a time.",
            (*seg, "action"),
        )
        # Models.
        self.model_info = Info(
            "salvage_model", "Version of each model in use.", ["model"], registry=reg
        )
        self.model_auc = gauge(
            "salvage_model_roc_auc",
            "Live ROC AUC of the model on the latest labelled cases.",
            ("model",),
        )
        self.model_log_loss = gauge(
            "salvage_model_log_loss", "Live mean log loss of the model.", ("model",)
        )
        self.model_calibration = gauge(
            "salvage_model_calibration_error",
            "Live expected calibration error of the model (0..1).",
            ("model",),
        )
        self.model_examples = gauge(
            "salvage_model_training_examples",
            "Labelled examples the model learned from.",
            ("model",),
        )
        self.model_learning_lag = gauge(
            "salvage_model_learning_lag_seconds",
            "Event time from a case's decision to the label the model learned from it.",
            ("model",),
        )
        # Pipeline.
        self.input_records = counter(
            "salvage_input_records", "Raw input records, valid or not, by stream.", ("stream",)
        )
        self.events = counter(
            "salvage_events", "Valid decoded events by stream and type.", ("stream", "type")
        )
        self.dead_letters = counter(
            "salvage_dead_letters",
            "Dead-lettered input records by stream and reason class.",
            ("stream", "reason"),
        )
        self.late_events = counter(
            "salvage_late_events",
            "Events dead-lettered because they arrived behind the watermark.",
            ("stream",),
        )
        self.output_records = counter(
            "salvage_output_records", "Records written by output.", ("output",)
        )
        self.watermark = gauge(
            "salvage_watermark_timestamp_seconds",
            "Event-time watermark of each clock shard (Unix time).",
            ("shard",),
        )
        self.max_event = gauge(
            "salvage_max_event_timestamp_seconds",
            "Newest event time seen by each clock shard (Unix time).",
            ("shard",),
        )
        self.tracked_orders = gauge(
            "salvage_clock_tracked_orders",
            "Open orders plus tombstones held by each clock shard (state size).",
            ("shard",),
        )
        self.latency = Histogram(
            "salvage_processing_latency_seconds",
            "Wall time from decoding an event to its decision.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.kafka_lag = gauge(
            "salvage_kafka_consumer_lag_messages",
            "Messages between the consumer position and the end of each partition.",
            ("topic", "partition"),
        )
        self.redis_up = gauge(
            "salvage_redis_up", "1 while Redis answers, 0 during an outage (live mode).", ()
        )
        self.redis_calls = counter(
            "salvage_redis_calls", "Redis calls by operation and outcome.", ("operation", "outcome")
        )
        self.redis_duration = Histogram(
            "salvage_redis_call_duration_seconds",
            "Redis call duration by operation.",
            ["operation"],
            buckets=CALL_BUCKETS,
            registry=reg,
        )
        # The webhook dispatcher (flows.connectors.webhooks.DispatchMetrics) registers the same four
        # metrics on the default registry: whichever comes first, both use one set.
        self.webhook_deliveries = shared_collector(
            reg,
            "salvage_webhook_deliveries",
            ("endpoint", "result"),
            lambda: counter(
                "salvage_webhook_deliveries",
                "Webhook deliveries by how they ended (delivered, dead_letter, "
                "skipped_duplicate, unrouted, abandoned).",
                ("endpoint", "result"),
            ),
        )
        self.webhook_attempts = shared_collector(
            reg,
            "salvage_webhook_attempts",
            ("endpoint", "outcome"),
            lambda: counter(
                "salvage_webhook_attempts",
                "Webhook HTTP attempts by outcome (2xx, 4xx, 5xx, timeout, error).",
                ("endpoint", "outcome"),
            ),
        )
        self.webhook_seconds = shared_collector(
            reg,
            "salvage_webhook_delivery_seconds",
            ("endpoint",),
            lambda: Histogram(
                "salvage_webhook_delivery_seconds",
                "Time from claim to the end of a webhook delivery, retries included.",
                ["endpoint"],
                buckets=WEBHOOK_BUCKETS,
                registry=reg,
            ),
        )
        self.webhook_in_flight = shared_collector(
            reg,
            "salvage_webhook_in_flight",
            ("endpoint",),
            lambda: gauge(
                "salvage_webhook_in_flight", "Webhook deliveries in flight.", ("endpoint",)
            ),
        )
