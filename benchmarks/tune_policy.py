"""Tune the default policy's ranking thresholds on the tuning worlds (seeds 0-9) only.

For every point of a small grid over ``ranking.min_return_propensity`` and
``ranking.min_expected_saving``, replays each tuning world with the static rules and scores
the captured share of the oracle's avoidable loss (``operators/baselines.py``). Prints the
grid with the median and the worst world per point, and the point with the best median.
The reporting worlds (100-119) are never read here: ``benchmarks/decision_worlds.py``
reports on them with whatever this chose.

Run: ``python benchmarks/tune_policy.py [--seeds 0-9] [--orders 8000]``.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-9", help="tuning world seeds (never 100-119)")
    ap.add_argument("--scenario", default="launch-week-backlog")
    ap.add_argument("--orders", type=int, default=8_000)
    ap.add_argument("--learn", action="store_true", help="tune with online learning on")
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    if any(100 <= s <= 119 for s in seeds):
        ap.error("seeds 100-119 are the reporting worlds: tune on others")
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
