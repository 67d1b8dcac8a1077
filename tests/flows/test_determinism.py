"""A replay is a pure function of its input and config: the same bytes whatever the batch
size, the worker count, or duplicate lines in the input (docs/decisions.md, "Replay
determinism"); and what could break that is counted, never silent."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.replay import ReplayOptions, ReplayRun, run_replay
from flows.sinks import OUTPUTS, write_canonical
from operators.case import DAY, OrderCase
from operators.features import build_features, to_vector
from operators.gate import SnapshotBoard
from operators.learner import Learner
from operators.models import Pending, Resolution
from operators.policy import RecoveryPolicy
from operators.simulation import simulate
from operators.versions import VersionClock
from state.context import InMemoryContextStore

REPO = Path(__file__).resolve().parents[2]
#: Labels at 3 days, so that learned versions are cut, and read, well before the input ends.
SHORT_HORIZON = RecoveryPolicy.from_text(
    (REPO / "operators" / "policies" / "default.yaml")
    .read_text(encoding="utf-8")
    .replace("label_horizon_days: 14", "label_horizon_days: 3"),
    "default-short.yaml",
)
#: (name, batch size, workers, duplicated input)
MATRIX = [
    ("batch-1000", 1000, 1, False),
    ("batch-10", 10, 1, False),
    ("batch-1", 1, 1, False),
    ("two-workers", 1000, 2, False),
    ("two-workers-batch-10", 10, 2, False),
    ("duplicates", 1000, 1, True),
    ("duplicates-two-workers-batch-10", 10, 2, True),
]


def with_duplicates(src: Path, dst: Path, share: float = 0.05, seed: int = 1) -> int:
    """A copy of the input with ``share`` of its lines written twice in a row (a producer
    that re-delivers); returns how many lines were duplicated."""
    rnd = random.Random(seed)
    dst.mkdir(parents=True)
    duplicated = 0
    for path in sorted(src.glob("*.jsonl")):
        out = []
        for line in path.read_bytes().splitlines(keepends=True):
            out.append(line)
            if rnd.random() < share:
                out.append(line)
                duplicated += 1
        (dst / path.name).write_bytes(b"".join(out))
    return duplicated


@pytest.fixture(scope="module")
def replays(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("determinism")
    data = base / "input"
    # Sparse in its last weeks (few events per shard and day) and decided by a learning
    # policy: the hard case for batch breaks.
    simulate("steady-state", 1500, 5, data)
    duplicated = with_duplicates(data, base / "duplicated")
    assert duplicated > 300
    runs: dict[str, ReplayRun] = {}
    for name, batch, workers, dup in MATRIX:
        source = base / "duplicated" if dup else data
        runs[name] = run_replay(
            source, base / name, SHORT_HORIZON, ReplayOptions(batch_size=batch, workers=workers)
        )
    return {"base": base, "runs": runs}


def _bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / f"{name}.jsonl").read_bytes() for name in OUTPUTS}


@pytest.mark.slow
@pytest.mark.parametrize("name", [m[0] for m in MATRIX[1:]])
def test_outputs_are_byte_identical(replays: dict[str, Any], name: str) -> None:
    base: Path = replays["base"]
    reference, other = _bytes(base / "batch-1000"), _bytes(base / name)
    assert reference["decisions"] and reference["interventions"]
    # Dead letters record re-delivered events of closed cases: a duplicated input may add
    # some; every other output is the same to the byte.
    names = [n for n in OUTPUTS if n != "dead_letter"] if "duplicates" in name else OUTPUTS
    run = replays["runs"][name]
    for output in names:
        assert other[output] == reference[output], (output, name, run.exactness, run.waits)


@pytest.mark.slow
def test_every_run_is_exact_and_decides_from_learned_versions(replays: dict[str, Any]) -> None:
    for name, run in replays["runs"].items():
        assert run.exact, (name, run.exactness)
        assert run.exactness == {
            "late_examples": 0, "early_reads": 0, "late_context_updates": 0,
        }  # fmt: skip
        assert run.model_stats is not None and run.model_stats["late_examples"] == 0
    decisions = [
        orjson.loads(line)
        for line in (replays["base"] / "batch-1000" / "decisions.jsonl").read_bytes().splitlines()
    ]
    learned = [d for d in decisions if d["model_version"].startswith("river-lr-v")]
    # Byte-identity covers decisions from learned versions (several of them), and the
    # large batches made decisions wait for their version.
    assert len(learned) > len(decisions) // 2
    assert len({d["model_version"] for d in learned}) >= 5
    assert replays["runs"]["batch-1000"].waits["waited"] > 100
    assert all(r.waits["forced_at_end"] == 0 for r in replays["runs"].values())


def _learning_variant(forget: bool) -> RecoveryPolicy:
    text = (REPO / "operators" / "policies" / "default.yaml").read_text(encoding="utf-8")
    keys = "label_horizon_days: 3\n  covariance: full"
    if forget:
        keys += "\n  outcome_half_life_days: 2"
    return RecoveryPolicy.from_text(
        text.replace("label_horizon_days: 14", keys), f"forget-{forget}.yaml"
    )


@pytest.mark.slow
def test_a_forgetting_full_covariance_learner_replays_to_the_same_bytes(
    replays: dict[str, Any],
) -> None:
    """Forgetting runs in event time (the learner's releases), so batch size and workers
    change nothing; and it acts: without it the same replay decides differently."""
    base: Path = replays["base"]
    forgetting = _learning_variant(True)
    for name, batch, workers in (("forget-a", 1000, 1), ("forget-b", 10, 2)):
        run = run_replay(
            base / "input",
            base / name,
            forgetting,
            ReplayOptions(batch_size=batch, workers=workers),
        )
        assert run.exact, run.exactness
    run_replay(base / "input", base / "forget-none", _learning_variant(False), ReplayOptions())
    a, b = _bytes(base / "forget-a"), _bytes(base / "forget-b")
    assert a == b
    assert a["decisions"] != _bytes(base / "forget-none")["decisions"]


# --- the pieces, without a dataflow -------------------------------------------------------

X = to_vector(build_features(OrderCase("o"), None, 0.0))


def _items(n: int, seed: int) -> list[Pending | Resolution]:
    """Decision points an hour apart, three per order; every fifth order refunded."""
    rnd = random.Random(seed)
    items: list[Pending | Resolution] = []
    for i in range(n):
        t = i * 3600.0 + rnd.random() * 600
        order = f"o{i // 3}"
        arm = "control" if (i // 3) % 3 else "treatment"
        items.append(Pending(order, t, X, rnd.random(), None, arm, "delay", i % 3 == 0,
                             ("*",), -1.0))  # fmt: skip
        if i % 3 == 2:
            outcome = "refunded" if (i // 3) % 5 == 0 else "kept"
            items.append(Resolution(order, outcome, t + 1800.0))
    return items


def _versions(batches: list[list[Pending | Resolution]]) -> list[tuple[float, int, bytes]]:
    learner = Learner(horizon=2 * DAY, margin=DAY, period=DAY)
    for batch in batches:
        learner.feed_batch(batch)
    return [
        (b, s.version, repr((s.propensity, s.recovery, s.bandit)).encode())
        for b, s, _ in learner.take_cuts()
        if s is not None
    ]


def test_learner_versions_do_not_depend_on_batches_or_order_within_them() -> None:
    items = _items(600, 3)
    reference = _versions([[x] for x in items])
    assert len(reference) >= 15
    rnd = random.Random(9)
    for size in (10, 50, 200):
        batches = []
        for i in range(0, len(items), size):
            # Like a stateful step's batch: grouped by order (each order's items in their
            # own order), the orders in any order, so not in event-time order.
            groups: dict[str, list[Pending | Resolution]] = {}
            for item in items[i : i + size]:
                groups.setdefault(item.order_id, []).append(item)
            keys = list(groups)
            rnd.shuffle(keys)
            batches.append([item for k in keys for item in groups[k]])
        assert _versions(batches) == reference, size


def test_a_read_before_its_version_is_cut_is_counted_if_it_was_wrong() -> None:
    learner = Learner(horizon=2 * DAY, margin=DAY, period=DAY)
    board = SnapshotBoard(VersionClock(period=DAY, lag=2 * DAY))
    assert board.for_time(9 * DAY) is None  # nothing cut yet: the prior
    for item in _items(200, 4):
        learner.feed(item)
    for boundary, snapshot, _ in learner.take_cuts():
        board.publish(boundary, snapshot)
    # The read at day 9 saw no model, but versions were cut before day 7: it was wrong.
    assert board.complete_until >= 7 * DAY and board.early_reads == 1
    assert board.ready(9 * DAY) and board.for_time(9 * DAY) is not None
    assert board.early_reads == 1


def _outcome(order: str, family: str, refunded: bool, known_at: float) -> dict[str, Any]:
    return {
        "order_id": order, "customer_id": "c1", "outcome": "refunded" if refunded else "kept",
        "refund_value": 10.0 if refunded else 0.0, "order_value": 40.0, "sku_family": family,
        "courier_lane": "dhl:DE-NL", "delayed": False, "resolved_at_ts": known_at,
        "known_at_ts": known_at,
    }  # fmt: skip


def test_context_reads_as_of_a_boundary_whatever_the_order_outcomes_came_in() -> None:
    clock = VersionClock(period=DAY, lag=DAY)
    outcomes = [_outcome(f"o{i}", "skin", i % 3 == 0, i * 5000.0) for i in range(60)]
    stores = []
    for seed in range(3):
        shuffled = list(outcomes)
        random.Random(seed).shuffle(shuffled)
        store = InMemoryContextStore(clock=clock)
        for o in shuffled:
            store.record_outcome(o)
        stores.append(store)
    for now in (DAY, 2.5 * DAY, 4 * DAY):
        reads = [(s.family_rate("skin", now), s.customer_at("c1", now)) for s in stores]
        assert reads[0] == reads[1] == reads[2], now
    # A decision at 2.5 days sees the outcomes known by the boundary of day 1, no later.
    seen = stores[0].customer_at("c1", 2.5 * DAY)
    assert seen is not None and seen.orders == len([o for o in outcomes if o["known_at_ts"] <= DAY])
    assert all(s.late_updates == 0 for s in stores)


def test_an_outcome_recorded_after_a_read_that_needed_it_is_counted() -> None:
    store = InMemoryContextStore(clock=VersionClock(period=DAY, lag=DAY))
    store.record_outcome(_outcome("o1", "skin", True, 0.5 * DAY))
    before = store.family_rate("skin", 3 * DAY)  # reads as of day 2
    store.record_outcome(_outcome("o2", "skin", True, 1.5 * DAY))  # belonged in that read
    assert store.late_updates == 1
    assert store.family_rate("skin", 3 * DAY) != before
    store.record_outcome(_outcome("o3", "skin", True, 2.5 * DAY))  # after it: fine
    assert store.late_updates == 1


def test_worker_parts_are_merged_in_a_canonical_order(tmp_path: Path) -> None:
    rows = [
        {"order_id": f"o{i % 5}", "decided_at": f"2026-06-0{1 + i % 3}T00:00:00Z", "n": i}
        for i in range(30)
    ]
    for parts, seed in ((1, 0), (3, 1)):
        out = tmp_path / f"p{parts}"
        out.mkdir()
        shuffled = list(rows)
        random.Random(seed).shuffle(shuffled)
        for w in range(parts):
            name = "decisions.jsonl" if w == 0 else f"decisions.w{w}.jsonl"
            (out / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in shuffled[w::parts]))
        assert write_canonical(out, "decisions") == 30
        assert sorted(p.name for p in out.iterdir()) == ["decisions.jsonl"]
    first = (tmp_path / "p1" / "decisions.jsonl").read_bytes()
    assert first == (tmp_path / "p3" / "decisions.jsonl").read_bytes()
    keys = [(r["decided_at"], r["order_id"]) for r in map(orjson.loads, first.splitlines())]
    assert keys == sorted(keys)
