"""The Grafana dashboards and provisioning files: generated, valid, consistent.

Grafana does not run here; these tests check what Grafana needs from the files (unique
panel ids, grid positions that fit and do not overlap, a query with a data source in every
panel, template variables that are defined and used) and what the issue asks of them (the
panels and breakdowns). ``tests/e2e/test_prometheus_e2e.py`` runs every query against a real
Prometheus.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus_rules import exposed_names, metric_names
from tests.fixtures.prometheus_server import GRAFANA_BUILTINS, variables_in

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / name).read_text())


def _queries(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def dashboard_problems(dash: dict[str, Any]) -> list[str]:
    """What would break the dashboard in Grafana (empty when it is fine)."""
    problems: list[str] = []
    if dash.get("schemaVersion", 0) < 36:
        problems.append(f"schemaVersion {dash.get('schemaVersion')} is too old")
    for key in ("uid", "title", "panels", "templating"):
        if not dash.get(key):
            problems.append(f"missing {key}")
    panels = dash.get("panels", [])
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids are not unique integers: {ids}")
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        name = f"panel {p.get('id')} {p.get('title')!r}"
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{name}: gridPos needs integer x, y, w, h: {grid}")
            continue
        if grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > 24 or grid["h"] < 1:
            problems.append(f"{name}: gridPos outside the 24 columns: {grid}")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), name)
                if other != name:
                    problems.append(f"{name} overlaps {other}")
                    break
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if not p.get("title") or not p.get("description"):
            problems.append(f"{name}: needs a title and a description")
        if p.get("datasource") != DATASOURCE:
            problems.append(f"{name}: datasource is {p.get('datasource')}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{name}: no query")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            problems.append(f"{name}: duplicate refIds {refs}")
        for t in targets:
            if not str(t.get("expr", "")).strip():
                problems.append(f"{name}: target {t.get('refId')} has no expr")
            if t.get("datasource") != DATASOURCE:
                problems.append(f"{name}: target {t.get('refId')} datasource {t.get('datasource')}")
            if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
                problems.append(f"{name}: unbalanced parentheses in {t['expr']}")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no DS_PROMETHEUS data source variable")
    used = set().union(*(variables_in(e) for e in _queries(dash))) if panels else set()
    for missing in sorted(used - set(variables) - set(GRAFANA_BUILTINS)):
        problems.append(f"variable ${missing} is used but not defined")
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        if name not in used:
            problems.append(f"variable ${name} is defined but no query uses it")
        if var.get("datasource") != DATASOURCE:
            problems.append(f"variable ${name}: datasource is {var.get('datasource')}")
        query = var.get("query", {}).get("query", "")
        if not re.fullmatch(r"label_values\(.+,\s*\w+\)", query):
            problems.append(f"variable ${name}: not a label_values query: {query!r}")
        if var.get("includeAll") and var.get("allValue") != ".*":
            problems.append(f"variable ${name}: 'All' must be .* for =~ matchers")
    return problems


# --- the files ---------------------------------------------------------------------------


def test_dashboard_files_match_the_generator() -> None:
    gen = _generator()
    assert sorted(gen.DASHBOARDS) == [p.name for p in DASHBOARD_FILES]
    for name, build in gen.DASHBOARDS.items():
        on_disk = (GRAFANA / "dashboards" / name).read_text()
        assert on_disk == gen.render(build), f"{name} is stale: run deploy/grafana/generate.py"


def test_generator_check_mode_reports_current_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert _generator().main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_valid(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dashboard_problems(dash) == []
    assert dash["schemaVersion"] == 39
    assert dash["uid"] == path.stem


def test_dashboards_have_distinct_uids_and_titles() -> None:
    dashes = [json.loads(p.read_text()) for p in DASHBOARD_FILES]
    assert len({d["uid"] for d in dashes}) == len({d["title"] for d in dashes}) == len(dashes) == 2


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["panels"][2].__setitem__("id", d["panels"][1]["id"]), "not unique"),
        (lambda d: d["panels"][1]["gridPos"].__setitem__("x", 22), "outside the 24 columns"),
        (lambda d: d["panels"][2]["gridPos"].update(d["panels"][1]["gridPos"]), "overlaps"),
        (lambda d: d["panels"][1]["targets"][0].__setitem__("expr", " "), "has no expr"),
        (lambda d: d["panels"][1].__setitem__("datasource", {"uid": "x"}), "datasource"),
        (lambda d: d["templating"]["list"].pop(), "is used but not defined"),
        (
            lambda d: d["templating"]["list"].append(
                {**d["templating"]["list"][1], "name": "unused"}
            ),
            "no query uses it",
        ),
    ],
)
def test_validator_catches_broken_dashboards(mutate: Any, expected: str) -> None:
    dash = copy.deepcopy(_load("salvage-recovery.json"))
    mutate(dash)
    assert any(expected in p for p in dashboard_problems(dash))


# --- what the dashboards show ------------------------------------------------------------------


def test_queries_read_only_metrics_that_exist() -> None:
    exposed = exposed_names()
    for path in DASHBOARD_FILES:
        for expr in _queries(json.loads(path.read_text())):
            missing = metric_names(expr) - exposed
            assert not missing, f"{path.name}: unknown metric {missing} in {expr}"


def _metrics_of(name: str) -> set[str]:
    return set().union(*(metric_names(e) for e in _queries(_load(name))))


def test_recovery_dashboard_covers_the_business_view() -> None:
    dash = _load("salvage-recovery.json")
    used = _metrics_of("salvage-recovery.json")
    assert {
        "salvage_refund_leakage_total",
        "salvage_retained_revenue_total",
        "salvage_refunds_avoided_total",
        "salvage_at_risk_cases_closed_total",
        "salvage_interventions_total",
        "salvage_decisions_total",
        "salvage_uplift_refund_rate_reduction_ratio",
        "salvage_open_value_at_risk",
        "salvage_human_review_backlog",
        "salvage_human_review_oldest_age_seconds",
    } <= used
    # Uplift is shown with both interval bounds.
    text = " ".join(_queries(dash))
    assert "ci95_low" in text and "ci95_high" in text
    # One row per breakdown, each with a template variable that filters its segment.
    variables = {v["name"] for v in dash["templating"]["list"]}
    for dim in ("sku_family", "courier_lane", "campaign", "support_reason"):
        assert dim in variables
        assert f'dimension="{dim}", segment=~"${dim}"' in text


def test_pipeline_dashboard_covers_the_pipeline_view() -> None:
    used = _metrics_of("salvage-pipeline.json")
    assert {
        "salvage_input_records_total",
        "salvage_events_total",
        "salvage_dead_letters_total",
        "salvage_late_events_total",
        "salvage_max_event_timestamp_seconds",
        "salvage_watermark_timestamp_seconds",
        "salvage_processing_latency_seconds_bucket",
        "salvage_kafka_consumer_lag_messages",
        "salvage_clock_tracked_orders",
        "salvage_model_roc_auc",
        "salvage_model_calibration_error",
        "salvage_model_log_loss",
        "salvage_model_info",
        "salvage_redis_calls_total",
        "salvage_webhook_deliveries_total",
        "salvage_webhook_attempts_total",
    } <= used
    quantiles = [e for e in _queries(_load("salvage-pipeline.json")) if "histogram_quantile" in e]
    assert any(e.startswith("histogram_quantile(0.99") for e in quantiles)


# --- provisioning ------------------------------------------------------------------------------


def test_datasource_provisioning_matches_the_dashboards() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "salvage.yaml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    for path in DASHBOARD_FILES:
        ds = next(
            v
            for v in json.loads(path.read_text())["templating"]["list"]
            if v["type"] == "datasource"
        )
        assert ds["current"]["value"] == source["uid"]


def test_dashboard_provisioning_points_at_a_folder() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "salvage.yaml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert provider["allowUiUpdates"] is False  # the JSON is generated from code
