"""``salvage report OUT_DIR``: write the self-contained HTML report of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import UsageError
from flows.jsonl import JsonlError
from flows.report import ReportError, write_report


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        path = write_report(
            Path(args.out_dir),
            Path(args.out) if args.out else None,
            ground_truth=Path(args.ground_truth) if args.ground_truth else None,
            title=args.title,
        )
    except (ReportError, JsonlError) as exc:
        raise UsageError(str(exc)) from None
    size = path.stat().st_size
    print(f"report: {path}  ({size / 1024:,.0f} KiB, self-contained: open it in any browser)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a replay, demo or backtest",
        description="Read the outputs in OUT_DIR (summary.json, outcomes.jsonl, "
        "interventions.jsonl, backtest.json) and write one HTML file with charts: leakage "
        "and retained revenue over time, interventions, recovery by segment, uplift with "
        "intervals, model calibration and the backtest comparison. It needs no server and "
        "no network.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output directory of a run")
    p.add_argument("--out", metavar="FILE", help="where to write (default OUT_DIR/report.html)")
    p.add_argument(
        "--ground-truth",
        metavar="FILE",
        help="simulator ground_truth.jsonl, for leakage under blanket refund and no action "
        "(default: found next to the input the run recorded, if any)",
    )
    p.add_argument("--title", help="title of the report (default: Return-recovery report)")
    p.set_defaults(func=_cmd_report)
