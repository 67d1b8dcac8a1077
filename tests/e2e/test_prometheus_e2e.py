"""Every dashboard query and every rule, against a real Prometheus scraping a real replay.

Setup (once for the module): simulate two scenarios, replay the first through the dataflow
with the metrics observer, serve the registry on a free port, start Prometheus (scrape and
rule evaluation every second, the rule files of ``deploy/prometheus/rules``), wait for two
scrapes, replay the second scenario into the same metrics (so counters move between
scrapes and rates are not zero), and wait for three more scrapes.

A replay has no Kafka, Redis, webhooks or review loop: the test reports those through the
methods the live components call (``observe_kafka_lag``, ``observe_redis_call``,
``observe_webhook``, ``observe_webhook_attempt``) and the ``reviews`` output hook. Model
quality comes from the replay's own online learner through ``FlowObserver.on_model``.

What "returns data" means here: the query succeeds and at least one sample is a finite
number (an empty panel, a NaN-only panel, a misspelled metric or label all fail). Alert
expressions compare: they are run whole (they must parse and evaluate), and each operand of
their top-level comparisons and set operators is run on its own and must return data
(:func:`~tests.fixtures.prometheus_server.signal_parts`), since an alert that is rightly
not firing returns nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from flows.observability.metrics import SalvageMetrics
from flows.observability.server import start_http
from flows.replay import run_replay
from operators.simulation import simulate
from tests.fixtures.prometheus_server import (
    LocalPrometheus,
    PrometheusError,
    finite_values,
    signal_parts,
    substitute,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            if p["type"] != "row":
                yield dash["title"], p


def _report_live_components(metrics: SalvageMetrics, round_: int) -> None:
    """What the Kafka source, the Redis stores and the webhook dispatcher report live."""
    for partition in range(2):
        metrics.observe_kafka_lag("salvage.orders", partition, 40 * round_ + partition)
    for i in range(40 * round_):
        metrics.observe_redis_call("context_get", True, 0.0004 + i * 1e-5)
        metrics.observe_redis_call("case_put", i % 20 != 0, 0.0009)
    for _ in range(10 * round_):
        metrics.observe_webhook_attempt("crm", 200)
        metrics.observe_webhook("crm", "delivered", 0.2)
    metrics.observe_webhook_attempt("crm", 503)
    metrics.observe_webhook_attempt("crm", "timeout")
    metrics.observe_webhook("crm", "dead_letter", 31.0)
    # Written to the retry queue for a slot or a dispatcher process (SalvageWebhooksNotSent).
    metrics.observe_webhook("crm", "queued", 0.0)
    metrics.webhook_in_flight.labels("crm").set(round_)
    # The review loop's audit records (live mode observes the "reviews" output).
    on_output = metrics.observer().on_output
    for status in ("approved", "rejected", "expired")[: round_ + 1]:
        on_output("reviews", {"order_id": f"review-{round_}-{status}", "status": status})


@pytest.fixture(scope="module")
def scenario(prometheus_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("e2e")
    simulate("launch-week-backlog", 2000, 11, base / "in-a")
    simulate("steady-state", 1500, 5, base / "in-b")
    metrics = SalvageMetrics(CollectorRegistry(), uplift_interval=0.0)
    observer = metrics.observer()
    run_replay(base / "in-a", base / "out-a", observer=observer)
    _report_live_components(metrics, 1)
    server = start_http(0, metrics.registry, "127.0.0.1")
    try:
        prom: LocalPrometheus = prometheus_factory(
            [f"127.0.0.1:{server.server_port}"], RULE_FILES, job="salvage", interval="1s"
        )
        prom.wait_until(lambda: prom.scrapes() >= 2, what="two scrapes")
        run_replay(base / "in-b", base / "out-b", observer=observer)
        _report_live_components(metrics, 2)
        seen = prom.scrapes()
        prom.wait_until(lambda: prom.scrapes() >= seen + 3, what="three more scrapes")
        time.sleep(2.5)  # rule groups evaluate every second: let them see the new samples
        yield prom, base, metrics
    finally:
        server.shutdown()
        server.server_close()


def _problem(prom: LocalPrometheus, expr: str) -> str | None:
    try:
        result = prom.query(expr)
    except PrometheusError as exc:
        return f"error: {exc}"
    if not result:
        return "empty result"
    if not finite_values(result):
        return f"no finite value in {[r['value'][1] for r in result]}"
    return None


def test_every_dashboard_panel_query_returns_data(scenario: Any) -> None:
    prom, _, _ = scenario
    failures, checked = [], 0
    for title, p in _panels():
        for t in p["targets"]:
            expr = substitute(t["expr"])
            checked += 1
            problem = _problem(prom, expr)
            if problem:
                failures.append(f"{title} / {p['title']} / {t['refId']}: {problem}\n  {expr}")
    assert checked > 60  # both dashboards were read
    assert not failures, "\n".join(failures)


def test_every_template_variable_lists_values(scenario: Any) -> None:
    prom, _, _ = scenario
    failures, checked = [], 0
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] != "query":
                continue
            checked += 1
            # label_values(<selector>, <label>) -> the series API with the same selector.
            inner = var["query"]["query"].removeprefix("label_values(").removesuffix(")")
            selector, label = (x.strip() for x in inner.rsplit(",", 1))
            values = {s[label] for s in prom.series(selector) if label in s}
            if not values:
                failures.append(f"{path.name} ${var['name']}: no values of {label} in {selector}")
    assert checked >= 9
    assert not failures, "\n".join(failures)


def test_every_recording_rule_returns_data(scenario: Any) -> None:
    prom, _, _ = scenario
    records = [r for r in _rules() if "record" in r]
    assert len(records) >= 8
    failures = []
    for rule in records:
        # Both the stored series and the expression itself.
        for expr in (rule["record"], rule["expr"]):
            problem = _problem(prom, expr)
            if problem:
                failures.append(f"{rule['record']}: {problem}\n  {expr.strip()}")
    assert not failures, "\n".join(failures)


def test_every_alert_expression_evaluates_and_its_signals_return_data(scenario: Any) -> None:
    prom, _, _ = scenario
    alerts = [r for r in _rules() if "alert" in r]
    assert len(alerts) >= 9
    failures = []
    for rule in alerts:
        expr = rule["expr"].strip()
        try:
            prom.query(expr)  # may rightly be empty; must evaluate
        except PrometheusError as exc:
            failures.append(f"{rule['alert']}: {exc}")
        parts = signal_parts(expr)
        if not parts:
            failures.append(f"{rule['alert']}: no signal found in {expr}")
        for part in parts:
            problem = _problem(prom, part)
            if problem:
                failures.append(f"{rule['alert']}: {problem}\n  {part}")
    assert not failures, "\n".join(failures)


def test_rules_evaluate_without_errors(scenario: Any) -> None:
    prom, _, _ = scenario
    groups = prom.api("rules")["groups"]
    loaded = {r.get("name") for g in groups for r in g["rules"]}
    expected = {r.get("alert") or r.get("record") for r in _rules()}
    assert loaded == expected
    bad = [
        f"{r['name']}: {r.get('lastError')}"
        for g in groups
        for r in g["rules"]
        if r.get("health") != "ok" or r.get("lastError")
    ]
    assert not bad, "\n".join(bad)


def _outcomes(base: Path) -> list[dict[str, Any]]:
    rows = []
    for run in ("out-a", "out-b"):
        with open(base / run / "outcomes.jsonl", "rb") as fh:
            rows.extend(orjson.loads(line) for line in fh if line.strip())
    return rows


def test_prometheus_holds_the_figures_of_the_outputs(scenario: Any) -> None:
    prom, base, _ = scenario
    outcomes = _outcomes(base)
    refunded = sum(o["refund_value"] for o in outcomes)
    decided = sum(
        1 for o in outcomes if o["outcome"] not in ("censored", "cancelled") and o["at_risk"]
    )
    assert refunded > 0 and decided > 0
    leak = prom.query("sum(salvage_refund_leakage_total)")
    assert float(leak[0]["value"][1]) == pytest.approx(refunded, rel=1e-9)
    closed = prom.query("sum(salvage_at_risk_cases_closed_total)")
    assert float(closed[0]["value"][1]) == decided
    # Every segment dimension splits the same total, whatever the cut.
    by_dim = prom.query("sum by (dimension) (salvage_segment_refund_leakage_total)")
    assert len(by_dim) == 4
    for sample in by_dim:
        assert float(sample["value"][1]) == pytest.approx(refunded, rel=1e-9)
