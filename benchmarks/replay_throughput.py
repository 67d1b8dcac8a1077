"""Replay throughput: events per second of the whole dataflow, with and without learning.

Simulates ``launch-week-backlog`` once, then replays it through the dataflow:

- *heuristic*: the fixed scorer, no online models (the Core flow);
- *learning*: online River models with the learner step (the Decisions flow);
- *batch 1*: learning, input batch size 1 (shows why batching matters).

and prints events/s and the ratio of each run to the heuristic baseline measured in the
same run. Run: ``python benchmarks/replay_throughput.py [--orders 100000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.simulation import simulate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-batch-1", action="store_true", help="skip the slow batch-1 run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        t0 = time.perf_counter()
        stats = simulate("launch-week-backlog", args.orders, args.seed, data)
        print(
            f"simulated {args.orders:,} orders, {sum(stats.events.values()):,} events "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        runs = [
            ("heuristic (no learning)", ReplayOptions(learn=False)),
            (
                "learning (River models)",
                ReplayOptions(learn=True, ground_truth=data / "ground_truth.jsonl"),
            ),
        ]
        if not args.skip_batch_1:
            runs.append(("learning, batch size 1", ReplayOptions(batch_size=1, learn=True)))
        base = None
        for name, opts in runs:
            run = run_replay(data, Path(tmp) / name.split()[0], options=opts)
            eps = run.events_per_second
            base = base or eps
            print(
                f"{name:<28} {run.input_records:>10,} events  {run.seconds:7.1f} s  "
                f"{eps:>10,.0f} events/s  ratio {eps / base:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
