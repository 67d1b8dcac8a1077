"""Subcommands of the decision engine: ``backtest`` and ``import``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from flows.cli import UsageError, add_run_args, replay_and_summarize
from operators.backtest import NEEDS_TRUTH, format_backtest, policy_figures
from operators.policy import RecoveryPolicy


def _policy_name(path: str | None, fallback: str) -> str:
    return Path(path).stem if path else fallback


def run_backtest(
    input_dir: Path, out_dir: Path, policies: list[tuple[str, str | None]], args: argparse.Namespace
) -> dict[str, Any]:
    """Replay ``input_dir`` once per policy and build the side-by-side report."""
    truth = input_dir / "ground_truth.jsonl"
    runs = []
    # Load every policy before the first replay, so a bad file fails fast.
    loaded = [
        (n, p, RecoveryPolicy.load(p) if p else RecoveryPolicy.default()) for n, p in policies
    ]
    for name, path, policy in loaded:
        run_dir = out_dir / name
        summary = replay_and_summarize(input_dir, run_dir, args, policy)
        figures = policy_figures(summary, policy)
        runs.append(
            {
                "name": name,
                "file": path or "default",
                "version": policy.version,
                "out_dir": str(run_dir),
                "figures": figures,
                "summary": summary,
            }
        )
    report = {
        "input": str(input_dir),
        "has_ground_truth": truth.exists(),
        "policies": runs,
        "unknown_without_ground_truth": [] if truth.exists() else list(NEEDS_TRUTH),
    }
    (out_dir / "backtest.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    return report


def _cmd_backtest(args: argparse.Namespace) -> int:
    input_dir, out_dir = Path(args.input_dir), Path(args.out)
    if not input_dir.is_dir():
        raise UsageError(f"{input_dir}: not a directory")
    a = _policy_name(args.policy, "default")
    policies: list[tuple[str, str | None]] = [(a, args.policy)]
    if args.against is not None:
        b = _policy_name(args.against, "against")
        if b == a:
            b = f"{b}-b"
        policies.append((b, args.against))
    report = run_backtest(input_dir, out_dir, policies, args)
    print(format_backtest(report))
    print(f"\nbacktest report: {out_dir / 'backtest.json'}")
    if args.report:
        from flows.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from operators.importer import ImportFileError, MappingError, get_mapping, import_csv

    try:
        mapping = get_mapping(args.mapping)
        stats = import_csv(Path(args.csv), Path(args.out), mapping)
    except (MappingError, ImportFileError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # a missing file, a directory, no permission
        raise UsageError(f"{args.csv}: {exc.strerror or exc}") from None
    report = stats.to_report()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    print(f"\nwrote orders.jsonl, refunds.jsonl and import_report.json to {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="compare policies over the same history, with ground truth when there is one",
        description="Replay INPUT_DIR under policy A (and B with --against) and report "
        "refund leakage, retained revenue, contact and credit cost, actions by type and "
        "human-review load side by side, against blanket refund and doing nothing. With "
        "a simulator ground_truth.jsonl the realized outcome of each order under the "
        "chosen action comes from the truth; without one, the report says what it "
        "cannot know.",
    )
    p.add_argument("input_dir", help="directory with the stream files")
    p.add_argument("--against", metavar="FILE", help="a second policy to compare with")
    p.add_argument("--out", default="backtest", metavar="DIR", help="output directory")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    add_run_args(p)
    p.set_defaults(func=_cmd_backtest)

    i = sub.add_parser(
        "import",
        help="turn a CSV export into contract events (built-in: online-retail)",
        description="Import an order-line CSV export (plain or .gz) as orders.jsonl and "
        "refunds.jsonl through a mapping: a built-in name (online-retail) or a YAML file.",
    )
    i.add_argument("csv", help="the CSV export")
    i.add_argument("--mapping", default="online-retail", help="built-in name or YAML file")
    i.add_argument("--out", required=True, metavar="DIR", help="output directory")
    i.set_defaults(func=_cmd_import)
