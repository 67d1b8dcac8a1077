"""``salvage policy check``: validate a policy file and list its actions."""

from __future__ import annotations

import argparse

from flows.cli.common import load_policy


def _cmd_policy_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    print(f"{policy.source}: policy {policy.version} is valid")
    for name, spec in policy.actions.items():
        clauses = ", ".join(c.name for c in spec.eligible) or "(automation boundary only)"
        print(f"  {name:<32} cost {spec.cost:>6.2f}  eligible when: {clauses}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="inspect and validate policy files")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    c = psub.add_parser(
        "check",
        help="validate a policy file and list its actions",
        description="Load and validate a policy file; errors name the line.",
    )
    c.add_argument("file", nargs="?", help="policy file (default: the shipped one)")
    c.set_defaults(func=_cmd_policy_check)
