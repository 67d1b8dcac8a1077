"""Building blocks shared by the sections of the report page: cards, KPIs, legends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from html import escape
from typing import Any

from flows.report.aggregate import ReportModel
from flows.report.format import DASH, money, money_compact

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "script-src 'none'; base-uri 'none'; form-action 'none'"
)


def legend_html(items: list[tuple[str, str]], line: bool = False) -> str:
    cls = ' class="ln"' if line else ""
    spans = "".join(
        f'<span><i{cls} style="background:{c}"></i>{escape(name)}</span>' for name, c in items
    )
    return f'<div class="legend">{spans}</div>'


def card_html(sid: str, title: str, sub: str, body: str, tag: str = "") -> str:
    tag_html = f'<span class="tag">{escape(tag)}</span>' if tag else ""
    return (
        f'<section class="card" id="{sid}" aria-labelledby="{sid}-h">'
        f'<h2 id="{sid}-h">{escape(title)}{tag_html}</h2><p class="sub">{sub}</p>{body}</section>'
    )


def kpi_html(label: str, value: str, sub: str = "", good: bool = False) -> str:
    cls = "kpi good" if good else "kpi"
    return (
        f'<div class="{cls}"><div class="k">{escape(label)}</div><div class="v">{escape(value)}'
        f'</div><div class="s">{escape(sub)}</div></div>'
    )


def period_label(model: ReportModel) -> str:
    days = [d.day for d in model.observed_daily] + [d for d, _ in model.counterfactual_daily]
    days += list(model.interventions_daily)
    if not days:
        return ""
    lo, hi = min(days), max(days)
    try:
        a, b = date.fromisoformat(lo), date.fromisoformat(hi)
    except ValueError:
        return f"{lo} {DASH} {hi}"
    if a == b:
        return f"{a.day} {a:%b %Y}"
    return f"{a.day} {a:%b} {DASH} {b.day} {b:%b %Y}"


def backtest_figure(run: Mapping[str, Any], key: str) -> Any:
    """One figure of a backtest run (an entry of ``backtest.json`` ``policies``): from its
    ``figures`` block, else from its summary's ``backtest`` or ``ground_truth`` blocks.

    >>> backtest_figure({"summary": {"ground_truth": {"policy": {"refund_leakage": 9.5}}}},
    ...                 "refund_leakage")
    9.5
    """
    s = run.get("summary") or {}
    b = run.get("figures") or s.get("backtest") or {}
    if key == "model_roc_auc":
        model = b.get("model") or (s.get("models") or {}).get("return_propensity")
        return (model or {}).get("roc_auc")
    if b.get(key) is not None:
        return b[key]
    gt = s.get("ground_truth") or {}
    if key in ("refund_leakage", "retained_revenue"):
        return (gt.get("policy") or {}).get(key, (s.get("observed") or {}).get(key))
    if key == "vs_blanket_refund":
        return gt.get("leakage_cut_vs_blanket")
    if key == "vs_no_action":
        return gt.get("leakage_cut_vs_no_action")
    return gt.get(key)


def backtest_runs(backtest: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, run) of each policy of a backtest, in order."""
    runs = [p for p in (backtest or {}).get("policies") or [] if isinstance(p, Mapping)]
    return [(str(p.get("name") or f"policy {i + 1}"), p) for i, p in enumerate(runs)]


def fmt3(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else DASH


class PageBase:
    """What every section of the page reads: the model, its currency, its ground truth."""

    def __init__(self, model: ReportModel) -> None:
        self.m = model
        self.cur = model.currency
        self.gt = model.summary.get("ground_truth") or {}

    def money(self, x: float | None, decimals: int = 0) -> str:
        return money(x, self.cur, decimals)

    def tick_money(self, x: float) -> str:
        return money_compact(x, self.cur)
