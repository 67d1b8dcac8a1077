"""``salvage``: the single command-line entry point.

Every subcommand lives in a small ``register(subparsers)`` function; this module only
assembles them and maps errors to exit codes (2: bad usage or input, 1: failure).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flows.metrics import add_metrics_args
from flows.progress import add_progress_args, progress, stream_lines
from flows.replay import ReplayOptions, ReplayRun, run_replay
from flows.summary import format_summary, summarize, write_summary
from operators.contract import CONTRACT_VERSION
from operators.policy import PolicyError, RecoveryPolicy
from operators.window import HOUR, WindowConfig

log = logging.getLogger("salvage")

Registrar = Callable[[argparse._SubParsersAction], None]


class UsageError(Exception):
    """A mistake in what the user asked for; exit code 2 with the message."""


def _policy(path: str | None) -> RecoveryPolicy:
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


# --- simulate ---------------------------------------------------------------------------


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
            progress=p.callback,
        )
    print(f"simulated {args.scenario}: {stats.orders:,} orders into {args.out}")
    for stream, n in stats.events.items():
        print(f"  {stream:<10}{n:>12,} events")
    print(f"  ground truth: {Path(args.out) / 'ground_truth.jsonl'}  ({stats.seconds:.1f} s)")
    _print_world(Path(args.out), stats.world_seed)
    return 0


def _print_world(out: Path, world_seed: int) -> None:
    """Say which world the ground truth comes from, and its twists."""
    import orjson

    from operators.simulation import World

    world = World.from_dict(orjson.loads((out / "world.json").read_bytes()))
    print(f"  world {world_seed}: {out / 'world.json'}")
    for line in world.describe().splitlines():
        print(f"    {line}")


def add_world_args(p: argparse.ArgumentParser) -> None:
    """``--world-seed`` and ``--misspecified``: which drawn world the ground truth follows."""
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


def register_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write realistic post-purchase streams and their ground truth",
        description="Simulate a scenario: writes orders, delivery, support and refunds "
        "JSONL plus ground_truth.jsonl (outcome of every order under every action).",
    )
    p.add_argument("scenario", help="launch-week-backlog or steady-state")
    p.add_argument("--orders", type=int, default=10_000, help="number of orders (default 10000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--out", metavar="DIR", help="output directory (required unless --describe)")
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    p.add_argument("--describe", action="store_true", help="print the scenario's story and exit")
    add_world_args(p)
    add_progress_args(p)
    p.set_defaults(func=_cmd_simulate)


# --- replay -----------------------------------------------------------------------------


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
    from flows.metrics import metrics_session

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


def _cmd_replay(args: argparse.Namespace) -> int:
    input_dir, out_dir = Path(args.input_dir), Path(args.out)
    policy = _policy(args.policy)
    summary = replay_and_summarize(input_dir, out_dir, args, policy)
    print(format_summary(summary))
    print(
        f"\nreplayed {summary['input_records']:,} records in {summary['seconds']:.1f} s "
        f"({summary['events_per_second']:,.0f} events/s); outputs and summary.json in {out_dir}"
    )
    if args.report:
        from flows.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0


def register_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run the dataflow over historical stream files",
        description="Replay orders/delivery/support/refunds JSONL (.jsonl or .jsonl.gz) "
        "through the same dataflow as live mode, merged by occurred_at. Writes "
        "interventions, decisions, outcomes and dead_letter JSONL and summary.json.",
    )
    p.add_argument("input_dir", help="directory with the stream files")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--report",
        action="store_true",
        help="also write a self-contained HTML report to OUT_DIR/report.html",
    )
    add_run_args(p)
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run a Bytewax cluster of N local processes, orders split between them; "
        "outputs are written per worker (name.jsonl, name.w1.jsonl, ...) and summarized "
        "together (default: 1; see docs/performance.md)",
    )
    add_metrics_args(p)
    add_progress_args(p)
    p.set_defaults(func=_cmd_replay)


# --- demo -------------------------------------------------------------------------------


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
            progress=p.callback,
        )
    _print_world(data, args.world_seed)
    policy = _policy(args.policy)
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


def register_demo(sub: argparse._SubParsersAction) -> None:
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


# --- policy -----------------------------------------------------------------------------


def _cmd_policy_check(args: argparse.Namespace) -> int:
    policy = _policy(args.file)
    print(f"{policy.source}: policy {policy.version} is valid")
    for name, spec in policy.actions.items():
        clauses = ", ".join(c.name for c in spec.eligible) or "(automation boundary only)"
        print(f"  {name:<32} cost {spec.cost:>6.2f}  eligible when: {clauses}")
    return 0


def register_policy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="inspect and validate policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    c = psub.add_parser(
        "check",
        help="validate a policy file and list its actions",
        description="Load and validate a policy file; errors name the line.",
    )
    c.add_argument("file", nargs="?", help="policy file (default: the shipped one)")
    c.set_defaults(func=_cmd_policy_check)


REGISTRARS: list[Registrar] = [register_demo, register_simulate, register_replay, register_policy]


def _optional_registrars() -> list[Registrar]:
    """Subcommands defined in other modules of the package."""
    found: list[Registrar] = []
    for module in (
        "flows.cli_decisions",
        "flows.cli_live",
        "flows.cli_state",
        "flows.cli_report",
    ):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found.append(mod.register)
    return found


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("salvage")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salvage",
        description="Salvage: real-time return recovery for ecommerce. Joins delivery, "
        "support and refund streams per order, scores each case and emits interventions.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version",
        action="version",
        version=f"salvage {_version()} (event contract v{CONTRACT_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS + _optional_registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (UsageError, PolicyError) as exc:
        print(f"salvage: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing input, an unwritable output, a busy metrics port
        print(f"salvage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run through the package module, so exceptions raised by subcommand modules (which
    # import flows.cli) are the same classes main() catches.
    from flows.cli import main as _main

    sys.exit(_main())
