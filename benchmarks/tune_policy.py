"""Tune the default policy's ranking thresholds on the tuning worlds (seeds 0-9) only.

For every point of a small grid over ``ranking.min_return_propensity`` and
``ranking.min_expected_saving``, replays each tuning world with the static rules and scores
the captured share of the oracle's avoidable loss (``operators/baselines.py``). Prints the
grid with the median and the worst world per point, and the point with the best median.
The reporting worlds (100-119, and 200-219, never looked at) are never read here:
``benchmarks/decision_worlds.py`` reports on them with whatever this chose.

``--learner`` tunes the learned policy's keys instead (``LEARNER_GRID``: the guard's
confidence, the prior's weight in outcomes, the exploration rate and the choice rule, each
as an override of ``--policy``): each tuning world is replayed once with the static rules
and once learning per grid point, and the table gives the learned-minus-static gap in
points of captured share (median, mean and worst world).

Run: ``python benchmarks/tune_policy.py [--seeds 0-9] [--orders 8000]``, or
``python benchmarks/tune_policy.py --learner --misspecified --scenario steady-season
--orders 40000 --policy operators/policies/learning.yaml``.
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

import operators.bandit as bandit  # noqa: E402
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
#: The learner grid: named overrides of the policy's ``learning`` and ``ranking`` keys.
LEARNER_GRID: dict[str, dict[str, dict[str, Any]]] = {
    "policy as shipped": {},
    "guard 0.5": {"learning": {"guard_confidence": 0.5}},
    "guard 0.8": {"learning": {"guard_confidence": 0.8}},
    "guard 0.99": {"learning": {"guard_confidence": 0.99}},
    "prior 5": {"learning": {"prior_outcomes": 5}},
    "prior 50": {"learning": {"prior_outcomes": 50}},
    "exploration 0.2": {"ranking": {"exploration": 0.2}},
    "thompson": {"learning": {"choice": "thompson"}},
    "thompson, prior 5": {"learning": {"choice": "thompson", "prior_outcomes": 5}},
    "horizon 7 days": {"learning": {"label_horizon_days": 7}},
    "horizon 10 days": {"learning": {"label_horizon_days": 10}},
    "guard 0.8, prior 5": {"learning": {"guard_confidence": 0.8, "prior_outcomes": 5}},
    # "bandit": not policy keys but constants of operators/bandit.py, set in the worker for
    # one run.
    "segment crosses": {"learning": {"segment_crosses": ["point_x_lane", "point_x_family"]}},
    "effect x1, guard 0.8, prior 5": {
        "learning": {"guard_confidence": 0.8, "prior_outcomes": 5},
        "bandit": {"EFFECT_PRECISION_SCALE": 1.0},
    },
    "effect x2, guard 0.8, prior 5": {
        "learning": {"guard_confidence": 0.8, "prior_outcomes": 5},
        "bandit": {"EFFECT_PRECISION_SCALE": 2.0},
    },
    "full covariance": {"learning": {"covariance": "full"}},
    "full covariance, guard 0.95": {"learning": {"covariance": "full", "guard_confidence": 0.95}},
    "full covariance, guard 0.6": {"learning": {"covariance": "full", "guard_confidence": 0.6}},
    "full covariance, prior 20": {"learning": {"covariance": "full", "prior_outcomes": 20}},
    "full covariance, guard 0.5": {"learning": {"covariance": "full", "guard_confidence": 0.5}},
    "full covariance, guard 0.6, crosses": {
        "learning": {
            "covariance": "full",
            "guard_confidence": 0.6,
            "segment_crosses": ["point_x_lane", "point_x_family"],
        },
    },
    "forget 14 days": {"learning": {"outcome_half_life_days": 14}},
    "forget 28 days": {"learning": {"outcome_half_life_days": 28}},
    "forget 56 days": {"learning": {"outcome_half_life_days": 56}},
    "eligible-set keys, guard 0.6": {
        "learning": {"guard_confidence": 0.6, "segment_crosses": ["point_x_eligible_set"]},
    },
    "eligible-set keys, guard 0.5": {
        "learning": {"guard_confidence": 0.5, "segment_crosses": ["point_x_eligible_set"]},
    },
    "eligible-set keys, guard 0.8": {
        "learning": {"guard_confidence": 0.8, "segment_crosses": ["point_x_eligible_set"]},
    },
    "eligible-set keys and crosses, guard 0.6": {
        "learning": {
            "guard_confidence": 0.6,
            "segment_crosses": ["point_x_lane", "point_x_family", "point_x_eligible_set"],
        },
    },
    "crosses, guard 0.8, prior 5": {
        "learning": {
            "guard_confidence": 0.8,
            "prior_outcomes": 5,
            "segment_crosses": ["point_x_lane", "point_x_family"],
        },
    },
}
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


def with_overrides(base: Path, name: str, overrides: dict[str, dict[str, Any]]) -> RecoveryPolicy:
    """The policy in ``base`` with some of its sections' keys replaced."""
    doc = yaml.safe_load(base.read_text())
    for section, keys in overrides.items():
        doc.setdefault(section, {}).update(keys)
    return RecoveryPolicy.from_text(yaml.safe_dump(doc), f"tune({name})")


def learner_world(
    world_seed: int,
    scenario: str,
    orders: int,
    misspecified: bool,
    base: Path,
    points: list[str],
    drift: bool = False,
) -> dict[str, float | None]:
    """Captured share of the static rules and of the learned policy per grid point."""
    policy = RecoveryPolicy.load(base)
    costs = ActionCosts.from_policy(policy)
    shares: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        simulate(
            scenario, orders, world_seed, data, world_seed=world_seed,
            misspecified=misspecified, drift=drift,
        )  # fmt: skip
        truth_path = data / "ground_truth.jsonl"
        truth = load_ground_truth(truth_path)
        run_replay(data, Path(tmp) / "static", policy, ReplayOptions(learn=False))
        static = read_jsonl(Path(tmp) / "static" / "decisions.jsonl")
        for i, name in enumerate(points):
            overrides = dict(LEARNER_GRID[name])
            constants = [(bandit, k, v) for k, v in overrides.pop("bandit", {}).items()]
            saved = [(module, k, getattr(module, k)) for module, k, _ in constants]
            variant_policy = with_overrides(base, name, overrides)
            out = Path(tmp) / f"learned-{i}"
            opts = ReplayOptions(learn=True, ground_truth=truth_path)
            for module, k, v in constants:
                setattr(module, k, v)
            try:
                run_replay(data, out, variant_policy, opts)
            finally:
                for module, k, v in saved:
                    setattr(module, k, v)
            block = compare_arms(truth, costs, read_jsonl(out / "decisions.jsonl"), static)
            arms = block["arms"]
            shares["static"] = arms["static_rules"]["captured_share"]
            shares[name] = arms["policy"]["captured_share"]
    return shares


def tune_learner(args: argparse.Namespace, seeds: list[int]) -> int:
    n = len(seeds)
    base = Path(args.policy) if args.policy else DEFAULT
    points = args.points.split(";") if args.points else list(LEARNER_GRID)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(args.processes, 1)) as pool:
        worlds = list(
            pool.map(
                learner_world, seeds, [args.scenario] * n, [args.orders] * n,
                [args.misspecified] * n, [base] * n, [points] * n, [args.drift] * n,
            )
        )  # fmt: skip
    kind = ("misspecified " if args.misspecified else "") + ("drifting " if args.drift else "")
    static = spread([w["static"] for w in worlds if w["static"] is not None])
    print(
        f"learned minus static rules on {kind}tuning worlds {args.seeds} ({args.scenario}, "
        f"{args.orders:,} orders, {base.name}); static rules captured "
        f"{static['median']:.1%} (median)"
    )
    print(f"{'grid point':<22}{'learned':>9}{'gap':>8}{'mean':>8}{'worst':>8}")
    for name in points:
        pairs = [(w[name], w["static"]) for w in worlds if None not in (w[name], w["static"])]
        gaps = [100 * (a - b) for a, b in pairs]
        learned = spread([a for a, _ in pairs])
        gap = spread(gaps)
        print(
            f"{name:<22}{learned['median']:>9.1%}{gap['median']:>+8.1f}"
            f"{sum(gaps) / len(gaps):>+8.2f}{gap['min']:>+8.1f}"
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
    ap.add_argument(
        "--drift", action="store_true", help="with --learner: reassurance stops working halfway"
    )
    ap.add_argument("--policy", help="with --learner: the policy whose learning keys are tuned")
    ap.add_argument("--points", help="with --learner: grid points to run, separated by ';'")
    args = ap.parse_args()
    if args.points and not set(args.points.split(";")) <= set(LEARNER_GRID):
        ap.error(f"--points: choose among {'; '.join(LEARNER_GRID)}")
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
