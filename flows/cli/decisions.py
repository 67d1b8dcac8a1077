"""Subcommands of the decision engine: ``backtest`` and ``import``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from flows.cli.common import UsageError, add_run_args, replay_and_summarize
from flows.jsonl import read_jsonl
from flows.progress import add_progress_args, count_lines, progress
from operators.actions import action_names
from operators.backtest import NEEDS_TRUTH, format_backtest, policy_figures
from operators.baselines import ActionCosts, policy_choices, spending
from operators.ope import build_log, doubly_robust
from operators.policy import RecoveryPolicy
from operators.vocabulary import Arm
from operators.worlds import segment_of


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
    # With a ground truth, each policy is also replayed with the fixed heuristic scorer: the
    # static-rules arm that shows what online learning adds.
    static = truth.exists() and not args.no_learning
    for name, path, policy in loaded:
        run_dir = out_dir / name
        static_dir = out_dir / f"{name}.static-rules" if static else None
        if static_dir is not None:
            static_args = argparse.Namespace(**{**vars(args), "no_learning": True})
            replay_and_summarize(input_dir, static_dir, static_args, policy)
        summary = replay_and_summarize(input_dir, run_dir, args, policy, static_dir=static_dir)
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
    logged = getattr(args, "logged", None)
    if logged is not None and len(runs) > 1:
        report["off_policy"] = off_policy_estimate(Path(logged), loaded[0][2], runs[1:])
    (out_dir / "backtest.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    return report


def off_policy_estimate(
    logged_dir: Path, logging_policy: RecoveryPolicy, targets: list[dict[str, Any]]
) -> dict[str, Any]:
    """Doubly robust estimates of each target policy's loss from a live period's logged
    decisions and outcomes (``logged_dir``) under ``logging_policy``."""
    for name in ("decisions.jsonl", "outcomes.jsonl"):
        if not (logged_dir / name).exists():
            raise UsageError(f"--logged {logged_dir}: no {name} (the outputs of a live period)")
    decisions = read_jsonl(logged_dir / "decisions.jsonl")
    outcomes = read_jsonl(logged_dir / "outcomes.jsonl")
    costs = ActionCosts.from_policy(logging_policy)
    if not any("propensity" in d for d in decisions):
        raise UsageError(
            f"--logged {logged_dir}: the decisions carry no propensity; off-policy "
            "evaluation needs the probability of every logged decision"
        )
    applied = policy_choices(d for d in decisions if d.get("arm") != Arm.CONTROL)
    losses, values, segments = {}, {}, {}
    for o in outcomes:
        oid = o["order_id"]
        value = float(o.get("order_value") or 0.0)
        choice = applied.get(oid)
        spent = sum(spending(choice, value, costs)) if choice else 0.0
        losses[oid] = float(o.get("refund_value") or 0.0) + spent
        values[oid] = value
        segments[oid] = segment_of(o)
    log, explored = build_log(decisions, losses, values, segments, logging_policy.holdout_share)
    contact = {a: costs.contact.get(a, 0.0) for a in action_names()}
    out: dict[str, Any] = {
        "logged_dir": str(logged_dir),
        "logged_orders": len(log),
        "logged_loss": round(sum(o.loss for o in log), 2),
        "assumptions": "overlap; no unmeasured confounding beyond the logged context; the "
        "timing of the target's first action is not modelled",
        "estimates": {},
    }
    for run in targets:
        target_decisions = read_jsonl(Path(run["out_dir"]) / "decisions.jsonl")
        target = {oid: c.action for oid, c in policy_choices(target_decisions).items()}
        out["estimates"][run["name"]] = doubly_robust(log, target, contact, explored).to_dict()
    return out


def format_off_policy(block: dict[str, Any]) -> str:
    """The off-policy estimates as lines under the backtest table."""
    lines = [
        "",
        f"off-policy estimate from {block['logged_orders']:,} logged orders in "
        f"{block['logged_dir']} (doubly robust, 95% interval); logged loss "
        f"{block['logged_loss']:,.2f}:",
    ]
    for name, est in block["estimates"].items():
        lines.append(
            f"  {name}: loss {est['loss']:,.2f}  [{est['ci_low']:,.2f}, {est['ci_high']:,.2f}]"
            f"  ({est['matched_orders']:,} orders where the log took the same first action)"
        )
        sn = est.get("self_normalized")
        if sn:
            lines.append(
                f"  {name}, self-normalised: loss {sn['loss']:,.2f}  "
                f"[{sn['ci_low']:,.2f}, {sn['ci_high']:,.2f}]  (steadier where logged "
                "probabilities are tiny, slightly biased)"
            )
        lines += [f"  warning: {w}" for w in est["warnings"]]
    lines.append(f"  assumptions: {block['assumptions']}")
    return "\n".join(lines)


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
    if args.logged is not None and args.against is None:
        raise UsageError("--logged needs --against: the policy to estimate from the log")
    report = run_backtest(input_dir, out_dir, policies, args)
    print(format_backtest(report))
    if report.get("off_policy"):
        print(format_off_policy(report["off_policy"]))
    print(f"\nbacktest report: {out_dir / 'backtest.json'}")
    if args.report:
        from flows.report import write_report

        print(f"report: {write_report(out_dir)}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from flows.importers import ImportFileError, MappingError, get_mapping, import_csv

    try:
        mapping = get_mapping(args.mapping)
        rows = lambda: max(count_lines([Path(args.csv)]) - 1, 0)  # noqa: E731 - the header
        with progress(args, "import", rows, unit="rows") as p:
            stats = import_csv(Path(args.csv), Path(args.out), mapping, progress=p.callback)
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
    p.add_argument(
        "--logged",
        metavar="DIR",
        help="decisions.jsonl and outcomes.jsonl of a live period run under --policy: "
        "estimate --against off-policy from them (doubly robust, 95%% interval), no ground "
        "truth needed",
    )
    p.add_argument("--out", default="backtest", metavar="DIR", help="output directory")
    p.add_argument("--report", action="store_true", help="also write OUT/report.html")
    add_run_args(p)
    add_progress_args(p)
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
    add_progress_args(i)
    i.set_defaults(func=_cmd_import)
