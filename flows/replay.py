"""Replay: run the live dataflow over historical stream files and write its outputs.

A replay is a pure function of its input and configuration: its output files are
byte-identical whatever the batch size, the worker count, or duplicate lines in the input.
Decisions read the models and the context aggregates as of an event-time boundary
(``operators.versions``), and the outputs are written in a canonical order at the end
(``flows.sinks.write_canonical``). Anything that could still make a run inexact is counted
in :attr:`ReplayRun.exactness` and logged (docs/decisions.md, "Replay determinism").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import Source
from bytewax.testing import cluster_main, run_main

from flows.dataflow import FlowParts, build_flow
from flows.learning import ModelRuntime
from flows.observer import FlowObserver
from flows.routing import LocalKeys, process_of_shard
from flows.runtime import tune_gc
from flows.sinks import OUTPUTS, JsonlSink, write_canonical
from flows.sources import EndOfInput, ReplaySource
from operators.engine import DecisionEngine
from operators.evaluation import load_ground_truth
from operators.models import truth_lookup
from operators.online_scorer import OnlineScorer
from operators.policy import RecoveryPolicy
from operators.scoring import HeuristicScorer
from operators.window import Decider, WindowConfig
from state.context import InMemoryContextStore
from state.models import ModelStore

log = logging.getLogger(__name__)

#: The epoch of a cluster replay: longer than any replay, so it runs as one epoch. An
#: epoch end is a barrier across processes: a process that has finished its epoch polls
#: its input without pause until every other one has too (Bytewax 0.21.1,
#: ``src/inputs.rs``), which burnt a core whenever one process was slowed. Epochs are
#: recovery points, and replays keep no recovery; one process keeps Bytewax's default.
CLUSTER_EPOCH = timedelta(days=365)


@dataclass
class ReplayOptions:
    """How to run a replay. Defaults are the embedded ones (no network, one worker)."""

    window: WindowConfig = field(default_factory=WindowConfig)
    batch_size: int = 1000
    workers: int = 1
    #: Merge the worker parts of each output into one file in a canonical order at the end
    #: (a cluster's processes leave that to the caller, see flows/cluster.py).
    canonical: bool = True
    learn: bool = True  # online models; False: the static rules (fixed heuristic scorer)
    ground_truth: Path | None = None  # simulator truth: label treated cases as if live
    model_store: ModelStore | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")


@dataclass
class ReplayRun:
    """What a replay did: where it wrote, how many input records, how long it took."""

    out_dir: Path
    input_records: int
    seconds: float
    engines: list[DecisionEngine]
    model_stats: dict[str, Any] | None = None
    #: Counts of what could have made this run depend on batching or workers; all 0 in an
    #: exact run: ``late_examples`` (learning items that reached the learner after the
    #: version they belonged in was cut), ``early_reads`` (decisions that read a model
    #: version before it was complete), ``late_context_updates`` (outcomes recorded after a
    #: decision read the aggregate they belonged in).
    exactness: dict[str, int] = field(default_factory=dict)
    #: Decisions that waited for their model version, and those handed on at the end of
    #: input before it was complete (then counted in ``early_reads`` if they read another).
    waits: dict[str, int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return not any(self.exactness.values())

    @property
    def events_per_second(self) -> float:
        return self.input_records / self.seconds if self.seconds > 0 else 0.0


def clear_outputs(out_dir: Path) -> None:
    """Remove the per-worker output parts of an earlier run (they would be read back)."""
    for name in OUTPUTS:
        for old in Path(out_dir).glob(f"{name}.w*.jsonl"):
            old.unlink()


def run_replay(
    input_dir: Path,
    out_dir: Path,
    policy: RecoveryPolicy | None = None,
    options: ReplayOptions | None = None,
    decider_factory: Callable[[], Decider] | None = None,
    observer: FlowObserver | None = None,
    *,
    make_source: Callable[[EndOfInput | None], Source] | None = None,
    cluster: tuple[list[str], int] | None = None,
) -> ReplayRun:
    """Replay ``input_dir`` through the dataflow, writing the four outputs to ``out_dir``.

    ``make_source`` builds the source instead of the whole-directory one, given the
    decision gate it reports its reads to, which holds the end of input while decisions
    wait (or None). ``cluster`` (addresses, this process's index) runs this process as one
    of a Bytewax cluster (``flows.cluster``), which clears stale outputs itself before its
    processes start. In a cluster the steps' keys are chosen so that each process keeps
    the items it reads (``flows.routing``): the source must give each process the orders of
    its own clock shards (``flows.cluster.PartitionedReplaySource``)."""
    tune_gc()
    opts = options or ReplayOptions()
    pol = policy or RecoveryPolicy.default()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cluster is None:
        clear_outputs(out_dir)
    engines: list[DecisionEngine] = []
    truth = None
    if opts.ground_truth is not None and opts.learn:
        truth = truth_lookup(load_ground_truth(opts.ground_truth))
    shards = opts.window.shards
    if cluster is not None:
        # This process reads only its own shards' orders: its progress is theirs.
        shards = sum(
            1
            for shard in range(opts.window.shards)
            if process_of_shard(shard, len(cluster[0]), opts.workers) == cluster[1]
        )
    models = ModelRuntime.for_policy(
        pol,
        opts.window,
        shards=shards,
        store=opts.model_store,
        truth=truth,
        # In a cluster each process has its own learner, context and gate (flows/cluster.py).
        wait_for_versions=True,
        learn=opts.learn,
        workers=opts.workers,
    )

    def default_factory() -> Decider:
        scorer = OnlineScorer(models.board) if opts.learn else HeuristicScorer()
        # Versioned by event time like the models: what a decision reads does not depend
        # on how far the flow has got with other orders.
        context = InMemoryContextStore(clock=models.versions)
        engine = DecisionEngine(pol, scorer=scorer, context=context, emit_examples=opts.learn)
        engines.append(engine)
        return engine

    counter = [0]
    obs = observer or FlowObserver()
    inner = obs.on_input

    def count(stream: str, payload: object) -> None:
        counter[0] += 1
        if inner is not None:
            inner(stream, payload)

    gate = models.gate
    keys = None
    if cluster is not None:
        addresses, index = cluster
        keys = LocalKeys(len(addresses) * opts.workers, opts.window.shards, index * opts.workers)
    parts = FlowParts(
        source=(
            make_source(gate)
            if make_source is not None
            else ReplaySource(Path(input_dir), opts.batch_size, gate)
        ),
        sinks={name: JsonlSink(out_dir, name) for name in OUTPUTS},
        decider_factory=decider_factory or default_factory,
        window=opts.window,
        close_open_cases_at_eof=True,
        observer=replace(obs, on_input=count),
        # Also without learning: the learner step then learns nothing but follows the
        # workers' progress, which is what the context aggregates' versions wait for.
        models=models,
        snapshots=False,  # replays run without Bytewax recovery
        keys=keys,
    )
    flow = build_flow(parts)
    started = time.perf_counter()
    if cluster is not None:
        addresses, index = cluster
        cluster_main(
            flow,
            addresses,
            index,
            epoch_interval=CLUSTER_EPOCH,
            worker_count_per_proc=opts.workers,
        )
    elif opts.workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=opts.workers)
    if cluster is None and opts.canonical:
        for name in OUTPUTS:
            write_canonical(out_dir, name)
    seconds = time.perf_counter() - started
    exactness = exactness_of(models, engines, opts.learn)
    stats = models.last_stats if opts.learn else None
    if stats is not None:
        stats = {**stats, **exactness}
    if any(exactness.values()):
        log.warning(
            "replay of %s is not exact (may differ with other batch sizes or workers): %s; "
            "see docs/decisions.md, Replay determinism",
            input_dir,
            ", ".join(f"{k}={v}" for k, v in exactness.items() if v),
        )
    gate = models.gate
    waits = {"waited": gate.held, "forced_at_end": gate.forced} if gate is not None else {}
    return ReplayRun(out_dir, counter[0], seconds, engines, stats, exactness, waits)


def exactness_of(
    models: ModelRuntime, engines: list[DecisionEngine], learn: bool
) -> dict[str, int]:
    """What could have made a run depend on batching or workers (see ReplayRun)."""
    stats = models.last_stats or {}
    late_context = sum(
        e.context.late_updates for e in engines if isinstance(e.context, InMemoryContextStore)
    )
    return {
        "late_examples": int(stats.get("late_examples", 0)) if learn else 0,
        "early_reads": models.board.early_reads if learn else 0,
        "late_context_updates": late_context,
    }
