"""Replay: run the live dataflow over historical stream files and write its outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bytewax.inputs import Source
from bytewax.testing import cluster_main, run_main

from flows.dataflow import FlowObserver, FlowParts, ModelRuntime, build_flow
from flows.runtime import tune_gc
from flows.sinks import OUTPUTS, JsonlSink
from flows.sources import ReplaySource
from operators.engine import DecisionEngine
from operators.evaluation import load_ground_truth
from operators.models import OnlineScorer, truth_lookup
from operators.policy import RecoveryPolicy
from operators.scoring import HeuristicScorer
from operators.window import Decider, WindowConfig
from state.context import InMemoryContextStore
from state.models import ModelStore


@dataclass
class ReplayOptions:
    """How to run a replay. Defaults are the embedded ones (no network, one worker)."""

    window: WindowConfig = field(default_factory=WindowConfig)
    batch_size: int = 1000
    workers: int = 1
    learn: bool = True  # online models; False: the static rules (fixed heuristic scorer)
    publish_every: int = 200
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
    source: Source | None = None,
    cluster: tuple[list[str], int] | None = None,
) -> ReplayRun:
    """Replay ``input_dir`` through the dataflow, writing the four outputs to ``out_dir``.

    ``source`` replaces the whole-directory source; ``cluster`` (addresses, this process's
    index) runs this process as one of a Bytewax cluster (``flows.cluster``), which
    clears stale outputs itself before its processes start."""
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
    models = ModelRuntime.for_policy(
        pol, opts.window, store=opts.model_store, publish_every=opts.publish_every, truth=truth
    )

    def default_factory() -> Decider:
        scorer = OnlineScorer(models.board) if opts.learn else HeuristicScorer()
        engine = DecisionEngine(
            pol, scorer=scorer, emit_examples=opts.learn, context=InMemoryContextStore()
        )
        engines.append(engine)
        return engine

    counter = [0]
    obs = observer or FlowObserver()
    inner = obs.on_input

    def count(stream: str, payload: object) -> None:
        counter[0] += 1
        if inner is not None:
            inner(stream, payload)

    parts = FlowParts(
        source=source or ReplaySource(Path(input_dir), opts.batch_size),
        sinks={name: JsonlSink(out_dir, name) for name in OUTPUTS},
        decider_factory=decider_factory or default_factory,
        window=opts.window,
        close_open_cases_at_eof=True,
        observer=replace(obs, on_input=count),
        models=models if opts.learn else None,
        snapshots=False,  # replays run without Bytewax recovery
    )
    flow = build_flow(parts)
    started = time.perf_counter()
    if cluster is not None:
        addresses, index = cluster
        cluster_main(flow, addresses, index, worker_count_per_proc=opts.workers)
    elif opts.workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=opts.workers)
    return ReplayRun(out_dir, counter[0], time.perf_counter() - started, engines, models.last_stats)
