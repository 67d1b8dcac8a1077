"""``salvage validate OUT_DIR``: check a run's output files against the output contract.

For integrators: before wiring Salvage's outputs (files of a replay, or records dumped
from the output topics) into another system, check that every record is what
``docs/events.md`` says. Uses the same validators as the test suite
(``operators.contract.VALIDATORS``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from flows.cli.common import UsageError
from flows.jsonl import JsonlError, iter_jsonl
from operators.contract import VALIDATORS

#: How many problems to print per output (the counts cover all of them).
SHOWN = 5


def validate_dir(out_dir: Path) -> tuple[Counter[str], Counter[str], list[str]]:
    """Records and invalid records per output found in ``out_dir``, and the first problems
    (output file, line number and what is wrong: never the record itself, which may hold
    customer data)."""
    records: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    problems: list[str] = []
    for name, validate in VALIDATORS.items():
        path = out_dir / f"{name}.jsonl"
        if not path.exists():
            continue
        shown = 0
        for line, record in enumerate(iter_jsonl(path), start=1):
            records[name] += 1
            wrong = validate(record)
            if wrong:
                invalid[name] += 1
                if shown < SHOWN:
                    shown += 1
                    problems.append(f"{path.name}:{line}: {'; '.join(wrong)}")
    return records, invalid, problems


def _cmd_validate(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a directory")
    try:
        records, invalid, problems = validate_dir(out_dir)
    except JsonlError as exc:
        raise UsageError(str(exc)) from None
    if not records:
        raise UsageError(f"no output files in {out_dir} ({', '.join(VALIDATORS)} .jsonl)")
    for name in VALIDATORS:
        if name in records:
            print(f"{name}: {records[name]:,} records, {invalid[name]:,} invalid")
    for problem in problems:
        print(f"  {problem}")
    return 1 if invalid else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser(
        "validate",
        help="check a run's output files against the output contract",
        description="Check every record of OUT_DIR's interventions, decisions, outcomes and "
        "dead_letter .jsonl files against the output contract (docs/events.md). Prints "
        "counts per output and the first problems with file and line; exits 1 if any "
        "record is invalid.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output directory of a run")
    p.set_defaults(func=_cmd_validate)
