"""Replay summary: counts, money and model quality from a run's outputs, as JSON and a table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from flows.jsonl import read_jsonl
from operators.backtest import realized_rows, uplift_block
from operators.baselines import (
    ActionCosts,
    compare_arms,
    format_arms,
    policy_choices,
    regret_by_day,
)
from operators.evaluation import (
    calibration,
    ground_truth_block,
    intervention_costs,
    load_ground_truth,
    log_loss,
    observed_totals,
    roc_auc,
)
from operators.policy import RecoveryPolicy
from operators.quality import format_quality, quality_at_decision
from operators.uplift import rows_from_outcomes
from operators.vocabulary import Action


def summarize(
    out_dir: Path,
    policy: RecoveryPolicy,
    ground_truth: Path | None = None,
    extra: dict[str, Any] | None = None,
    static_dir: Path | None = None,
) -> dict[str, Any]:
    """Build the summary of the outputs in ``out_dir`` (ground truth optional).

    ``static_dir`` holds a ``--no-learning`` run over the same input: with a ground truth it
    adds the static-rules arm to the comparison."""
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
    # Counted by kind, never by message text (older files without a kind: the text's head).
    dead_by = Counter(d.get("kind") or d["reason"].split(":", 1)[0] for d in dead)

    # Censored cases (no resolution when the input ended) have no label yet.
    closed = [o for o in outcomes if o["outcome"] not in ("censored", "open", "cancelled")]
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
        "human_review": interventions_by.get(Action.HUMAN_REVIEW, 0),
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
    static = read_jsonl(static_dir / "decisions.jsonl") if static_dir is not None else None
    summary["quality_at_decision"] = quality_at_decision(
        decisions,
        outcomes,
        horizon_days=policy.label_horizon_days,
        heuristic_decisions=static,
    )
    contact, credit = intervention_costs(interventions, policy.action_costs())
    summary["costs"] = {"contact_cost": contact, "credit_cost": credit}
    if ground_truth is not None and ground_truth.exists():
        truth = load_ground_truth(ground_truth)
        costs = ActionCosts.from_policy(policy)
        arms = compare_arms(truth, costs, decisions, static)
        summary["decision_arms"] = arms
        summary["ground_truth"] = ground_truth_block(truth, arms)
        summary["regret_by_day"] = regret_by_day(truth, costs, decisions)
        summary["uplift"] = {
            "source": "ground_truth",
            **uplift_block(realized_rows(outcomes, truth, policy_choices(decisions))),
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
    arms = s.get("decision_arms")
    if arms:
        share = arms["arms"]["policy"]["captured_share"]
        headline = "n/a" if share is None else f"{share:.1%}"
        lines += [
            "",
            f"against ground truth: this policy captures {headline} of the oracle's avoidable"
            f" loss ({_money(arms['avoidable_loss'])}: refunds plus contact and credit cost"
            " that a perfect policy would avoid)",
            *format_arms(arms),
            "  (every arm on the same orders; the policy's control arm counted as if treated;"
            " an action taken after the customer's request recovers less)",
        ]
    q = s.get("quality_at_decision")
    if q and (q.get("first") or {}).get("learned", {}).get("examples"):
        lines += ["", *format_quality(q)]
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
