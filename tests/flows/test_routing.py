"""``flows.routing``: the worker Bytewax sends a state key to, computed in Python, checked
against Bytewax itself; and the keys a cluster replay chooses with it."""

from __future__ import annotations

import zlib
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, cluster_main

from flows.cluster import process_of
from flows.routing import LocalKeys, key_for, siphash13, worker_of
from operators.models import MODEL_SET
from operators.window import shard_of


class _WhereSink(DynamicSink[tuple[str, Any]]):
    """Records (key, worker index) for each item that reaches the sink."""

    def __init__(self, seen: list[tuple[str, int]]) -> None:
        self.seen = seen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> Any:
        seen = self.seen

        class Part(StatelessSinkPartition[tuple[str, Any]]):
            def write_batch(self, items: list[tuple[str, Any]]) -> None:
                seen.extend((key, worker_index) for key, _ in items)

        return Part()


def _where_bytewax_puts(keys: list[str], workers: int) -> dict[str, int]:
    """Run the keys through a stateful step on ``workers`` workers; where each landed."""
    seen: list[tuple[str, int]] = []
    flow = Dataflow("where")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda k: k)
    stateful = op.stateful_map("state", keyed, lambda state, v: (state, v))
    op.output("out", stateful, _WhereSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert len(seen) == len(keys)
    return dict(seen)


KEYS = [
    *(f"LWB-{i:07d}" for i in range(200)),
    *(str(s) for s in range(8)),
    "",
    "é-ü-中",  # multi-byte UTF-8
    "x" * 23,  # several 8-byte blocks and a tail
    f"3:{MODEL_SET}",
]


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_worker_of_is_where_bytewax_routes_each_key(workers: int) -> None:
    landed = _where_bytewax_puts(KEYS, workers)
    assert {k: worker_of(k, workers) for k in KEYS} == landed
    assert len(set(landed.values())) == workers  # the check is not vacuous


def test_siphash13_is_pythons_own_with_a_zero_key() -> None:
    # CPython's bytes hash is SipHash-1-3 too; with PYTHONHASHSEED=0 its key is zero.
    import json
    import subprocess
    import sys

    data = [b"a", b"abcdefgh", b"order-000123\xff", bytes(range(40))]
    code = f"import sys; print([hash(b) for b in {data!r}])"
    env = {"PYTHONHASHSEED": "0", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    expected = json.loads(out.stdout)
    signed = [h - (1 << 64) if h >= 1 << 63 else h for h in map(siphash13, data)]
    assert signed == expected


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_key_for_lands_on_the_asked_worker_with_distinct_keys(workers: int) -> None:
    labels = [f"o{i}" for i in range(300)]
    for worker in range(workers):
        keys = [key_for(label, worker, workers) for label in labels]
        assert all(worker_of(k, workers) == worker for k in keys)
        assert len(set(keys)) == len(keys)
    with pytest.raises(ValueError):
        key_for("o1", workers, workers)


@pytest.mark.parametrize(("processes", "workers"), [(2, 1), (3, 1), (2, 2)])
def test_local_keys_keep_an_order_on_the_worker_of_the_process_that_reads_it(
    processes: int, workers: int
) -> None:
    total = processes * workers
    orders = [f"LWB-{i:07d}" for i in range(500)]
    learners = set()
    for process in range(processes):
        keys = LocalKeys(total, 8, process * workers)
        assert worker_of(keys.learner_key(), total) == process * workers
        learners.add(keys.learner_key())
        for shard in map(str, range(8)):
            clock_worker = worker_of(keys.clock_key(shard), total)
            assert clock_worker == int(shard) % total
        for order_id in orders:
            worker = worker_of(keys.case_key(order_id), total)
            # The case is where the order's clock is, in the process that reads the order.
            assert worker == worker_of(keys.clock_key(shard_of(order_id, 8)), total)
            assert worker // workers == process_of({"order_id": order_id}, 8, processes, workers)
        assert len({keys.case_key(o) for o in orders}) == len(orders)
    assert len(learners) == processes  # one learner per process


def test_clock_shards_are_spread_evenly_over_processes() -> None:
    counts = [0, 0]
    for i in range(4000):
        counts[process_of({"order_id": f"o{i}"}, 8, 2)] += 1
    assert abs(counts[0] - counts[1]) < 400
    assert zlib.crc32(b"o1") % 8 % 2 == process_of({"order_id": "o1"}, 8, 2)
