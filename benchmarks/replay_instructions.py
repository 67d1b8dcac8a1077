"""Replay cost in instructions: this checkout against another revision, under callgrind.

CPU seconds on a shared machine move by 10-25 % between two runs of the same replay, more
than most single changes save. Valgrind's callgrind counts the instructions a process
executes, which other load does not change, so two versions of the code can be compared
by one run each, side by side:

- the input: ``launch-week-backlog``, ``--orders`` orders, simulated once by this checkout;
- the other version: ``git worktree add --detach`` of ``--against`` (default ``HEAD``, so
  that uncommitted changes are measured against the last commit), removed at the end;
- per version and arm (static rules, learning): one process that imports River (as every
  learning replay does) and runs ``run_replay`` once over the input; and one per version
  that only imports (start-up), whose count is subtracted;
- the table: instructions of each replay, and this checkout's over the other's.

Run: ``python benchmarks/replay_instructions.py [--against REV] [--orders 3000]`` (needs
``valgrind``; Debian: ``apt install valgrind``). Each process runs about 50 times slower
than natively: 3,000 orders take a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.simulation import simulate  # noqa: E402

#: What each measured process runs: the checkout's modules first on the path.
RUNNER = """\
import importlib, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from flows.replay import ReplayOptions, run_replay
from flows.runtime import tune_gc
importlib.import_module("river.linear_model")
tune_gc()
if sys.argv[3] != "startup":
    options = ReplayOptions(learn=sys.argv[3] == "learning")
    run_replay(Path(sys.argv[2]), Path(sys.argv[4]), options=options)
"""

ARMS = ("static", "learning")


def instructions(runner: Path, repo: Path, data: Path, arm: str, out: Path) -> int:
    """Instructions one process executed (callgrind's "Collected" total)."""
    proc = subprocess.run(
        [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.callgrind",
            sys.executable, str(runner), str(repo), str(data), arm, str(out),
        ],
        capture_output=True, text=True, check=False, cwd=repo,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{repo} {arm}: valgrind failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", default="HEAD", help="git revision to compare with")
    ap.add_argument("--orders", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="salvage-instr-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "input"
        stats = simulate("launch-week-backlog", args.orders, args.seed, data)
        records = sum(stats.events.values())
        other = tmp / "other"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(other), args.against],
            cwd=ROOT, check=True,
        )  # fmt: skip
        try:
            runner = tmp / "runner.py"
            runner.write_text(RUNNER)
            jobs = {
                (name, arm): (repo, arm)
                for name, repo in (("other", other), ("this", ROOT))
                for arm in ("startup", *ARMS)
            }
            with ThreadPoolExecutor(max_workers=max(args.processes, 1)) as pool:
                futures = {
                    key: pool.submit(
                        instructions, runner, repo, data, arm, tmp / f"out-{key[0]}-{arm}"
                    )
                    for key, (repo, arm) in jobs.items()
                }
                counts = {key: f.result() for key, f in futures.items()}
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False
            )
    print(
        f"launch-week-backlog, {args.orders:,} orders ({records:,} records); instructions "
        f"of one replay, start-up subtracted; this checkout against {args.against}"
    )
    print(f"{'arm':<10}{args.against:>16}{'this':>16}{'ratio':>9}")
    for arm in ARMS:
        base = counts[("other", arm)] - counts[("other", "startup")]
        this = counts[("this", arm)] - counts[("this", "startup")]
        print(f"{arm:<10}{base / 1e9:>14.3f} G{this / 1e9:>14.3f} G{this / base:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
