"""Tune the default policy's ranking thresholds on the tuning worlds (seeds 0-9) only.

For every point of a small grid over ``ranking.min_return_propensity`` and
``ranking.min_expected_saving``, replays each tuning world with the static rules and scores
the captured share of the oracle's avoidable loss (``operators/baselines.py``). Prints the
grid with the median and the worst world per point, and the point with the best median.
The reporting worlds (100-119, and 200-219, never looked at) are never read here:
``benchmarks/decision_worlds.py`` reports on them with whatever this chose.

``--learner`` tunes the learned policy's constants instead (``operators/bandit.py``: the
guard's confidence, the effect weights' prior strength, and whether an action's outcomes
also teach the shared no-action level): each tuning world is replayed once with the static
rules and once learning per grid point, and the table gives the learned-minus-static gap
in points of captured share (median, mean and worst world).

Run: ``python benchmarks/tune_policy.py [--seeds 0-9] [--orders 8000]``, or
``python benchmarks/tune_policy.py --learner --misspecified --scenario steady-state
--orders 10000``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.decision_worlds import parse_seeds  # noqa: E402
from flows.jsonl import read_jsonl  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.baselines import ActionCosts, compare_arms  # noqa: E402
from operators.evaluation import load_ground_truth  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402
from operators.worlds import spread  # noqa: E402

DEFAULT = ROOT / "operators" / "policies" / "default.yaml"
PROPENSITY = (0.0, 0.05, 0.10, 0.15, 0.25)
SAVING = (0.0, 0.5, 2.0)
#: The learner grid: (guard confidence, effect prior scale, joint level).
LEARNER_GRID = (
    (0.99, 1.0, False),
    (0.99, 1.0, True),
    (0.99, 4.0, True),
    (0.8, 4.0, True),
    (0.6, 4.0, True),
    (0.8, 1.0, True),
    (0.8, 8.0, True),
)
REPORTING = (range(100, 120), range(200, 220))


def variant(min_propensity: float, min_saving: float) -> RecoveryPolicy:
    doc = yaml.safe_load(DEFAULT.read_text())
    doc["ranking"]["min_return_propensity"] = min_propensity
    doc["ranking"]["min_expected_saving"] = min_saving
    return RecoveryPolicy.from_text(yaml.safe_dump(doc), f"tune({min_propensity},{min_saving})")


def one_world(world_seed: int, scenario: str, orders: int, learn: bool) -> dict[str, Any]:
    shares: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        simulate(scenario, orders, world_seed, data, world_seed=world_seed)
        truth_path = data / "ground_truth.jsonl"
        truth = load_ground_truth(truth_path)
        for p, s in itertools.product(PROPENSITY, SAVING):
            policy = variant(p, s)
            out = Path(tmp) / f"{p}-{s}"
            opts = ReplayOptions(learn=learn, ground_truth=truth_path if learn else None)
            run_replay(data, out, policy, opts)
            block = compare_arms(
                truth, ActionCosts.from_policy(policy), read_jsonl(out / "decisions.jsonl")
            )
            shares[f"{p}|{s}"] = block["arms"]["policy"]["captured_share"]
    return shares


def learner_world(
    world_seed: int, scenario: str, orders: int, misspecified: bool
) -> dict[str, float | None]:
    """Captured share of the static rules and of the learned policy per grid point."""
    import operators.bandit as bandit

    policy = RecoveryPolicy.load(DEFAULT)
    costs = ActionCosts.from_policy(policy)
    shares: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        simulate(
            scenario, orders, world_seed, data, world_seed=world_seed, misspecified=misspecified
        )
        truth_path = data / "ground_truth.jsonl"
        truth = load_ground_truth(truth_path)
        run_replay(data, Path(tmp) / "static", policy, ReplayOptions(learn=False))
        static = read_jsonl(Path(tmp) / "static" / "decisions.jsonl")
        for confidence, scale, joint in LEARNER_GRID:
            bandit.GUARD_CONFIDENCE = confidence
            bandit.EFFECT_PRECISION_SCALE = scale
            bandit.JOINT_LEVEL = joint
            out = Path(tmp) / f"{confidence}-{scale}-{joint}"
            run_replay(data, out, policy, ReplayOptions(learn=True, ground_truth=truth_path))
            block = compare_arms(truth, costs, read_jsonl(out / "decisions.jsonl"), static)
            arms = block["arms"]
            shares["static"] = arms["static_rules"]["captured_share"]
            shares[f"{confidence}|{scale}|{joint}"] = arms["policy"]["captured_share"]
    return shares


def tune_learner(args: argparse.Namespace, seeds: list[int]) -> int:
    n = len(seeds)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(args.processes, 1)) as pool:
        worlds = list(
            pool.map(
                learner_world, seeds, [args.scenario] * n, [args.orders] * n,
                [args.misspecified] * n,
            )
        )  # fmt: skip
    kind = "misspecified " if args.misspecified else ""
    static = spread([w["static"] for w in worlds if w["static"] is not None])
    print(
        f"learned minus static rules on {kind}tuning worlds {args.seeds} ({args.scenario}, "
        f"{args.orders:,} orders); static rules captured {static['median']:.1%} (median)"
    )
    head = ("confidence", 11), ("effect x", 10), ("joint", 7), ("learned", 9), ("gap", 8)
    print("".join(f"{h:>{w}}" for h, w in head) + f"{'mean':>8}{'worst':>8}")
    for confidence, scale, joint in LEARNER_GRID:
        key = f"{confidence}|{scale}|{joint}"
        pairs = [(w[key], w["static"]) for w in worlds if None not in (w[key], w["static"])]
        gaps = [100 * (a - b) for a, b in pairs]
        learned = spread([a for a, _ in pairs])
        gap = spread(gaps)
        print(
            f"{confidence:>11}{scale:>10}{joint!s:>7}{learned['median']:>9.1%}"
            f"{gap['median']:>+8.1f}{sum(gaps) / len(gaps):>+8.2f}{gap['min']:>+8.1f}"
        )
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-9", help="tuning world seeds (never 100-119)")
    ap.add_argument("--scenario", default="launch-week-backlog")
    ap.add_argument("--orders", type=int, default=8_000)
    ap.add_argument("--learn", action="store_true", help="tune with online learning on")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--learner", action="store_true", help="tune the learner's constants")
    ap.add_argument("--misspecified", action="store_true", help="worlds with prior errors")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    if any(s in r for s in seeds for r in REPORTING):
        ap.error("seeds 100-119 and 200-219 are the reporting worlds: tune on others")
    if args.learner:
        return tune_learner(args, seeds)
    started = time.perf_counter()
    n = len(seeds)
    with ProcessPoolExecutor(max_workers=max(args.processes, 1)) as pool:
        worlds = list(
            pool.map(one_world, seeds, [args.scenario] * n, [args.orders] * n, [args.learn] * n)
        )
    print(f"captured share on tuning worlds {args.seeds} ({args.scenario}, {args.orders:,} orders)")
    print(f"{'min_return_propensity':>22}{'min_expected_saving':>21}{'median':>9}{'worst':>9}")
    best = None
    for p, s in itertools.product(PROPENSITY, SAVING):
        values = [w[f"{p}|{s}"] for w in worlds if w[f"{p}|{s}"] is not None]
        sp = spread(values)
        print(f"{p:>22}{s:>21}{sp['median']:>9.1%}{sp['min']:>9.1%}")
        if best is None or sp["median"] > best[2]:
            best = (p, s, sp["median"])
    assert best is not None
    print(
        f"\nbest median: min_return_propensity {best[0]}, min_expected_saving {best[1]} "
        f"({best[2]:.1%}); done in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
