"""How long the learner's checkpoint takes while a replay runs: what live mode pays at every
Bytewax epoch (recovery on) and at every new model version (the model store).

Replays a simulated ``steady-state`` shop with online learning and, every ``--every``
batches of the learner step, times ``Learner.to_bytes()`` (held examples pickled once each
and reused, ``operators.learner._Held.held_blob``) against pickling the same state whole,
held examples and their release heap included, as checkpoints were made before. Both are
measured on the same learner at the same moment; the figure is their ratio.

    python benchmarks/learner_checkpoint.py --orders 25000
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import flows.learning as learning  # noqa: E402
from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.learner import _NOT_SAVED, Learner  # noqa: E402
from operators.simulation import simulate  # noqa: E402

_RUN_BOUND = _NOT_SAVED - {"held", "_heap"}


def whole(learner: Learner) -> bytes:
    """The checkpoint as it was made before: every held example pickled each time."""
    state = {k: v for k, v in learner.__dict__.items() if k not in _RUN_BOUND}
    return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)


def timed(make: Any, learner: Learner) -> tuple[float, int]:
    started = time.perf_counter()
    blob = make(learner)
    return time.perf_counter() - started, len(blob)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=25_000)
    parser.add_argument("--every", type=int, default=10, help="learner batches per checkpoint")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    rows: list[tuple[int, float, int, float, int]] = []
    batches = 0
    on_batch = learning.LearnerLogic.on_batch

    def measured(self: learning.LearnerLogic, values: list[Any]) -> Any:
        nonlocal batches
        out = on_batch(self, values)
        batches += 1
        if batches % args.every == 0:
            learner = self.learner
            # Alternate which goes first, so neither always runs on a warmer cache.
            if batches // args.every % 2:
                t_new, n_new = timed(Learner.to_bytes, learner)
                t_old, n_old = timed(whole, learner)
            else:
                t_old, n_old = timed(whole, learner)
                t_new, n_new = timed(Learner.to_bytes, learner)
            rows.append((learner.pending_count, t_new, n_new, t_old, n_old))
        return out

    learning.LearnerLogic.on_batch = measured  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="salvage-bench-"))
    simulate("steady-state", args.orders, 7, work / "input")
    run_replay(work / "input", work / "out", None, ReplayOptions(batch_size=args.batch_size))
    # The first checkpoint pickles every held example (nothing cached yet), as before.
    steady = [r for r in rows[1:] if r[0] >= 1000] or rows
    print(
        f"steady-state, {args.orders:,} orders, a checkpoint every {args.every} learner batches "
        f"({len(steady)} measured with 1,000 or more held examples)"
    )
    print(f"{'held':>7} {'to_bytes':>10} {'whole':>10} {'ratio':>7} {'bytes':>11}")
    for held, t_new, n_new, t_old, _ in steady[:: max(1, len(steady) // 8)]:
        print(
            f"{held:>7,} {t_new * 1000:>8.1f}ms {t_old * 1000:>8.1f}ms "
            f"{t_old / t_new:>6.1f}x {n_new:>11,}"
        )
    ratios = [old / new for _, new, _, old, _ in steady]
    print(
        f"median: to_bytes {statistics.median(r[1] for r in steady) * 1000:.1f} ms, whole "
        f"{statistics.median(r[3] for r in steady) * 1000:.1f} ms; whole / to_bytes "
        f"{statistics.median(ratios):.1f}x (p10 {statistics.quantiles(ratios, n=10)[0]:.1f}x)"
        if len(ratios) >= 2
        else "too few checkpoints: lower --every or raise --orders"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
