"""Salvage metrics: bounded labels, what each hook records, agreement with a replay's
outputs, and the replay wiring (port and text file)."""

from __future__ import annotations

import argparse
import re
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.parser import text_string_to_metric_families

from flows.cli.metrics_options import add_metrics_args, metrics_session
from flows.observability.labels import (
    DEAD_LETTER_REASONS,
    MAX_LABEL_CHARS,
    OTHER,
    BoundedLabel,
    endpoint_label,
)
from flows.observability.metrics import SalvageMetrics
from flows.observability.server import start_http
from flows.observability.stages import STAGES
from flows.observer import FlowObserver
from flows.replay import ReplayOptions, run_replay
from operators.contract import decode, format_ts, parse_ts
from operators.simulation import simulate
from operators.uplift import rows_from_outcomes, uplift_by_action
from operators.window import ExpiryClock, WindowConfig
from tests.fixtures.processes import free_port

T0 = 1_780_000_000.0  # an event time (2026-05-28)


def _metrics(**kw: Any) -> SalvageMetrics:
    return SalvageMetrics(CollectorRegistry(), **kw)


def _value(m: SalvageMetrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def _total(m: SalvageMetrics, family: str, **labels: str) -> float:
    """Sum of a counter family's ``_total`` samples whose labels include ``labels``."""
    return sum(
        s.value
        for f in m.registry.collect()
        if f.name == family
        for s in f.samples
        if s.name == family + "_total" and labels.items() <= s.labels.items()
    )


def decision(
    order: str,
    action: str = "none",
    *,
    arm: str = "treatment",
    at: float = T0,
    value_at_risk: float = 10.0,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "order_id": order,
        "decided_at": format_ts(at),
        "arm": arm,
        "action": action,
        "automated": action != "human_review",
        "value_at_risk": value_at_risk,
        "expected_saving": 1.0,
        "sku_family": "skincare",
        "courier_lane": "DE-FR",
        "campaign": None,
        "support_reason": None,
        **fields,
    }


def outcome(
    order: str,
    result: str,
    *,
    arm: str = "treatment",
    actions: tuple[str, ...] = (),
    refund: float = 0.0,
    retained: float = 0.0,
    at_risk: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "order_id": order,
        "customer_id": f"C-{order}",
        "outcome": result,
        "refund_value": refund,
        "retained_value": retained,
        "order_value": 80.0,
        "arm": arm,
        "actions": list(actions),
        "sku_family": "skincare",
        "courier_lane": "DE-FR",
        "campaign": "launch",
        "support_reason": "size_fit",
        "at_risk": at_risk,
        **fields,
    }


# --- bounded labels ------------------------------------------------------------------------


def test_bounded_label_admits_the_first_values_and_maps_the_rest_to_other() -> None:
    label = BoundedLabel(limit=3)
    got = [label(v) for v in ["a", "b", None, "c", "a", "", "d"]]
    assert got == ["a", "b", "none", "other", "a", "none", "other"]
    assert label.admitted == ["a", "b", "none"]


def test_bounded_label_needs_admit_after_sightings() -> None:
    label = BoundedLabel(limit=2, admit_after=3)
    seq = ["rare", "hot", "hot", "hot", "warm", "warm", "warm", "rare", "rare", "hot"]
    got = [label(v) for v in seq]
    assert got == ["other"] * 3 + ["hot", "other", "other", "warm", "other", "other", "hot"]
    assert label.admitted == ["hot", "warm"]


def test_bounded_label_cuts_long_values_and_refuses_odd_ones() -> None:
    label = BoundedLabel(limit=10)
    assert label("x" * 500) == "x" * MAX_LABEL_CHARS
    assert label(["a", "list"]) == OTHER
    assert label({"an": "object"}) == OTHER
    assert label("other") == OTHER
    assert label(7) == "7"
    assert OTHER not in label.admitted


def test_bounded_label_candidate_table_stays_bounded() -> None:
    label = BoundedLabel(limit=5, admit_after=4)
    for i in range(20_000):  # a stream of unique values (e.g. order ids where names belong)
        assert label(f"value-{i}") == OTHER
    assert len(label._candidates) <= label.max_candidates
    for _ in range(4):  # a frequent value still gets in afterwards
        last = label("frequent")
    assert last == "frequent"


@given(st.lists(st.sampled_from([None, "", *"abcdefgh"]) | st.text(max_size=80), max_size=300))
def test_bounded_label_is_bounded_stable_and_deterministic(values: list[Any]) -> None:
    first, second = BoundedLabel(limit=4, admit_after=2), BoundedLabel(limit=4, admit_after=2)
    out = [first(v) for v in values]
    assert out == [second(v) for v in values]
    assert len(set(out) - {OTHER}) <= 4
    assert set(out) - {OTHER} == set(first.admitted)
    seen_as: dict[Any, str] = {}
    for v, label in zip(values, out, strict=True):
        if label != OTHER:  # once admitted, a value keeps its label
            assert seen_as.setdefault(v, label) == label


# --- reason classes and endpoints ------------------------------------------------------------


@pytest.mark.parametrize(
    "stream, raw, expected",
    [
        ("orders", b"{not json", "invalid_json"),
        ("orders", b"[1, 2]", "not_an_object"),
        ("orders", {"event_id": "e", "type": "order_placed"}, "missing_field"),
        ("orders", {"event_id": "e", "type": "delivered", "order_id": "o"}, "unknown_type"),
        (
            "support",
            {
                "event_id": "e",
                "type": "ticket_opened",
                "order_id": "o",
                "occurred_at": "2026-06-01T00:00:00Z",
                "ticket_id": "t",
                "sentiment": 4,
            },
            "invalid_field",
        ),
    ],
)
def test_dead_letter_reasons_of_the_decoder(stream: str, raw: Any, expected: str) -> None:
    dead = decode(stream, raw, received_at=0.0)
    assert dead.kind == expected


def test_dead_letter_reasons_of_the_clock() -> None:
    clock = ExpiryClock(WindowConfig(allowed_lateness=3600))

    def ev(i: str, order: str, type_: str, at: str) -> Any:
        return decode(
            "refunds" if type_ == "refund_issued" else "support",
            {
                "event_id": i,
                "type": type_,
                "order_id": order,
                "occurred_at": at,
                "ticket_id": "t",
                "amount": 5.0,
            },
        )

    clock.on_event(ev("1", "o1", "refund_issued", "2026-06-01T10:00:00Z"))
    late = clock.on_event(ev("2", "o2", "ticket_opened", "2026-06-01T08:00:00Z"))[0]
    after = clock.on_event(ev("3", "o1", "ticket_opened", "2026-06-01T10:30:00Z"))[0]
    assert (late.kind, after.kind) == ("late", "after_close")


def test_dead_letters_are_counted_by_kind_not_by_reason_text() -> None:
    m = _metrics()
    obs = m.observer()
    clock = ExpiryClock(WindowConfig(max_future_skew=3600))
    event = decode(
        "delivery",
        {
            "event_id": "e",
            "type": "delivered",
            "order_id": "o",
            "occurred_at": "2100-01-01T00:00:00Z",
        },
        received_at=parse_ts("2026-06-01T00:00:00Z"),
    )
    (future,) = clock.on_event(event, event.received_at)
    obs.on_dead_letter(future)
    # The reason text starts "future:"; a prefix test counted it as invalid_field.
    assert _value(m, "salvage_dead_letters_total", stream="delivery", reason="future") == 1
    assert _value(m, "salvage_dead_letters_total", stream="delivery", reason="invalid_field") == 0
    for kind in ("future", "too_large", "too_deep", "too_many_events"):
        assert kind in DEAD_LETTER_REASONS


def test_endpoint_labels_never_carry_secrets() -> None:
    url = "https://bot:s3cr3t@hooks.example.com/services/T0/B1/tok3n?sig=abc#frag"
    label = endpoint_label(url)
    assert label == "https://hooks.example.com"
    for secret in ("s3cr3t", "tok3n", "abc", "bot"):
        assert secret not in label
    m = _metrics()
    m.observe_webhook(url, "delivered", 0.1)
    text = _exposition(m)
    assert "s3cr3t" not in text and "tok3n" not in text


def _exposition(m: SalvageMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(m.registry).decode()


# --- the hooks ---------------------------------------------------------------------------------


def test_observer_sets_every_hook() -> None:
    obs = _metrics().observer()
    assert isinstance(obs, FlowObserver)
    assert all(getattr(obs, f) is not None for f in FlowObserver.__dataclass_fields__)


def test_input_event_and_dead_letter_counts() -> None:
    m = _metrics()
    obs = m.observer()
    good = {
        "event_id": "e1",
        "type": "delivered",
        "order_id": "o1",
        "occurred_at": "2026-06-01T00:00:00Z",
    }
    for raw in (good, b"{bad"):
        obs.on_input("delivery", raw)
        item = decode("delivery", raw, received_at=0.0)
        if hasattr(item, "reason"):
            obs.on_dead_letter(item)
        else:
            obs.on_event(item)
    assert _value(m, "salvage_input_records_total", stream="delivery") == 2
    assert _value(m, "salvage_events_total", stream="delivery", type="delivered") == 1
    assert _value(m, "salvage_dead_letters_total", stream="delivery", reason="invalid_json") == 1
    # Every stream x reason series exists from the start (alerts see 0, not nothing).
    for reason in DEAD_LETTER_REASONS:
        assert (
            m.registry.get_sample_value(
                "salvage_dead_letters_total", {"stream": "orders", "reason": reason}
            )
            == 0.0
        )


def test_clock_latency_and_model_hooks() -> None:
    m = _metrics()
    obs = m.observer()
    obs.on_clock("3", T0 - 3600, T0, 42)
    obs.on_latency(0.004)
    obs.on_latency(0.2)
    obs.on_model(
        {
            "model": "return_propensity",
            "version": 7,
            "examples": 900,
            "roc_auc": 0.71,
            "log_loss": 0.52,
            "calibration_error": None,
            "learning_lag_seconds": 86400.0,
            "validation": {"anything": 1},
        }
    )
    assert _value(m, "salvage_watermark_timestamp_seconds", shard="3") == T0 - 3600
    assert _value(m, "salvage_max_event_timestamp_seconds", shard="3") == T0
    assert _value(m, "salvage_clock_tracked_orders", shard="3") == 42
    assert _value(m, "salvage_processing_latency_seconds_count") == 2
    assert _value(m, "salvage_processing_latency_seconds_bucket", le="0.005") == 1
    model = {"model": "return_propensity"}
    assert _value(m, "salvage_model_roc_auc", **model) == 0.71
    assert _value(m, "salvage_model_training_examples", **model) == 900
    assert m.registry.get_sample_value("salvage_model_calibration_error", model) is None
    assert _value(m, "salvage_model_info", version="7", **model) == 1
    obs.on_model({"model": "return_propensity", "version": 8})
    assert m.registry.get_sample_value("salvage_model_info", {"version": "7", **model}) is None
    assert _value(m, "salvage_model_info", version="8", **model) == 1
    assert _value(m, "salvage_model_roc_auc", **model) == 0.71  # unknown stays as it was


def test_decisions_move_open_cases_through_stages() -> None:
    m = _metrics()
    on = m.observer().on_output
    on("decisions", decision("o1", value_at_risk=10.0))
    on("decisions", decision("o2", "proactive_reassurance", value_at_risk=20.0))
    on("decisions", decision("o3", "exchange_first_offer", arm="control", value_at_risk=5.0))
    on("decisions", decision("o4", "human_review", at=T0, value_at_risk=50.0))

    def stages() -> dict[str, tuple[float, float]]:
        return {
            s: (
                _value(m, "salvage_open_cases", stage=s),
                _value(m, "salvage_open_value_at_risk", stage=s),
            )
            for s in STAGES
        }

    assert stages() == {
        "monitored": (1, 10.0),
        "intervened": (1, 20.0),
        "held_out": (1, 5.0),
        "in_review": (1, 50.0),
    }
    # A later "none" keeps the stage but updates the value at risk.
    on("decisions", decision("o2", value_at_risk=30.0))
    assert stages()["intervened"] == (1, 30.0)
    # The monitored case gets an action.
    on("decisions", decision("o1", "product_guidance", value_at_risk=12.0))
    assert stages()["monitored"] == (0, 0.0) and stages()["intervened"] == (2, 42.0)
    # Outcomes close cases; "censored" (end of replay) keeps them.
    on("outcomes", outcome("o2", "kept", actions=("proactive_reassurance",), retained=80.0))
    on("outcomes", outcome("o4", "censored", actions=("human_review",)))
    assert stages()["intervened"] == (1, 12.0) and stages()["in_review"] == (1, 50.0)
    assert (
        _value(m, "salvage_decisions_total", action="none", arm="treatment", automated="true") == 2
    )
    assert (
        _value(
            m, "salvage_decisions_total", action="human_review", arm="treatment", automated="false"
        )
        == 1
    )


def test_a_decision_seen_after_its_outcome_does_not_reopen_the_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Decisions and outcomes are two output streams: within one batch the outcome of a
    # case can be observed before its decision.
    monkeypatch.setattr("flows.observability.stages.CLOSED_MEMORY", 3)
    m = _metrics()
    on = m.observer().on_output
    on("outcomes", outcome("o1", "cancelled", at_risk=False))
    on("decisions", decision("o1", "proactive_reassurance"))
    assert sum(_value(m, "salvage_open_cases", stage=s) for s in STAGES) == 0
    for i in range(2, 6):
        on("outcomes", outcome(f"o{i}", "kept"))
    assert m.stages.remembered_closed == 3  # the memory of closed orders is bounded
    on("decisions", decision("o1", "proactive_reassurance"))  # long forgotten: a new case
    assert _value(m, "salvage_open_cases", stage="intervened") == 1


def test_review_backlog_is_derived_in_event_time_until_reported() -> None:
    m = _metrics()
    obs = m.observer()
    obs.on_output("decisions", decision("o1", "human_review", at=T0))
    obs.on_output("decisions", decision("o2", "human_review", at=T0 + 3600))
    obs.on_output("decisions", decision("o3", "human_review", arm="control", at=T0))
    obs.on_clock("0", T0, T0 + 7200, 3)
    assert _value(m, "salvage_human_review_backlog") == 2  # the control case is held out
    assert _value(m, "salvage_human_review_oldest_age_seconds") == 7200
    obs.on_output("outcomes", outcome("o1", "refunded", actions=("human_review",), refund=80))
    assert _value(m, "salvage_human_review_backlog") == 1
    assert _value(m, "salvage_human_review_oldest_age_seconds") == 3600
    m.observe_review(5, 120.0)
    assert _value(m, "salvage_human_review_backlog") == 5
    assert _value(m, "salvage_human_review_oldest_age_seconds") == 120.0


def test_review_records_settle_the_review_stage() -> None:
    m = _metrics()
    obs = m.observer()
    for order in ("o1", "o2", "o3"):
        obs.on_output("decisions", decision(order, "human_review", value_at_risk=30.0))
    obs.on_output("reviews", {"order_id": "o1", "status": "approved"})
    obs.on_output("reviews", {"order_id": "o2", "status": "expired"})
    obs.on_output("reviews", {"order_id": "o3", "status": "ignored"})
    obs.on_output("reviews", {"order_id": "o9", "status": "approved"})  # unknown case
    obs.on_output("reviews", {"order_id": "o3", "status": "something new"})
    assert _value(m, "salvage_open_cases", stage="in_review") == 1
    assert _value(m, "salvage_open_cases", stage="intervened") == 1
    assert _value(m, "salvage_open_value_at_risk", stage="monitored") == 30.0
    assert _value(m, "salvage_human_review_backlog") == 1
    assert _value(m, "salvage_reviews_total", status="approved") == 2
    assert _value(m, "salvage_reviews_total", status="other") == 1
    assert _value(m, "salvage_output_records_total", output="reviews") == 5


def test_outcomes_count_leakage_retained_and_recovery() -> None:
    m = _metrics()
    on = m.observer().on_output
    on(
        "outcomes",
        outcome("o1", "refunded", refund=60.0, retained=20.0, actions=("exchange_first_offer",)),
    )
    on("outcomes", outcome("o2", "exchanged", retained=80.0, actions=("exchange_first_offer",)))
    on("outcomes", outcome("o3", "kept", retained=80.0))
    on("outcomes", outcome("o4", "kept", retained=80.0, at_risk=False))
    on("outcomes", outcome("o5", "chargeback", refund=80.0, arm="control"))
    on("outcomes", outcome("o6", "cancelled"))
    on("outcomes", outcome("o7", "censored"))
    on("outcomes", outcome("o8", "mystery"))
    leak = sum(
        _value(m, "salvage_refund_leakage_total", arm=a, outcome=o)
        for a in ("treatment", "control")
        for o in ("refunded", "chargeback")
    )
    assert leak == 140.0
    # Retained counts at-risk cases only (o4 was never at risk), by first action.
    assert (
        _value(
            m,
            "salvage_retained_revenue_total",
            arm="treatment",
            action="exchange_first_offer",
            outcome="exchanged",
        )
        == 80.0
    )
    assert (
        _value(
            m,
            "salvage_retained_revenue_total",
            arm="treatment",
            action="exchange_first_offer",
            outcome="refunded",
        )
        == 20.0
    )
    assert (
        _value(m, "salvage_retained_revenue_total", arm="treatment", action="none", outcome="kept")
        == 80.0
    )
    avoided = _value(
        m, "salvage_refunds_avoided_total", arm="treatment", action="exchange_first_offer"
    )
    closed = _value(
        m, "salvage_at_risk_cases_closed_total", arm="treatment", action="exchange_first_offer"
    )
    assert (avoided, closed) == (1, 2)
    # Cancelled, open and unknown outcomes are not settled at-risk cases.
    assert _total(m, "salvage_at_risk_cases_closed") == 4
    assert _value(m, "salvage_case_outcomes_total", outcome="other", arm="treatment") == 1
    seg = {"dimension": "support_reason", "segment": "size_fit"}
    assert _value(m, "salvage_segment_refund_leakage_total", **seg) == 140.0
    assert _value(m, "salvage_segment_retained_revenue_total", **seg) == 180.0
    assert _value(m, "salvage_segment_at_risk_cases_closed_total", **seg) == 4


def test_interventions_by_action_and_segment() -> None:
    m = _metrics()
    on = m.observer().on_output
    record = {
        "action": "proactive_reassurance",
        "automated": True,
        "sku_family": "tools",
        "courier_lane": None,
        "campaign": "launch",
    }
    on("interventions", record)
    on("interventions", {**record, "action": "human_review", "automated": False})
    assert _total(m, "salvage_interventions", action="proactive_reassurance", automated="true") == 1
    by_lane = {"dimension": "courier_lane", "segment": "none", "action": "human_review"}
    assert _total(m, "salvage_segment_interventions", **by_lane) == 1
    assert _value(m, "salvage_output_records_total", output="interventions") == 2


def test_segments_are_bounded_by_top_n() -> None:
    m = _metrics(top_n=2)
    on = m.observer().on_output
    for i, family in enumerate(["a", "b", "c", "d", "a"]):
        on("outcomes", outcome(f"o{i}", "refunded", refund=10.0, sku_family=family))
    values = {
        seg: _total(m, "salvage_segment_refund_leakage", dimension="sku_family", segment=seg)
        for seg in ("a", "b", "c", "d", "other")
    }
    assert values == {"a": 20.0, "b": 10.0, "c": 0.0, "d": 0.0, "other": 20.0}


def test_uplift_gauges_are_rate_limited_and_refreshed_on_demand() -> None:
    m = _metrics(uplift_interval=3600.0)
    on = m.observer().on_output
    for i in range(10):
        refunded = i < 3
        on(
            "outcomes",
            outcome(
                f"t{i}",
                "refunded" if refunded else "kept",
                refund=50.0 if refunded else 0.0,
                actions=("product_guidance",),
            ),
        )
        on(
            "outcomes",
            outcome(
                f"c{i}",
                "refunded" if i < 6 else "kept",
                arm="control",
                refund=50.0 if i < 6 else 0.0,
                actions=("product_guidance",),
            ),
        )
    labels = {"action": "product_guidance", "bound": "estimate"}
    assert _value(m, "salvage_uplift_refund_rate_reduction_ratio", **labels) == pytest.approx(0.3)
    on("outcomes", outcome("t10", "refunded", refund=50.0, actions=("product_guidance",)))
    # Within the interval the gauge keeps the last computation...
    assert _value(m, "salvage_uplift_refund_rate_reduction_ratio", **labels) == pytest.approx(0.3)
    assert _value(m, "salvage_uplift_cases", action="product_guidance", arm="treatment") == 10
    m.refresh()  # ...until refreshed.
    assert _value(m, "salvage_uplift_cases", action="product_guidance", arm="treatment") == 11
    low = _value(
        m, "salvage_uplift_refund_rate_reduction_ratio", action="product_guidance", bound="ci95_low"
    )
    high = _value(
        m,
        "salvage_uplift_refund_rate_reduction_ratio",
        action="product_guidance",
        bound="ci95_high",
    )
    assert low < _value(m, "salvage_uplift_refund_rate_reduction_ratio", **labels) < high


def test_live_component_reports() -> None:
    m = _metrics()
    m.observe_kafka_lag("salvage.orders", 3, 120)
    m.observe_redis_call("context_get", True, 0.0007)
    m.observe_redis_call("context_get", False, 0.3)
    m.observe_webhook("crm", "delivered", 0.4)
    m.observe_webhook("crm", "exploded", 0.4)
    m.observe_webhook("crm", "http_4xx", 0.4)  # an attempt outcome: counted as an attempt
    for status in (200, 503, "timeout", None):
        m.observe_webhook_attempt("crm", status)
    assert (
        _value(m, "salvage_kafka_consumer_lag_messages", topic="salvage.orders", partition="3")
        == 120
    )
    assert _value(m, "salvage_redis_calls_total", operation="context_get", outcome="error") == 1
    assert _value(m, "salvage_redis_call_duration_seconds_count", operation="context_get") == 2
    assert _value(m, "salvage_webhook_deliveries_total", endpoint="crm", result="other") == 1
    assert _value(m, "salvage_webhook_delivery_seconds_count", endpoint="crm") == 2
    outcomes = {
        o: _value(m, "salvage_webhook_attempts_total", endpoint="crm", outcome=o)
        for o in ("2xx", "4xx", "5xx", "timeout", "error")
    }
    assert outcomes == {"2xx": 1, "4xx": 1, "5xx": 1, "timeout": 1, "error": 1}


def test_webhook_metrics_are_shared_with_the_dispatcher() -> None:
    registry = CollectorRegistry()
    # The dispatcher registered its counter first (flows.connectors.webhooks.DispatchMetrics).
    theirs = PromCounter(
        "salvage_webhook_deliveries", "x", ["endpoint", "result"], registry=registry
    )
    m = SalvageMetrics(registry)
    assert m.webhook_deliveries is theirs
    m.observe_webhook("crm", "delivered", 0.1)
    assert theirs.labels("crm", "delivered")._value.get() == 1
    clash = CollectorRegistry()
    PromCounter("salvage_webhook_attempts", "x", ["endpoint", "status"], registry=clash)
    with pytest.raises(ValueError, match="other labels"):
        SalvageMetrics(clash)


def test_a_registry_takes_one_instance() -> None:
    registry = CollectorRegistry()
    SalvageMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        SalvageMetrics(registry)


# --- agreement with a replay ---------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[SalvageMetrics, Path, Any]:
    base = tmp_path_factory.mktemp("metrics-replay")
    simulate("launch-week-backlog", 1200, 3, base / "in")
    m = SalvageMetrics(CollectorRegistry(), uplift_interval=0.0)
    run = run_replay(base / "in", base / "out", observer=m.observer())
    return m, base / "out", run


def test_replay_metrics_agree_with_the_outputs(replayed: Any) -> None:
    m, out, run = replayed
    outcomes, decisions = _read(out / "outcomes.jsonl"), _read(out / "decisions.jsonl")
    interventions, dead = _read(out / "interventions.jsonl"), _read(out / "dead_letter.jsonl")

    def total(family: str, **labels: str) -> float:
        return _total(m, family, **labels)

    assert total("salvage_input_records") == run.input_records
    # Every input record decodes into an event or a dead letter; the clock dead-letters
    # some valid events again (late, after_close).
    undecodable = total("salvage_dead_letters") - total("salvage_dead_letters", reason="late")
    undecodable -= total("salvage_dead_letters", reason="after_close")
    assert total("salvage_events") + undecodable == run.input_records
    assert total("salvage_late_events") == total("salvage_dead_letters", reason="late")
    assert total("salvage_dead_letters") == len(dead)
    assert total("salvage_decisions") == len(decisions)
    assert total("salvage_interventions") == len(interventions)
    assert total("salvage_case_outcomes") == len(outcomes)
    assert total("salvage_refund_leakage") == pytest.approx(
        sum(o["refund_value"] for o in outcomes)
    )
    by_action = Counter(d["action"] for d in decisions)
    for action, n in by_action.items():
        assert total("salvage_decisions", action=action) == n, action
    # Open cases at the end: decided orders whose outcome is "censored", at their latest value.
    latest: dict[str, float] = {}
    for d in decisions:
        latest[d["order_id"]] = d["value_at_risk"]
    still_open = {o["order_id"] for o in outcomes if o["outcome"] == "censored"} & set(latest)
    assert sum(_value(m, "salvage_open_cases", stage=s) for s in STAGES) == len(still_open)
    assert sum(_value(m, "salvage_open_value_at_risk", stage=s) for s in STAGES) == pytest.approx(
        sum(latest[o] for o in still_open), abs=0.05
    )
    # Uplift gauges are the uplift of the outcomes.
    expected = uplift_by_action(rows_from_outcomes(outcomes))
    assert expected
    for action, u in expected.items():
        assert _value(m, "salvage_uplift_cases", action=action, arm="treatment") == u.treated
        if u.refund_rate_reduction is not None:
            assert (
                _value(
                    m, "salvage_uplift_refund_rate_reduction_ratio", action=action, bound="estimate"
                )
                == u.refund_rate_reduction
            )
    # Clock and latency hooks are wired through the replay.
    assert _value(m, "salvage_processing_latency_seconds_count") > 0
    assert _value(m, "salvage_watermark_timestamp_seconds", shard="0") > 0


def test_replay_labels_carry_no_customer_or_order_ids(replayed: Any) -> None:
    m, out, _ = replayed
    outcomes = _read(out / "outcomes.jsonl")
    ids = {o["order_id"] for o in outcomes} | {
        o["customer_id"] for o in outcomes if o["customer_id"]
    }
    label_values = {v for f in m.registry.collect() for s in f.samples for v in s.labels.values()}
    assert ids and not ids & label_values
    per_label: dict[str, set[str]] = defaultdict(set)
    for f in m.registry.collect():
        for s in f.samples:
            for k, v in s.labels.items():
                per_label[k].add(v)
    assert len(per_label["segment"]) <= 4 * (m.top_n + 1)


def test_replay_with_two_workers_counts_the_same(replayed: Any, tmp_path: Path) -> None:
    m1, out, _ = replayed
    m2 = _metrics(uplift_interval=0.0)
    run_replay(
        out.parent / "in",
        tmp_path / "out",
        options=ReplayOptions(workers=2),
        observer=m2.observer(),
    )
    for family in (
        "salvage_input_records",
        "salvage_events",
        "salvage_decisions",
        "salvage_case_outcomes",
        "salvage_refund_leakage",
        "salvage_segment_refund_leakage",
    ):
        assert _total(m2, family) == pytest.approx(_total(m1, family)), family


# --- replay wiring --------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_metrics_args(parser)
    return parser.parse_args(list(argv))


def test_metrics_args_and_their_errors(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args("--metrics-port", "9464", "--metrics-file", "m.prom")
    # Loopback unless told otherwise: metrics are business data.
    assert (args.metrics_port, args.metrics_file, args.metrics_addr) == (
        9464,
        "m.prom",
        "127.0.0.1",
    )
    for bad in ("70000", "http"):
        with pytest.raises(SystemExit):
            _args("--metrics-port", bad)
        assert "--metrics-port" in capsys.readouterr().err


def test_session_without_flags_yields_no_observer() -> None:
    with metrics_session(_args()) as observer:
        assert observer is None


def test_session_serves_and_writes_the_metrics(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "metrics" / "salvage.prom"
    args = _args(
        "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", "--metrics-file", str(path)
    )
    with metrics_session(args) as observer:
        assert observer is not None
        observer.on_output("outcomes", outcome("o1", "refunded", refund=25.0))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            served = resp.read().decode()
        assert 'salvage_refund_leakage_total{arm="treatment",outcome="refunded"} 25.0' in served
        assert not path.exists()
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    leak = [s for s in families["salvage_refund_leakage"].samples if s.name.endswith("_total")]
    assert [s.value for s in leak] == [25.0]
    with pytest.raises(OSError):  # the port was released
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_session_writes_the_file_when_the_run_fails(tmp_path: Path) -> None:
    path = tmp_path / "failed.prom"
    with pytest.raises(RuntimeError), metrics_session(_args("--metrics-file", str(path))) as obs:
        assert obs is not None
        obs.on_input("orders", b"{}")
        raise RuntimeError("replay failed")
    assert 'salvage_input_records_total{stream="orders"} 1.0' in path.read_text()


def test_start_http_reports_a_busy_port() -> None:
    m = _metrics()
    server = start_http(0, m.registry, "127.0.0.1")
    try:
        with pytest.raises(OSError, match="cannot serve metrics"):
            start_http(server.server_port, m.registry, "127.0.0.1")
    finally:
        server.shutdown()
        server.server_close()


# --- the reference ------------------------------------------------------------------------------


def test_metric_reference_lists_every_metric_and_no_other() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    registry = CollectorRegistry()
    SalvageMetrics(registry)
    documented_as = {
        f.name + {"counter": "_total", "info": "_info"}.get(f.type, "") for f in registry.collect()
    }
    rows = set(re.findall(r"^\| `(salvage_[a-z0-9_]+)` \|", doc, flags=re.MULTILINE))
    assert rows == documented_as
    mentioned = set(re.findall(r"(?<![\w:])salvage_[a-z0-9_]+(?![\w:])", doc))
    histograms = {f.name for f in registry.collect() if f.type == "histogram"}
    suffixed = {h + s for h in histograms for s in ("_bucket", "_sum", "_count")}
    assert mentioned <= documented_as | suffixed


@pytest.mark.parametrize(
    "value",
    [
        "promo-for-jane1@example.com",
        "jane.doe@example.co.uk",
        "+49 170 1234567",
        "call 0170-123 45 67",
        "(030) 123-4567",
    ],
)
def test_a_value_that_looks_personal_never_becomes_a_label(value: str) -> None:
    label = BoundedLabel(limit=10)
    assert label(value) == OTHER and label(value) == OTHER
    assert label.admitted == [] and label._candidates == {}


def test_free_text_labels_are_normalised_and_bounded() -> None:
    label = BoundedLabel(limit=10)
    assert label("  Summer\tSale  ") == "Summer Sale"
    assert label("Summer Sale") == "Summer Sale"  # the same series
    assert label("\uff53\uff50\uff52\uff49\uff4e\uff47") == "spring"  # NFKC: full-width
    assert label("a\x00b\u200bc") == "abc"  # control and format characters dropped
    assert label("x" * 10_000) == "x" * MAX_LABEL_CHARS
    assert label("   ") == "none"
