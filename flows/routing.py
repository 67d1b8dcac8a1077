"""Where Bytewax sends a keyed item, computed in Python, so a cluster can keep every item
in the process that read it (``salvage replay --processes N``, ``flows/cluster.py``).

Bytewax 0.21.1 routes the items of a stateful step (``stateful_batch``, and ``stateful``
built on it) to a worker by hashing the state key: ``src/operators.rs`` partitions with
``BuildHasherDefault<DefaultHasher>`` over the worker indices, and ``src/timely.rs``
(``PartitionOp``) takes the hash modulo the number of workers. The key is a
``StateKey(String)`` whose derived ``Hash`` is ``str``'s: its UTF-8 bytes then one
``0xFF`` byte; Rust's ``DefaultHasher`` is SipHash-1-3 with both keys zero. A worker's
index in a cluster is ``process * workers_per_process + thread``.

So a step's key can be *chosen* to land on a given worker: :func:`key_for` prefixes a
label with the first counter whose key hashes there (half the labels need no second try
with two workers). The prefix keeps keys unique: ``"<k>:<label>"`` is read back
unambiguously, since ``k`` has no colon.

``tests/flows/test_routing.py`` checks :func:`worker_of` against Bytewax itself.
"""

from __future__ import annotations

from operators.models import MODEL_SET
from operators.window import shard_of

_MASK = 0xFFFFFFFFFFFFFFFF


def siphash13(data: bytes) -> int:
    """SipHash-1-3 of ``data`` with a zero key: Rust's ``DefaultHasher`` (and CPython's
    ``hash`` of bytes with ``PYTHONHASHSEED=0``, up to sign)."""
    m64 = _MASK
    v0, v1 = 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = 0x6C7967656E657261, 0x7465646279746573
    n = len(data)
    tail = n & ~7
    words = [int.from_bytes(data[i : i + 8], "little") for i in range(0, tail, 8)]
    words.append(((n & 0xFF) << 56) | int.from_bytes(data[tail:], "little"))
    # The rounds are written out: this runs once or twice per order in a cluster replay.
    for m in words:
        v3 ^= m
        v0 = (v0 + v1) & m64
        v1 = (((v1 << 13) | (v1 >> 51)) & m64) ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & m64
        v2 = (v2 + v3) & m64
        v3 = (((v3 << 16) | (v3 >> 48)) & m64) ^ v2
        v0 = (v0 + v3) & m64
        v3 = (((v3 << 21) | (v3 >> 43)) & m64) ^ v0
        v2 = (v2 + v1) & m64
        v1 = (((v1 << 17) | (v1 >> 47)) & m64) ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & m64
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(3):
        v0 = (v0 + v1) & m64
        v1 = (((v1 << 13) | (v1 >> 51)) & m64) ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & m64
        v2 = (v2 + v3) & m64
        v3 = (((v3 << 16) | (v3 >> 48)) & m64) ^ v2
        v0 = (v0 + v3) & m64
        v3 = (((v3 << 21) | (v3 >> 43)) & m64) ^ v0
        v2 = (v2 + v1) & m64
        v1 = (((v1 << 17) | (v1 >> 47)) & m64) ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & m64
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker (of ``workers`` in the cluster) Bytewax 0.21.1 sends state key ``key`` to.

    The plain shard numbers would put six of eight clocks on worker 1 of 2:

    >>> [worker_of(str(shard), 2) for shard in range(8)]
    [1, 1, 1, 1, 0, 0, 1, 1]
    """
    return siphash13(key.encode() + b"\xff") % workers


def key_for(label: str, worker: int, workers: int) -> str:
    """A state key for ``label`` that Bytewax routes to ``worker``: ``"<k>:<label>"`` with
    the smallest ``k`` that lands there. Distinct labels get distinct keys.

    >>> key_for("o1", 0, 2), key_for("o1", 1, 2)
    ('0:o1', '1:o1')
    """
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is not in 0..{workers - 1}")
    k = 0
    while True:
        key = f"{k}:{label}"
        if worker_of(key, workers) == worker:
            return key
        k += 1


class LocalKeys:
    """The state keys of a cluster replay's steps, chosen so that nothing crosses processes
    after the input: an order's clock shard ``s`` lives on worker ``s % workers`` (a worker
    of the process that reads that shard's orders, see ``flows.cluster.process_of``), and
    its case on the same worker; the learner of process ``p`` on its first worker
    (``learner_worker``), so each process learns from its own cases. Keys are cached: each
    order's is computed once per process."""

    __slots__ = ("_cases", "_clocks", "_learner", "shards", "workers")

    def __init__(self, workers: int, shards: int, learner_worker: int = 0) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.shards = shards
        self._clocks = {str(s): key_for(str(s), s % workers, workers) for s in range(shards)}
        self._cases: dict[str, str] = {}
        self._learner = key_for(MODEL_SET, learner_worker, workers)

    def learner_key(self) -> str:
        return self._learner

    def worker_of_shard(self, shard: str) -> int:
        return int(shard) % self.workers

    def clock_key(self, shard: str) -> str:
        return self._clocks[shard]

    def case_key(self, order_id: str) -> str:
        key = self._cases.get(order_id)
        if key is None:
            worker = self.worker_of_shard(shard_of(order_id, self.shards))
            key = self._cases[order_id] = key_for(order_id, worker, self.workers)
        return key


def process_of_shard(shard: int, processes: int, workers: int = 1) -> int:
    """The process whose worker ``shard % (processes * workers)`` holds clock shard
    ``shard`` (``LocalKeys`` puts it there)."""
    return shard % (processes * workers) // workers
