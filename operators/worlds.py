"""Evaluating a policy over many simulated worlds: one world's figures, and their spread.

A *world* is a simulation drawn from the world prior (``docs/simulation.md``) with its own
``world_seed``: which action works for whom, what backfires, which campaign returns more.
For each world the same history is replayed twice through the dataflow, once with the
fixed heuristic scorer (the *static rules*) and once learning online (the *learned
policy*), and every arm of :mod:`operators.baselines` is scored on the world's truth. The
learned run is also the log of an off-policy evaluation of the static rules
(:mod:`operators.ope`), whose interval can then be checked against the truth.

Policies are tuned on world seeds 0-9 and reported on 100-119 (``docs/decisions.md``).

>>> spread([0.1, 0.2, 0.3, 0.4, 0.5])
{'median': 0.3, 'p10': 0.14, 'p90': 0.46, 'min': 0.1, 'max': 0.5, 'n': 5}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from operators.actions import action_names
from operators.baselines import (
    ARM_LABELS,
    ARM_ORDER,
    ActionCosts,
    captured_share,
    compare_arms,
    evaluate_arm,
    oracle_choices,
    percent,
    policy_choices,
    spending,
    truth_outcome,
)
from operators.contract import parse_ts
from operators.ope import build_log, doubly_robust

#: Length of a period in :func:`captured_by_period` (four weeks of event time).
PERIOD_SECONDS = 28 * 86400


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, 10th and 90th percentile (linear interpolation), min and max."""
    xs = sorted(values)
    if not xs:
        return {"median": None, "p10": None, "p90": None, "min": None, "max": None, "n": 0}

    def q(p: float) -> float:
        k = (len(xs) - 1) * p
        lo = int(k)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

    return {
        "median": round(statistics.median(xs), 4),
        "p10": round(q(0.1), 4),
        "p90": round(q(0.9), 4),
        "min": round(xs[0], 4),
        "max": round(xs[-1], 4),
        "n": len(xs),
    }


def segment_of(row: Mapping[str, Any]) -> str:
    """The context segment the off-policy outcome model pools over."""
    return f"{row.get('courier_lane') or '?'}|{row.get('sku_family') or '?'}"


def logged_losses(
    truth: Mapping[str, Mapping[str, Any]],
    decisions: list[Mapping[str, Any]],
    costs: ActionCosts,
) -> dict[str, float]:
    """What each order cost under the actions the logging run really applied (treatment
    arm only; control orders got nothing), read from the truth as a live system would have
    observed it."""
    treated = [d for d in decisions if d.get("arm") != "control"]
    chosen = policy_choices(treated)
    out = {}
    for oid, row in truth.items():
        choice = chosen.get(oid)
        value = float(row.get("order_value") or 0.0)
        if choice is None:
            out[oid] = float(row["outcomes"]["none"]["refund_value"])
            continue
        refund = float(truth_outcome(row, choice.action, choice.at)["refund_value"])
        out[oid] = refund + sum(spending(choice, value, costs))
    return out


def _first_decided(*runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each order's first decision time (epoch seconds) over the decisions of ``runs``."""
    first: dict[str, float] = {}
    for run in runs:
        for d in run:
            t = parse_ts(d["decided_at"])
            if t < first.get(d["order_id"], float("inf")):
                first[d["order_id"]] = t
    return first


def _captured(
    rows: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    choices: Mapping[str, Mapping[str, Any]],
) -> dict[str, float | None]:
    """Each named run's captured share of the oracle's avoidable loss on ``rows`` alone."""
    status_quo = evaluate_arm("status_quo", rows, {}, costs)
    oracle = evaluate_arm("oracle", rows, oracle_choices(rows, costs), costs)
    return {
        name: captured_share(status_quo, evaluate_arm(name, rows, chosen, costs), oracle)
        for name, chosen in choices.items()
    }


def captured_by_period(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    learned: Sequence[Mapping[str, Any]],
    static: Sequence[Mapping[str, Any]],
    period: float = PERIOD_SECONDS,
) -> list[dict[str, Any]]:
    """The static rules' and the learned policy's captured share per period of each order's
    first decision (four weeks by default): whether learning pulls ahead as outcomes
    accumulate. Orders never decided on are left out of every period.

    >>> def kept_if(action):
    ...     refunded = {"outcome": "refunded", "refund_value": 50.0, "retained_value": 0.0}
    ...     kept = {"outcome": "kept", "refund_value": 0.0, "retained_value": 50.0}
    ...     return {"order_value": 50.0, "outcomes": {"none": refunded, action: kept}}
    >>> truth = {"A": kept_if("proactive_reassurance"), "B": kept_if("proactive_reassurance")}
    >>> def decision(oid, t, action):
    ...     return {"order_id": oid, "decided_at": t, "action": action, "arm": "treatment"}
    >>> static = [decision("A", "2026-03-02T10:00:00Z", "none"),
    ...           decision("B", "2026-04-01T10:00:00Z", "none")]
    >>> learned = [decision("A", "2026-03-02T10:00:00Z", "none"),
    ...            decision("B", "2026-04-01T10:00:00Z", "proactive_reassurance")]
    >>> costs = ActionCosts({"proactive_reassurance": 0.0}, {}, 15.0)
    >>> [(p["period"], p["static_rules"], p["learned"]) for p in
    ...  captured_by_period(truth, costs, learned, static)]
    [(0, 0.0, 0.0), (1, 0.0, 1.0)]
    """
    first = _first_decided(static, learned)
    if not first:
        return []
    start = min(first.values())
    groups: dict[int, dict[str, Mapping[str, Any]]] = {}
    for oid, row in truth.items():
        if oid in first:
            groups.setdefault(int((first[oid] - start) // period), {})[oid] = row
    choices = {"static_rules": policy_choices(static), "learned": policy_choices(learned)}
    return [
        {"period": index, "orders": len(groups[index]), **_captured(groups[index], costs, choices)}
        for index in sorted(groups)
    ]


#: Weeks around a drift twist's change in :func:`course_after_drift` (before, after).
DRIFT_WEEKS = (4, 8)
WEEK = 7 * 86400


def course_after_drift(
    truth: Mapping[str, Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    twist: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Does the policy change course when an action stops working in a lane (a drift twist,
    ``docs/simulation.md``)? Per week of decision time around the change (-4 to +7), the
    treatment-arm decisions in the twist's lane where its action was eligible, and the
    share of them that chose it. Weeks count from the change; orders placed before it
    (decided after it) still respond as before, so a week's share mixes both at first.

    >>> truth = {"A": {"courier_lane": "x"}, "B": {"courier_lane": "x"}, "C": {"courier_lane": "y"}}
    >>> twist = {"action": "proactive_reassurance", "courier_lane": "x", "from_ts": 0}
    >>> def d(oid, day, action):
    ...     return {"order_id": oid, "decided_at": f"1970-01-{1 + day:02d}T00:00:00Z",
    ...             "arm": "treatment", "action": action, "eligible": [twist["action"]]}
    >>> [(r["week"], r["decisions"], r["share"]) for r in course_after_drift(
    ...     truth, [d("A", 1, "proactive_reassurance"), d("B", 2, "none"), d("C", 3, "none")],
    ...     twist)]
    [(0, 2, 0.5)]
    """
    action, lane, start = twist["action"], twist["courier_lane"], float(twist["from_ts"])
    before, after = DRIFT_WEEKS
    weeks: dict[int, list[int]] = {}
    for d in decisions:
        if d.get("arm") == "control" or action not in (d.get("eligible") or ()):
            continue
        row = truth.get(d["order_id"])
        if row is None or row.get("courier_lane") != lane:
            continue
        week = int((parse_ts(d["decided_at"]) - start) // WEEK)
        if -before <= week < after:
            counts = weeks.setdefault(week, [0, 0])
            counts[0] += 1
            counts[1] += d.get("action") == action
    return [
        {"week": w, "decisions": n, "share": round(k / n, 4)} for w, (n, k) in sorted(weeks.items())
    ]


def captured_in_lane_after(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    learned: Sequence[Mapping[str, Any]],
    static: Sequence[Mapping[str, Any]],
    twist: Mapping[str, Any],
) -> dict[str, Any]:
    """The static rules' and the learned policy's captured share on the orders of the
    twist's lane first decided on from the change on: the money view of
    :func:`course_after_drift`."""
    start = float(twist["from_ts"])
    first = _first_decided(static, learned)
    rows = {
        oid: row
        for oid, row in truth.items()
        if row.get("courier_lane") == twist["courier_lane"] and first.get(oid, -1.0) >= start
    }
    choices = {"static_rules": policy_choices(static), "learned": policy_choices(learned)}
    return {"orders": len(rows), **_captured(rows, costs, choices)}


def evaluate_world(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    learned: list[Mapping[str, Any]],
    static: list[Mapping[str, Any]],
    holdout_share: float,
    twists: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every arm's figures in one world, plus the off-policy estimate of the static rules
    from the learned run's log and whether its interval covers the truth; with a drift
    twist among ``twists``, how each run's use of its action moved (:func:`course_after_drift`)."""
    arms = compare_arms(truth, costs, learned, static)
    losses = logged_losses(truth, learned, costs)
    values = {oid: float(r.get("order_value") or 0.0) for oid, r in truth.items()}
    segments = {oid: segment_of(r) for oid, r in truth.items()}
    log, explored = build_log(learned, losses, values, segments, holdout_share)
    target = {oid: c.action for oid, c in policy_choices(static).items()}
    contact_costs = {a: costs.contact.get(a, 0.0) for a in action_names()}
    true_loss = arms["arms"]["static_rules"]["loss"]
    out = {**arms, "by_period": captured_by_period(truth, costs, learned, static)}
    drift = [t for t in twists or () if t.get("kind") == "stops_working_in_lane"]
    if drift:
        out["drift"] = {
            "twist": drift[0],
            "static_rules": course_after_drift(truth, static, drift[0]),
            "learned": course_after_drift(truth, learned, drift[0]),
            "lane_after": captured_in_lane_after(truth, costs, learned, static, drift[0]),
        }
    plain = doubly_robust(log, target, contact_costs, explored)
    for key, est in (("ope_static_rules", plain), ("ope_static_rules_sn", plain.self_normalized)):
        assert est is not None
        out[key] = {
            **est.to_dict(),
            "true_loss": true_loss,
            "covered": est.ci_low <= true_loss <= est.ci_high,
        }
    return out


def _shares_by_week(drifting: list[Mapping[str, Any]], arm: str) -> dict[int, list[float]]:
    weeks: dict[int, list[float]] = {}
    for d in drifting:
        for row in d[arm]:
            weeks.setdefault(row["week"], []).append(row["share"])
    return weeks


def summarize_worlds(worlds: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Spread of every arm's captured share and money over worlds, the learned-minus-static
    gap, and the off-policy interval's coverage."""
    out: dict[str, Any] = {"worlds": len(worlds), "arms": {}}
    for name in ARM_ORDER:
        rows = [w["arms"][name] for w in worlds if name in w["arms"]]
        if not rows:
            continue
        out["arms"][name] = {
            "captured_share": spread(
                [r["captured_share"] for r in rows if r["captured_share"] is not None]
            ),
            "refund_leakage": spread([r["refund_leakage"] for r in rows]),
            "cost": spread([r["cost"] for r in rows]),
            "contacted_keepers": spread([r["contacted_keepers"] for r in rows]),
        }
    gaps = [
        w["arms"]["policy"]["captured_share"] - w["arms"]["static_rules"]["captured_share"]
        for w in worlds
        if w["arms"].get("static_rules")
        and w["arms"]["policy"]["captured_share"] is not None
        and w["arms"]["static_rules"]["captured_share"] is not None
    ]
    out["learned_minus_static"] = spread(gaps)
    periods: dict[int, list[Mapping[str, Any]]] = {}
    for w in worlds:
        for row in w.get("by_period") or ():
            if row["static_rules"] is not None and row["learned"] is not None:
                periods.setdefault(row["period"], []).append(row)
    out["by_period"] = [
        {
            "period": index,
            "static_rules": spread([r["static_rules"] for r in rows]),
            "learned": spread([r["learned"] for r in rows]),
            "learned_minus_static": spread([r["learned"] - r["static_rules"] for r in rows]),
        }
        for index, rows in sorted(periods.items())
    ]
    drifting = [w["drift"] for w in worlds if w.get("drift")]
    if drifting:
        out["drift"] = {
            arm: [
                {"week": week, "share": spread(shares)}
                for week, shares in sorted(_shares_by_week(drifting, arm).items())
            ]
            for arm in ("static_rules", "learned")
        }
        pairs = [
            (a["static_rules"], a["learned"])
            for a in (d["lane_after"] for d in drifting)
            if a["static_rules"] is not None and a["learned"] is not None
        ]
        out["drift"]["lane_after"] = {
            "static_rules": spread([s for s, _ in pairs]),
            "learned": spread([lr for _, lr in pairs]),
            "learned_minus_static": spread([lr - s for s, lr in pairs]),
        }
    for key, name in (("ope_static_rules", "ope_coverage"), ("ope_static_rules_sn", "ope_sn")):
        ope = [w[key] for w in worlds if key in w]
        covered = [o["covered"] for o in ope]
        widths = [(o["ci_high"] - o["ci_low"]) / 2 / o["true_loss"] for o in ope if o["true_loss"]]
        errors = [abs(o["loss"] - o["true_loss"]) / o["true_loss"] for o in ope if o["true_loss"]]
        out[name] = {
            "covered": sum(covered),
            "worlds": len(covered),
            "share": round(sum(covered) / len(covered), 4) if covered else None,
            "half_width_relative": spread(widths),
            "error_relative": spread(errors),
        }
    return out


def format_worlds(summary: Mapping[str, Any]) -> str:
    """The spread table printed by ``benchmarks/decision_worlds.py`` (and in the docs)."""
    labels = {**ARM_LABELS, "policy": "learned policy"}
    lines = [
        "| arm | captured share: median | p10 | p90 | refund leakage (median) | "
        "cost (median) | contacted keepers (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, arm in summary["arms"].items():
        cs = arm["captured_share"]
        lines.append(
            f"| {labels[name]} | {percent(cs['median'])} | {percent(cs['p10'])} | "
            f"{percent(cs['p90'])} | "
            f"{arm['refund_leakage']['median']:,.0f} | {arm['cost']['median']:,.0f} | "
            f"{arm['contacted_keepers']['median']:,.0f} |"
        )
    gap = summary["learned_minus_static"]
    if gap["n"]:
        lines.append("")
        lines.append(
            f"learned minus static rules (points of captured share): median "
            f"{gap['median'] * 100:+.1f}, p10 {gap['p10'] * 100:+.1f}, "
            f"worst world {gap['min'] * 100:+.1f}, best {gap['max'] * 100:+.1f}"
        )
    periods = summary.get("by_period") or []
    if len(periods) > 1:
        weeks = PERIOD_SECONDS // (7 * 86400)
        lines += [
            "",
            "| weeks of the first decision | static rules | learned | learned - static: "
            "median | p10 | worst | worlds |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in periods:
            gap, first = row["learned_minus_static"], row["period"] * weeks + 1
            lines.append(
                f"| {first}-{first + weeks - 1} | {percent(row['static_rules']['median'])} | "
                f"{percent(row['learned']['median'])} | {gap['median'] * 100:+.1f} | "
                f"{gap['p10'] * 100:+.1f} | {gap['min'] * 100:+.1f} | {gap['n']} |"
            )
    drift = summary.get("drift")
    if drift:
        lines += [
            "",
            "drift: share of decisions in the twisted lane, where the action was eligible, "
            "that chose it (median over worlds), by week from the change",
            "| week | " + " | ".join(str(r["week"]) for r in drift["learned"]) + " |",
            "| --- |" + " ---: |" * len(drift["learned"]),
        ]
        for arm, label in (("static_rules", "static rules"), ("learned", "learned")):
            cells = " | ".join(percent(r["share"]["median"]) for r in drift[arm])
            lines.append(f"| {label} | {cells} |")
        after = drift.get("lane_after")
        if after and after["learned_minus_static"]["n"]:
            gap = after["learned_minus_static"]
            lines.append(
                f"in that lane, orders first decided on after the change: static rules "
                f"captured {percent(after['static_rules']['median'])}, learned "
                f"{percent(after['learned']['median'])} (median); learned minus static "
                f"{gap['median'] * 100:+.1f} points (p10 {gap['p10'] * 100:+.1f}, worst "
                f"{gap['min'] * 100:+.1f}, best {gap['max'] * 100:+.1f})"
            )
    for key, name in (("ope_coverage", "doubly robust"), ("ope_sn", "self-normalised DR")):
        cov = summary.get(key) or {"worlds": 0}
        if not cov["worlds"]:
            continue
        width, error = cov["half_width_relative"], cov["error_relative"]
        lines.append(
            f"off-policy ({name}) 95% interval for the static rules, estimated from "
            f"the learned run's log, covers the true loss in {cov['covered']} of "
            f"{cov['worlds']} worlds; interval half-width {percent(width['median'])} of the "
            f"true loss (median; widest {percent(width['max'])}), estimate off by "
            f"{percent(error['median'])} (median; worst {percent(error['max'])})"
        )
    return "\n".join(lines)
