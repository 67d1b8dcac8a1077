"""Replay on a Bytewax cluster of several processes: ``salvage replay --processes N``.

One Python process runs one dataflow at a time under the GIL, so a second *worker thread*
does not help (it was slower on two cores); a second *process* does. ``--processes N``
starts N processes that form one Bytewax cluster (``cluster_main`` with the addresses of
all of them, as ``python -m bytewax.run -i I -a ADDRS`` would), each with ``--workers``
worker threads.

How the work is split, and why it scales and outcomes match one process:

- **Input, partitioned by order.** Every process reads the stream files and merges them
  by event time exactly as one process does, then keeps only its own orders: those whose
  clock shard (``shard_of(order_id)``, 8 shards by default) is on one of its workers
  (:func:`process_of`: ``shard % (processes * workers)``, one worker per process by
  default). Records without a usable order id go to process 0, so each is dead-lettered
  once. The merge is the same everywhere, so each record keeps the ``received_at`` it has
  in one process.
- **Nothing crosses processes after that.** Bytewax sends a stateful step's items to the
  worker its hash of the state key picks; the keys of the clock, case and learner steps
  are chosen so that this is the worker that read them (``flows.routing.LocalKeys``).
  (With plain keys, half the events crossed processes twice, pickled, costing about as
  much as deciding: two processes were slower than one.) Each clock shard sees the events
  of its orders in the same order as in one process, so lateness, expiry and therefore
  every order's outcome are the same.
- **Context, models and the decision gate are per process** in a replay (in memory):
  the customer, family and lane aggregates a process's decisions read are fed by the
  cases that closed in that process, and each process's learner learns from its own
  cases, with its decisions waiting for its own versions as in one process. So decisions
  (and the actions and predictions recorded on outcomes) can differ from a one-process
  replay; outcomes per order (kind, resolution time, values) do not; and a process's
  outputs depend only on its input, so the same input gives the same files. Live mode
  shares context and models through Redis (``docs/state.md``).
- **Outputs are written per worker**: ``decisions.jsonl`` by worker 0,
  ``decisions.w<i>.jsonl`` by worker ``i`` (and so on for every output), each put in the
  canonical order of ``flows.sinks.write_canonical`` by its process at the end. Readers
  (``flows.jsonl.read_jsonl``, the summary, the report) read all parts; records of one
  order are all in one part.

A process that fails makes the others fail (Bytewax stops the cluster); the parent
reports the first non-zero exit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource

from flows.replay import clear_outputs
from flows.routing import process_of_shard
from flows.sinks import OUTPUTS, output_path, sort_canonical
from flows.sources import EndOfInput, RawItem, _ReplayPartition, find_stream_files
from operators.window import shard_of

#: Where each process leaves its counts for the parent (removed after merging).
PART_FILE = ".process-{}.json"


def process_of(payload: Any, shards: int, processes: int, workers: int = 1) -> int:
    """The process that handles a raw record: the one whose worker holds its order's clock
    shard (shard ``s`` is on worker ``s % (processes * workers)``, see
    ``flows.routing.LocalKeys``); 0 for records without a usable order id.

    >>> [process_of({"order_id": f"o{i}"}, 8, 2) for i in range(6)]
    [1, 1, 1, 1, 0, 0]
    >>> process_of(b"not json", 8, 2), process_of({"order_id": 7}, 8, 2)
    (0, 0)
    """
    if processes == 1:
        return 0
    order_id = payload.get("order_id") if isinstance(payload, dict) else None
    if not isinstance(order_id, str) or not order_id:
        return 0
    return process_of_shard(int(shard_of(order_id, shards)), processes, workers)


class _OwnOrders(_ReplayPartition):
    """The merged replay, keeping the records of one process's orders."""

    def __init__(
        self,
        files: dict[str, Path],
        batch_size: int,
        resume: Any,
        mine: Callable[[Any], bool],
        gate: EndOfInput | None = None,
    ) -> None:
        super().__init__(files, batch_size, resume, gate)
        self.mine = mine

    def _next_batch(self) -> list[RawItem]:
        batch: list[RawItem] = []
        merged, mine = self.merged, self.mine
        while len(batch) < self.batch_size:
            try:
                item = next(merged)
            except StopIteration:
                if batch:
                    break
                return self._end()  # the end of input, held while decisions wait
            if mine(item[1]):
                batch.append(item)
        return batch


class PartitionedReplaySource(FixedPartitionedSource[RawItem, dict[str, int]]):
    """A replay directory read by process ``index`` of ``count`` (each with ``workers``
    worker threads): one local partition holding that process's orders (see
    :func:`process_of`). ``gate`` as for ``flows.sources.ReplaySource``."""

    def __init__(
        self,
        input_dir: Path,
        batch_size: int,
        index: int,
        count: int,
        shards: int,
        workers: int = 1,
        gate: EndOfInput | None = None,
    ) -> None:
        if not 0 <= index < count:
            raise ValueError(f"process index {index} is not in 0..{count - 1}")
        self.files = find_stream_files(Path(input_dir))
        self.batch_size = batch_size
        self.index, self.count, self.shards, self.workers = index, count, shards, workers
        self.gate = gate

    def list_parts(self) -> list[str]:
        return [f"replay-{self.index}-of-{self.count}"]  # only this process's part is local

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _OwnOrders:
        index, count, shards, workers = self.index, self.count, self.shards, self.workers

        # Every process reads every record: remember each order's answer (one dict
        # lookup instead of a CRC per record; an order has several records).
        known: dict[str, bool] = {}

        def mine(payload: Any) -> bool:
            order_id = payload.get("order_id") if isinstance(payload, dict) else None
            if not isinstance(order_id, str):
                return process_of(payload, shards, count, workers) == index
            answer = known.get(order_id)
            if answer is None:
                answer = known[order_id] = process_of(payload, shards, count, workers) == index
            return answer

        return _OwnOrders(self.files, self.batch_size, resume_state, mine, self.gate)


def local_addresses(count: int) -> list[str]:
    """``127.0.0.1:<port>`` for each process of a local cluster, on ports free now."""
    ports = []
    sockets = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return [f"127.0.0.1:{p}" for p in ports]


def _process_main(
    input_dir: str,
    out_dir: str,
    policy_path: str | None,
    options: Any,
    addresses: list[str],
    index: int,
) -> None:
    """One process of the cluster: the replay flow over its orders."""
    from flows.replay import run_replay
    from operators.policy import RecoveryPolicy

    policy = RecoveryPolicy.load(policy_path) if policy_path else RecoveryPolicy.default()
    count, workers = len(addresses), options.workers

    def make_source(gate: EndOfInput | None) -> PartitionedReplaySource:
        return PartitionedReplaySource(
            Path(input_dir),
            options.batch_size,
            index,
            count,
            options.window.shards,
            workers,
            gate,
        )

    run = run_replay(
        Path(input_dir),
        Path(out_dir),
        policy,
        options,
        make_source=make_source,
        cluster=(addresses, index),
    )
    # This process's parts, in canonical order: its records arrive in an order that
    # depends on batching, their set does not.
    for name in OUTPUTS:
        for worker in range(index * workers, (index + 1) * workers):
            sort_canonical(output_path(Path(out_dir), name, worker), name)
    part = {
        "input_records": run.input_records,
        "seconds": run.seconds,
        "cpu_seconds": time.process_time(),  # this process's, start-up included
        "models": run.model_stats,
    }
    (Path(out_dir) / PART_FILE.format(index)).write_text(json.dumps(part))


def run_cluster_replay(
    input_dir: Path,
    out_dir: Path,
    policy_path: str | None,
    options: Any,
    processes: int,
) -> dict[str, Any]:
    """Replay on a local cluster of ``processes`` processes; returns the merged counts
    (``input_records``, ``seconds`` wall time of the whole run, ``models`` of the process
    that learned). Raises RuntimeError if a process fails."""
    if processes < 2:
        raise ValueError("a cluster needs at least 2 processes")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(PART_FILE.format("*")):
        old.unlink()
    clear_outputs(out_dir)  # here, not in the processes: one would delete another's part
    addresses = local_addresses(processes)
    ctx = multiprocessing.get_context("spawn")  # no forked Bytewax or thread state
    started = time.perf_counter()
    procs = [
        ctx.Process(
            target=_process_main,
            args=(str(input_dir), str(out_dir), policy_path, options, addresses, i),
            name=f"salvage-replay-{i}",
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - started
    failed = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"replay processes failed: {failed}")
    parts = []
    for i in range(processes):
        path = out_dir / PART_FILE.format(i)
        parts.append(json.loads(path.read_text()))
        os.unlink(path)
    models = next((p["models"] for p in parts if p["models"]), None)
    return {
        "input_records": sum(p["input_records"] for p in parts),
        "seconds": seconds,
        "models": models,
        "process_records": [p["input_records"] for p in parts],
        "process_seconds": [round(p["seconds"], 3) for p in parts],
        "process_cpu_seconds": [round(p["cpu_seconds"], 3) for p in parts],
    }
