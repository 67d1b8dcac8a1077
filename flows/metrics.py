"""Prometheus metrics of a Salvage run: business, model and pipeline figures.

:class:`SalvageMetrics` owns the metrics on one registry and hands the dataflow a
:class:`~flows.dataflow.FlowObserver` whose hooks keep them current. Live components
(Kafka source, Redis stores, webhook dispatcher, human-review loop) report through its
``observe_*`` methods. Replay and the CLI use :func:`add_metrics_args` and
:func:`metrics_session`; live mode uses :func:`start_http` (or, under
``python -m bytewax.run``, Bytewax's own ``/metrics`` on port 3030, which includes the
default registry).

Names follow the Prometheus conventions: counters end in ``_total``, durations and
timestamps are in seconds, ratios are 0..1 and end in ``_ratio``. Money is in the orders'
currency units, without a unit suffix (Prometheus has no base unit for money). No label
ever carries an order id, a customer id or any other personal data; segment labels are
bounded by :class:`BoundedLabel`. ``docs/metrics.md`` lists every metric.

>>> from prometheus_client import CollectorRegistry
>>> m = SalvageMetrics(CollectorRegistry())
>>> obs = m.observer()
>>> obs.on_output("outcomes", {"order_id": "o1", "outcome": "refunded", "refund_value": 40.0,
...     "retained_value": 0.0, "arm": "treatment", "actions": [], "at_risk": True,
...     "sku_family": "skincare"})
>>> m.registry.get_sample_value("salvage_refund_leakage_total",
...                             {"arm": "treatment", "outcome": "refunded"})
40.0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flows.dataflow import OUTPUT_NAMES, FlowObserver
from operators.contract import STREAM_TYPES, STREAMS, DeadLetter, Event, parse_ts
from operators.uplift import SEGMENTS, Uplift, UpliftRow, rows_from_outcomes, uplift_by_action
from operators.vocabulary import DeadLetterKind

# No ``*_created`` series: they double the series count and nothing here reads them.
disable_created_metrics()

#: Business segment dimensions (the record fields they come from; same as operators.uplift).
DIMENSIONS: tuple[str, ...] = SEGMENTS
#: Label value for a value that did not make the top N of its label.
OTHER = "other"
#: Label value for a missing (None or empty) value.
MISSING = "none"
#: Longest label value kept; longer values are cut.
MAX_LABEL_CHARS = 64
#: Free text that looks like an e-mail address or a phone number: never a label value
#: (``campaign`` is typed by people, and "promo-for-jane@example.com" happens).
_PERSONAL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+|\+?\d(?:[\s().\-/]*\d){6,}")
_SPACES = re.compile(r"\s+")


def label_text(value: str) -> str | None:
    """A free-text value as a label value: Unicode-normalised (NFKC), control characters
    dropped, whitespace collapsed, cut to MAX_LABEL_CHARS; None if it looks like an e-mail
    address or a phone number.

    >>> label_text("  Summer  Sale\t2026 "), label_text("promo-for-jane1@example.com")
    ('Summer Sale 2026', None)
    >>> label_text("call +49 170 1234567"), label_text("DE-NL")
    (None, 'DE-NL')
    """
    text = unicodedata.normalize("NFKC", value[: 4 * MAX_LABEL_CHARS])
    if _PERSONAL.search(text):
        return None
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in " \t\n")
    return _SPACES.sub(" ", text).strip()[:MAX_LABEL_CHARS]


#: Recovery stages of an open case (see docs/metrics.md, ``salvage_open_cases``).
STAGE_MONITORED = "monitored"
STAGE_INTERVENED = "intervened"
STAGE_HELD_OUT = "held_out"
STAGE_IN_REVIEW = "in_review"
STAGES: tuple[str, ...] = (STAGE_MONITORED, STAGE_INTERVENED, STAGE_HELD_OUT, STAGE_IN_REVIEW)
_MONITORED, _INTERVENED, _HELD_OUT, _IN_REVIEW = range(len(STAGES))
#: Closed orders remembered, so a decision observed after its case's outcome (two output
#: streams of one batch) does not reopen the case in the gauges.
CLOSED_MEMORY = 65_536

#: Outcomes of the ``outcomes`` output (operators.case); anything else is ``other``.
OUTCOMES = frozenset({"refunded", "chargeback", "exchanged", "kept", "cancelled", "censored"})
#: Outcomes that count as a refund avoided when the case was at risk.
RECOVERED_OUTCOMES = frozenset({"kept", "exchanged"})
#: Outcomes of settled cases (recovery figures and uplift leave out open and cancelled ones).
SETTLED_OUTCOMES = frozenset({"refunded", "chargeback", "kept", "exchanged"})

#: Dead-letter classes of input records (``salvage_dead_letters_total{reason}``): the
#: ``kind`` each dead letter carries (operators.vocabulary.DeadLetterKind).
DEAD_LETTER_REASONS: tuple[str, ...] = tuple(
    str(k)
    for k in DeadLetterKind
    if k not in (DeadLetterKind.DISPATCH_FAILED, DeadLetterKind.REVIEW_REJECTED)
)
#: How a human review is settled (operators.review ``review`` records); else ``other``.
REVIEW_STATUSES = frozenset({"approved", "rejected", "expired", "closed", "ignored"})
#: How a webhook delivery ends (flows.connectors.webhooks.DeliveryResult.status); else ``other``.
WEBHOOK_RESULTS = frozenset(
    {"delivered", "dead_letter", "skipped_duplicate", "unrouted", "abandoned"}
)

#: Event in -> decision out, seconds (hot path: a few ms is normal, seconds is trouble).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Redis call durations, seconds.
CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
#: Webhook deliveries, seconds, retries included (same buckets as flows.connectors.webhooks).
WEBHOOK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


# --- bounded labels -----------------------------------------------------------------------


class BoundedLabel:
    """Maps the raw values of one label onto at most ``limit`` values plus ``other``.

    How it behaves (deterministic: the same sequence of values gives the same mapping):

    - ``None`` and ``""`` become ``none``, which is a value like any other; other values
      are turned into strings and cut to MAX_LABEL_CHARS characters.
    - A value is *admitted* once it has been seen ``admit_after`` times, as long as fewer
      than ``limit`` values are admitted. Admission is permanent, so the series of a label
      never churn: at most ``limit + 1`` values (the admitted ones and ``other``) ever
      appear. With ``admit_after=1`` the first ``limit`` distinct values win.
    - Until a value is admitted, and for every value once the label is full, the value
      maps to ``other``.
    - Counts of values not yet admitted are kept for at most ``4 * limit`` values; when
      that table is full, every count is halved and counts that reach zero are dropped
      (rare values make room, frequent ones keep their lead). Memory stays bounded
      whatever the input.

    Frequent values are seen early and often, so the admitted set is, in practice, the top
    ``limit`` values by volume, without the series churn a periodic re-ranking causes.

    >>> family = BoundedLabel(limit=2)
    >>> [family(v) for v in ["skincare", None, "makeup", "skincare"]]
    ['skincare', 'none', 'other', 'skincare']
    >>> lane = BoundedLabel(limit=1, admit_after=2)
    >>> [lane(v) for v in ["DE-FR", "DE-NL", "DE-NL", "DE-FR", "DE-NL"]]
    ['other', 'other', 'DE-NL', 'other', 'DE-NL']
    """

    __slots__ = ("_candidates", "_known", "_texts", "admit_after", "limit", "max_candidates")

    def __init__(self, limit: int, admit_after: int = 1) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if admit_after < 1:
            raise ValueError(f"admit_after must be >= 1, got {admit_after}")
        self.limit = limit
        self.admit_after = admit_after
        self.max_candidates = 4 * limit
        self._known: dict[Any, str] = {}  # raw value -> label, for admitted values only
        self._texts: dict[str, None] = {}  # admitted labels, in order of admission
        self._candidates: dict[str, int] = {}

    def __call__(self, value: Any) -> str:
        """The label value for ``value``."""
        try:
            got = self._known.get(value)
        except TypeError:  # unhashable: a list or an object where a name belongs
            return OTHER
        if got is not None:
            return got
        return self._slow(value)

    @property
    def admitted(self) -> list[str]:
        """The admitted values, in order of admission."""
        return list(self._texts)

    def _slow(self, value: Any) -> str:
        if value is None or value == "":
            text = MISSING
        elif isinstance(value, str):
            normal = label_text(value)
            if normal is None:
                return OTHER  # personal data is never a label, not even a candidate
            text = normal or MISSING
        elif isinstance(value, (int, float, bool)):
            text = str(value)
        else:
            return OTHER  # a list or an object where a name belongs: never a label
        if text in self._texts:
            if text == value or not value:  # cache only what cannot grow without bound
                self._known[value] = text
            return text
        if len(self._texts) >= self.limit or text == OTHER:
            return OTHER
        if self.admit_after > 1:
            seen = self._candidates.get(text, 0) + 1
            if seen < self.admit_after:
                if seen == 1 and len(self._candidates) >= self.max_candidates:
                    self._candidates = {v: c // 2 for v, c in self._candidates.items() if c > 1}
                self._candidates[text] = seen
                return OTHER
            self._candidates.pop(text, None)
        self._texts[text] = None
        if text == value or not value:
            self._known[value] = text
        return text


def endpoint_label(endpoint: str) -> str:
    """A webhook endpoint as a label value: a name passes through; a URL keeps only its
    scheme, host and port, because webhook URLs often carry secrets in the user info, the
    path or the query.

    >>> endpoint_label("https://user:secret@hooks.example.com:8443/T0/B1/XyZ?token=abc")
    'https://hooks.example.com:8443'
    >>> endpoint_label("crm")
    'crm'
    """
    if "://" not in endpoint:
        return endpoint
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or "unknown"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "invalid_url"
    return f"{parts.scheme}://{host}{port}"


def attempt_outcome(outcome: str | int | None) -> str:
    """The label of one webhook HTTP attempt: a status class, ``timeout`` or ``error``.

    >>> [attempt_outcome(x) for x in (204, "503", "http_4xx", "5xx", "timeout", None, "?")]
    ['2xx', '5xx', '4xx', '5xx', 'timeout', 'error', 'other']
    """
    if outcome is None:
        return "error"
    text = str(outcome).removeprefix("http_")
    if text.isdigit() and len(text) == 3 and text[0] in "12345":
        return f"{text[0]}xx"
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        return text
    if text in ("timeout", "error"):
        return text
    return OTHER


def _shared(registry: CollectorRegistry, name: str, labels: tuple[str, ...], make: Any) -> Any:
    """The collector ``name`` already on ``registry`` (same labels), or a new one."""
    existing = registry._names_to_collectors.get(name)
    if existing is None:
        existing = registry._names_to_collectors.get(name + "_total")
    if existing is None:
        return make()
    if tuple(getattr(existing, "_labelnames", ())) != labels:
        raise ValueError(f"metric {name} is registered with other labels than {labels}")
    return existing


# --- the metrics ----------------------------------------------------------------------------


class _Children:
    """The label children of one counter, each created once (no label lookups per call)."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self.metric.labels(*key)
        child.inc(amount)


@dataclasses.dataclass(slots=True)
class _OpenCase:
    stage: int  # index into STAGES (_MONITORED...)
    value_at_risk: float
    review_since: float | None  # event time the case went to human review


class SalvageMetrics:
    """The metrics of one Salvage process, on ``registry`` (default: the global one, which
    ``python -m bytewax.run`` serves on ``/metrics``).

    ``top_n`` bounds each segment label (SKU family, courier lane, campaign, support reason)
    and the other free-form labels (Kafka topic, Redis operation, webhook endpoint);
    ``admit_after`` is how often a segment value must be seen before it gets its own series
    (see :class:`BoundedLabel`). Uplift by action is recomputed from the latest
    ``uplift_window`` decided outcomes when metrics are collected, at most every
    ``uplift_interval`` seconds, never on the event path.

    Only one instance may use a registry (metric names are registered once); tests pass
    their own ``CollectorRegistry``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        top_n: int = 20,
        *,
        admit_after: int = 1,
        uplift_interval: float = 10.0,
        uplift_window: int = 50_000,
    ) -> None:
        reg = REGISTRY if registry is None else registry
        self.registry = reg
        self.top_n = top_n
        self.segment_labels = {d: BoundedLabel(top_n, admit_after) for d in DIMENSIONS}
        self._action = BoundedLabel(32)  # actions come from the policy; guard anyway
        self._arm = BoundedLabel(4)
        self._stream = BoundedLabel(16)
        self._model_name = BoundedLabel(8)
        self._topic = BoundedLabel(top_n)
        self._operation = BoundedLabel(top_n)
        self._endpoint = BoundedLabel(top_n)
        self.uplift_interval = uplift_interval
        self._lock = threading.Lock()

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
        self.webhook_deliveries = _shared(
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
        self.webhook_attempts = _shared(
            reg,
            "salvage_webhook_attempts",
            ("endpoint", "outcome"),
            lambda: counter(
                "salvage_webhook_attempts",
                "Webhook HTTP attempts by outcome (2xx, 4xx, 5xx, timeout, error).",
                ("endpoint", "outcome"),
            ),
        )
        self.webhook_seconds = _shared(
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
        self.webhook_in_flight = _shared(
            reg,
            "salvage_webhook_in_flight",
            ("endpoint",),
            lambda: gauge(
                "salvage_webhook_in_flight", "Webhook deliveries in flight.", ("endpoint",)
            ),
        )

        # Pre-bound children of the per-event hooks (no label lookups on the hot path).
        self._input_c = {s: self.input_records.labels(s) for s in STREAMS}
        self._event_c = {
            (s, t): self.events.labels(s, t) for s, types in STREAM_TYPES.items() for t in types
        }
        self._dead_c = {
            (s, r): self.dead_letters.labels(s, r) for s in STREAMS for r in DEAD_LETTER_REASONS
        }
        self._late_c = {s: self.late_events.labels(s) for s in STREAMS}
        self._output_c = {
            n: self.output_records.labels(n) for n in (*OUTPUT_NAMES, "cases", "reviews")
        }
        self._review_c = {st: self.reviews.labels(st) for st in (*REVIEW_STATUSES, OTHER)}
        self._shard_c: dict[str, tuple[Any, Any, Any]] = {}
        self._decisions = _Children(self.decisions)
        self._interventions = _Children(self.interventions)
        self._outcomes = _Children(self.case_outcomes)
        self._leakage = _Children(self.refund_leakage)
        self._retained = _Children(self.retained_revenue)
        self._avoided = _Children(self.refunds_avoided)
        self._at_risk_closed = _Children(self.at_risk_closed)
        self._seg_leakage = _Children(self.segment_leakage)
        self._seg_retained = _Children(self.segment_retained)
        self._seg_avoided = _Children(self.segment_avoided)
        self._seg_at_risk_closed = _Children(self.segment_at_risk_closed)
        self._seg_interventions = _Children(self.segment_interventions)
        self._observe_output = {
            "decisions": self._on_decision,
            "interventions": self._on_intervention,
            "outcomes": self._on_outcome,
            "reviews": self._on_review,
        }

        # State behind the gauges computed at collection time (see _StateCollector).
        self._open: dict[str, _OpenCase] = {}
        self._closed: dict[str, None] = {}  # insertion-ordered set, CLOSED_MEMORY at most
        self._stage_cases = [0] * len(STAGES)
        self._stage_value = [0.0] * len(STAGES)
        self._event_now = 0.0  # newest event time seen (review age is measured against it)
        self._review_reported: tuple[int, float] | None = None
        self._rows: deque[UpliftRow] = deque(maxlen=uplift_window)
        self._rows_added = 0
        self._uplift_rows_used = 0
        self._uplift_at = -math.inf
        self._uplift: dict[str, Uplift] = {}
        reg.register(_StateCollector(self))

    # --- the observer -------------------------------------------------------------------

    def observer(self) -> FlowObserver:
        """A FlowObserver whose hooks update these metrics."""
        return FlowObserver(
            on_input=self._on_input,
            on_event=self._on_event,
            on_dead_letter=self._on_dead_letter,
            on_output=self._on_output,
            on_clock=self._on_clock,
            on_latency=self.latency.observe,
            on_model=self._on_model,
            on_kafka_lag=self.observe_kafka_lag,
        )

    def _on_input(self, stream: str, payload: Any) -> None:
        child = self._input_c.get(stream)
        if child is None:
            child = self.input_records.labels(self._stream(stream))
        child.inc()

    def _on_event(self, event: Event) -> None:
        child = self._event_c.get((event.stream, event.type))
        if child is None:  # only if the contract grows a type: stay bounded anyway
            child = self.events.labels(self._stream(event.stream), OTHER)
        child.inc()

    def _on_dead_letter(self, dead: DeadLetter) -> None:
        # The kind, not the reason text: texts change, and a prefix test miscounts.
        reason = str(dead.kind)
        child = self._dead_c.get((dead.stream, reason))
        if child is None:
            child = self.dead_letters.labels(self._stream(dead.stream), reason)
        child.inc()
        if reason == "late":
            late = self._late_c.get(dead.stream)
            (late or self.late_events.labels(self._stream(dead.stream))).inc()

    def _on_output(self, name: str, record: dict[str, Any]) -> None:
        child = self._output_c.get(name)
        if child is None:
            child = self.output_records.labels(OTHER)
        child.inc()
        handler = self._observe_output.get(name)
        if handler is not None:
            handler(record)

    def _on_clock(
        self, shard: str, watermark: float | None, max_event_at: float | None, tracked: int
    ) -> None:
        children = self._shard_c.get(shard)
        if children is None:
            children = self._shard_c[shard] = (
                self.watermark.labels(shard),
                self.max_event.labels(shard),
                self.tracked_orders.labels(shard),
            )
        if watermark is not None:
            children[0].set(watermark)
        if max_event_at is not None:
            children[1].set(max_event_at)
            if max_event_at > self._event_now:
                self._event_now = max_event_at
        children[2].set(tracked)

    def _on_model(self, stats: dict[str, Any]) -> None:
        model = self._model_name(stats.get("model"))
        version = stats.get("version")
        if version is not None:
            self.model_info.labels(model).info({"version": str(version)[:MAX_LABEL_CHARS]})
        for key, metric in (
            ("roc_auc", self.model_auc),
            ("log_loss", self.model_log_loss),
            ("calibration_error", self.model_calibration),
            ("examples", self.model_examples),
            ("learning_lag_seconds", self.model_learning_lag),
        ):
            value = stats.get(key)
            if value is not None:
                metric.labels(model).set(value)

    # --- output records -------------------------------------------------------------------

    def _on_decision(self, rec: dict[str, Any]) -> None:
        action = self._action(rec.get("action"))
        arm = self._arm(rec.get("arm"))
        key = (action, arm, "true" if rec.get("automated") else "false")
        self._decisions.inc(key)
        order_id = rec.get("order_id")
        if not order_id:
            return
        if action == MISSING:
            stage = None  # no action: the case keeps its stage
        elif arm == "control":
            stage = _HELD_OUT
        elif action == "human_review":
            stage = _IN_REVIEW
        else:
            stage = _INTERVENED
        since = None
        if stage == _IN_REVIEW:
            try:
                since = parse_ts(rec.get("decided_at"), "decided_at")
            except ValueError:
                since = self._event_now
            self._event_now = max(self._event_now, since)
        value = float(rec.get("value_at_risk") or 0.0)
        with self._lock:
            if order_id in self._closed:
                return
            case = self._open.get(order_id)
            if case is None:
                first = _MONITORED if stage is None else stage
                self._open[order_id] = _OpenCase(first, value, since)
                self._stage_cases[first] += 1
                self._stage_value[first] += value
                return
            self._stage_value[case.stage] -= case.value_at_risk
            if stage is not None and stage != case.stage:
                self._stage_cases[case.stage] -= 1
                self._stage_cases[stage] += 1
                case.stage = stage
                case.review_since = since
            self._stage_value[case.stage] += value
            case.value_at_risk = value

    def _on_intervention(self, rec: dict[str, Any]) -> None:
        action = self._action(rec.get("action"))
        # Intervention records are emitted for the treatment arm only.
        arm = self._arm(rec.get("arm", "treatment"))
        key = (action, arm, "true" if rec.get("automated") else "false")
        self._interventions.inc(key)
        labels = self.segment_labels
        for dim in DIMENSIONS:
            self._seg_interventions.inc((dim, labels[dim](rec.get(dim)), action))

    def _on_outcome(self, rec: dict[str, Any]) -> None:
        outcome = rec.get("outcome")
        if outcome not in OUTCOMES:
            outcome = OTHER
        arm = self._arm(rec.get("arm"))
        actions = rec.get("actions") or ()
        first = self._action(actions[0]) if actions else MISSING
        refund = float(rec.get("refund_value") or 0.0)
        at_risk = bool(rec.get("at_risk"))
        self._outcomes.inc((outcome, arm))
        segments = [(dim, self.segment_labels[dim](rec.get(dim))) for dim in DIMENSIONS]
        if refund > 0:
            self._leakage.inc((arm, outcome), refund)
            for key in segments:
                self._seg_leakage.inc(key, refund)
        if at_risk and outcome in SETTLED_OUTCOMES:
            self._at_risk_closed.inc((arm, first))
            for key in segments:
                self._seg_at_risk_closed.inc(key)
            if outcome in RECOVERED_OUTCOMES:
                self._avoided.inc((arm, first))
                for key in segments:
                    self._seg_avoided.inc(key)
            retained = float(rec.get("retained_value") or 0.0)
            if retained > 0:
                self._retained.inc((arm, first, outcome), retained)
                for key in segments:
                    self._seg_retained.inc(key, retained)
        order_id = rec.get("order_id")
        with self._lock:
            # "censored" (end of a replay) leaves the case open: it is still at risk.
            if order_id and outcome != "censored":
                self._closed[order_id] = None
                if len(self._closed) > CLOSED_MEMORY:
                    del self._closed[next(iter(self._closed))]
                case = self._open.pop(order_id, None)
                if case is not None:
                    self._stage_cases[case.stage] -= 1
                    self._stage_value[case.stage] -= case.value_at_risk
                    if not self._open:  # no float drift when nothing is open
                        self._stage_value = [0.0] * len(STAGES)
            if actions and outcome in SETTLED_OUTCOMES:
                for row in rows_from_outcomes((rec,)):
                    action = self._action(row.action)
                    if action != row.action:
                        row = dataclasses.replace(row, action=action)
                    self._rows.append(row)
                    self._rows_added += 1

    def _on_review(self, rec: dict[str, Any]) -> None:
        status = rec.get("status")
        self._review_c.get(status, self._review_c[OTHER]).inc()
        if status not in ("approved", "rejected", "expired"):
            return  # "closed" comes with the outcome; "ignored" changes nothing
        order_id = rec.get("order_id")
        with self._lock:
            case = self._open.get(order_id) if order_id else None
            if case is None or case.stage != _IN_REVIEW:
                return
            # Approved: the reviewed intervention goes out. Otherwise nothing was sent.
            stage = _INTERVENED if status == "approved" else _MONITORED
            self._stage_cases[_IN_REVIEW] -= 1
            self._stage_value[_IN_REVIEW] -= case.value_at_risk
            self._stage_cases[stage] += 1
            self._stage_value[stage] += case.value_at_risk
            case.stage = stage
            case.review_since = None

    # --- live components --------------------------------------------------------------------

    def observe_kafka_lag(self, topic: str, partition: int, lag: int) -> None:
        """Consumer lag of one partition (messages behind the end of the partition)."""
        self.kafka_lag.labels(self._topic(topic), str(partition)).set(lag)

    def observe_redis_call(self, operation: str, ok: bool, seconds: float) -> None:
        """One Redis call: its operation (e.g. ``get_context``), success and duration."""
        op = self._operation(operation)
        self.redis_calls.labels(op, "ok" if ok else "error").inc()
        self.redis_duration.labels(op).observe(seconds)

    def observe_webhook(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One finished webhook delivery: ``outcome`` is how it ended (delivered,
        dead_letter, skipped_duplicate, unrouted or abandoned) and ``seconds`` the time it
        took, retries included. An attempt outcome instead (``http_4xx``, ``503``,
        ``timeout``, ``error``...) counts as one attempt (see
        :meth:`observe_webhook_attempt`); anything else is a delivery ending ``other``."""
        name = self._endpoint(endpoint_label(endpoint))
        if outcome not in WEBHOOK_RESULTS:
            attempt = attempt_outcome(outcome)
            if attempt != OTHER:
                self.webhook_attempts.labels(name, attempt).inc()
                return
            outcome = OTHER
        self.webhook_deliveries.labels(name, outcome).inc()
        self.webhook_seconds.labels(name).observe(seconds)

    def observe_webhook_attempt(self, endpoint: str, outcome: str | int | None) -> None:
        """One webhook HTTP attempt: an HTTP status (``503``), its class (``5xx`` or
        ``http_5xx``), ``timeout`` or ``error``."""
        name = self._endpoint(endpoint_label(endpoint))
        self.webhook_attempts.labels(name, attempt_outcome(outcome)).inc()

    def observe_review(self, backlog: int, oldest_age_seconds: float) -> None:
        """The human-review queue as the review loop sees it. Once reported, these values
        replace the backlog the metrics derive from decisions (see docs/metrics.md)."""
        self._review_reported = (backlog, oldest_age_seconds)

    # --- collection ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the uplift gauges now (they are otherwise rate-limited)."""
        self._uplift_at = -math.inf
        self._update_uplift()

    def write_textfile(self, path: str | Path) -> None:
        """Write every metric of the registry to ``path`` in the text format (atomically)."""
        self.refresh()
        write_to_textfile(str(path), self.registry)

    def _update_uplift(self) -> dict[str, Uplift]:
        now = time.monotonic()
        with self._lock:
            stale = self._rows_added != self._uplift_rows_used
            if not stale or now - self._uplift_at < self.uplift_interval:
                return self._uplift
            rows = list(self._rows)
            self._uplift_rows_used = self._rows_added
            self._uplift_at = now
        self._uplift = uplift_by_action(rows)
        return self._uplift

    def _review_state(self) -> tuple[int, float]:
        if self._review_reported is not None:
            return self._review_reported
        with self._lock:
            since = [c.review_since or 0.0 for c in self._open.values() if c.stage == _IN_REVIEW]
        if not since:
            return 0, 0.0
        return len(since), max(self._event_now - min(since), 0.0)

    def _collect_state(self) -> Iterator[Metric]:
        with self._lock:
            cases = list(self._stage_cases)
            values = list(self._stage_value)
        open_cases = GaugeMetricFamily(
            "salvage_open_cases", "Open cases by recovery stage.", labels=["stage"]
        )
        at_risk = GaugeMetricFamily(
            "salvage_open_value_at_risk",
            "Value at risk (order value x refund propensity at the latest decision) of open "
            "cases by recovery stage, in currency units.",
            labels=["stage"],
        )
        for i, stage in enumerate(STAGES):
            open_cases.add_metric([stage], cases[i])
            at_risk.add_metric([stage], round(values[i], 2) if cases[i] else 0.0)
        yield open_cases
        yield at_risk
        backlog, age = self._review_state()
        yield GaugeMetricFamily(
            "salvage_human_review_backlog", "Cases waiting for a human review.", value=backlog
        )
        yield GaugeMetricFamily(
            "salvage_human_review_oldest_age_seconds",
            "Age of the oldest case waiting for a human review (0 if none).",
            value=age,
        )
        reduction = GaugeMetricFamily(
            "salvage_uplift_refund_rate_reduction_ratio",
            "Refund rate of control minus treated cases by first action, with the 95 % "
            "interval bounds (bound label).",
            labels=["action", "bound"],
        )
        saved = GaugeMetricFamily(
            "salvage_uplift_value_saved_per_case",
            "Refund value saved per treated case by first action, with 95 % interval bounds, "
            "in currency units.",
            labels=["action", "bound"],
        )
        sizes = GaugeMetricFamily(
            "salvage_uplift_cases",
            "Decided, settled cases behind the uplift estimate, by first action and arm.",
            labels=["action", "arm"],
        )
        for action, u in self._update_uplift().items():
            sizes.add_metric([action, "treatment"], u.treated)
            sizes.add_metric([action, "control"], u.control)
            if u.refund_rate_reduction is not None:
                reduction.add_metric([action, "estimate"], u.refund_rate_reduction)
                reduction.add_metric([action, "ci95_low"], u.ci_low)
                reduction.add_metric([action, "ci95_high"], u.ci_high)
            if u.value_saved_per_case is not None:
                saved.add_metric([action, "estimate"], u.value_saved_per_case)
                saved.add_metric([action, "ci95_low"], u.value_ci_low)
                saved.add_metric([action, "ci95_high"], u.value_ci_high)
        yield reduction
        yield saved
        yield sizes


class _StateCollector(Collector):
    """Gauges computed from the metrics' state when scraped (nothing on the event path)."""

    def __init__(self, metrics: SalvageMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self.metrics._collect_state())

    def describe(self) -> Iterable[Metric]:
        names = (
            "salvage_open_cases",
            "salvage_open_value_at_risk",
            "salvage_human_review_backlog",
            "salvage_human_review_oldest_age_seconds",
            "salvage_uplift_refund_rate_reduction_ratio",
            "salvage_uplift_value_saved_per_case",
            "salvage_uplift_cases",
        )
        return [GaugeMetricFamily(n, n) for n in names]


# --- serving and wiring -------------------------------------------------------------------------


def start_http(
    port: int, registry: CollectorRegistry | None = None, addr: str = "127.0.0.1"
) -> Any:
    """Serve ``/metrics`` of ``registry`` (default: the global one) on ``addr:port`` in a
    daemon thread; returns the server (call ``shutdown()`` and ``server_close()`` to stop).
    Port 0 picks a free port: read it from ``server.server_port``."""
    try:
        started = start_http_server(port, addr=addr, registry=registry or REGISTRY)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    return started[0] if isinstance(started, tuple) else started


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {port}")
    return port


def add_metrics_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics-port``, ``--metrics-addr`` and ``--metrics-file`` to a subcommand."""
    g = parser.add_argument_group("metrics")
    g.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics while running",
    )
    g.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to serve metrics on (default: 127.0.0.1, this host only; 0.0.0.0 for "
        "every interface)",
    )
    g.add_argument(
        "--metrics-file",
        metavar="FILE",
        help="write the final metrics to FILE in the Prometheus text format "
        "(e.g. for the node exporter's textfile collector: name it *.prom)",
    )


@contextlib.contextmanager
def metrics_session(
    args: argparse.Namespace, registry: CollectorRegistry | None = None
) -> Iterator[FlowObserver | None]:
    """Metrics for one run from the :func:`add_metrics_args` options.

    Yields None when neither ``--metrics-port`` nor ``--metrics-file`` is given. Otherwise
    yields the observer of a fresh :class:`SalvageMetrics` (on ``registry``, default a new
    one), serves it on the port while the block runs, and writes the text file when the
    block ends (also when it fails: the figures up to the failure help find it).
    """
    port = getattr(args, "metrics_port", None)
    path = getattr(args, "metrics_file", None)
    if port is None and path is None:
        yield None
        return
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    metrics = SalvageMetrics(registry if registry is not None else CollectorRegistry())
    server = None
    if port is not None:
        server = start_http(port, metrics.registry, getattr(args, "metrics_addr", "127.0.0.1"))
    try:
        yield metrics.observer()
    finally:
        try:
            if path is not None:
                metrics.write_textfile(path)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()


__all__ = [
    "DIMENSIONS",
    "STAGES",
    "BoundedLabel",
    "SalvageMetrics",
    "add_metrics_args",
    "attempt_outcome",
    "endpoint_label",
    "metrics_session",
    "start_http",
]
