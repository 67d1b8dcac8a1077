"""The top of the report page: the lead sentence, the story of the run and the KPI tiles."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from flows.report.format import DASH, OTHER_LABEL, action_label, count, day_label, pct, points
from flows.report.page_parts import PageBase, backtest_figure, backtest_runs, kpi_html
from operators.vocabulary import Action


class OverviewSections(PageBase):
    """Lead, scenario note, story and KPI tiles."""

    def policy_world(self) -> tuple[float, float, float] | None:
        """(policy leakage, blanket leakage, no-action leakage), if ground truth is known."""
        gt = self.gt
        try:
            return (
                float(gt["policy"]["refund_leakage"]),
                float(gt["blanket_refund"]["refund_leakage"]),
                float(gt["no_action"]["refund_leakage"]),
            )
        except (KeyError, TypeError, ValueError):
            w = self.m.counterfactual
            return (w.policy, w.blanket_refund, w.no_action) if w else None

    def lead(self) -> str:
        arms = self.m.summary.get("decision_arms")
        if not isinstance(arms, Mapping):
            arms = {}
        share = ((arms.get("arms") or {}).get("policy") or {}).get("captured_share")
        if isinstance(share, int | float):
            return (
                f'<p class="lead">This policy captures <span class="cut">{escape(pct(share))}'
                f"</span> of the avoidable loss that an oracle would avoid "
                f"({escape(self.money(arms.get('avoidable_loss')))}: refunds plus contact and "
                "credit cost)</p>"
            )
        worlds = self.policy_world()
        if worlds:
            pol, blanket, _ = worlds
            cut = (pol - blanket) / blanket if blanket else 0.0
            return (
                f'<p class="lead">Refund leakage {escape(self.money(pol))} under this policy vs '
                f"{escape(self.money(blanket))} under blanket refund: "
                f'<span class="cut">{escape(pct(cut, signed=True))}</span></p>'
            )
        m = self.m
        return (
            f'<p class="lead">Observed refund leakage {escape(self.money(m.observed_leakage))} '
            f"across {count(m.cases)} cases; "
            f"{count(sum(m.interventions_by_action.values()))} interventions emitted</p>"
        )

    def story(self) -> str:
        items = []
        m, worlds = self.m, self.policy_world()
        leaks = [
            (name, float(v))
            for name, run in backtest_runs(m.backtest)
            if isinstance(v := backtest_figure(run, "refund_leakage"), int | float)
        ]
        if len(leaks) > 1:
            first_name, first = leaks[0]
            best_name, best = min(leaks, key=lambda kv: kv[1])
            if best_name == first_name:
                runner = min(leaks[1:], key=lambda kv: kv[1])
                line = (
                    f"Backtest of {len(leaks)} policies on the same input: {first_name} leaks "
                    f"least, {self.money(runner[1] - first)} less than {runner[0]}. "
                )
            else:
                line = (
                    f"Backtest of {len(leaks)} policies on the same input: {best_name} leaks "
                    f"{self.money(first - best)} less than {first_name} "
                    f"({pct((best - first) / first, signed=True) if first else DASH}). "
                )
            line += f"The figures below are those of {first_name}."
            items.append(escape(line))
        if worlds:
            pol, _, none = worlds
            cost = float(self.gt.get("contact_cost") or 0) + float(self.gt.get("credit_cost") or 0)
            line = (
                f"Against doing nothing, the policy kept {self.money(none - pol)} that would "
                f"have been refunded ({pct((pol - none) / none, signed=True) if none else DASH})"
            )
            if self.gt:
                share = self.gt.get("cost_share_of_revenue")
                line += f", for {self.money(cost)} in contacts and store credit"
                if share is not None:
                    line += f" ({pct(float(share), 2)} of revenue)"
            items.append(escape(line) + ".")
        lanes = m.counterfactual_segments.get("courier_lane")
        if lanes and m.counterfactual and m.counterfactual.saved_vs_no_action > 0:
            top_lanes = sorted(
                (kv for kv in lanes if not kv[0].endswith(f" {OTHER_LABEL}")),
                key=lambda kv: -kv[1].saved_vs_no_action,
            )[:2]
            total = m.counterfactual.saved_vs_no_action
            part = sum(w.saved_vs_no_action for _, w in top_lanes)
            order_share = sum(w.orders for _, w in top_lanes) / max(m.counterfactual.orders, 1)
            names = " and ".join(k for k, _ in top_lanes)
            items.append(
                escape(
                    f"{pct(part / total, 0)} of that came from courier lane"
                    f"{'s' if len(top_lanes) > 1 else ''} {names}, "
                    f"where {pct(order_share, 0)} of the orders shipped."
                )
            )
        if m.counterfactual_daily:
            peak_day, peak = max(m.counterfactual_daily, key=lambda kv: kv[1].no_action)
            items.append(
                escape(
                    f"Orders placed on {day_label(peak_day)} carried the most refund risk: "
                    f"{self.money(peak.no_action)} would have leaked without intervention, "
                    f"{self.money(peak.policy)} did under the policy."
                )
            )
        if m.interventions_by_action:
            top, n = max(m.interventions_by_action.items(), key=lambda kv: (kv[1], kv[0]))
            total = sum(m.interventions_by_action.values())
            auto = m.interventions_automated
            items.append(
                escape(
                    f"{count(total)} interventions, {pct(auto / total, 0)} of them automated; "
                    f"the most frequent was {action_label(top).lower()} ({count(n)})."
                )
            )
        if m.uplift:
            best_u = [
                (a, u)
                for a, u in m.uplift.by_action.items()
                if u.get("ci_low") is not None and u["ci_low"] > 0
            ]
            if best_u:
                a, u = max(best_u, key=lambda kv: kv[1]["refund_rate_reduction"])
                items.append(
                    escape(
                        f"Strongest measured effect ({m.uplift.source}): "
                        f"{action_label(a).lower()} cut the refund rate by "
                        f"{points(u['refund_rate_reduction']).lstrip('+')} against the holdout "
                        f"(95 % interval {points(u['ci_low'])} to {points(u['ci_high'])})."
                    )
                )
        if not worlds and m.segments.get("courier_lane"):
            lane, worst = max(m.segments["courier_lane"], key=lambda kv: kv[1].refund_leakage)
            items.append(
                escape(f"Courier lane {lane} leaked the most: {self.money(worst.refund_leakage)}.")
            )
        if not items:
            return ""
        return '<ul class="story">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def scenario_note(self) -> str:
        sc = self.m.scenario or {}
        desc = (sc.get("parameters") or {}).get("description") or sc.get("description")
        if not desc:
            return ""
        first = " ".join(str(desc).split("\n\n")[0].split())
        return f'<p class="scenario"><strong>Scenario.</strong> {escape(first)}</p>'

    def kpis(self) -> str:
        m, s, gt = self.m, self.m.summary, self.gt
        tiles = []
        worlds = self.policy_world()
        if worlds:
            pol, blanket, none = worlds
            tiles.append(
                kpi_html("Refund leakage", self.money(pol), f"vs {self.money(none)} status quo")
            )
            # Against the status quo (every request handled as asked), not against a
            # blanket refund: that baseline refunds more than any merchant has to.
            tiles.append(
                kpi_html(
                    "Leakage cut",
                    pct((pol - none) / none, signed=True) if none else DASH,
                    f"vs status quo; {pct((pol - blanket) / blanket, signed=True)} vs "
                    "refunding every request"
                    if blanket
                    else "vs status quo",
                    good=pol < none,
                )
            )
            retained = (gt.get("policy") or {}).get("retained_revenue")
            base = (gt.get("no_action") or {}).get("retained_revenue")
            if retained is None and m.counterfactual:
                retained = m.counterfactual.policy_retained
                base = m.counterfactual.no_action_retained
            gain = ""
            if retained is not None and base is not None:
                sign = "+" if retained >= base else ""
                gain = f"{sign}{self.money(retained - base)} vs no action"
            tiles.append(kpi_html("Revenue retained", self.money(retained), gain))
            cost = float(gt.get("contact_cost") or 0) + float(gt.get("credit_cost") or 0)
            share = gt.get("cost_share_of_revenue")
            tiles.append(
                kpi_html(
                    "Intervention cost",
                    self.money(cost) if gt else DASH,
                    f"{pct(float(share), 2)} of revenue" if share is not None else "",
                )
            )
        else:
            closed_risk = sum(r.closed_at_risk for _, r in m.segments.get("sku_family", []))
            recovered = sum(r.recovered for _, r in m.segments.get("sku_family", []))
            refunds = m.outcome_counts.get("refunded", 0) + m.outcome_counts.get("chargeback", 0)
            tiles.append(kpi_html("Refund leakage", self.money(m.observed_leakage), "observed"))
            tiles.append(
                kpi_html(
                    "Revenue retained",
                    self.money(m.observed_retained),
                    "orders not refunded, observed",
                )
            )
            tiles.append(kpi_html("Refunds", count(refunds), "incl. chargebacks"))
            tiles.append(
                kpi_html(
                    "Recovery rate",
                    pct(recovered / closed_risk) if closed_risk else DASH,
                    f"of {count(closed_risk)} resolved at-risk cases",
                )
            )
        total_iv = sum(m.interventions_by_action.values())
        tiles.append(
            kpi_html(
                "Cases",
                count(m.cases),
                f"{count(m.outcome_counts.get('censored', 0) + m.outcome_counts.get('open', 0))}"
                " unresolved when the input ended (censored)",
            )
        )
        human = m.interventions_by_action.get(Action.HUMAN_REVIEW, 0)
        tiles.append(
            kpi_html(
                "Interventions",
                count(total_iv),
                f"{pct(m.interventions_automated / total_iv, 0)} automated · "
                f"{count(human)} to review"
                if total_iv
                else "",
            )
        )
        cal = m.calibration[0] if m.calibration else None
        auc = cal.roc_auc if cal else None
        if auc is None:
            auc = (s.get("first_score_quality") or {}).get("roc_auc")
        ece = cal.ece if cal else None
        tiles.append(
            kpi_html(
                "Return model ROC AUC",
                f"{auc:.3f}" if auc is not None else DASH,
                f"calibration error {ece:.3f}" if ece is not None else "",
            )
        )
        dead = s.get("dead_letters")
        records = s.get("input_records")
        tiles.append(
            kpi_html(
                "Dead letters",
                count(dead),
                f"{pct(dead / records, 2)} of {count(records)} input records"
                if dead is not None and records
                else "",
            )
        )
        return '<div class="kpis">' + "".join(tiles) + "</div>"
