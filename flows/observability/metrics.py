"""Prometheus metrics of a Salvage run: business, model and pipeline figures.

:class:`SalvageMetrics` owns the metrics on one registry (declared in
:mod:`~flows.observability.declarations`) and hands the dataflow a
:class:`~flows.dataflow.FlowObserver` whose hooks keep them current. Live components
(Kafka source, Redis stores, webhook dispatcher, human-review loop) report through its
``observe_*`` methods. Replay and the CLI use :mod:`flows.cli.metrics_options`; live mode
uses :func:`~flows.observability.server.start_http` (or, under ``python -m bytewax.run``,
Bytewax's own ``/metrics`` on port 3030, which includes the default registry).

Labels are bounded and never personal data (:mod:`~flows.observability.labels`); the
recovery stages of open cases and the online uplift are kept by
:mod:`~flows.observability.stages` and :mod:`~flows.observability.online_uplift`.
``docs/metrics.md`` lists every metric.

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

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flows.dataflow import OUTPUT_NAMES
from flows.observability.declarations import MetricDeclarations
from flows.observability.labels import (
    DEAD_LETTER_REASONS,
    DIMENSIONS,
    MAX_LABEL_CHARS,
    MISSING,
    OTHER,
    OUTCOMES,
    RECOVERED_OUTCOMES,
    REVIEW_STATUSES,
    SETTLED_OUTCOMES,
    WEBHOOK_RESULTS,
    BoundedLabel,
    attempt_outcome,
    endpoint_label,
)
from flows.observability.online_uplift import OnlineUplift
from flows.observability.stages import STAGES, RecoveryStages, decision_stage
from flows.observer import FlowObserver
from operators.contract import STREAM_TYPES, STREAMS, DeadLetter, Event


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


class SalvageMetrics(MetricDeclarations):
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
        super().__init__(reg)

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
        self.stages = RecoveryStages()
        self.uplift = OnlineUplift(uplift_window, uplift_interval)
        self._review_reported: tuple[int, float] | None = None
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
            self.stages.saw_event_time(max_event_at)
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
        # No action (the label of a missing one): the case keeps its stage.
        stage = None if action == MISSING else decision_stage(action, arm)
        value = float(rec.get("value_at_risk") or 0.0)
        self.stages.decided(order_id, stage, value, rec.get("decided_at"))

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
        # "censored" (end of a replay) leaves the case open: it is still at risk.
        if order_id and outcome != "censored":
            self.stages.closed(order_id)
        if actions and outcome in SETTLED_OUTCOMES:
            self.uplift.add((rec,), self._action)

    def _on_review(self, rec: dict[str, Any]) -> None:
        status = rec.get("status")
        self._review_c[
            status if isinstance(status, str) and status in self._review_c else OTHER
        ].inc()
        self.stages.reviewed(rec.get("order_id"), status)

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
        dead_letter, skipped_duplicate, unrouted, abandoned, blocked, or parked in the
        retry queue: retrying, queued) and ``seconds`` the time it
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
        self.uplift.current(force=True)

    def write_textfile(self, path: str | Path) -> None:
        """Write every metric of the registry to ``path`` in the text format (atomically)."""
        self.refresh()
        write_to_textfile(str(path), self.registry)

    def _review_state(self) -> tuple[int, float]:
        if self._review_reported is not None:
            return self._review_reported
        return self.stages.review_backlog()

    def _collect_state(self) -> Iterator[Metric]:
        cases, values = self.stages.counts()
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
        for action, u in self.uplift.current().items():
            sizes.add_metric([action, "treatment"], u.treated)
            sizes.add_metric([action, "control"], u.control)
            for bound, value in _with_bounds(u.refund_rate_reduction, u.ci_low, u.ci_high):
                reduction.add_metric([action, bound], value)
            for bound, value in _with_bounds(
                u.value_saved_per_case, u.value_ci_low, u.value_ci_high
            ):
                saved.add_metric([action, bound], value)
        yield reduction
        yield saved
        yield sizes


def _with_bounds(
    estimate: float | None, low: float | None, high: float | None
) -> list[tuple[str, float]]:
    """The ``bound`` label and value of an estimate and its 95 % interval; none of them
    when the estimate is missing (:func:`operators.uplift.estimate` sets all three or none)."""
    if estimate is None or low is None or high is None:
        return []
    return [("estimate", estimate), ("ci95_low", low), ("ci95_high", high)]


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
