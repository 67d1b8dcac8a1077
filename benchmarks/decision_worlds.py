"""Decision quality over held-out simulated worlds: every baseline, the static rules, the
learned policy and the oracle, as the spread of the captured share over worlds.

For each world seed: simulate the scenario with that world (``--misspecified`` draws
worlds where the heuristic prior is wrong for some segments), replay it with the static
rules (``--no-learning``) and with online learning (labels from the world's truth, only
once a live system would know them), and score every arm on the truth. Also checks the
doubly robust off-policy estimate of the static rules, computed from the learned run's
log alone, against the truth.

Run::

    python benchmarks/decision_worlds.py                       # seeds 100-119 (held out)
    python benchmarks/decision_worlds.py --misspecified --json worlds.json
    python benchmarks/decision_worlds.py --seeds 0-9           # the tuning worlds

This is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.jsonl import read_jsonl  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.baselines import (  # noqa: E402
    ActionCosts,
    Choice,
    captured_share,
    evaluate_arm,
    oracle_choices,
    policy_choices,
    truth_outcome,
)
from operators.contract import parse_ts  # noqa: E402
from operators.evaluation import load_ground_truth  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402
from operators.worlds import (  # noqa: E402
    evaluate_world,
    format_worlds,
    spread,
    summarize_worlds,
)

#: Decisions where the policy cannot choose: below the propensity gate, or at the
#: automation boundary (a person decides).
NOT_ACTIONABLE = frozenset({"below_propensity_threshold", "automation_boundary", "awaiting_review"})


def parse_seeds(text: str) -> list[int]:
    """``100-119`` or ``1,5,9`` (or a mix) as a list of ints."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def _twisted(decision: Mapping[str, Any], twists: list[dict[str, Any]]) -> bool:
    """Whether the decision's action is the one a twist made useless or harmful here."""
    for t in twists:
        if t.get("action") != decision["action"]:
            continue
        if t["kind"] == "useless_in_lane" and decision.get("courier_lane") == t["courier_lane"]:
            return True
        if t["kind"] == "backfire_in_family" and decision.get("sku_family") == t["sku_family"]:
            return True
    return False


def _lane_of(d: Mapping[str, Any]) -> str:
    lane = d.get("courier_lane") or "-"
    return str(lane).rsplit(":", 1)[-1]


#: Segment keys of the hindsight bound (``segment_oracle``): coarse (what the policy's
#: triggers tell apart) and fine (what a per-lane, per-family learner could tell apart).
SEGMENTATIONS: dict[str, Any] = {
    "point": lambda d: (d.get("point"), tuple(d.get("eligible") or ())),
    "point_lane_family": lambda d: (
        d.get("point"),
        _lane_of(d),
        d.get("sku_family"),
        tuple(d.get("eligible") or ()),
    ),
}


def segment_oracle(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    decisions: list[Mapping[str, Any]],
    segment_of: Any,
) -> float:
    """The loss of the best *per-segment* rule chosen in hindsight: for every order, its
    first decision where the policy chooses puts it in a segment; per segment, one of
    "what the run did", "nothing", or one eligible action at that decision, whichever
    loses least over the segment's orders. What a learner that knew every segment's
    average effect from the first order could do (it cannot tell orders within a
    segment apart): an upper bound for learning per segment, generous, as it is picked
    on the very orders it is scored on."""
    by_order: dict[str, list[Mapping[str, Any]]] = {}
    for d in decisions:
        by_order.setdefault(d["order_id"], []).append(d)
    run = policy_choices(decisions)
    none = Choice("none")
    total = 0.0
    segments: dict[Any, dict[str, float]] = {}
    for oid, row in truth.items():
        value = float(row.get("order_value") or 0.0)
        mine = run.get(oid, none)
        taken = mine.actions or ((mine.action,) if mine.action != "none" else ())
        run_loss = float(truth_outcome(row, mine.action, mine.at)["refund_value"])
        run_loss += sum(costs.contact.get(a, 0.0) for a in taken)
        run_loss += max((costs.credit(a, value) for a in taken), default=0.0)
        first = next(
            (
                d
                for d in by_order.get(oid, ())
                if d.get("eligible") and d["rule"] not in NOT_ACTIONABLE
            ),
            None,
        )
        if first is None:
            total += run_loss
            continue
        at = parse_ts(first["decided_at"])
        seg = segments.setdefault(segment_of(first), {})
        options = {"run": run_loss, "none": float(row["outcomes"]["none"]["refund_value"])}
        for a in first["eligible"]:
            options[a] = float(truth_outcome(row, a, at)["refund_value"]) + costs.of(a, value)
        for k, v in options.items():
            seg[k] = seg.get(k, 0.0) + v
    for seg in segments.values():
        total += min(seg.values())
    return total


def static_bounds(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    static: list[Mapping[str, Any]],
    twists: list[dict[str, Any]],
) -> dict[str, Any]:
    """How much room the policy leaves to learning, from a static-rules run: captured
    shares of

    - ``static_rules``: the run itself;
    - ``twist_aware``: the static rules that never use an action where a twist made it
      useless or harmful (a learner that knew the twists from the first order);
    - ``eligible_oracle``: per order, the best first action (or none) among those eligible
      at the points where the policy could choose (above the propensity gate, outside the
      automation boundary), at their times, knowing each order's outcome: an upper bound
      for any learner that keeps the policy's eligibility, gate and boundary;
    - ``eligible_oracle_all_points``: the same at every decision point, gate and boundary
      ignored;

    and the decisions a learner could change (``actionable_decisions``), the share of the
    oracle's avoidable loss on orders without any such decision (the policy never has a
    choice for them: below the gate, at the boundary, or nothing eligible), and per twist the
    actionable decisions where its action was eligible in its lane or family (the most
    outcomes that segment can teach in the run)."""
    by_order: dict[str, list[Mapping[str, Any]]] = {}
    for d in static:
        by_order.setdefault(d["order_id"], []).append(d)
    oracle = oracle_choices(truth, costs)
    status_quo = evaluate_arm("status_quo", truth, {}, costs)
    oracle_arm = evaluate_arm("oracle", truth, oracle, costs)
    static_arm = evaluate_arm("static_rules", truth, policy_choices(static), costs)
    aware_decisions = [{**d, "action": "none"} if _twisted(d, twists) else d for d in static]
    aware = evaluate_arm("twist_aware", truth, policy_choices(aware_decisions), costs)
    actionable_loss, all_points_loss, out_of_reach = 0.0, 0.0, 0.0
    actionable = 0
    for oid, row in truth.items():
        value = float(row.get("order_value") or 0.0)
        none = float(row["outcomes"]["none"]["refund_value"])
        best_actionable = best_all = none
        chooses = False
        for d in by_order.get(oid, ()):
            at = parse_ts(d["decided_at"])
            if d.get("eligible") and d["rule"] not in NOT_ACTIONABLE:
                actionable += 1
                chooses = True
            for a in d.get("eligible") or ():
                loss = float(truth_outcome(row, a, at)["refund_value"]) + costs.of(a, value)
                best_all = min(best_all, loss)
                if d["rule"] not in NOT_ACTIONABLE:
                    best_actionable = min(best_actionable, loss)
        actionable_loss += best_actionable
        all_points_loss += best_all
        if not chooses and oid in oracle:
            choice: Choice = oracle[oid]
            out_of_reach += none - float(truth_outcome(row, choice.action, None)["refund_value"])
            out_of_reach -= costs.of(choice.action, value)
    avoidable = status_quo.loss - oracle_arm.loss

    def share_of(loss: float) -> float | None:
        return round((status_quo.loss - loss) / avoidable, 4) if avoidable > 0 else None

    segments = {}
    for t in twists:
        if t["kind"] not in ("useless_in_lane", "backfire_in_family"):
            continue
        where = "courier_lane" if t["kind"] == "useless_in_lane" else "sku_family"
        segments[t["kind"]] = sum(
            1
            for d in static
            if d.get("eligible")
            and d["rule"] not in NOT_ACTIONABLE
            and t["action"] in d["eligible"]
            and d.get(where) == t[where]
        )
    seg_bounds = {
        f"segment_oracle_{name}": share_of(segment_oracle(truth, costs, static, key))
        for name, key in SEGMENTATIONS.items()
    }
    return {
        **seg_bounds,
        "static_rules": captured_share(status_quo, static_arm, oracle_arm),
        "twist_aware": captured_share(status_quo, aware, oracle_arm),
        "eligible_oracle": share_of(actionable_loss),
        "eligible_oracle_all_points": share_of(all_points_loss),
        "actionable_decisions": actionable,
        "avoidable_without_actionable_decision": round(out_of_reach / avoidable, 4)
        if avoidable > 0
        else None,
        "twist_segment_decisions": segments,
    }


def format_bounds(worlds: list[Mapping[str, Any]]) -> str:
    """Median (p10-p90) over worlds of each bound in :func:`static_bounds`."""
    rows = [w["bounds"] for w in worlds if w.get("bounds")]
    if not rows:
        return ""
    lines = ["| room for learning (from the static-rules run) | median | p10 | p90 |"]
    lines.append("| --- | ---: | ---: | ---: |")
    labels = {
        "static_rules": "static rules (captured share)",
        "twist_aware": "static rules that know the twists",
        "segment_oracle_point": "best rule per point x eligible set, in hindsight",
        "segment_oracle_point_lane_family": "best rule per point x lane x family x eligible "
        "set, in hindsight",
        "eligible_oracle": "best eligible action per order, where the policy chooses",
        "eligible_oracle_all_points": "... at every decision point (gate and boundary ignored)",
        "avoidable_without_actionable_decision": "share of the avoidable loss on orders "
        "where the policy never chooses",
    }
    for key, label in labels.items():
        sp = spread([r[key] for r in rows if r.get(key) is not None])
        lines.append(f"| {label} | {sp['median']:.1%} | {sp['p10']:.1%} | {sp['p90']:.1%} |")
    sp = spread([r["actionable_decisions"] for r in rows])
    lines.append(
        f"| decisions where the policy chooses (count) | {sp['median']:,.0f} | "
        f"{sp['p10']:,.0f} | {sp['p90']:,.0f} |"
    )
    for kind in ("useless_in_lane", "backfire_in_family"):
        counts = [
            r["twist_segment_decisions"][kind] for r in rows if kind in r["twist_segment_decisions"]
        ]
        if counts:
            sp = spread(counts)
            lines.append(
                f"| ... of them with the {kind.replace('_', ' ')} action eligible there "
                f"(count) | {sp['median']:,.0f} | {sp['p10']:,.0f} | {sp['p90']:,.0f} |"
            )
    return "\n".join(lines)


def one_world(
    world_seed: int,
    scenario: str,
    orders: int,
    misspecified: bool,
    policy_path: str | None,
    batch_size: int,
    bounds: bool = False,
    drift: bool = False,
) -> dict[str, Any]:
    policy = RecoveryPolicy.load(policy_path) if policy_path else RecoveryPolicy.default()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        # The event seed follows the world seed, so held-out worlds share no history with
        # the tuning worlds either.
        simulate(
            scenario, orders, world_seed, data, world_seed=world_seed,
            misspecified=misspecified, drift=drift,
        )  # fmt: skip
        truth_path = data / "ground_truth.jsonl"
        runs = {}
        for name, learn in (("static", False), ("learned", True)):
            opts = ReplayOptions(
                batch_size=batch_size, learn=learn, ground_truth=truth_path if learn else None
            )
            run_replay(data, Path(tmp) / name, policy, opts)
            runs[name] = read_jsonl(Path(tmp) / name / "decisions.jsonl")
        truth = load_ground_truth(truth_path)
        world = (
            json.loads((data / "world.json").read_text()) if (data / "world.json").exists() else {}
        )
    result = evaluate_world(
        truth, ActionCosts.from_policy(policy), runs["learned"], runs["static"],
        policy.holdout_share, world.get("twists"),
    )  # fmt: skip
    result["world_seed"] = world_seed
    result["twists"] = world.get("twists")
    if bounds:
        result["bounds"] = static_bounds(
            truth, ActionCosts.from_policy(policy), runs["static"], world.get("twists") or []
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="100-119", help="world seeds, e.g. 100-119 or 0-9")
    ap.add_argument("--scenario", default="steady-state")
    ap.add_argument("--orders", type=int, default=20_000, help="orders per world")
    ap.add_argument("--misspecified", action="store_true", help="worlds with prior errors")
    ap.add_argument(
        "--drift",
        action="store_true",
        help="reassurance stops working in one lane halfway through (does learning notice?)",
    )
    ap.add_argument("--policy", help="policy file (default: the embedded default policy)")
    ap.add_argument("--processes", type=int, default=2, help="worlds evaluated in parallel")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", metavar="FILE", help="also write every world's figures here")
    ap.add_argument(
        "--bounds",
        action="store_true",
        help="also print how much room the policy leaves to learning (static_bounds)",
    )
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    started = time.perf_counter()
    job = (
        args.scenario, args.orders, args.misspecified, args.policy, args.batch_size,
        args.bounds, args.drift,
    )  # fmt: skip
    with ProcessPoolExecutor(max_workers=max(args.processes, 1)) as pool:
        worlds = list(pool.map(one_world, seeds, *[[x] * len(seeds) for x in job]))
    for w in worlds:
        a = w["arms"]
        print(
            f"world {w['world_seed']:>4}: static {a['static_rules']['captured_share']:+.1%}  "
            f"learned {a['policy']['captured_share']:+.1%}  "
            f"oracle avoidable {w['avoidable_loss']:,.0f}  "
            f"OPE {'covers' if w['ope_static_rules']['covered'] else 'MISSES'}  "
            f"({w['seconds']:.0f} s)",
            flush=True,
        )
    summary = summarize_worlds(worlds)
    kind = ("misspecified " if args.misspecified else "") + ("drifting " if args.drift else "")
    kind += "worlds"
    held_out = "held-out " if all(100 <= s <= 119 for s in seeds) else ""
    print(
        f"\n{len(worlds)} {held_out}{kind} (seeds {args.seeds}), {args.scenario}, "
        f"{args.orders:,} orders each; captured share = share of the oracle's avoidable "
        f"loss (refunds + contact and credit cost) avoided\n"
    )
    print(format_worlds(summary))
    if args.bounds:
        print()
        print(format_bounds(worlds))
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "summary": summary, "worlds": worlds}, indent=2)
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
