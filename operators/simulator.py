"""Public entry point of the event simulator.

``simulate(scenario, orders, seed, out_dir)`` writes ``orders``, ``delivery``, ``support`` and
``refunds`` JSON Lines streams (event contract v1, the no-intervention history),
``ground_truth.jsonl`` with per-action counterfactual outcomes, and ``scenario.json``.
The implementation lives in :mod:`operators.simulation`.

Run ``python -m operators.simulator SCENARIO --orders N --seed S --out DIR`` from a shell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from operators.simulation import (
    ACTIONS,
    RISK_DRIVERS,
    SCENARIOS,
    STREAM_NAMES,
    ScenarioParams,
    SimulationStats,
    describe_scenario,
    get_scenario,
    iter_scenario_names,
    simulate,
    stream_path,
)

__all__ = [
    "ACTIONS",
    "RISK_DRIVERS",
    "SCENARIOS",
    "STREAM_NAMES",
    "ScenarioParams",
    "SimulationStats",
    "describe_scenario",
    "get_scenario",
    "iter_scenario_names",
    "main",
    "simulate",
    "stream_path",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line front end; prints the run's statistics as JSON."""
    parser = argparse.ArgumentParser(description="Generate a Salvage scenario as event files.")
    parser.add_argument("scenario", choices=list(iter_scenario_names()))
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compress", action="store_true", help="write .jsonl.gz streams")
    parser.add_argument("--describe", action="store_true", help="print the story and exit")
    args = parser.parse_args(argv)
    if args.describe:
        print(describe_scenario(args.scenario))
        return 0
    stats = simulate(args.scenario, args.orders, args.seed, args.out, compress=args.compress)
    sys.stdout.write(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
