"""Replay summary: counts, money and model quality from a run's outputs, as JSON and a table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from flows.sinks import read_jsonl
from operators.backtest import realized_rows, uplift_block
from operators.evaluation import (
    calibration,
    counterfactual_totals,
    first_actions,
    intervention_costs,
    load_ground_truth,
    log_loss,
    observed_totals,
    roc_auc,
)
from operators.policy import RecoveryPolicy
from operators.uplift import rows_from_outcomes


def summarize(
    out_dir: Path,
    policy: RecoveryPolicy,
    ground_truth: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the summary of the outputs in ``out_dir`` (ground truth optional)."""
    outcomes = read_jsonl(out_dir / "outcomes.jsonl")
    decisions = read_jsonl(out_dir / "decisions.jsonl")
    interventions = read_jsonl(out_dir / "interventions.jsonl")
    dead = read_jsonl(out_dir / "dead_letter.jsonl")

    decisions_by = Counter(f"{d['action']}|{d['arm']}" for d in decisions)
    by_action: dict[str, dict[str, int]] = {}
    for key, n in sorted(decisions_by.items()):
        action, arm = key.split("|")
        by_action.setdefault(action, {})[arm] = n
    interventions_by = Counter(iv["action"] for iv in interventions)
    automated = sum(1 for iv in interventions if iv["automated"])
    dead_by = Counter(d["reason"].split(":", 1)[0] for d in dead)

    closed = [o for o in outcomes if o["outcome"] not in ("censored", "cancelled")]
    labels = [1 if o["outcome"] in ("refunded", "chargeback") else 0 for o in closed]
    firsts = [o.get("predicted_return_propensity") for o in closed]
    pairs = [(y, p) for y, p in zip(labels, firsts, strict=True) if p is not None]
    ys, ps = [y for y, _ in pairs], [p for _, p in pairs]

    summary: dict[str, Any] = {
        "policy_version": policy.version,
        "cases": len(outcomes),
        "decisions": len(decisions),
        "decisions_by_action": by_action,
        "interventions": len(interventions),
        "interventions_by_action": dict(sorted(interventions_by.items())),
        "interventions_automated": automated,
        "human_review": interventions_by.get("human_review", 0),
        "dead_letters": len(dead),
        "dead_letters_by_reason": dict(sorted(dead_by.items())),
        "observed": observed_totals(outcomes),
        "first_score_quality": {
            "labelled_cases": len(ys),
            "roc_auc": _round(roc_auc(ys, ps)),
            "log_loss": _round(log_loss(ys, ps)),
            "calibration_error": calibration(ys, ps)["ece"] if ys else None,
        },
        "outputs": {
            name: str(out_dir / f"{name}.jsonl")
            for name in ("interventions", "decisions", "outcomes", "dead_letter")
        },
    }
    contact, credit = intervention_costs(interventions, policy.action_costs())
    summary["costs"] = {"contact_cost": contact, "credit_cost": credit}
    if ground_truth is not None and ground_truth.exists():
        truth = load_ground_truth(ground_truth)
        summary["ground_truth"] = counterfactual_totals(
            truth, first_actions(interventions), contact, credit
        )
        summary["uplift"] = {
            "source": "ground_truth",
            **uplift_block(realized_rows(outcomes, truth)),
        }
    else:
        summary["uplift"] = {"source": "observed", **uplift_block(rows_from_outcomes(outcomes))}
    if extra:
        summary.update(extra)
    return summary


def _round(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    path = out_dir / "summary.json"
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def _money(x: float) -> str:
    return f"{x:,.2f}"


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a readable table."""
    lines = [
        f"policy {s['policy_version']}",
        f"cases {s['cases']:,}   decisions {s['decisions']:,}   "
        f"interventions {s['interventions']:,} ({s['interventions_automated']:,} automated)   "
        f"dead letters {s['dead_letters']:,}",
        "",
        f"{'action':<32}{'treatment':>12}{'control':>12}{'emitted':>12}",
    ]
    for action, arms in s["decisions_by_action"].items():
        lines.append(
            f"{action:<32}{arms.get('treatment', 0):>12,}{arms.get('control', 0):>12,}"
            f"{s['interventions_by_action'].get(action, 0):>12,}"
        )
    obs = s["observed"]
    lines += [
        "",
        "observed in the streams (history as it happened)",
        f"  refund leakage     {_money(obs['refund_leakage']):>16}",
        f"  retained revenue   {_money(obs['retained_revenue']):>16}",
        f"  outcomes           {', '.join(f'{k} {v:,}' for k, v in obs['outcomes'].items())}",
    ]
    gt = s.get("ground_truth")
    if gt:
        lines += [
            "",
            "against ground truth (what each world would have cost)",
            f"  {'':<22}{'refund leakage':>16}{'retained revenue':>18}",
        ]
        for label, key in (
            ("blanket refund", "blanket_refund"),
            ("no action", "no_action"),
            ("this policy", "policy"),
        ):
            lines.append(
                f"  {label:<22}{_money(gt[key]['refund_leakage']):>16}"
                f"{_money(gt[key]['retained_revenue']):>18}"
            )
        lines += [
            f"  leakage cut vs blanket refund  {gt['leakage_cut_vs_blanket']:.1%}",
            f"  leakage cut vs no action       {gt['leakage_cut_vs_no_action']:.1%}",
            f"  contact + credit cost          {_money(gt['contact_cost'] + gt['credit_cost'])}"
            f" ({gt['cost_share_of_revenue']:.2%} of revenue)",
        ]
    m = (s.get("models") or {}).get("return_propensity")
    if m and m.get("roc_auc") is not None:
        lines += [
            "",
            f"return propensity model ({m['examples']:,} examples, progressive validation): "
            f"ROC AUC {m['roc_auc']:.3f}, log loss {m['log_loss']:.3f}, "
            f"calibration error {m['calibration_error']:.3f}",
        ]
    q = s["first_score_quality"]
    if q["roc_auc"] is not None:
        lines += [
            "",
            f"return propensity (first score): ROC AUC {q['roc_auc']:.3f}, "
            f"log loss {q['log_loss']:.3f}, calibration error {q['calibration_error']:.3f} "
            f"over {q['labelled_cases']:,} closed cases",
        ]
    up = (s.get("uplift") or {}).get("by_action") or {}
    if up:
        lines += [
            "",
            f"uplift against the holdout ({s['uplift']['source']}): refund-rate cut, 95% CI",
        ]
        for action, u in up.items():
            if u["refund_rate_reduction"] is None:
                continue
            lines.append(
                f"  {action:<32}{u['refund_rate_reduction']:>+8.1%}  "
                f"[{u['ci_low']:+.1%}, {u['ci_high']:+.1%}]  "
                f"({u['treated']:,} treated, {u['control']:,} control)"
            )
    if s["dead_letters_by_reason"]:
        lines += [
            "",
            "dead letters: "
            + ", ".join(f"{k} {v:,}" for k, v in s["dead_letters_by_reason"].items()),
        ]
    return "\n".join(lines)
