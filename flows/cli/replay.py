"""``salvage replay``: run the dataflow over historical stream files."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import add_run_args, load_policy, replay_and_summarize
from flows.cli.metrics_options import add_metrics_args
from flows.progress import add_progress_args
from flows.summary import format_summary


def _cmd_replay(args: argparse.Namespace) -> int:
    input_dir, out_dir = Path(args.input_dir), Path(args.out)
    policy = load_policy(args.policy)
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


def register(sub: argparse._SubParsersAction) -> None:
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
