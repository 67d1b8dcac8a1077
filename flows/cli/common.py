"""What the ``salvage`` subcommands share: the usage error, the run and event-time options,
the policy to load, and a replay followed by its summary.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from flows.progress import progress, stream_lines
from flows.replay import ReplayOptions, ReplayRun, run_replay
from flows.summary import summarize, write_summary
from operators.case import HOUR
from operators.policy import RecoveryPolicy
from operators.window import WindowConfig

log = logging.getLogger("salvage")

Registrar = Callable[[argparse._SubParsersAction], None]


class UsageError(Exception):
    """A mistake in what the user asked for; exit code 2 with the message."""


def load_policy(path: str | None) -> RecoveryPolicy:
    return RecoveryPolicy.load(path) if path else RecoveryPolicy.default()


def add_window_args(p: argparse.ArgumentParser) -> None:
    """Event-time options shared by replay, demo, backtest and run."""
    g = p.add_argument_group("event time")
    g.add_argument(
        "--allowed-lateness-hours",
        type=float,
        default=6.0,
        metavar="H",
        help="events older than the watermark by more than this are dead-lettered "
        "as late (default: 6)",
    )
    g.add_argument(
        "--window-after-delivery-days",
        type=float,
        default=30.0,
        metavar="D",
        help="a case closes this long after delivery (default: 30)",
    )
    g.add_argument(
        "--window-after-placed-days",
        type=float,
        default=45.0,
        metavar="D",
        help="...or this long after the order if never delivered (default: 45)",
    )
    g.add_argument(
        "--shards",
        type=int,
        default=8,
        help="clock shards (parallelism of the watermark step; default: 8)",
    )
    g.add_argument(
        "--max-future-skew-hours",
        type=float,
        default=24.0,
        metavar="H",
        help="events stamped more than this after they were received are dead-lettered "
        "as future (default: 24; 0 disables)",
    )


def window_from_args(args: argparse.Namespace) -> WindowConfig:
    try:
        return WindowConfig(
            allowed_lateness=args.allowed_lateness_hours * HOUR,
            window_after_delivery=args.window_after_delivery_days * 24 * HOUR,
            window_after_placed=args.window_after_placed_days * 24 * HOUR,
            shards=args.shards,
            max_future_skew=args.max_future_skew_hours * HOUR or None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="FILE", help="policy file (default: the shipped one)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="input batch size, the main throughput lever (default: 1000)",
    )
    p.add_argument("--workers", type=int, default=1, help="Bytewax workers (default: 1)")
    p.add_argument(
        "--no-learning",
        action="store_true",
        help="decide with the fixed heuristic scorer; no online models",
    )
    p.add_argument(
        "--truth-labels",
        choices=("auto", "on", "off"),
        default="auto",
        help="with a simulator ground_truth.jsonl in the input, let models learn "
        "the outcome each treated order would have had under its action, as "
        "if the policy had been live (default: auto = when the file exists)",
    )
    add_window_args(p)


def print_world(out: Path, world_seed: int) -> None:
    """Say which world the ground truth comes from, and its twists."""
    import orjson

    from operators.simulation import World

    world = World.from_dict(orjson.loads((out / "world.json").read_bytes()))
    print(f"  world {world_seed}: {out / 'world.json'}")
    for line in world.describe().splitlines():
        print(f"    {line}")


def add_world_args(p: argparse.ArgumentParser) -> None:
    """``--world-seed``, ``--misspecified`` and ``--drift``: which world the truth follows."""
    from operators.simulation import DEFAULT_WORLD_SEED

    p.add_argument(
        "--world-seed",
        type=int,
        default=DEFAULT_WORLD_SEED,
        help="seed of the world drawn from the prior: what each action would have done "
        f"(default {DEFAULT_WORLD_SEED}; docs/simulation.md)",
    )
    p.add_argument(
        "--misspecified",
        action="store_true",
        help="force the world's three twists on: an action useless in one lane, one "
        "backfiring in one SKU family, a new campaign returning three times as often",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="add a change halfway through the history: proactive reassurance stops "
        "saving anyone in one courier lane (does the engine notice?)",
    )


def replay_and_summarize(
    input_dir: Path,
    out_dir: Path,
    args: argparse.Namespace,
    policy: RecoveryPolicy,
    static_dir: Path | None = None,
) -> dict:
    truth = input_dir / "ground_truth.jsonl"
    has_truth = truth.exists()
    use_truth = args.truth_labels == "on" or (args.truth_labels == "auto" and has_truth)
    if use_truth and not has_truth:
        raise UsageError(f"--truth-labels on, but {truth} does not exist")
    try:
        opts = ReplayOptions(
            window_from_args(args),
            args.batch_size,
            args.workers,
            learn=not args.no_learning,
            ground_truth=truth if use_truth else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from flows.cli.metrics_options import metrics_session

    processes = getattr(args, "processes", 1)
    if processes < 1:
        raise UsageError("--processes must be >= 1")
    if processes > 1:
        run = _cluster_replay(input_dir, out_dir, args, opts, processes)
    else:
        with (
            metrics_session(args) as observer,  # None unless --metrics-port/--metrics-file
            progress(args, f"replay {out_dir.name}", stream_lines(input_dir)) as shown,
        ):
            run = run_replay(input_dir, out_dir, policy, opts, observer=shown.observe(observer))
    extra: dict = {
        "input_records": run.input_records,
        "seconds": round(run.seconds, 3),
        "events_per_second": round(run.events_per_second, 1),
        "truth_labels": use_truth,
        "input_dir": str(input_dir),
    }
    if run.model_stats is not None:
        extra["models"] = {"return_propensity": run.model_stats}
    summary = summarize(
        out_dir, policy, truth if has_truth else None, extra=extra, static_dir=static_dir
    )
    write_summary(out_dir, summary)
    return summary


def _cluster_replay(
    input_dir: Path, out_dir: Path, args: argparse.Namespace, opts: ReplayOptions, processes: int
) -> ReplayRun:
    """``--processes N``: a local Bytewax cluster (``flows/cluster.py``)."""
    from flows.cluster import run_cluster_replay

    if getattr(args, "metrics_port", None) or getattr(args, "metrics_file", None):
        raise UsageError("--metrics-port/--metrics-file work with one process only")
    done = run_cluster_replay(input_dir, out_dir, args.policy, opts, processes)
    return ReplayRun(out_dir, done["input_records"], done["seconds"], [], done["models"])
