"""Label-horizon calibration: does the return-propensity model predict the refund rate it
is scored against?

Simulates a scenario, replays it with online learning and prints, for the decision points
the propensity model learned from (untreated points, each labelled "refunded within the
label horizon of the decision"), the model's mean prediction against the realised rate:

- over the whole run and over the last ``validation window`` examples (after warm-up,
  when the prior no longer weighs in),
- at each case's first decision point, and per decision point.

Predictions are the ones made at decision time (predict, then learn). The target is
|mean prediction - realised rate| <= 0.02. Run:
``python benchmarks/label_horizon.py [--scenario launch-week-backlog] [--orders 20000]
[--seed 7] [--horizon-days 14] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402


def _row(name: str, r: dict[str, Any]) -> str:
    if not r.get("examples"):
        return f"{name:<26} {0:>8}"
    gap = r["mean_predicted"] - r["base_rate"]
    auc = f"{r['roc_auc']:.3f}" if r.get("roc_auc") is not None else "  -  "
    return (
        f"{name:<26} {r['examples']:>8,} {r['mean_predicted']:>10.4f} {r['base_rate']:>10.4f}"
        f" {gap:>+8.4f} {auc:>7}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="launch-week-backlog")
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--horizon-days", type=float, default=None, help="default: the policy's")
    ap.add_argument("--truth-labels", action="store_true", help="label treated points by truth")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    doc = yaml.safe_load((ROOT / "operators" / "policies" / "default.yaml").read_text())
    if args.horizon_days is not None:
        doc["learning"]["label_horizon_days"] = args.horizon_days
    policy = RecoveryPolicy.from_text(yaml.safe_dump(doc), "default.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input"
        simulate(args.scenario, args.orders, args.seed, data)
        t0 = time.perf_counter()
        opts = ReplayOptions(
            learn=True, ground_truth=data / "ground_truth.jsonl" if args.truth_labels else None
        )
        run = run_replay(data, Path(tmp) / "out", policy, opts)
        seconds = time.perf_counter() - t0
    s = run.model_stats or {}
    v = s.get("validation", {})
    print(
        f"{args.scenario}, {args.orders:,} orders, seed {args.seed}, label horizon "
        f"{policy.label_horizon_days:g} days; replay {seconds:.1f} s; "
        f"{s.get('examples', 0):,} examples learned, {s.get('dropped_examples', 0):,} dropped"
    )
    print(f"{'examples':<26} {'n':>8} {'mean pred':>10} {'realised':>10} {'gap':>8} {'AUC':>7}")
    rows = {"whole run": v, f"last {v.get('window', 0):,}": v.get("recent", {})}
    rows["first decision point"] = s.get("first_point", {})
    for point, r in (s.get("by_point") or {}).items():
        rows[f"at point: {point}"] = r
    for name, r in rows.items():
        print(_row(name, r))
    if args.json:
        keep = ("examples", "mean_predicted", "base_rate", "roc_auc")
        out = {name: {k: r.get(k) for k in keep} for name, r in rows.items()}
        meta = {"scenario": args.scenario, "orders": args.orders, "seed": args.seed}
        meta["label_horizon_days"] = policy.label_horizon_days
        args.json.write_text(json.dumps({**meta, "rows": out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
