"""Backtest arithmetic: a policy's business figures from a replay, side by side.

With a simulator ground truth, each order's realized outcome under the action the policy
took comes from the truth (treatment arm, first action); control orders and orders the
policy left alone take the no-action outcome. Without it, money figures that depend on
what customers would have done are unknown and listed as such; the rest (model quality,
action mix, review load, contact and credit cost) is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.baselines import Choice, truth_outcome
from operators.evaluation import REFUNDED
from operators.policy import RecoveryPolicy
from operators.uplift import SEGMENTS, UpliftRow, uplift_by_action, uplift_by_segment
from operators.vocabulary import Action

#: Figures a backtest cannot know without ground truth.
NEEDS_TRUTH = (
    "refund_leakage",
    "retained_revenue",
    "vs_blanket_refund",
    "vs_no_action",
    "uplift",
)


def realized_rows(
    outcomes: list[dict[str, Any]],
    truth: dict[str, dict[str, Any]],
    chosen: Mapping[str, Choice] | None = None,
) -> list[UpliftRow]:
    """Uplift rows whose refund outcome comes from the truth under the arm's action, taken
    when ``chosen`` (the run's first action per order, :func:`policy_choices`) says: an
    action after the customer's request uses the truth's late outcome, as every arm does."""
    rows = []
    chosen = chosen or {}
    for o in outcomes:
        actions = o.get("actions") or []
        row = truth.get(o["order_id"])
        if not actions or row is None or not o.get("arm"):
            continue
        action = actions[0]
        key = action if o["arm"] == "treatment" else "none"
        first = chosen.get(o["order_id"])
        realized = truth_outcome(row, key, first.at if first is not None else None)
        rows.append(
            UpliftRow(
                o["arm"],
                action,
                realized["outcome"] in REFUNDED,
                float(realized["refund_value"]),
                tuple((d, str(o.get(d) or "none")) for d in SEGMENTS),
            )
        )
    return rows


def uplift_block(rows: list[UpliftRow], min_cases: int = 20) -> dict[str, Any]:
    """Uplift per action and per segment, as JSON-able dicts."""
    return {
        "by_action": {a: u.to_dict() for a, u in uplift_by_action(rows).items()},
        "by_segment": {
            dim: {
                value: {a: u.to_dict() for a, u in actions.items()}
                for value, actions in values.items()
            }
            for dim, values in uplift_by_segment(rows, min_cases).items()
        },
    }


def policy_figures(summary: dict[str, Any], policy: RecoveryPolicy) -> dict[str, Any]:
    """The backtest figures of one policy run, from its replay summary (ground truth used
    when the summary has it)."""
    cases = summary["cases"] or 1
    by_type: dict[str, int] = summary.get("interventions_by_action") or {}
    reviews = by_type.get(Action.HUMAN_REVIEW, 0)
    costs = summary.get("costs") or {}
    contact_cost = costs.get("contact_cost", 0.0)
    credit_cost = costs.get("credit_cost", 0.0)
    revenue = (summary.get("ground_truth") or {}).get("order_revenue")
    figures: dict[str, Any] = {
        "policy_version": policy.version,
        "cases": summary["cases"],
        "actions_by_type": dict(sorted(by_type.items())),
        "interventions": sum(by_type.values()),
        "human_review_cases": reviews,
        "human_review_share": round(reviews / cases, 4),
        "contact_cost": round(contact_cost, 2),
        "credit_cost": round(credit_cost, 2),
        "observed_refund_leakage": (summary.get("observed") or {}).get("refund_leakage"),
        "model": (summary.get("models") or {}).get("return_propensity"),
        "first_score_quality": summary.get("first_score_quality"),
    }
    arms = (summary.get("decision_arms") or {}).get("arms") or {}
    for arm in ("policy", "static_rules", "always_contact", "random_eligible"):
        if arm in arms:
            figures[f"captured_share_{arm}"] = arms[arm]["captured_share"]
    if "policy" in arms:
        figures["contacted_keepers"] = arms["policy"]["contacted_keepers"]
        figures["oracle_leakage"] = arms["oracle"]["refund_leakage"]
    gt = summary.get("ground_truth")
    if gt:
        figures.update(
            refund_leakage=gt["policy"]["refund_leakage"],
            retained_revenue=gt["policy"]["retained_revenue"],
            blanket_refund_leakage=gt["blanket_refund"]["refund_leakage"],
            no_action_leakage=gt["no_action"]["refund_leakage"],
            vs_blanket_refund=gt["leakage_cut_vs_blanket"],
            vs_no_action=gt["leakage_cut_vs_no_action"],
            order_revenue=revenue,
        )
        if revenue:
            share = (contact_cost + credit_cost) / revenue
            figures["cost_share_of_revenue"] = round(share, 5)
            figures["within_budget"] = share <= policy.cost_budget_share
            figures["cost_budget_share"] = policy.cost_budget_share
    return figures


def format_backtest(report: dict[str, Any]) -> str:
    """The side-by-side table of a backtest report."""
    runs = report["policies"]
    names = [r["name"] for r in runs]
    width = 26
    lines = [f"{'':<34}" + "".join(f"{n:>{width}}" for n in names)]

    def row(label: str, key: str, fmt: str = "{:,.2f}") -> None:
        cells = []
        for r in runs:
            v = r["figures"].get(key)
            cells.append("unknown" if v is None else fmt.format(v))
        lines.append(f"{label:<34}" + "".join(f"{c:>{width}}" for c in cells))

    row("policy version", "policy_version", "{}")
    row("captured share of oracle's avoidable", "captured_share_policy", "{:.1%}")
    row("  same policy, static rules", "captured_share_static_rules", "{:.1%}")
    row("  always contact", "captured_share_always_contact", "{:.1%}")
    row("  random eligible action", "captured_share_random_eligible", "{:.1%}")
    row("contacted who would have kept it", "contacted_keepers", "{:,}")
    row("history: refund leakage as it was", "observed_refund_leakage")
    row("refund leakage", "refund_leakage")
    row("retained revenue", "retained_revenue")
    row("leakage cut vs blanket refund", "vs_blanket_refund", "{:.1%}")
    row("leakage cut vs no action", "vs_no_action", "{:.1%}")
    row("contact cost", "contact_cost")
    row("credit cost", "credit_cost")
    row("cost share of revenue", "cost_share_of_revenue", "{:.2%}")
    row("within cost budget", "within_budget", "{}")
    row("interventions", "interventions", "{:,}")
    row("human review share of cases", "human_review_share", "{:.2%}")
    actions = sorted({a for r in runs for a in r["figures"]["actions_by_type"]})
    for a in actions:
        cells = [f"{r['figures']['actions_by_type'].get(a, 0):,}" for r in runs]
        lines.append(f"  {a:<32}" + "".join(f"{c:>{width}}" for c in cells))
    model_cells = []
    for r in runs:
        m = r["figures"].get("model") or {}
        auc = m.get("roc_auc")
        model_cells.append(f"{auc:.3f}" if auc is not None else "n/a")
    lines.append(f"{'propensity ROC AUC (progressive)':<34}" + "".join(
        f"{c:>{width}}" for c in model_cells))  # fmt: skip
    base = runs[0]["figures"]
    if base.get("blanket_refund_leakage") is not None:
        lines += [
            "",
            f"baselines: blanket refund leaks {base['blanket_refund_leakage']:,.2f}; "
            f"doing nothing leaks {base['no_action_leakage']:,.2f}; the oracle "
            f"{base.get('oracle_leakage') or 0:,.2f}",
        ]
    if report.get("unknown_without_ground_truth"):
        lines += [
            "",
            "no ground truth: unknown figures: "
            + ", ".join(report["unknown_without_ground_truth"]),
        ]
    return "\n".join(lines)
