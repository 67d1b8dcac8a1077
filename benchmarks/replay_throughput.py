"""Replay throughput: events per second of the whole dataflow, against bare Bytewax.

Simulates ``launch-week-backlog`` once, then, over the same files in the same run:

- *bare Bytewax*: the floor any flow over these files pays: each file read line by line
  in batches of ``--batch-size`` (``FileSource``), decoded with orjson, keyed by
  ``order_id``, one counter per order (``stateful_map``), every count written to a sink
  that drops it;
- *heuristic*: the replay with the fixed scorer, no online models (``--no-learning``);
- *learning*: online River models with the learner step (the default replay);
- *batch 1*: learning, input batch size 1 (shows why batching matters; ``--batch-1``).

Each replay writes every output. Runs alternate ``--repeat`` times; the table shows the
median wall time and CPU time (this process's, the run is single-threaded Python: on a
shared, loaded machine CPU time is the steadier measure) of each, and the events per
second of each against the bare flow's. Run:
``python benchmarks/replay_throughput.py [--orders 100000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bytewax.operators as op  # noqa: E402
import orjson  # noqa: E402
from bytewax.connectors.files import FileSource  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.outputs import DynamicSink, StatelessSinkPartition  # noqa: E402
from bytewax.testing import run_main  # noqa: E402

from flows.replay import ReplayOptions, run_replay  # noqa: E402
from flows.runtime import tune_gc  # noqa: E402
from flows.sources import find_stream_files  # noqa: E402
from operators.simulation import simulate  # noqa: E402


class _Drop(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class _DropSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Drop:
        return _Drop()


def _count(n: int | None, _event: Any) -> tuple[int, int]:
    n = (n or 0) + 1
    return n, n


def bare_bytewax(input_dir: Path, batch_size: int) -> tuple[int, float]:
    """(events, seconds) of the bare flow over the stream files of ``input_dir``."""
    flow = Dataflow("bare")
    streams = [
        op.input(f"in_{name}", flow, FileSource(path, batch_size=batch_size))
        for name, path in sorted(find_stream_files(input_dir).items())
    ]
    events = op.map("decode", op.merge("merge", *streams), orjson.loads)
    keyed = op.key_on("key_order", events, lambda e: e["order_id"])
    counted = op.stateful_map("count", keyed, _count)
    op.output("out", counted, _DropSink())
    started = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - started
    lines = 0
    for path in find_stream_files(input_dir).values():
        with open(path, "rb") as fh:
            lines += sum(1 for _ in fh)
    return lines, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1, help="alternate runs; medians shown")
    ap.add_argument("--batch-1", action="store_true", help="add the slow batch-1 run")
    args = ap.parse_args()
    tune_gc()  # as every replay does, so the bare flow runs under the same collector
    # River (and SciPy under it) is imported on a replay's first learner, about 0.75 s of
    # CPU once per process: outside the timed runs, or a single short run would count it as
    # throughput (a year's backtest pays it once in hours).
    importlib.import_module("river.linear_model")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        t0 = time.perf_counter()
        stats = simulate("launch-week-backlog", args.orders, args.seed, data)
        print(
            f"simulated {args.orders:,} orders, {sum(stats.events.values()):,} events "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        def replay(opts: ReplayOptions, out: str) -> Callable[[], tuple[int, float]]:
            def run() -> tuple[int, float]:
                r = run_replay(data, Path(tmp) / out, options=opts)
                return r.input_records, r.seconds

            return run

        size = args.batch_size
        runs: list[tuple[str, Callable[[], tuple[int, float]]]] = [
            ("bare Bytewax (orjson, counter per order)", lambda: bare_bytewax(data, size)),
            (
                "heuristic (no learning)",
                replay(ReplayOptions(batch_size=size, learn=False), "heuristic"),
            ),
            (
                "learning (River models)",
                replay(
                    ReplayOptions(
                        batch_size=size, learn=True, ground_truth=data / "ground_truth.jsonl"
                    ),
                    "learning",
                ),
            ),
        ]
        if args.batch_1:
            runs.append(("learning, batch size 1", replay(ReplayOptions(batch_size=1), "batch1")))
        seconds: dict[str, list[float]] = {name: [] for name, _ in runs}
        cpu: dict[str, list[float]] = {name: [] for name, _ in runs}
        events: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, run in runs:
                cpu0 = time.process_time()
                events[name], took = run()
                cpu[name].append(time.process_time() - cpu0)
                seconds[name].append(took)
        base = base_cpu = None
        print(f"{'':<42} {'events':>10}  {'wall':>7}  {'events/s':>10}  ratio  {'CPU':>7}  ratio")
        for name, _ in runs:
            wall, used = statistics.median(seconds[name]), statistics.median(cpu[name])
            eps, eps_cpu = events[name] / wall, events[name] / used
            base, base_cpu = base or eps, base_cpu or eps_cpu
            print(
                f"{name:<42} {events[name]:>10,}  {wall:6.2f}s  {eps:>10,.0f}  "
                f"{eps / base:.3f}  {used:6.2f}s  {eps_cpu / base_cpu:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
