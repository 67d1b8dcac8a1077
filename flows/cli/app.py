"""``salvage``: the single command-line entry point.

Every command group lives in its own module with a ``register(subparsers)`` function;
this module only assembles them, in the order ``salvage --help`` lists them, and maps
errors to exit codes (2: bad usage or input, 1: failure).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from flows.cli.common import Registrar, UsageError
from flows.cli.decisions import register as register_decisions
from flows.cli.demo import register as register_demo
from flows.cli.live import register as register_live
from flows.cli.policy import register as register_policy
from flows.cli.replay import register as register_replay
from flows.cli.report import register as register_report
from flows.cli.simulate import register as register_simulate
from flows.cli.state import register as register_state
from flows.cli.validate import register as register_validate
from operators.contract import CONTRACT_VERSION
from operators.policy import PolicyError

REGISTRARS: list[Registrar] = [
    register_demo,
    register_simulate,
    register_replay,
    register_policy,
    register_decisions,
    register_live,
    register_state,
    register_report,
    register_validate,
]


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
    for register in REGISTRARS:
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
