"""Cost of the metrics on the hot path: replay throughput with and without them.

Simulates a scenario once, then replays it ``--repeat`` times in each of three modes, in
turn: without an observer (baseline), with an observer whose hooks do nothing (the cost of
the dataflow's observation steps alone), and with ``SalvageMetrics().observer()``. Prints
the best events/s of each mode, the ratios to the baseline, the overhead per input record
split into the observation steps and the metrics code, and how long one scrape (text
exposition) of the final metrics takes.

    python benchmarks/metrics_overhead.py [--orders 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.observability.metrics import SalvageMetrics  # noqa: E402
from flows.observer import FlowObserver  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.simulation import simulate  # noqa: E402


def _nothing(*_args: object) -> None:
    return None


#: Every hook set, none doing anything: what observing costs without metrics.
EMPTY = FlowObserver(*([_nothing] * len(FlowObserver.__dataclass_fields__)))


def replay_seconds(
    input_dir: Path, out_dir: Path, observer: FlowObserver | None
) -> tuple[float, int]:
    """Wall seconds and input records of one replay (online learning on, as by default)."""
    run = run_replay(input_dir, out_dir, options=ReplayOptions(), observer=observer)
    return run.seconds, run.input_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenario", default="launch-week-backlog")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="salvage-metrics-bench-") as tmp:
        base = Path(tmp)
        simulate(args.scenario, args.orders, args.seed, base / "in")
        replay_seconds(base / "in", base / "warmup", None)  # imports, caches, page cache
        best = {"without": float("inf"), "empty hooks": float("inf"), "with": float("inf")}
        records = 0
        metrics: SalvageMetrics | None = None
        for i in range(args.repeat):
            metrics = SalvageMetrics(CollectorRegistry())
            observers = {"without": None, "empty hooks": EMPTY, "with": metrics.observer()}
            modes = list(observers)
            for mode in modes[i % 3 :] + modes[: i % 3]:  # rotate: no mode always runs first
                gc.collect()
                seconds, records = replay_seconds(base / "in", base / mode, observers[mode])
                best[mode] = min(best[mode], seconds)
        assert metrics is not None
        started = time.perf_counter()
        text = generate_latest(metrics.registry)
        scrape = time.perf_counter() - started

    base_rate = records / best["without"]
    print(f"scenario {args.scenario}, {args.orders:,} orders, {records:,} input records")
    print(f"runs per mode: {args.repeat}, order rotated (best of each)")
    for mode, seconds in best.items():
        rate = records / seconds
        print(
            f"  {mode + ' metrics' if mode != 'empty hooks' else mode:<16} {rate:>9,.0f} events/s"
            f"  ({seconds:.2f} s, ratio to without: {rate / base_rate:.3f})"
        )
    steps = (best["empty hooks"] - best["without"]) / records * 1e6
    code = (best["with"] - best["empty hooks"]) / records * 1e6
    print(f"  overhead per input record: {steps + code:.2f} us")
    print(f"    observation steps of the dataflow: {steps:.2f} us")
    print(f"    metrics code in the hooks:         {code:.2f} us")
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    print(f"  one scrape of the final metrics: {scrape * 1000:.1f} ms, {series:,} series")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
