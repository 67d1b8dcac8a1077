"""Sections of the report page on the models and the comparison: arms, calibration,
backtest and data quality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from html import escape
from typing import Any

from flows.report.charts import (
    CALIBRATION_COLORS,
    Series,
    calibration_chart,
    hbar_chart,
    line_chart,
)
from flows.report.format import (
    DASH,
    NBSP,
    WORLD_COLORS,
    WORLD_LABELS,
    action_label,
    count,
    money_compact,
    pct,
)
from flows.report.page_parts import PageBase, backtest_figure, card_html, fmt3, legend_html
from operators.baselines import ARM_ORDER


class ModelSections(PageBase):
    """Arms, calibration, backtest and data quality."""

    def arms(self) -> str:
        """Every arm on the same ground truth, and the policy's regret against the oracle
        over time (a learning policy should close the gap)."""
        block = self.m.summary.get("decision_arms")
        if not isinstance(block, Mapping) or not block.get("arms"):
            return ""
        labels = {
            "status_quo": "Status quo (every request handled as asked)",
            "blanket_refund": "Blanket refund (every request refunded in full)",
            "always_contact": "Always contact (reassure at the first risk signal)",
            "random_eligible": "Random eligible action",
            "static_rules": "Static rules (this policy, fixed heuristic scorer)",
            "policy": "This policy",
            "oracle": "Oracle (best action per order, in hindsight)",
        }
        rows = []
        for name in ARM_ORDER:
            arm = block["arms"].get(name)
            if not isinstance(arm, Mapping):
                continue
            share = arm.get("captured_share")
            cells = [
                pct(float(share)) if isinstance(share, int | float) else DASH,
                self.money(arm.get("refund_leakage")),
                self.money(arm.get("cost")),
                count(arm.get("contacted_orders")),
                count(arm.get("contacted_keepers")),
            ]
            strong = ' class="strong"' if name == "policy" else ""
            rows.append(
                f"<tr{strong}><td>{escape(labels[name])}</td>"
                + "".join(f"<td>{escape(c)}</td>" for c in cells)
                + "</tr>"
            )
        table = (
            "<table><thead><tr><th>Arm</th><th>Captured share</th><th>Refund leakage</th>"
            "<th>Contact + credit</th><th>Customers contacted</th>"
            "<th>of them would have kept it</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        chart = ""
        regret = [r for r in self.m.summary.get("regret_by_day") or [] if isinstance(r, Mapping)]
        if len(regret) > 1:
            days = [(date(1970, 1, 1) + timedelta(days=int(r["day"]))).isoformat() for r in regret]
            chart = legend_html([("Cumulative regret against the oracle", "#d1495b")], line=True)
            chart += line_chart(
                "chart-regret",
                "The policy's cumulative regret against the oracle, by order day",
                "Refunds plus cost above what the oracle would have lost, summed over orders "
                "by the day they were placed; a flattening curve is the engine correcting "
                "itself.",
                [d[5:] for d in days],
                [Series("regret", "#d1495b", [float(r["cumulative_regret"]) for r in regret])],
                value_fmt=self.money,
                tick_fmt=self.tick_money,
                x_tips=days,
                y_title="cumulative regret",
            )
        sub = (
            "Every arm is scored by one rule on the same orders of the ground truth: refunds "
            "plus contact and credit cost. The captured share is the part of the oracle's "
            "avoidable loss an arm avoids (0 % = the status quo, 100 % = the oracle; below 0 "
            "an arm does harm, e.g. contacts that make keepers return). The policy's control "
            "orders count as if their logged decisions had been sent."
        )
        return card_html(
            "arms",
            "Against baselines and an oracle",
            escape(sub),
            f"{table}<figure>{chart}</figure>" if chart else table,
        )

    def calibration(self) -> str:
        cals = self.m.calibration
        models = self.m.summary.get("models")
        if not cals and not isinstance(models, Mapping):
            return ""
        left = ""
        if any(c.bins for c in cals):
            curves = [(c.source, c.bins) for c in cals if c.bins]
            left = legend_html(
                [(n, CALIBRATION_COLORS[i % 3]) for i, (n, _) in enumerate(curves)]
            ) + calibration_chart(
                "chart-calibration",
                "Calibration of the return-propensity score",
                "Reliability diagram: observed refund rate against the mean predicted "
                "probability in ten bins; the dashed diagonal is perfect calibration, dot size "
                "and grey bars show how many cases fall in each bin.",
                curves,
            )
        right = ""
        if cals:
            head = "".join(f"<th>{escape(c.source)}</th>" for c in cals)
            rows = [
                ("Labelled cases", [count(c.labelled) for c in cals]),
                ("ROC AUC", [fmt3(c.roc_auc) for c in cals]),
                ("Log loss", [fmt3(c.log_loss) for c in cals]),
                ("Expected calibration error", [fmt3(c.ece) for c in cals]),
            ]
            body = "".join(
                f"<tr><td>{escape(k)}</td>{''.join(f'<td>{escape(v)}</td>' for v in vs)}</tr>"
                for k, vs in rows
            )
            right = f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"
        if isinstance(models, Mapping) and models:
            mrows = []
            for name, info in sorted(models.items()):
                if not isinstance(info, Mapping):
                    continue
                version = info.get("version")
                recovery = info.get("recovery_examples")
                facts = [f"version {version}" if version is not None else ""]
                if isinstance(recovery, Mapping) and recovery:
                    facts.append(
                        "recovery examples: "
                        + ", ".join(
                            f"{action_label(str(a)).lower()} {count(n)}"
                            for a, n in sorted(recovery.items())
                        )
                    )
                lag = info.get("learning_lag_seconds")
                if isinstance(lag, int | float):
                    facts.append(f"labels arrive {lag / 86400:.1f} days after the decision")
                text = "; ".join(f for f in facts if f)
                if text:
                    mrows.append(f"<li>{escape(action_label(str(name)))}: {escape(text)}.</li>")
            if mrows:
                right += f'<ul class="note">{"".join(mrows)}</ul>'
        sub = (
            "Does a predicted 30 % chance of a refund come true 30 % of the time? Points on "
            "the diagonal are well calibrated; below it the score over-predicts refunds, "
            "above it under-predicts them. The online model is scored before it learns from "
            "each label (progressive validation); the first score is the one each case got "
            "when it was first decided."
        )
        return card_html(
            "calibration",
            "Model calibration",
            escape(sub),
            f'<div class="grid2"><figure>{left}</figure><div>{right}</div></div>',
        )

    def backtest(self) -> str:
        bt = self.m.backtest
        if not bt:
            return ""
        policies = [p for p in bt.get("policies") or [] if isinstance(p, Mapping)]
        if not policies:
            return ""
        names = [str(p.get("name") or f"policy {i + 1}") for i, p in enumerate(policies)]
        sums = [p.get("summary") or {} for p in policies]
        figs = [
            p.get("figures") or s.get("backtest") or {} for p, s in zip(policies, sums, strict=True)
        ]

        def figure(i: int, key: str) -> Any:
            return backtest_figure(policies[i], key)

        def as_cut(v: Any) -> float | None:
            if isinstance(v, Mapping):
                v = v.get("leakage_cut", v.get("refund_leakage_cut"))
            return float(v) if isinstance(v, int | float) else None

        metrics: list[tuple[str, str, Callable[[Any], str], int]] = [
            ("Refund leakage", "refund_leakage", self.money, -1),
            ("Leakage cut vs blanket refund", "vs_blanket_refund", lambda v: pct(v), 1),
            ("Leakage cut vs no action", "vs_no_action", lambda v: pct(v), 1),
            ("Retained revenue", "retained_revenue", self.money, 1),
            ("Contact cost", "contact_cost", self.money, -1),
            ("Credit cost", "credit_cost", self.money, -1),
            ("Cost share of revenue", "cost_share_of_revenue", lambda v: pct(v, 2), -1),
            ("Human review share of cases", "human_review_share", lambda v: pct(v), 0),
            ("Return model ROC AUC", "model_roc_auc", fmt3, 1),
            ("Interventions", "interventions", count, 0),
        ]
        unknown = set(bt.get("unknown_without_ground_truth") or [])
        head = "".join(f"<th>{escape(n)}</th>" for n in names)
        versions = [str(p.get("version") or s.get("policy_version") or DASH)
                    for p, s in zip(policies, sums, strict=True)]  # fmt: skip
        body = [
            "<tr><td>Policy version</td>"
            + "".join(f'<td class="muted">{escape(v)}</td>' for v in versions)
            + "</tr>"
        ]
        for label, key, fmt, better in metrics:
            raw = [figure(i, key) for i in range(len(sums))]
            vals = [as_cut(v) if key.startswith("vs_") else v for v in raw]
            nums = [v for v in vals if isinstance(v, int | float)]
            best = (max(nums) if better > 0 else min(nums)) if nums and better else None
            cells = []
            for v in vals:
                if isinstance(v, int | float):
                    cls = (
                        ' class="best"' if best is not None and v == best and len(nums) > 1 else ""
                    )
                    cells.append(f"<td{cls}>{escape(fmt(v))}</td>")
                else:
                    why = "unknown without ground truth" if key in unknown else DASH
                    cells.append(f'<td class="muted">{escape(why)}</td>')
            body.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
        actions: set[str] = set()
        for f, s in zip(figs, sums, strict=True):
            actions |= set(f.get("actions_by_type") or {})
            actions |= set(s.get("interventions_by_action") or {})
        for a in sorted(actions - {"none"}):
            cells = []
            for f, s in zip(figs, sums, strict=True):
                n = (f.get("actions_by_type") or {}).get(a)
                if n is None:
                    n = (s.get("interventions_by_action") or {}).get(a, 0)
                cells.append(f"<td>{count(n)}</td>")
            label = NBSP * 4 + action_label(a)
            body.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
        table = (
            f"<table><thead><tr><th>Figure</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
        # Leakage of each policy next to the two baselines (shared by all policies).
        cats, vals, colors = [], [], []
        gt0 = next((s.get("ground_truth") for s in sums if s.get("ground_truth")), None) or {}
        for key in ("blanket_refund", "no_action"):
            v = (gt0.get(key) or {}).get("refund_leakage")
            if v is None:
                v = next((f.get(f"{key}_leakage") for f in figs if f.get(f"{key}_leakage")), None)
            if isinstance(v, int | float):
                cats.append(WORLD_LABELS[key])
                vals.append(float(v))
                colors.append(WORLD_COLORS[key])
        spare = iter(("#2b6cb0", "#59a14f", "#b07aa1", "#f28e2b", "#76b7b2", "#edc948") * 4)
        for i, n in enumerate(names):
            v = figure(i, "refund_leakage")
            if isinstance(v, int | float):
                cats.append(f"Policy {n}")
                vals.append(float(v))
                colors.append(next(spare))
        chart = ""
        if cats:
            chart = "<h3>Refund leakage</h3>" + hbar_chart(
                "chart-backtest",
                "Backtest: refund leakage per policy and baseline",
                "Horizontal bar chart: refund leakage under each backtested policy and under "
                "the blanket-refund and no-action baselines.",
                cats,
                [Series("Refund leakage", "#2b6cb0", list(vals))],
                bar_colors=colors,
                value_fmt=self.money,
                tick_fmt=self.tick_money,
                width=520,
                bar_height=16,
            )
        # What each policy saved against doing nothing, next to what it spent to do so.
        saved, spent, labels = [], [], []
        for i, n in enumerate(names):
            leak = figure(i, "refund_leakage")
            base = figs[i].get("no_action_leakage")
            if base is None:
                base = ((sums[i].get("ground_truth") or {}).get("no_action") or {}).get(
                    "refund_leakage"
                )
            costs = [figure(i, "contact_cost"), figure(i, "credit_cost")]
            if isinstance(leak, int | float) and isinstance(base, int | float):
                labels.append(f"Policy {n}")
                saved.append(float(base) - float(leak))
                spent.append(sum(float(c) for c in costs if isinstance(c, int | float)))
        if labels:
            net = [
                f"net {money_compact(a - b, self.cur)}" for a, b in zip(saved, spent, strict=True)
            ]
            chart += (
                "<h3>Saved against no action, and what it cost</h3>"
                + legend_html(
                    [("Leakage avoided", "#2f855a"), ("Contact and credit cost", "#dd6b20")]
                )
                + hbar_chart(
                    "chart-backtest-net",
                    "Backtest: leakage avoided against no action and intervention cost",
                    "Grouped bar chart: per policy, refund leakage avoided against doing "
                    "nothing, and the contact and credit cost spent; right: the difference.",
                    labels,
                    [
                        Series("Leakage avoided", "#2f855a", list(saved)),
                        Series("Contact and credit cost", "#dd6b20", list(spent)),
                    ],
                    notes=net,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    width=520,
                    bar_height=14,
                )
            )
        sub = "The same input replayed under each policy. Best value per row in green. " + (
            "Leakage and costs are evaluated against ground truth."
            if bt.get("has_ground_truth")
            else "Without ground truth only observed figures are known."
        )
        return card_html(
            "backtest",
            "Backtest: policies side by side",
            escape(sub),
            f'<div class="grid2"><div>{chart}</div><div>{table}</div></div>',
        )

    def data_quality(self) -> str:
        s, m = self.m.summary, self.m
        by = s.get("dead_letters_by_reason") or {}
        if by:
            rows = sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))
            left = "<h3>Dead letters by reason</h3>" + hbar_chart(
                "chart-dead-letters",
                "Dead letters by reason",
                "Horizontal bar chart: input records set aside, by reason.",
                [k.replace("_", " ") for k, _ in rows],
                [Series("Dead letters", "#718096", [float(v) for _, v in rows])],
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=14,
            )
        else:
            left = '<p class="muted">No input record was set aside.</p>'
        facts: list[tuple[str, str]] = []
        records, dead = s.get("input_records"), s.get("dead_letters")
        if records:
            facts.append(("Input records", count(records)))
        if dead is not None:
            share = f" ({pct(dead / records, 2)})" if records else ""
            facts.append(("Dead letters", count(dead) + share))
        facts.append(("Cases", count(m.cases)))
        order = ("kept", "exchanged", "refunded", "chargeback", "cancelled", "censored")
        kinds = sorted(m.outcome_counts, key=lambda k: (order.index(k) if k in order else 9, k))
        if kinds:
            colors = {"kept": "#2f855a", "exchanged": "#68d391", "refunded": "#d1495b"}
            colors |= {"chargeback": "#9b2c2c", "cancelled": "#a0aec0", "censored": "#cbd5e0"}
            left += "<h3>How the cases ended</h3>" + hbar_chart(
                "chart-outcomes",
                "Cases by outcome",
                "Horizontal bar chart: number of cases per outcome; open cases were still in "
                "their recovery window when the input ended.",
                kinds,
                [Series("Cases", "#718096", [float(m.outcome_counts[k]) for k in kinds])],
                bar_colors=[colors.get(k, "#718096") for k in kinds],
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=14,
            )
        if s.get("seconds"):
            facts.append(("Replay time", f"{float(s['seconds']):,.1f} s"))
        if s.get("events_per_second"):
            facts.append(("Throughput", f"{count(s['events_per_second'])} events/s"))
        if s.get("truth_labels") is not None:
            facts.append(
                ("Models learned from", "ground truth" if s["truth_labels"] else "streams")
            )
        table = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in facts)
        sub = (
            "Input records set aside with a reason instead of being processed (invalid, late "
            "beyond the allowed lateness, or for a case already closed), and how the cases "
            "ended. Open cases were still inside their recovery window when the input ended."
        )
        return card_html(
            "data-quality",
            "Data quality and run",
            escape(sub),
            f'<div class="grid2"><div>{left}</div><div><h3>Run</h3>'
            f"<table><tbody>{table}</tbody></table></div></div>",
        )
