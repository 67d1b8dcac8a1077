"""``salvage simulate``: write realistic post-purchase streams and their ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import UsageError, add_world_args, print_world
from flows.progress import add_progress_args, progress


def _cmd_simulate(args: argparse.Namespace) -> int:
    from operators.simulation import SCENARIOS, describe_scenario, simulate

    if args.scenario not in SCENARIOS:
        raise UsageError(
            f"unknown scenario {args.scenario!r}; choose one of {', '.join(sorted(SCENARIOS))}"
        )
    if args.describe:
        print(describe_scenario(args.scenario))
        return 0
    if args.out is None:
        raise UsageError("--out is required (where to write the streams)")
    if args.orders < 1:
        raise UsageError("--orders must be >= 1")
    with progress(args, f"simulate {args.scenario}", args.orders, unit="orders") as p:
        stats = simulate(
            args.scenario,
            args.orders,
            args.seed,
            Path(args.out),
            compress=args.gzip,
            world_seed=args.world_seed,
            misspecified=args.misspecified,
            drift=args.drift,
            progress=p.callback,
        )
    print(f"simulated {args.scenario}: {stats.orders:,} orders into {args.out}")
    for stream, n in stats.events.items():
        print(f"  {stream:<10}{n:>12,} events")
    print(f"  ground truth: {Path(args.out) / 'ground_truth.jsonl'}  ({stats.seconds:.1f} s)")
    print_world(Path(args.out), stats.world_seed)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write realistic post-purchase streams and their ground truth",
        description="Simulate a scenario: writes orders, delivery, support and refunds "
        "JSONL plus ground_truth.jsonl (outcome of every order under every action).",
    )
    p.add_argument(
        "scenario",
        help="launch-week-backlog, steady-state or steady-season (--describe tells its story)",
    )
    p.add_argument("--orders", type=int, default=10_000, help="number of orders (default 10000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--out", metavar="DIR", help="output directory (required unless --describe)")
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    p.add_argument("--describe", action="store_true", help="print the scenario's story and exit")
    add_world_args(p)
    add_progress_args(p)
    p.set_defaults(func=_cmd_simulate)
