"""The HTML report: aggregation from hand-built records, a well-formed self-contained page,
tolerance of missing files and keys, the backtest comparison and the CLI."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli import main as salvage
from flows.report import find_ground_truth, load_model, render_report, write_report
from flows.report.aggregate import (
    CounterfactualAggregates,
    InterventionAggregates,
    OutcomeAggregates,
    SegmentRecovery,
    build_model,
    first_decision_days,
    top_values,
)
from flows.report.format import money
from flows.report.page import render_html
from operators.baselines import (
    ActionCosts,
    compare_arms,
    evaluate_arm,
    policy_choices,
    regret_by_day,
)
from operators.evaluation import observed_totals

# --- helpers ------------------------------------------------------------------------------


def outcome(
    oid: str,
    kind: str,
    day: str | None,
    *,
    refund: float = 0.0,
    value: float = 100.0,
    at_risk: bool = True,
    arm: str | None = "treatment",
    actions: tuple[str, ...] = (),
    p: float | None = 0.3,
    lane: str | None = "DE-NL",
    family: str | None = "skincare",
    campaign: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    retained = value if kind in ("kept", "exchanged") else max(value - refund, 0.0)
    if kind in ("censored", "cancelled", "chargeback"):
        retained = 0.0
    return {
        "order_id": oid,
        "customer_id": "c-" + oid,
        "outcome": kind,
        "resolved_at": f"{day}T12:00:00Z" if day else None,
        "refund_value": refund,
        "retained_value": retained,
        "order_value": value,
        "currency": "EUR",
        "arm": arm,
        "actions": list(actions),
        "predicted_return_propensity": p,
        "sku_family": family,
        "courier_lane": lane,
        "campaign": campaign,
        "support_reason": reason,
        "at_risk": at_risk,
    }


def truth_row(oid: str, none: float, blanket: float, **by_action: float) -> dict[str, Any]:
    """Ground truth of one order of value 100: refund value per world and action."""

    def o(refund: float) -> dict[str, Any]:
        return {
            "outcome": "refunded" if refund else "kept",
            "refund_value": refund,
            "retained_value": 100.0 - refund,
        }

    outs = {"none": o(none), "blanket_refund": o(blanket)}
    outs |= {a: o(v) for a, v in by_action.items()}
    return {
        "order_id": oid,
        "order_value": 100.0,
        "cancelled": False,
        "courier_lane": "dhl:DE-NL",
        "sku_family": "skincare",
        "campaign": None,
        "outcomes": outs,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


class PageChecker(HTMLParser):
    """Checks nesting, collects ids, external references and the content of each <svg>."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.refs: list[str] = []
        self.svgs: list[dict[str, int]] = []
        self.scripts_with_src = 0
        self.links = 0
        self.csp = ""
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs), closes=tag in self.VOID)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs), closes=True)

    def _open(self, tag: str, attrs: dict[str, str | None], closes: bool) -> None:
        if attrs.get("id"):
            self.ids.append(str(attrs["id"]))
        for key in ("href", "src", "xlink:href", "action", "srcset", "poster", "data"):
            if attrs.get(key):
                self.refs.append(str(attrs[key]))
        if tag == "script" and attrs.get("src"):
            self.scripts_with_src += 1
        if tag == "link":
            self.links += 1
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = attrs.get("content") or ""
        if "svg" in self.stack and self.svgs:
            self.svgs[-1]["elements"] += 1
            if tag in ("rect", "circle", "polyline", "polygon", "line", "path"):
                self.svgs[-1]["marks"] += 1
            if tag == "title":
                self.svgs[-1]["titles"] += 1
        if tag == "svg":
            self.svgs.append({"elements": 0, "marks": 0, "titles": 0})
        if not closes:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]} at {self.getpos()}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_page(html: str) -> PageChecker:
    checker = PageChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [], checker.errors[:5]
    assert checker.stack == [], checker.stack
    return checker


# --- aggregation --------------------------------------------------------------------------


def test_daily_leakage_sums_resolved_cases_per_day_and_fills_gaps() -> None:
    agg = OutcomeAggregates()
    rows = [
        outcome("a", "refunded", "2026-06-01", refund=40.0),
        outcome("b", "chargeback", "2026-06-01", refund=25.5),
        outcome("c", "kept", "2026-06-01", value=80.0),
        outcome("d", "kept", "2026-06-01", value=999.0, at_risk=False),
        outcome("e", "refunded", "2026-06-03", refund=10.0),
        outcome("f", "censored", None),
        outcome("g", "exchanged", "2026-06-03", value=60.0),
    ]
    for o in rows:
        agg.add(o)
    days = agg.daily_series()
    assert [d.day for d in days] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    first, gap, third = days
    assert first.refund_leakage == pytest.approx(65.5)
    # Kept in full (80 and the order never at risk, 999) plus what the partial refund left
    # (100 - 40); nothing from the chargeback.
    assert first.retained_revenue == pytest.approx(80.0 + 999.0 + 60.0)
    assert (first.refunds, first.resolved) == (2, 4)
    assert (gap.refund_leakage, gap.retained_revenue, gap.resolved) == (0.0, 0.0, 0)
    assert third.refund_leakage == pytest.approx(10.0)
    assert third.retained_revenue == pytest.approx(90.0 + 60.0)
    assert agg.refund_leakage == pytest.approx(observed_totals(rows)["refund_leakage"])
    assert agg.retained_revenue == pytest.approx(observed_totals(rows)["retained_revenue"])
    assert agg.outcome_counts["censored"] == 1


def test_recovery_rate_by_segment_counts_resolved_at_risk_cases_only() -> None:
    agg = OutcomeAggregates()
    rows = [
        outcome("1", "kept", "2026-06-02", lane="DE-NL"),
        outcome("2", "exchanged", "2026-06-02", lane="DE-NL"),
        outcome("3", "refunded", "2026-06-02", refund=50.0, lane="DE-NL"),
        outcome("4", "censored", None, lane="DE-NL"),  # still open: not in the rate
        outcome("5", "cancelled", "2026-06-02", lane="DE-NL"),  # cancelled: not in the rate
        outcome("6", "kept", "2026-06-02", lane="DE-NL", at_risk=False),  # never at risk
        outcome("7", "refunded", "2026-06-02", refund=30.0, lane="FR-ES"),
        outcome("8", "kept", "2026-06-02", lane=None),
    ]
    for o in rows:
        agg.add(o)
    lanes = agg.segments["courier_lane"]
    nl = lanes["DE-NL"]
    assert (nl.cases, nl.at_risk, nl.closed_at_risk, nl.recovered) == (6, 5, 3, 2)
    assert nl.recovery_rate == pytest.approx(2 / 3)
    assert nl.refund_leakage == pytest.approx(50.0)
    assert lanes["FR-ES"].recovery_rate == 0.0
    assert lanes["(none)"].recovery_rate == 1.0
    assert SegmentRecovery("x").recovery_rate is None


def test_top_values_keeps_the_heaviest_and_merges_the_rest() -> None:
    rows = {
        k: SegmentRecovery(k, cases=n, refund_leakage=n * 10.0)
        for k, n in zip("abcde", (5, 1, 7, 2, 3), strict=True)
    }
    top = top_values(rows, lambda s: s.cases, 3, lambda: SegmentRecovery("more"))
    assert [k for k, _ in top] == ["c", "a", "3 more"]
    assert top[2][1].cases == 6 and top[2][1].refund_leakage == 60.0
    assert [k for k, _ in top_values(rows, lambda s: s.cases, 5, SegmentRecovery)] == list("caedb")


def test_counterfactuals_match_the_evaluation_totals_and_split_by_order_day() -> None:
    outcomes = [
        outcome("o1", "refunded", "2026-06-05", refund=100.0, actions=("exchange_first_offer",)),
        outcome(
            "o2",
            "refunded",
            "2026-06-06",
            refund=100.0,
            arm="control",
            actions=("exchange_first_offer",),
        ),
        outcome("o3", "kept", "2026-06-07"),
    ]
    truth = [
        truth_row("o1", none=100.0, blanket=100.0, exchange_first_offer=0.0),
        truth_row("o2", none=100.0, blanket=100.0, exchange_first_offer=0.0),
        truth_row("o3", none=0.0, blanket=60.0),
    ]
    interventions = [
        {
            "order_id": "o1",
            "action": "exchange_first_offer",
            "automated": True,
            "decided_at": "2026-06-02T10:00:00Z",
        }
    ]
    # The control order's decision is logged, never sent: the arms count it as if treated.
    decisions = [
        {"order_id": "o1", "action": "none", "decided_at": "2026-06-01T09:00:00Z"},
        {"order_id": "o1", "action": "exchange_first_offer", "decided_at": "2026-06-02T10:00:00Z"},
        {"order_id": "o2", "action": "none", "decided_at": "2026-06-01T11:00:00Z"},
        {"order_id": "o2", "action": "exchange_first_offer", "decided_at": "2026-06-03T11:00:00Z"},
        {"order_id": "o3", "action": "none", "decided_at": "2026-06-02T08:00:00Z"},
    ]
    oa, ia = OutcomeAggregates(), InterventionAggregates()
    for o in outcomes:
        oa.add(o)
    for iv in interventions:
        ia.add(iv)
    chosen = policy_choices(decisions)
    ca = CounterfactualAggregates(oa.orders, chosen, first_decision_days(decisions))
    for row in truth:
        ca.add(row)

    by_id = {r["order_id"]: r for r in truth}
    costs = ActionCosts({}, {}, 0.0)
    assert ca.total.policy == evaluate_arm("p", by_id, chosen, costs).refund_leakage == 0.0
    assert ca.total.blanket_refund == 260.0
    assert ca.total.no_action == evaluate_arm("n", by_id, {}, costs).refund_leakage == 200.0
    by_day = dict(ca.daily_series())
    assert list(by_day) == ["2026-06-01", "2026-06-02"]
    assert (by_day["2026-06-01"].no_action, by_day["2026-06-01"].policy) == (200.0, 0.0)
    assert by_day["2026-06-02"].blanket_refund == 60.0
    # Uplift realized from truth: the treated order kept, the control order refunded.
    rows = {r.arm: r for r in ca.uplift_rows}
    assert rows["treatment"].refunded is False and rows["control"].refunded is True
    assert ca.by_segment["courier_lane"]["DE-NL"].saved_vs_no_action == 200.0


def test_uplift_source_prefers_the_summary_then_ground_truth_then_observed() -> None:
    outcomes = [
        outcome(
            f"t{i}",
            "refunded" if i < 5 else "kept",
            "2026-06-09",
            refund=50.0 * (i < 5),
            actions=("product_guidance",),
        )
        for i in range(10)
    ] + [
        outcome(
            f"c{i}",
            "refunded" if i < 8 else "kept",
            "2026-06-09",
            refund=50.0 * (i < 8),
            arm="control",
            actions=("product_guidance",),
        )
        for i in range(10)
    ]
    observed = build_model({}, outcomes, [])
    assert observed.uplift is not None and observed.uplift.source == "observed"
    assert observed.uplift.by_action["product_guidance"]["refund_rate_reduction"] == 0.3

    truth = [
        truth_row(o["order_id"], none=50.0, blanket=50.0, product_guidance=0.0) for o in outcomes
    ]
    realized = build_model({}, outcomes, [], ground_truth=truth, decisions=[])
    assert realized.uplift is not None and "ground truth" in realized.uplift.source
    assert realized.uplift.by_action["product_guidance"]["refund_rate_reduction"] == 1.0

    block = {
        "source": "ground_truth",
        "by_action": {
            "product_guidance": {
                "treated": 3,
                "control": 4,
                "refund_rate_reduction": 0.2,
                "ci_low": 0.1,
                "ci_high": 0.3,
            }
        },
    }
    from_summary = build_model({"uplift": block}, outcomes, [])
    assert from_summary.uplift is not None
    assert from_summary.uplift.source == "realized from ground truth"
    assert from_summary.uplift.by_action["product_guidance"]["treated"] == 3


def test_calibration_uses_the_models_block_and_the_first_scores() -> None:
    outcomes = [
        outcome(
            str(i),
            "refunded" if i % 2 else "kept",
            "2026-06-03",
            refund=10.0 * (i % 2),
            p=0.05 + 0.09 * i,
        )
        for i in range(10)
    ]
    bins = [{"bin": 1, "count": 7, "mean_predicted": 0.14, "observed_rate": 0.2}]
    summary = {
        "models": {
            "return_propensity": {
                "roc_auc": 0.81,
                "examples": 7,
                "validation": {"calibration": {"bins": bins, "ece": 0.06}},
            }
        }
    }
    model = build_model(summary, outcomes, [])
    online, first = model.calibration
    assert (online.bins, online.ece, online.roc_auc) == (bins, 0.06, 0.81)
    assert first.labelled == 10 and sum(b["count"] for b in first.bins) == 10
    assert [c.source for c in build_model({}, outcomes, []).calibration] == ["first score"]


# --- the page -----------------------------------------------------------------------------


def demo_model(n: int = 40, **kwargs: Any) -> Any:
    outcomes = []
    for i in range(n):
        kind = ("refunded", "kept", "exchanged", "censored", "chargeback")[i % 5]
        refund = 30.0 + i if kind in ("refunded", "chargeback") else 0.0
        day = None if kind == "censored" else f"2026-06-{1 + i % 20:02d}"
        arm = "control" if i % 4 == 0 else "treatment"
        action = ("proactive_reassurance", "exchange_first_offer")[i % 2]
        outcomes.append(
            outcome(
                f"o{i}",
                kind,
                day,
                refund=refund,
                arm=arm,
                actions=(action,),
                p=(i % 10) / 10 + 0.05,
                lane=("DE-NL", "FR-ES", "DE-DE")[i % 3],
                campaign=("launch-email", None)[i % 2],
                reason="where_is_my_order",
            )
        )
    interventions = [
        {
            "order_id": o["order_id"],
            "action": o["actions"][0],
            "automated": True,
            "decided_at": f"2026-06-{1 + k % 7:02d}T10:00:00Z",
        }
        for k, o in enumerate(outcomes)
        if o["arm"] == "treatment"
    ]
    summary = {
        "policy_version": "test.1",
        "input_records": 400,
        "dead_letters": 3,
        "dead_letters_by_reason": {"late": 2, "invalid": 1},
        "decisions_by_action": {"proactive_reassurance": {"treatment": 15, "control": 5}},
    }
    return build_model(summary, outcomes, interventions, **kwargs)


def test_page_is_well_formed_self_contained_and_every_chart_has_content() -> None:
    html = render_html(demo_model(title="Test <report> & co"))
    page = check_page(html)
    assert html.startswith("<!DOCTYPE html>")
    assert "Test &lt;report&gt; &amp; co" in html
    assert len(page.svgs) >= 6
    for svg in page.svgs:
        assert svg["titles"] >= 1 and svg["marks"] >= 2, svg
    assert page.refs == []  # no href, src or other reference at all
    assert page.scripts_with_src == 0 and page.links == 0
    assert "<script" not in html
    assert "default-src 'none'" in page.csp
    # The only URLs in the document are the SVG namespace declarations.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "@import" not in html and "url(" not in html
    assert len(page.ids) == len(set(page.ids)), "duplicate element ids"
    for needed in (
        "chart-observed-by-day",
        "chart-interventions-by-action",
        "chart-uplift",
        "chart-calibration",
        "chart-segment-courier-lane",
        "chart-dead-letters",
    ):
        assert needed in page.ids


def test_money_is_formatted_with_the_currency() -> None:
    html = render_html(demo_model())
    assert "€" in html
    assert money(1234.6, "USD") == "$1,235"
    assert money(1234.6, "SEK") == "1,235\xa0SEK"
    assert money(0.004, "EUR", 2) == "€0.00"


def test_report_size_does_not_grow_with_the_number_of_orders() -> None:
    small = len(render_html(demo_model(200)).encode())
    large = len(render_html(demo_model(20_000)).encode())
    assert large < 2_000_000
    assert large < small * 1.3, (small, large)


def test_headline_and_story_come_from_ground_truth_when_known() -> None:
    summary = {
        "ground_truth": {
            "policy": {"refund_leakage": 450.0, "retained_revenue": 9550.0},
            "blanket_refund": {"refund_leakage": 900.0, "retained_revenue": 9100.0},
            "no_action": {"refund_leakage": 600.0, "retained_revenue": 9400.0},
            "contact_cost": 12.0,
            "credit_cost": 30.0,
            "cost_share_of_revenue": 0.0042,
        }
    }
    html = render_html(build_model(summary, [outcome("a", "kept", "2026-06-01")], []))
    text = " ".join(check_page(html).text)
    assert "Refund leakage €450 under this policy vs €900 under blanket refund" in text
    assert "\u221250.0\xa0%" in text  # the cut, with a real minus sign
    assert "kept €150 that would have been refunded" in text
    without = " ".join(check_page(render_html(demo_model())).text)
    assert "Observed refund leakage" in without


# --- files, backtest and CLI -----------------------------------------------------------------


def write_run(out: Path, n: int = 30) -> None:
    model_outcomes = [
        outcome(
            f"o{i}",
            ("refunded", "kept")[i % 2],
            "2026-06-0" + str(1 + i % 5),
            refund=20.0 * (1 - i % 2),
            actions=("proactive_reassurance",),
            arm=("treatment", "control")[i % 3 == 0],
        )
        for i in range(n)
    ]
    write_jsonl(out / "outcomes.jsonl", model_outcomes)


def test_missing_optional_files_are_tolerated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    write_run(out)  # outcomes only: no summary, interventions, decisions or dead letters
    html = render_report(out)
    page = check_page(html)
    assert page.svgs and "Observed refund leakage" in html
    path = write_report(out)
    assert path == out / "report.html" and path.read_text(encoding="utf-8") == html


def test_worker_parts_of_outputs_are_read(tmp_path: Path) -> None:
    out = tmp_path / "run"
    write_run(out, 10)
    write_jsonl(out / "outcomes.w1.jsonl", [outcome("w1", "refunded", "2026-06-01", refund=5.0)])
    assert load_model(out).cases == 11


def test_an_empty_or_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Salvage outputs"):
        render_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        render_report(tmp_path / "nope")
    write_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="ground-truth"):
        render_report(tmp_path, ground_truth=tmp_path / "missing.jsonl")


def test_ground_truth_is_found_through_the_recorded_input(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    truth = tmp_path / "input" / "ground_truth.jsonl"
    truth.write_text("")
    assert find_ground_truth({"input_dir": str(tmp_path / "input")}, None) == truth
    assert find_ground_truth({}, {"input": str(tmp_path / "input")}) == truth
    assert find_ground_truth({"input_dir": str(tmp_path)}, None) is None
    assert find_ground_truth(None, None) is None


def backtest_fixture(base: Path) -> Path:
    """A backtest directory: two policy runs and backtest.json (one with sparse keys)."""
    out = base / "bt"
    for name in ("default", "conservative"):
        write_run(out / name)
    gt = {
        "policy": {"refund_leakage": 500.0, "retained_revenue": 9500.0},
        "blanket_refund": {"refund_leakage": 1000.0, "retained_revenue": 9000.0},
        "no_action": {"refund_leakage": 800.0, "retained_revenue": 9200.0},
        "leakage_cut_vs_blanket": 0.5,
        "leakage_cut_vs_no_action": 0.375,
        "contact_cost": 10.0,
        "credit_cost": 20.0,
        "cost_share_of_revenue": 0.003,
    }
    report = {
        "input": str(base / "no-such-input"),
        "has_ground_truth": True,
        "policies": [
            {
                "name": "default",
                "version": "2026.11-default.1",
                "out_dir": str(out / "default"),
                "figures": {
                    "refund_leakage": 500.0,
                    "retained_revenue": 9500.0,
                    "contact_cost": 10.0,
                    "credit_cost": 20.0,
                    "human_review_share": 0.02,
                    "vs_blanket_refund": 0.5,
                    "vs_no_action": 0.375,
                    "interventions": 12,
                    "actions_by_type": {"proactive_reassurance": 12},
                    "model": {"roc_auc": 0.8},
                },
                "summary": {
                    "policy_version": "2026.11-default.1",
                    "cases": 30,
                    "ground_truth": gt,
                    "outputs": {"outcomes": str(out / "default" / "outcomes.jsonl")},
                },
            },
            {
                "name": "conservative",
                "version": "2026.11-conservative.1",
                "summary": {
                    "backtest": {
                        "refund_leakage": 650.0,
                        "contact_cost": 4.0,
                        "vs_blanket_refund": {"leakage_cut": 0.35},
                    }
                },
            },
        ],
        "unknown_without_ground_truth": ["uplift"],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "backtest.json").write_bytes(orjson.dumps(report))
    return out


def test_backtest_comparison_is_rendered_side_by_side(tmp_path: Path) -> None:
    out = backtest_fixture(tmp_path)
    model = load_model(out)
    assert model.cases == 30  # the first policy's outputs, found through its summary
    html = render_report(out)
    page = check_page(html)
    assert "chart-backtest" in page.ids
    section = html[html.index('id="backtest"') :]
    section = section[: section.index("</section>")]
    for text in (
        "default",
        "conservative",
        "2026.11-conservative.1",
        "Blanket refund",
        "€650",
        "35.0\xa0%",
        "Proactive reassurance",
    ):
        assert text in section, text
    # Lower leakage wins: the default policy's cell is marked best.
    assert '<td class="best">€500</td>' in section
    assert "Refund leakage €500 under this policy vs €1,000 under blanket refund" in html


def test_cli_writes_the_report_where_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    write_run(out)
    target = tmp_path / "elsewhere" / "r.html"
    assert salvage(["report", str(out), "--out", str(target), "--title", "Week 23"]) == 0
    assert target.exists() and "Week 23" in target.read_text(encoding="utf-8")
    assert str(target) in capsys.readouterr().out
    assert salvage(["report", str(tmp_path / "missing")]) == 2
    with (out / "outcomes.jsonl").open("a") as fh:
        fh.write("{not json\n")
    assert salvage(["report", str(out)]) == 2
    assert "outcomes.jsonl:31: not valid JSON" in capsys.readouterr().err


@pytest.mark.slow
def test_report_of_a_simulated_replay_agrees_with_its_summary(tmp_path: Path) -> None:
    data, out = tmp_path / "input", tmp_path / "output"
    assert salvage(["simulate", "launch-week-backlog", "--orders", "800", "--out", str(data)]) == 0
    assert salvage(["replay", str(data), "--out", str(out)]) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    model = load_model(out, ground_truth=data / "ground_truth.jsonl")
    gt, worlds = summary["ground_truth"], model.counterfactual
    assert worlds is not None and worlds.orders == summary["cases"] == model.cases
    assert worlds.policy == pytest.approx(gt["policy"]["refund_leakage"], abs=0.01)
    assert worlds.blanket_refund == pytest.approx(gt["blanket_refund"]["refund_leakage"], abs=0.01)
    assert worlds.no_action == pytest.approx(gt["no_action"]["refund_leakage"], abs=0.01)
    assert model.observed_leakage == pytest.approx(summary["observed"]["refund_leakage"], abs=0.01)
    assert sum(model.interventions_by_action.values()) == summary["interventions"]
    by_day = sum(w.policy for _, w in model.counterfactual_daily)
    assert by_day == pytest.approx(worlds.policy, abs=0.01)  # every order has an order day
    html = render_report(out, ground_truth=data / "ground_truth.jsonl")
    page = check_page(html)
    assert {"chart-leakage-by-order-day", "chart-uplift", "chart-calibration"} <= set(page.ids)


def test_the_arms_section_leads_with_the_captured_share_and_shows_regret() -> None:
    truth = {
        f"o{i}": truth_row(f"o{i}", none=100.0, blanket=100.0, exchange_first_offer=0.0)
        for i in range(4)
    }
    decisions = [
        {"order_id": f"o{i}", "action": "exchange_first_offer" if i < 2 else "none",
         "decided_at": f"2026-06-0{1 + i}T10:00:00Z"}
        for i in range(4)
    ]  # fmt: skip
    costs = ActionCosts({"exchange_first_offer": 1.0}, {}, 15.0)
    summary = {
        "decision_arms": compare_arms(truth, costs, decisions),
        "regret_by_day": regret_by_day(truth, costs, decisions),
    }
    html = render_html(build_model(summary, [], []))
    # Two of four refunds avoided for 2.00, against an oracle avoiding all four for 4.00.
    assert summary["decision_arms"]["arms"]["policy"]["captured_share"] == 0.5
    assert "captures <span" in html and "50.0" in html
    assert 'id="arms"' in html and 'id="chart-regret"' in html
    assert html.count("<tr") >= 7  # header plus six arms (no static-rules run here)
