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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.jsonl import read_jsonl  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.baselines import ActionCosts  # noqa: E402
from operators.evaluation import load_ground_truth  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402
from operators.worlds import evaluate_world, format_worlds, summarize_worlds  # noqa: E402


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


def one_world(
    world_seed: int,
    scenario: str,
    orders: int,
    misspecified: bool,
    policy_path: str | None,
    batch_size: int,
) -> dict[str, Any]:
    policy = RecoveryPolicy.load(policy_path) if policy_path else RecoveryPolicy.default()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        # The event seed follows the world seed, so held-out worlds share no history with
        # the tuning worlds either.
        simulate(
            scenario, orders, world_seed, data, world_seed=world_seed, misspecified=misspecified
        )
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
        policy.holdout_share,
    )  # fmt: skip
    result["world_seed"] = world_seed
    result["twists"] = world.get("twists")
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="100-119", help="world seeds, e.g. 100-119 or 0-9")
    ap.add_argument("--scenario", default="steady-state")
    ap.add_argument("--orders", type=int, default=20_000, help="orders per world")
    ap.add_argument("--misspecified", action="store_true", help="worlds with prior errors")
    ap.add_argument("--policy", help="policy file (default: the embedded default policy)")
    ap.add_argument("--processes", type=int, default=2, help="worlds evaluated in parallel")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", metavar="FILE", help="also write every world's figures here")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    started = time.perf_counter()
    job = (args.scenario, args.orders, args.misspecified, args.policy, args.batch_size)
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
    kind = "misspecified worlds" if args.misspecified else "worlds"
    held_out = "held-out " if all(100 <= s <= 119 for s in seeds) else ""
    print(
        f"\n{len(worlds)} {held_out}{kind} (seeds {args.seeds}), {args.scenario}, "
        f"{args.orders:,} orders each; captured share = share of the oracle's avoidable "
        f"loss (refunds + contact and credit cost) avoided\n"
    )
    print(format_worlds(summary))
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "summary": summary, "worlds": worlds}, indent=2)
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
