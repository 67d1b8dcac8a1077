"""Generate the Grafana dashboards of Salvage from code.

Run ``python deploy/grafana/generate.py`` after changing a panel; it rewrites
``deploy/grafana/dashboards/*.json``. ``tests/deploy/test_dashboards.py`` fails when the files
and this code disagree, and checks the structure Grafana needs (unique ids, grid
positions, data sources, template variables). ``tests/e2e/test_prometheus_e2e.py`` runs every
panel query against a real Prometheus.

Conventions: every query goes to the data source variable ``${DS_PROMETHEUS}`` (the
provisioned data source has uid ``salvage-prometheus``); rates use ``$__rate_interval``,
totals over the dashboard's time range use ``$__range``; breakdown variables are
multi-value with ``.*`` as their "All" value, so queries match them with ``=~``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "dashboards"
DATASOURCE_UID = "salvage-prometheus"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SCHEMA_VERSION = 39
DIMENSIONS = {
    "sku_family": "SKU family",
    "courier_lane": "Courier lane",
    "campaign": "Campaign",
    "support_reason": "Support reason",
}


# --- building blocks ----------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict:
    """One Prometheus query of a panel (refIds are assigned by :func:`panel`)."""
    return {
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": "table" if table else "time_series",
    }


def _field_config(unit: str, *, decimals: int | None = None, stack: bool = False) -> dict:
    defaults: dict[str, Any] = {"unit": unit, "color": {"mode": "palette-classic"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    if stack:
        defaults["custom"] = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}
    return {"defaults": defaults, "overrides": []}


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict],
    *,
    unit: str = "short",
    width: int = 8,
    height: int = 8,
    decimals: int | None = None,
    stack: bool = False,
    options: dict | None = None,
    transformations: list[dict] | None = None,
) -> dict:
    """A panel; ``id`` and ``gridPos`` are filled in by :class:`Layout`."""
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": _field_config(unit, decimals=decimals, stack=stack),
        "options": options or {},
        "gridPos": {"w": width, "h": height},
    }
    if transformations:
        out["transformations"] = transformations
    return out


def stat(title: str, description: str, expr: str, unit: str = "short", **kw: Any) -> dict:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": kw.pop("text_mode", "auto"),
    }
    return panel(
        "stat",
        title,
        description,
        [target(expr, kw.pop("legend", ""), instant=True)],
        unit=unit,
        width=kw.pop("width", 4),
        height=kw.pop("height", 4),
        options=options,
        **kw,
    )


def series(title: str, description: str, *targets: dict, **kw: Any) -> dict:
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, list(targets), options=options, **kw)


def bars(title: str, description: str, *targets: dict, **kw: Any) -> dict:
    options = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
    }
    return panel("bargauge", title, description, list(targets), options=options, **kw)


class Layout:
    """Places panels left to right in rows of 24 grid units; assigns unique ids."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self._add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self._newline()

    def add(self, *panels: dict) -> None:
        for p in panels:
            grid = p["gridPos"]
            if self.x + grid["w"] > 24:
                self._newline()
            self._add(p, grid["w"], grid["h"])

    def _add(self, p: dict, w: int, h: int) -> None:
        p["id"] = len(self.panels) + 1
        p["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(p)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0


def datasource_variable() -> dict:
    return {
        "type": "datasource",
        "name": "DS_PROMETHEUS",
        "label": "Data source",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, selector: str, label_name: str) -> dict:
    """A multi-value variable listing ``label_name`` of the series matching ``selector``."""
    query = f"label_values({selector}, {label_name})"
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values", "qryType": 1},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "hide": 0,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, description: str, tags: list[str], layout: Layout, variables: list[dict]
) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Salvage dashboards",
                "type": "dashboards",
                "tags": ["salvage"],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "panels": layout.panels,
        "templating": {"list": [datasource_variable(), *variables]},
        "version": 1,
    }


# --- Refund leakage and recovery ----------------------------------------------------------------


def recovery_dashboard() -> dict:
    arm = 'arm=~"$arm"'
    by = f'{arm}, action=~"$action"'
    lay = Layout()
    lay.row("Overview (selected time range)")
    lay.add(
        stat(
            "Refund leakage",
            "Value refunded (refunds and chargebacks) in the time range, currency units.",
            f"sum(increase(salvage_refund_leakage_total{{{arm}}}[$__range]))",
            decimals=0,
        ),
        stat(
            "Retained revenue",
            "Value kept on at-risk cases that closed kept, exchanged or partly refunded.",
            f"sum(increase(salvage_retained_revenue_total{{{by}}}[$__range]))",
            decimals=0,
        ),
        stat(
            "Refunds avoided",
            "At-risk cases that closed kept or exchanged.",
            f"sum(increase(salvage_refunds_avoided_total{{{by}}}[$__range]))",
            decimals=0,
        ),
        stat(
            "Recovery rate",
            "Refunds avoided / at-risk cases closed (refunded, charged back, kept or exchanged).",
            f"sum(increase(salvage_refunds_avoided_total{{{by}}}[$__range])) / "
            f"sum(increase(salvage_at_risk_cases_closed_total{{{by}}}[$__range]))",
            unit="percentunit",
            decimals=1,
        ),
        stat(
            "Value at risk in open cases",
            "Order value x refund propensity at the latest decision, summed over open cases.",
            "sum(salvage_open_value_at_risk)",
            decimals=0,
        ),
        stat(
            "Human-review backlog",
            "Cases waiting for a person.",
            "sum(salvage_human_review_backlog)",
        ),
    )
    lay.row("Leakage and recovery over time")
    lay.add(
        series(
            "Refund leakage and retained revenue per hour",
            "Currency units per hour.",
            target(
                f"sum(rate(salvage_refund_leakage_total{{{arm}}}[$__rate_interval])) * 3600",
                "refund leakage",
            ),
            target(
                f"sum(rate(salvage_retained_revenue_total{{{by}}}[$__rate_interval])) * 3600",
                "retained revenue",
            ),
            width=12,
        ),
        series(
            "Recovery rate by arm",
            "Refunds avoided / at-risk cases closed, treatment against the holdout (control).",
            target(
                f"sum by (arm) (rate(salvage_refunds_avoided_total{{{by}}}[$__rate_interval]))"
                f" / sum by (arm) (rate(salvage_at_risk_cases_closed_total{{{by}}}"
                f"[$__rate_interval]))",
                "{{arm}}",
            ),
            unit="percentunit",
            width=12,
        ),
        series(
            "Retained revenue by first action",
            "Where the kept value comes from: exchanges, reassurance and other recoveries "
            "(none: kept without an action). Currency units per hour.",
            target(
                f"sum by (action) (rate(salvage_retained_revenue_total{{{by}}}"
                f"[$__rate_interval])) * 3600",
                "{{action}}",
            ),
            stack=True,
        ),
        series(
            "Case outcomes",
            "Outcome records per second by outcome (open: still open at the end of a replay).",
            target(
                f"sum by (outcome) (rate(salvage_case_outcomes_total{{{arm}}}[$__rate_interval]))",
                "{{outcome}}",
            ),
            stack=True,
        ),
        series(
            "Open cases and value at risk by stage",
            "Open cases by recovery stage (monitored, intervened, held_out, in_review), and "
            "their value at risk.",
            target("sum by (stage) (salvage_open_cases)", "{{stage}} cases"),
            target("sum by (stage) (salvage_open_value_at_risk)", "{{stage}} value at risk"),
        ),
    )
    lay.row("Decisions, interventions and uplift")
    lay.add(
        series(
            "Interventions by action",
            "Intervention events emitted per second.",
            target(
                'sum by (action) (rate(salvage_interventions_total{action=~"$action"}'
                "[$__rate_interval]))",
                "{{action}}",
            ),
            stack=True,
        ),
        bars(
            "Decisions by action, arm and automation",
            "Decisions in the time range (none: the policy chose no action).",
            target(
                f"sort_desc(sum by (action, arm, automated) "
                f"(increase(salvage_decisions_total{{{by}}}[$__range])))",
                "{{action}} / {{arm}} / automated={{automated}}",
                instant=True,
            ),
            decimals=0,
        ),
        series(
            "Uplift: refund-rate reduction with 95 % interval",
            "Control refund rate minus treated refund rate by first action; the interval "
            "bounds are the ci95_low and ci95_high series.",
            target(
                'salvage_uplift_refund_rate_reduction_ratio{action=~"$action"}',
                "{{action}} {{bound}}",
            ),
            unit="percentunit",
        ),
        panel(
            "table",
            "Uplift by action (now)",
            "Refund-rate reduction and value saved per case with 95 % intervals, and the "
            "cases behind each estimate.",
            [
                target(
                    "max by (action) (salvage_uplift_refund_rate_reduction_ratio"
                    f'{{action=~"$action", bound="{b}"}})',
                    b,
                    instant=True,
                    table=True,
                )
                for b in ("estimate", "ci95_low", "ci95_high")
            ]
            + [
                target(
                    'max by (action) (salvage_uplift_value_saved_per_case{action=~"$action", '
                    'bound="estimate"})',
                    "value saved per case",
                    instant=True,
                    table=True,
                ),
                target(
                    'sum by (action) (salvage_uplift_cases{action=~"$action"})',
                    "cases",
                    instant=True,
                    table=True,
                ),
            ],
            width=16,
            options={"showHeader": True, "cellHeight": "sm"},
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "refund-rate reduction",
                            "Value #B": "ci95 low",
                            "Value #C": "ci95 high",
                            "Value #D": "value saved per case",
                            "Value #E": "cases",
                        },
                    },
                },
            ],
        ),
        bars(
            "Uplift sample sizes",
            "Settled cases behind each uplift estimate, by arm.",
            target('salvage_uplift_cases{action=~"$action"}', "{{action}} / {{arm}}", instant=True),
            decimals=0,
        ),
    )
    for dim, label in DIMENSIONS.items():
        sel = f'dimension="{dim}", segment=~"${dim}"'
        lay.row(f"By {label.lower()}")
        lay.add(
            bars(
                f"Refund leakage by {label.lower()}",
                f"Value refunded in the time range by {label.lower()} (top values by volume; "
                "the rest are 'other').",
                target(
                    f"sort_desc(sum by (segment) "
                    f"(increase(salvage_segment_refund_leakage_total{{{sel}}}[$__range])))",
                    "{{segment}}",
                    instant=True,
                ),
                decimals=0,
            ),
            bars(
                f"Recovery rate by {label.lower()}",
                "Refunds avoided / at-risk cases closed in the time range.",
                target(
                    f"sum by (segment) (increase(salvage_segment_refunds_avoided_total{{{sel}}}"
                    f"[$__range])) / sum by (segment) "
                    f"(increase(salvage_segment_at_risk_cases_closed_total{{{sel}}}[$__range]))",
                    "{{segment}}",
                    instant=True,
                ),
                unit="percentunit",
                decimals=1,
            ),
            series(
                f"Interventions by {label.lower()}",
                "Intervention events per second.",
                target(
                    f"sum by (segment) (rate(salvage_segment_interventions_total{{{sel}, "
                    f'action=~"$action"}}[$__rate_interval]))',
                    "{{segment}}",
                ),
                stack=True,
            ),
        )
    lay.row("Human review")
    lay.add(
        stat(
            "Review backlog",
            "Cases waiting for a person.",
            "sum(salvage_human_review_backlog)",
        ),
        stat(
            "Oldest waiting review",
            "Age of the oldest case waiting for a person.",
            "max(salvage_human_review_oldest_age_seconds)",
            unit="s",
        ),
        series(
            "Review queue",
            "Cases waiting for a person.",
            target("sum(salvage_human_review_backlog)", "backlog"),
            width=6,
        ),
        series(
            "Oldest waiting review",
            "Alert SalvageHumanReviewBacklogOld fires above 4 hours.",
            target("max(salvage_human_review_oldest_age_seconds)", "oldest"),
            unit="s",
            width=6,
        ),
        series(
            "Reviews settled by status",
            "Review records per second: approved, rejected, expired, closed with the case, "
            "ignored (late or duplicate decisions).",
            target("sum by (status) (rate(salvage_reviews_total[$__rate_interval]))", "{{status}}"),
            unit="reqps",
            width=6,
        ),
    )
    variables = [
        query_variable("arm", "Arm", "salvage_case_outcomes_total", "arm"),
        query_variable("action", "Action", "salvage_decisions_total", "action"),
    ] + [
        query_variable(
            dim, label, f'{{__name__=~"salvage_segment_.+_total", dimension="{dim}"}}', "segment"
        )
        for dim, label in DIMENSIONS.items()
    ]
    return dashboard(
        "salvage-recovery",
        "Salvage: refund leakage and recovery",
        "What leaks, what Salvage keeps, what each action achieves against the holdout, "
        "by SKU family, courier lane, campaign and support reason.",
        ["salvage", "business"],
        lay,
        variables,
    )


# --- Pipeline health ----------------------------------------------------------------------------


def pipeline_dashboard() -> dict:
    stream = 'stream=~"$stream"'
    shard = 'shard=~"$shard"'
    model = 'model=~"$model"'
    lay = Layout()
    lay.row("Throughput")
    lay.add(
        series(
            "Input records by stream",
            "Raw records per second, valid or not.",
            target(
                f"sum by (stream) (rate(salvage_input_records_total{{{stream}}}"
                f"[$__rate_interval]))",
                "{{stream}}",
            ),
            unit="reqps",
            stack=True,
        ),
        series(
            "Valid events by type",
            "Decoded events per second.",
            target(
                f"sum by (stream, type) (rate(salvage_events_total{{{stream}}}[$__rate_interval]))",
                "{{stream}}/{{type}}",
            ),
            unit="reqps",
            stack=True,
        ),
        series(
            "Output records",
            "Records written per second by output.",
            target(
                "sum by (output) (rate(salvage_output_records_total[$__rate_interval]))",
                "{{output}}",
            ),
            unit="reqps",
        ),
    )
    lay.row("Lag and latency")
    lay.add(
        series(
            "Event-time lag",
            "Wall clock minus the newest event time (event lag) and minus the watermark "
            "(event lag plus the allowed lateness), worst shard.",
            target(f"max(time() - salvage_max_event_timestamp_seconds{{{shard}}})", "newest event"),
            target(f"max(time() - salvage_watermark_timestamp_seconds{{{shard}}})", "watermark"),
            unit="s",
        ),
        series(
            "Processing latency (event in to decision out)",
            "Percentiles of the wall time from decoding an event to its decision.",
            *[
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(salvage_processing_latency_seconds_bucket[$__rate_interval])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
            unit="s",
        ),
        series(
            "Kafka consumer lag",
            "Messages behind the end of each topic (live mode).",
            target("sum by (topic) (salvage_kafka_consumer_lag_messages)", "{{topic}}"),
        ),
    )
    lay.row("Dead letters")
    lay.add(
        series(
            "Dead letters by reason",
            "Dead-lettered input records per second by reason class.",
            target(
                f"sum by (reason) (rate(salvage_dead_letters_total{{{stream}}}[$__rate_interval]))",
                "{{reason}}",
            ),
            unit="reqps",
            stack=True,
        ),
        series(
            "Dead-letter ratio",
            "Dead letters / input records. Alert SalvageDeadLetterRateHigh fires above 5 %.",
            target(
                f"sum(rate(salvage_dead_letters_total{{{stream}}}[$__rate_interval])) / "
                f"sum(rate(salvage_input_records_total{{{stream}}}[$__rate_interval]))",
                "dead-letter ratio",
            ),
            unit="percentunit",
        ),
        series(
            "Late events by stream",
            "Events that arrived behind the watermark, per second.",
            target(
                f"sum by (stream) (rate(salvage_late_events_total{{{stream}}}[$__rate_interval]))",
                "{{stream}}",
            ),
            unit="reqps",
        ),
    )
    lay.row("State")
    lay.add(
        series(
            "Clock state per shard",
            "Open orders plus tombstones held by each clock shard.",
            target(f"sum by (shard) (salvage_clock_tracked_orders{{{shard}}})", "shard {{shard}}"),
            width=12,
        ),
        series(
            "Open cases by stage",
            "Open cases by recovery stage.",
            target("sum by (stage) (salvage_open_cases)", "{{stage}}"),
            width=12,
            stack=True,
        ),
    )
    lay.row("Model quality")
    lay.add(
        series(
            "ROC AUC",
            "Live ROC AUC of each model. Alert SalvageModelAucDegraded fires below 0.65.",
            target(f"salvage_model_roc_auc{{{model}}}", "{{model}}"),
            unit="none",
            decimals=3,
            width=6,
        ),
        series(
            "Calibration error",
            "Expected calibration error. Alert SalvageModelCalibrationDegraded fires above 0.1.",
            target(f"salvage_model_calibration_error{{{model}}}", "{{model}}"),
            unit="none",
            decimals=3,
            width=6,
        ),
        series(
            "Log loss",
            "Mean log loss on the latest labelled cases.",
            target(f"salvage_model_log_loss{{{model}}}", "{{model}}"),
            unit="none",
            decimals=3,
            width=6,
        ),
        series(
            "Learning lag",
            "Event time from a decision to the label the model learned from.",
            target(f"salvage_model_learning_lag_seconds{{{model}}}", "{{model}}"),
            unit="s",
            width=6,
        ),
        stat(
            "Model version",
            "Version of each model in use.",
            f"max by (model, version) (salvage_model_info{{{model}}})",
            legend="{{model}} {{version}}",
            text_mode="name",
            width=12,
        ),
        stat(
            "Training examples",
            "Labelled examples each model learned from.",
            f"sum by (model) (salvage_model_training_examples{{{model}}})",
            legend="{{model}}",
            width=12,
        ),
    )
    lay.row("Redis and webhooks")
    lay.add(
        series(
            "Redis calls by outcome",
            "Redis calls per second by operation and outcome.",
            target(
                "sum by (operation, outcome) (rate(salvage_redis_calls_total[$__rate_interval]))",
                "{{operation}} {{outcome}}",
            ),
            unit="reqps",
            width=12,
        ),
        series(
            "Redis call latency p99",
            "99th percentile of Redis call duration by operation.",
            target(
                "histogram_quantile(0.99, sum by (le, operation) "
                "(rate(salvage_redis_call_duration_seconds_bucket[$__rate_interval])))",
                "{{operation}}",
            ),
            unit="s",
            width=12,
        ),
        series(
            "Webhook deliveries by result",
            "Deliveries per second by how they ended (dead_letter: given up after retries; "
            "retrying: parked for a slow retry; queued: waiting in the retry queue for a "
            "free slot, the flow went on).",
            target(
                "sum by (endpoint, result) "
                "(rate(salvage_webhook_deliveries_total[$__rate_interval]))",
                "{{endpoint}} {{result}}",
            ),
            unit="reqps",
            width=6,
        ),
        series(
            "Webhook attempts by outcome",
            "HTTP attempts per second by status class, timeout or error.",
            target(
                "sum by (endpoint, outcome) "
                "(rate(salvage_webhook_attempts_total[$__rate_interval]))",
                "{{endpoint}} {{outcome}}",
            ),
            unit="reqps",
            width=6,
        ),
        series(
            "Webhook delivery time",
            "Percentiles of the time from claim to the end of a delivery, retries included.",
            *[
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(salvage_webhook_delivery_seconds_bucket[$__rate_interval])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.99)
            ],
            unit="s",
            width=6,
        ),
        series(
            "Webhooks in flight",
            "Deliveries on the wire or waiting to retry, by endpoint.",
            target("sum by (endpoint) (salvage_webhook_in_flight)", "{{endpoint}}"),
            width=6,
        ),
    )
    variables = [
        query_variable("stream", "Stream", "salvage_input_records_total", "stream"),
        query_variable("shard", "Clock shard", "salvage_watermark_timestamp_seconds", "shard"),
        query_variable("model", "Model", "salvage_model_roc_auc", "model"),
    ]
    return dashboard(
        "salvage-pipeline",
        "Salvage: pipeline health",
        "Throughput, event-time lag, latency, dead letters, state, model quality, Redis and "
        "webhooks.",
        ["salvage", "pipeline"],
        lay,
        variables,
    )


DASHBOARDS = {
    "salvage-recovery.json": recovery_dashboard,
    "salvage-pipeline.json": pipeline_dashboard,
}


def render(build: Any) -> str:
    """The JSON text of one dashboard, as written to disk."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards; with ``--check``, only report whether the files are current."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARD_DIR / name
        text = render(build)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "dashboards are up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
