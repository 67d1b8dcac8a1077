"""``simulate``: run a scenario and write the five event/truth files plus ``scenario.json``."""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from operators.simulation.clock import DAY, HOUR, MINUTE, TimestampFormatter, parse_timestamp
from operators.simulation.model import STREAM_NAMES, OrderModel, ground_truth_arms
from operators.simulation.response import World
from operators.simulation.scenarios import ScenarioParams, get_scenario
from operators.simulation.sink import SortedSpill, close_output, open_output
from operators.simulation.world import Catalog, CustomerPool, placement_times

CONTRACT_VERSION = 1
GROUND_TRUTH_FILE = "ground_truth.jsonl"
SCENARIO_FILE = "scenario.json"
WORLD_FILE = "world.json"
#: World seed of ``salvage simulate`` and ``salvage demo`` unless told otherwise. Policy
#: thresholds are tuned on world seeds 0-9 and reported on 100-119 (docs/simulation.md).
DEFAULT_WORLD_SEED = 100
# Events arrive up to ~45 days after the last order; keep spill buckets under this count.
_MAX_BUCKETS = 150
_TAIL_DAYS = 60


@dataclass(slots=True)
class SimulationStats:
    """What a run produced. ``events`` counts distinct events; injected copies are separate."""

    scenario: str
    orders: int
    events: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    out_of_order: int = 0
    early_signals: int = 0
    invalid: int = 0
    at_risk: int = 0
    seconds: float = 0.0
    world_seed: int = DEFAULT_WORLD_SEED
    twists: list[str] = field(default_factory=list)


def stream_path(out_dir: Path, stream: str, *, compress: bool = False) -> Path:
    """Path of a stream file (``orders.jsonl`` or ``orders.jsonl.gz``)."""
    return Path(out_dir) / f"{stream}.jsonl{'.gz' if compress else ''}"


class _Emitter:
    """Serialises events into the spills and injects duplicates, disorder and bad lines."""

    __slots__ = (
        "_dup_rate",
        "_invalid_rate",
        "_ooo_rate",
        "_rng",
        "counts",
        "duplicates",
        "invalid",
        "out_of_order",
        "spills",
    )

    def __init__(
        self, spills: list[SortedSpill], params: ScenarioParams, seed: int, invalid_rate: float
    ) -> None:
        self.spills = spills
        # A separate generator keeps the world identical whatever the noise settings are.
        self._rng = random.Random(seed * 1_000_003 + 7)
        self._dup_rate = params.duplicate_rate
        self._ooo_rate = params.out_of_order_rate
        self._invalid_rate = invalid_rate
        self.counts = [0] * len(spills)
        self.duplicates = 0
        self.out_of_order = 0
        self.invalid = 0

    def __call__(self, stream: int, ts: int, body: dict[str, Any]) -> None:
        """Write one event (and maybe a late duplicate and an invalid line) to ``stream``."""
        rnd = self._rng.random
        data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        spill = self.spills[stream]
        self.counts[stream] += 1
        emit_ts = ts
        if rnd() < self._ooo_rate:
            # Held back by a lagging producer: lands after events that happened later.
            emit_ts = ts + 10 * MINUTE + int(rnd() * 170 * MINUTE)
            self.out_of_order += 1
        spill.add(emit_ts, data)
        if rnd() < self._dup_rate:
            # At-least-once redelivery: the very same bytes, a little later in the file.
            spill.add(emit_ts + 30 + int(rnd() * 4 * HOUR), data)
            self.duplicates += 1
        if self._invalid_rate and rnd() < self._invalid_rate:
            spill.add(ts, self._invalid_line(body))
            self.invalid += 1

    def _invalid_line(self, body: dict[str, Any]) -> bytes:
        """A line that no contract-v1 validator can accept."""
        kind = int(self._rng.random() * 5)
        broken = dict(body, event_id=f"invalid-{self.invalid + 1}")
        if kind == 0:
            return orjson.dumps(broken)[:-7]  # truncated JSON
        if kind == 1:
            broken.pop("order_id")
        elif kind == 2:
            broken["type"] = "teleported"
        elif kind == 3:
            broken["occurred_at"] = "yesterday afternoon"
        else:
            return b"[1, 2, 3]"
        return orjson.dumps(broken, option=orjson.OPT_SORT_KEYS)


def _bucket_seconds(params: ScenarioParams) -> int:
    """Width of spill buckets so each stream keeps at most ``_MAX_BUCKETS`` temp files open."""
    span_days = params.days + _TAIL_DAYS
    return DAY * max(1, math.ceil(span_days / _MAX_BUCKETS))


def _scenario_document(
    params: ScenarioParams, orders: int, seed: int, compress: bool, world: World
) -> dict[str, Any]:
    """Contents of ``scenario.json``: what was run, with which parameters, into which files.

    ``parameters`` are the scenario's own; a world twist that changes them (a new campaign)
    is listed in ``world.json``.
    """
    return {
        "scenario": params.name,
        "seed": seed,
        "world_seed": world.world_seed,
        "misspecified": world.misspecified,
        "orders": orders,
        "start": params.start,
        "contract_version": CONTRACT_VERSION,
        "currency": params.currency,
        "actions": list(ground_truth_arms()),
        "files": {
            **{name: stream_path(Path(), name, compress=compress).name for name in STREAM_NAMES},
            "ground_truth": GROUND_TRUTH_FILE,
            "world": WORLD_FILE,
        },
        "parameters": asdict(params),
    }


def simulate(
    scenario: str,
    orders: int,
    seed: int,
    out_dir: Path,
    *,
    compress: bool = False,
    invalid_rate: float = 0.0,
    world_seed: int = DEFAULT_WORLD_SEED,
    misspecified: bool = False,
    drift: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SimulationStats:
    """Generate ``orders`` orders of ``scenario`` into ``out_dir``; deterministic in the seeds.

    ``seed`` draws the history; ``world_seed`` draws the :class:`World` that says what every
    action would have done (``misspecified``: with all three twists; ``drift``: plus
    reassurance that stops working in one lane halfway through). Writes
    ``orders``/``delivery``/``support``/``refunds`` JSON Lines (gzip when ``compress``),
    each sorted by ``occurred_at`` apart from the injected late and duplicate deliveries, plus
    ``ground_truth.jsonl`` (one row per order), ``world.json`` and ``scenario.json``.
    ``invalid_rate`` mixes clearly invalid lines into the streams, for testing validation
    paths only. ``progress(n)`` is told the number of orders generated so far (a progress
    display).
    """
    if orders < 1:
        raise ValueError("orders must be >= 1")
    if not 0.0 <= invalid_rate < 1.0:
        raise ValueError("invalid_rate must be in [0, 1)")
    began = time.perf_counter()
    scenario_params = get_scenario(scenario)
    world = World.draw(world_seed, scenario_params, misspecified=misspecified, drift=drift)
    params = world.scenario(scenario_params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = parse_timestamp(params.start)
    np_rng = np.random.default_rng(seed)
    customers = CustomerPool.build(params, orders, np_rng)
    times = placement_times(params, start, orders, np_rng)
    fmt = TimestampFormatter(start - 2 * DAY, start + (params.days + _TAIL_DAYS) * DAY)
    # The world's draws come from their own generator, so the history does not depend on it.
    response_rng = random.Random(f"response:{seed}:{world_seed}")
    model = OrderModel(
        params, Catalog.build(params), customers, random.Random(seed), fmt, world, response_rng
    )

    tmp_dir = Path(tempfile.mkdtemp(prefix=".simulate-", dir=out_dir))
    bucket = _bucket_seconds(params)
    spills = [SortedSpill(tmp_dir, name, bucket) for name in STREAM_NAMES]
    emit = _Emitter(spills, params, seed, invalid_rate)
    stats = SimulationStats(
        scenario=params.name,
        orders=orders,
        world_seed=world_seed,
        twists=[t["kind"] for t in world.twists],
    )
    try:
        with open(out_dir / GROUND_TRUTH_FILE, "wb", buffering=1 << 16) as truth:
            for idx, t0 in enumerate(times):
                row = model.generate(idx, t0, emit)
                stats.at_risk += row["at_risk"]
                truth.write(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
                if progress is not None:
                    progress(idx + 1)
        del times
        for name, spill in zip(STREAM_NAMES, spills, strict=True):
            stream_path(out_dir, name, compress=not compress).unlink(missing_ok=True)
            handle = open_output(stream_path(out_dir, name, compress=compress), compress=compress)
            try:
                spill.finish(handle)
            finally:
                close_output(handle)
    finally:
        for spill in spills:
            spill.discard()
        shutil.rmtree(tmp_dir, ignore_errors=True)

    document = _scenario_document(scenario_params, orders, seed, compress, world)
    pretty = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    (out_dir / SCENARIO_FILE).write_bytes(orjson.dumps(document, option=pretty) + b"\n")
    (out_dir / WORLD_FILE).write_bytes(orjson.dumps(world.to_dict(), option=pretty) + b"\n")
    stats.events = dict(zip(STREAM_NAMES, emit.counts, strict=True))
    stats.duplicates = emit.duplicates
    stats.out_of_order = emit.out_of_order
    stats.invalid = emit.invalid
    stats.early_signals = model.early_signals
    stats.seconds = round(time.perf_counter() - began, 3)
    return stats
