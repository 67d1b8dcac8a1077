"""Scaling with processes: one replay on 1 process against the same replay on N processes.

Simulates ``launch-week-backlog`` once, replays it with one process (``run_replay``, one
worker) and with a local Bytewax cluster of ``--processes`` processes (``salvage replay
--processes N``, ``flows/cluster.py``), and prints, from this one run: wall time and
events/s of each, the ratio N-process / 1-process, the CPU seconds each used (all the
cluster's processes, and each one's), the load average, and whether every order closed
with the same outcome (kind, resolution time, values) in both; it stops if one did not.

On a shared machine wall time follows the other users' load: the CPU columns do not.
One process's CPU over the busiest cluster process's CPU is about the throughput ratio
the cluster would reach on N idle cores. ``--rounds R`` repeats both replays, alternating
which goes first, and prints the medians.

The 1-process figure includes the same start-up the cluster pays (a fresh interpreter per
run), so the ratio compares like with like. Learning is off by default: each cluster
process learns only from its own orders (flows/cluster.py), so with learning on the two
sides make different decisions and do different work.

Run: ``python benchmarks/replay_processes.py [--orders 100000] [--processes 2] [--rounds 1]
[--learning]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cluster import run_cluster_replay  # noqa: E402
from flows.jsonl import read_jsonl  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.simulation import simulate  # noqa: E402

OUTCOME_FIELDS = ("outcome", "resolved_at", "refund_value", "retained_value", "order_value")


def _one_process(data: str, out: str, options: ReplayOptions) -> None:
    run_replay(Path(data), Path(out), options=options)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load_average() -> str:
    """1, 5 and 15 minute load averages: the machine may be shared."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def outcomes(out: Path) -> dict[str, tuple[Any, ...]]:
    return {
        o["order_id"]: tuple(o[k] for k in OUTCOME_FIELDS)
        for o in read_jsonl(out / "outcomes.jsonl")
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--learning", action="store_true", help="online models on (see above)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="repeat both replays, alternating which goes first"
    )
    args = ap.parse_args()
    options = ReplayOptions(learn=args.learning)
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        stats = simulate("launch-week-backlog", args.orders, args.seed, data)
        events = sum(stats.events.values())
        print(f"simulated {args.orders:,} orders, {events:,} events")

        ratios, cpu_ratios = [], []
        for round_ in range(args.rounds):
            # Alternate which runs first, so a change in the machine's load over the run
            # does not always favour the same side.
            order = ("one", "many") if round_ % 2 == 0 else ("many", "one")
            print(f"round {round_ + 1}: load average before {load_average()}")
            timed: dict[str, tuple[float, float]] = {}
            done: dict[str, Any] = {}
            for side in order:
                out = Path(tmp) / side
                cpu0, t0 = children_cpu(), time.perf_counter()
                if side == "one":
                    proc = ctx.Process(target=_one_process, args=(str(data), str(out), options))
                    proc.start()
                    proc.join()
                    if proc.exitcode != 0:
                        raise SystemExit(f"the 1-process replay failed ({proc.exitcode})")
                else:
                    done = run_cluster_replay(data, out, None, options, args.processes)
                timed[side] = (time.perf_counter() - t0, children_cpu() - cpu0)
            (one_s, one_cpu), (many_s, many_cpu) = timed["one"], timed["many"]
            a, b = outcomes(Path(tmp) / "one"), outcomes(Path(tmp) / "many")
            same = sum(1 for k, v in a.items() if b.get(k) == v)
            busiest = max(done["process_cpu_seconds"])
            print(
                f"  {'1 process':<13} {one_s:7.1f} s  {events / one_s:>9,.0f} events/s  "
                f"cpu {one_cpu:6.1f} s"
            )
            print(
                f"  {f'{args.processes} processes':<13} {many_s:7.1f} s  "
                f"{events / many_s:>9,.0f} events/s  cpu {many_cpu:6.1f} s  (records per "
                f"process {done['process_records']}, CPU s per process "
                f"{done['process_cpu_seconds']})"
            )
            print(
                f"  ratio {args.processes} / 1: throughput {one_s / many_s:.2f}; all processes' "
                f"CPU {many_cpu / one_cpu:.2f}x one process's; one process's CPU / the "
                f"busiest process's {one_cpu / busiest:.2f} (about the throughput ratio on "
                f"{args.processes} idle cores)"
            )
            print(f"  load average after: {load_average()}")
            print(
                f"  orders with the same outcome: {same:,} of {len(a):,} "
                f"({len(b):,} in the cluster)"
            )
            if same != len(a) or len(b) != len(a):
                raise SystemExit("outcomes differ between 1 process and the cluster")
            ratios.append(one_s / many_s)
            cpu_ratios.append(one_cpu / busiest)
        if args.rounds > 1:
            print(
                f"median over {args.rounds} rounds: throughput ratio "
                f"{statistics.median(ratios):.2f}, CPU ratio {statistics.median(cpu_ratios):.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
