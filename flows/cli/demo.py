"""``salvage demo``: simulate a launch-week backlog and replay it, with no services."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from flows.cli.common import (
    UsageError,
    add_run_args,
    add_world_args,
    load_policy,
    print_world,
    replay_and_summarize,
)
from flows.cli.metrics_options import add_metrics_args
from flows.progress import add_progress_args, progress
from flows.summary import format_summary


def _cmd_demo(args: argparse.Namespace) -> int:
    from operators.simulation import simulate

    if args.orders < 1:
        raise UsageError("--orders must be >= 1")
    base = Path(args.dir)
    data, out = base / "input", base / "output"
    started = time.perf_counter()
    if args.metrics_file is None:
        args.metrics_file = str(out / "metrics.prom")
    print(
        f"simulating launch-week-backlog: {args.orders:,} orders "
        f"(seed {args.seed}, world {args.world_seed})..."
    )
    with progress(args, "simulate", args.orders, unit="orders") as p:
        simulate(
            "launch-week-backlog",
            args.orders,
            args.seed,
            data,
            world_seed=args.world_seed,
            misspecified=args.misspecified,
            drift=args.drift,
            progress=p.callback,
        )
    print_world(data, args.world_seed)
    policy = load_policy(args.policy)
    static_dir = base / "static-rules"
    if not args.no_learning:
        # The static-rules arm: the same policy with the fixed heuristic scorer.
        print("replaying with the static rules (the policy with the fixed heuristic scorer)...")
        static_args = argparse.Namespace(**{**vars(args), "no_learning": True})
        static_args.metrics_file = static_args.metrics_port = None
        replay_and_summarize(data, static_dir, static_args, policy)
    print("replaying with in-memory state, the default policy and online learning...\n")
    summary = replay_and_summarize(
        data, out, args, policy, static_dir=None if args.no_learning else static_dir
    )
    print(format_summary(summary))
    from flows.report import write_report

    report = write_report(out, ground_truth=data / "ground_truth.jsonl")
    print(
        f"\ninput:   {data}\noutputs: {out}  (summary.json, interventions.jsonl, decisions.jsonl,"
        f" outcomes.jsonl, dead_letter.jsonl)\n"
        f"report:  {report}  (open it in a browser: no server, no network)\n"
        f"metrics: {args.metrics_file}  (Prometheus text format, as served on /metrics live)\n"
        f"done in {time.perf_counter() - started:.1f} s "
        f"({summary['events_per_second']:,.0f} events/s in the dataflow)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a launch-week backlog and replay it (no Kafka, no Redis, no network)",
        description="Simulate launch-week-backlog, replay it with in-memory state and the "
        "default policy, and print what Salvage would have done and saved.",
    )
    p.add_argument("--orders", type=int, default=20_000, help="orders to simulate (default 20000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--dir",
        default="salvage-demo",
        metavar="DIR",
        help="where to write input and outputs (default ./salvage-demo)",
    )
    add_world_args(p)
    add_run_args(p)
    add_metrics_args(p)
    add_progress_args(p)
    p.set_defaults(func=_cmd_demo)
