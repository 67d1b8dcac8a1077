"""Process-level tuning shared by every entry point (CLI, replay, ``python -m bytewax.run``)."""

from __future__ import annotations

import gc

#: Young-generation threshold. Open cases keep hundreds of thousands of small objects
#: alive; with CPython's default (700) the cyclic collector walks them over and over, which
#: cost about a third of replay throughput at 100,000 orders. Case state holds no cycles, so
#: collecting less often frees the same memory.
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Raise the collector's thresholds and freeze what is alive after start-up (modules,
    policy, models) so full collections skip it. Idempotent."""
    if gc.get_threshold() != GC_THRESHOLD:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
