"""Sections of the report page on what happened: over time, interventions, segments, uplift."""

from __future__ import annotations

from html import escape

from flows.report.aggregate import day_range
from flows.report.charts import (
    ForestRow,
    Series,
    forest_plot,
    hbar_chart,
    line_chart,
    stacked_bar_chart,
)
from flows.report.format import (
    DASH,
    MINUS,
    OBSERVED_COLORS,
    SEGMENT_TITLES,
    WORLD_COLORS,
    WORLD_LABELS,
    action_colors,
    action_label,
    count,
    day_label,
    money_compact,
    pct,
    points,
)
from flows.report.page_parts import PageBase, card_html, legend_html
from operators.uplift import SEGMENTS


class ResultSections(PageBase):
    """Over time, interventions, segments and uplift."""

    def over_time(self) -> str:
        m = self.m
        parts = []
        if m.counterfactual_daily:
            days = [d for d, _ in m.counterfactual_daily]
            series = [
                Series(
                    WORLD_LABELS[k],
                    WORLD_COLORS[k],
                    [w.leakage(k) for _, w in m.counterfactual_daily],
                    fill=k == "policy",
                    dashed=k != "policy",
                )
                for k in ("blanket_refund", "no_action", "policy")
            ]
            parts.append(
                "<h3>Refund leakage by order day</h3>"
                + legend_html([(s.name, s.color) for s in series], line=True)
                + "<figure>"
                + line_chart(
                    "chart-leakage-by-order-day",
                    "Refund leakage by order day under blanket refund, no action and the policy",
                    "Line chart: for the orders placed each day, the value refunded in each of "
                    "three worlds evaluated from ground truth.",
                    [day_label(d) for d in days],
                    series,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    y_title=f"refund leakage ({m.currency or 'value'})",
                    x_title="order day",
                )
                + "</figure>"
            )
        if m.observed_daily:
            days = [d.day for d in m.observed_daily]
            series = [
                Series(
                    "Refund leakage",
                    OBSERVED_COLORS["leakage"],
                    [d.refund_leakage for d in m.observed_daily],
                    fill=True,
                ),
                Series(
                    "Retained revenue (orders not refunded)",
                    OBSERVED_COLORS["retained"],
                    [d.retained_revenue for d in m.observed_daily],
                ),
            ]
            parts.append(
                "<h3>Observed in the streams, by resolution day</h3>"
                + legend_html([(s.name, s.color) for s in series], line=True)
                + "<figure>"
                + line_chart(
                    "chart-observed-by-day",
                    "Observed refund leakage and retained revenue by resolution day",
                    "Line chart: the value refunded and the value of at-risk orders kept or "
                    "exchanged, by the day each case resolved, as recorded in the streams.",
                    [day_label(d, weekday=False) for d in days],
                    series,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    x_tips=[day_label(d) for d in days],
                    y_title=m.currency or "value",
                    x_title="resolution day",
                    height=250,
                )
                + "</figure>"
            )
        if not parts:
            return ""
        sub = (
            "Top: each order day's refunds in three worlds evaluated from the simulator's "
            "ground truth: refund everyone who asks (blanket refund), do nothing, or run "
            "this policy. Bottom: what the streams recorded as it happened."
            if m.counterfactual_daily
            else "What the streams recorded as it happened: refunds and the value of at-risk "
            "orders kept or exchanged, by the day each case resolved."
        )
        if m.observed_daily:
            sub += (
                " An order that is kept resolves when its recovery window closes, so kept "
                "value arrives weeks after the refunds."
            )
        if m.counterfactual_daily and m.observed_daily:
            sub += (
                " In a simulated replay the recorded streams are the no-intervention history, "
                "so the bottom chart shows no effect of the policy."
            )
        return card_html(
            "over-time", "Leakage and retained revenue over time", escape(sub), "".join(parts)
        )

    def interventions(self) -> str:
        m = self.m
        by_arm = m.summary.get("decisions_by_action") or {}
        actions = sorted(
            (set(m.interventions_by_action) | set(by_arm)) - {"none"},
            key=lambda a: (-(m.interventions_by_action.get(a, 0)), a),
        )
        if not actions:
            return ""
        colors = action_colors(actions)
        emitted = [float(m.interventions_by_action.get(a, 0)) for a in actions]
        held = [float((by_arm.get(a) or {}).get("control", 0)) for a in actions]
        series = [Series("Emitted (treatment)", "#2b6cb0", emitted)]
        if any(held):
            series.append(Series("Held out (control)", "#a0aec0", held))
        left = (
            "<h3>By action</h3>"
            + legend_html([(s.name, s.color) for s in series])
            + hbar_chart(
                "chart-interventions-by-action",
                "Interventions by action",
                "Horizontal bar chart: interventions emitted per action and, for comparison, "
                "decisions for the same action held out in the control arm.",
                [action_label(a) for a in actions],
                series,
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=11,
            )
        )
        right = ""
        if m.interventions_daily:
            days = day_range(m.interventions_daily)
            daily = [
                Series(
                    action_label(a),
                    colors[a],
                    [float(m.interventions_daily.get(d, {}).get(a, 0)) for d in days],
                )
                for a in actions
            ]
            right = (
                "<h3>Per day</h3>"
                + legend_html([(s.name, s.color) for s in daily])
                + stacked_bar_chart(
                    "chart-interventions-by-day",
                    "Interventions emitted per day, by action",
                    "Stacked bar chart: interventions emitted each day, split by action.",
                    [day_label(d, weekday=False) for d in days],
                    daily,
                    value_fmt=count,
                    tick_fmt=count,
                    x_tips=[day_label(d) for d in days],
                    width=520,
                    height=250,
                )
            )
        sub = (
            "What the policy sent, and how often it held the same decision back: a share of "
            "orders is a control arm, decided and logged but never contacted, to measure uplift."
        )
        return card_html(
            "interventions",
            "Interventions by action",
            escape(sub),
            f'<div class="grid2"><div>{left}</div><div>{right}</div></div>',
        )

    def segments(self) -> str:
        m = self.m
        panels = []
        use_truth = bool(m.counterfactual_segments)
        dims = [d for d in SEGMENTS if (m.counterfactual_segments or m.segments).get(d)]
        for dim in dims:
            name = SEGMENT_TITLES.get(dim, dim)
            cid = f"chart-segment-{dim.replace('_', '-')}"
            if use_truth:
                rows = m.counterfactual_segments[dim]
                keys = ("blanket_refund", "no_action", "policy")
                series = [
                    Series(WORLD_LABELS[k], WORLD_COLORS[k], [w.leakage(k) for _, w in rows])
                    for k in keys
                ]
                notes = [
                    f"saved {money_compact(w.saved_vs_no_action, self.cur)} "
                    f"({pct(-w.saved_vs_no_action / w.no_action, 0, signed=True)})"
                    if w.no_action
                    else DASH
                    for _, w in rows
                ]
                chart = hbar_chart(
                    cid,
                    f"Refund leakage by {name.lower()} in three worlds",
                    f"Grouped bar chart: refund leakage per {name.lower()} under blanket "
                    "refund, no action and the policy; right: value saved against no action.",
                    [k for k, _ in rows],
                    series,
                    value_fmt=self.tick_money,
                    tick_fmt=self.tick_money,
                    notes=notes,
                    width=520,
                    bar_height=9,
                )
            else:
                rows_o = m.segments[dim]
                series = [
                    Series(
                        "Refund leakage",
                        OBSERVED_COLORS["leakage"],
                        [r.refund_leakage for _, r in rows_o],
                    ),
                    Series(
                        "Retained revenue",
                        OBSERVED_COLORS["retained"],
                        [r.retained_revenue for _, r in rows_o],
                    ),
                ]
                notes = [
                    f"recovered {pct(r.recovery_rate, 0)} of {count(r.closed_at_risk)}"
                    if r.recovery_rate is not None
                    else "no resolved at-risk case"
                    for _, r in rows_o
                ]
                chart = hbar_chart(
                    cid,
                    f"Observed refund leakage and retained revenue by {name.lower()}",
                    f"Grouped bar chart: observed refund leakage and retained revenue per "
                    f"{name.lower()}; right: recovery rate of resolved at-risk cases.",
                    [k for k, _ in rows_o],
                    series,
                    value_fmt=self.tick_money,
                    tick_fmt=self.tick_money,
                    notes=notes,
                    width=520,
                    bar_height=10,
                )
            panels.append(f"<div><h3>{escape(name)}</h3>{chart}</div>")
        if not panels:
            return ""
        if use_truth:
            legend = legend_html([(WORLD_LABELS[k], WORLD_COLORS[k]) for k in WORLD_COLORS])
            sub = (
                "Where the money leaks and where the policy recovers it: refund leakage per "
                "segment in each world, from ground truth. Right of each row: value the policy "
                "saved against doing nothing."
            )
        else:
            legend = legend_html(
                [("Refund leakage", OBSERVED_COLORS["leakage"]),
                 ("Retained revenue (not refunded)", OBSERVED_COLORS["retained"])]
            )  # fmt: skip
            sub = (
                "Observed refund leakage and retained revenue per segment. Right of each row: "
                "recovery rate, the share of resolved at-risk cases kept or exchanged."
            )
        return card_html(
            "segments",
            "Recovery by segment",
            escape(sub),
            legend + '<div class="grid2">' + "".join(panels) + "</div>",
        )

    def uplift(self) -> str:
        u = self.m.uplift
        if not u:
            return ""
        rows = []
        table = []
        for action, d in sorted(
            u.by_action.items(), key=lambda kv: -(kv[1].get("refund_rate_reduction") or -9)
        ):
            est, lo, hi = d.get("refund_rate_reduction"), d.get("ci_low"), d.get("ci_high")
            nt, nc = d.get("treated") or 0, d.get("control") or 0
            if est is not None and lo is not None and hi is not None:
                rows.append(
                    ForestRow(
                        action_label(action),
                        float(est),
                        float(lo),
                        float(hi),
                        f"{count(nt)} / {count(nc)}",
                        f"{action_label(action)}: refund rate {points(est)} "
                        f"[{points(lo)}, {points(hi)}], {nt:,} treated, {nc:,} control",
                    )
                )
            table.append(
                "<tr>"
                f"<td>{escape(action_label(action))}</td>"
                f"<td>{count(nt)}</td><td>{count(nc)}</td>"
                f"<td>{pct(d.get('treated_refund_rate'))}</td>"
                f"<td>{pct(d.get('control_refund_rate'))}</td>"
                f"<td>{points(est)}</td>"
                f"<td>{escape(self.money(d.get('value_saved_per_case'), 2))}</td>"
                f"<td>{escape(self.money(d.get('value_ci_low'), 2))} {DASH} "
                f"{escape(self.money(d.get('value_ci_high'), 2))}</td>"
                "</tr>"
            )
        chart = (
            forest_plot(
                "chart-uplift",
                "Uplift by action: reduction of the refund rate against the holdout",
                "Forest plot: for each action, the refund rate of the control arm minus that "
                "of the treated orders, in percentage points, with a 95 % interval.",
                rows,
                tick_fmt=lambda v: f"{v * 100:+.0f}".replace("-", MINUS),
                value_fmt=lambda v: f"{v * 100:+.1f}".replace("-", MINUS),
                value_unit="pts",
                left_hint="more refunds",
                right_hint="fewer refunds",
                x_title="refund-rate reduction, percentage points (control minus treated)",
            )
            if rows
            else '<p class="muted">No action has both treated and control cases yet.</p>'
        )
        thead = (
            "<thead><tr><th>Action</th><th>Treated</th><th>Control</th>"
            "<th>Refund rate treated</th><th>Refund rate control</th><th>Reduction</th>"
            "<th>Saved per case</th><th>95 % interval</th></tr></thead>"
        )
        sub = (
            "Each action against its own holdout: control-arm orders the policy chose the same "
            "action for but did not contact. Green: the interval excludes zero. "
        )
        if u.source == "observed":
            sub += (
                "Measured on the outcomes observed in the streams; in a simulated replay the "
                "streams are the no-intervention history, so observed uplift is close to zero "
                "by construction."
            )
        elif "ground truth" in u.source:
            sub += (
                "Realized from ground truth: treated orders take their outcome under the action "
                "sent, control orders their outcome with no action."
            )
        tag = "observed" if u.source == "observed" else u.source
        return card_html(
            "uplift",
            "Uplift with 95 % intervals",
            escape(sub),
            f"{chart}<table>{thead}<tbody>{''.join(table)}</tbody></table>",
            tag=tag,
        )
