"""The Prometheus rules and example config: promtool checks, unit tests, annotations and
runbooks, and metric names that exist.

``promtool`` comes from Debian's ``prometheus`` package (installed by ``.ci/run``); without
it these tests skip, or fail under ``SALVAGE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from flows.observability.metrics import SalvageMetrics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.test.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"

#: The alerts the observability issue asks for (more may exist).
REQUIRED_ALERTS = {
    "SalvageRefundLeakageSpike",
    "SalvageRecoveryRateDrop",
    "SalvageModelAucDegraded",
    "SalvageModelCalibrationDegraded",
    "SalvageEventTimeLagHigh",
    "SalvageDeadLetterRateHigh",
    "SalvageWebhookFailureRateHigh",
    "SalvageHumanReviewBacklogOld",
}


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            assert "interval" not in group, "groups use the global evaluation_interval"
            rules.extend(group["rules"])
    return rules


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def exposed_names() -> set[str]:
    """Every series name SalvageMetrics can expose (counters with _total, histograms with
    _bucket/_sum/_count, info metrics with _info), plus Prometheus' own ``up``."""
    registry = CollectorRegistry()
    SalvageMetrics(registry)
    names = {"up"}
    for family in registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "info": ("_info",),
        }.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    """Raw metric names an expression reads (recording-rule names have colons)."""
    return set(re.findall(r"(?<![\w:])(salvage_[a-z0-9_]+|up)(?![\w:(])", expr))


# --- promtool ------------------------------------------------------------------------------


@pytest.mark.services
def test_rule_files_pass_promtool_check(promtool: str) -> None:
    assert len(RULE_FILES) == 2
    result = _run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.services
def test_promtool_check_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n"
        "        expr: sum(rate(salvage_refund_leakage_total[5m])\n"
    )
    result = _run(promtool, "check", "rules", broken)
    assert result.returncode != 0
    assert "Broken" in result.stdout + result.stderr or "parse" in result.stderr.lower()


@pytest.mark.services
def test_rule_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS
    result = _run(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.services
def test_example_config_is_valid(promtool: str) -> None:
    result = _run(promtool, "check", "config", PROM / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert {(PROM / f).resolve() for f in config["rule_files"]} == set(RULE_FILES)
    assert any(job["job_name"] == "salvage" for job in config["scrape_configs"])


# --- coverage of the unit tests -------------------------------------------------------------


def _unit_cases() -> list[dict[str, Any]]:
    cases = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    alerts = {a["alert"] for a in _alerts()}
    cases = _unit_cases()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a quiet test"
    assert (firing | quiet) <= alerts, "unit tests of alerts that do not exist"


def test_unit_tests_expect_the_annotations_of_the_rules() -> None:
    # A firing case must spell out the runbook and summary of the rule it tests, so a
    # changed annotation cannot slip through.
    by_name = {a["alert"]: a for a in _alerts()}
    for case in _unit_cases():
        for exp in case.get("exp_alerts") or []:
            rule = by_name[case["alertname"]]
            got = exp["exp_annotations"]
            assert got["runbook_url"] == rule["annotations"]["runbook_url"]
            assert exp["exp_labels"]["severity"] == rule["labels"]["severity"]


# --- content ---------------------------------------------------------------------------------


def test_the_required_alerts_exist() -> None:
    assert {a["alert"] for a in _alerts()} >= REQUIRED_ALERTS


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    headings = {
        re.sub(r"[^a-z0-9_-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for alert in _alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        notes = alert["annotations"]
        assert notes.get("summary") and notes.get("description"), name
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "docs/operations.md" and anchor == name.lower(), name
        assert anchor in headings, f"docs/operations.md has no runbook section for {name}"


def test_recording_rules_follow_the_naming_convention() -> None:
    records = [r["record"] for r in _rules() if "record" in r]
    assert len(records) == len(set(records))
    for name in records:
        assert re.fullmatch(r"salvage:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_rules_read_only_metrics_that_exist() -> None:
    exposed = exposed_names()
    records = {r["record"] for r in _rules() if "record" in r}
    for rule in _rules():
        expr = rule["expr"]
        missing = metric_names(expr) - exposed
        assert not missing, f"{rule.get('alert') or rule.get('record')}: unknown {missing}"
        for used in re.findall(r"salvage:[a-z0-9_]+:[a-z0-9_]+", expr):
            assert used in records, f"{used} is not a recording rule"


def test_metric_name_check_catches_a_typo() -> None:
    exposed = exposed_names()
    assert metric_names("sum(rate(salvage_refund_leakage_total[5m]))") <= exposed
    assert metric_names("sum(rate(salvage_refund_leakages_total[5m]))") - exposed
    assert "salvage_processing_latency_seconds_bucket" in exposed
    assert "salvage_model_info" in exposed
