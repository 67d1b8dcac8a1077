"""Replay: merged stream files, gzip input, resume, and byte-identical determinism."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.jsonl import read_jsonl
from flows.replay import ReplayOptions, run_replay
from flows.sinks import OUTPUTS
from flows.sources import MergedFiles, ReplaySource, find_stream_files
from operators.contract import STREAMS, VALIDATORS, parse_ts
from operators.policy import RecoveryPolicy
from operators.simulation import simulate
from tests.helpers import at, body, order_placed, support

REPO = Path(__file__).resolve().parents[2]
#: The default policy with labels at 3 days, so that a 2,000-order launch week learns (and
#: decides from learned posteriors) well before its input ends.
SHORT_HORIZON_YAML = (
    (REPO / "operators" / "policies" / "default.yaml")
    .read_text(encoding="utf-8")
    .replace("label_horizon_days: 14", "label_horizon_days: 3")
)


def write_stream(path: Path, lines: list[Any], *, gz: bool = False) -> Path:
    data = b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def sample_streams() -> dict[str, list[Any]]:
    """Four small streams; delivery has its own disorder, support an unreadable line."""
    return {
        "orders": [order_placed("o-1", 0), order_placed("o-2", 2), order_placed("o-3", 5)],
        "delivery": [
            body("shipped", "o-1", 3),
            body("shipped", "o-2", 1.5),  # behind the line before it: must stay after it
            body("delivered", "o-1", 6),
        ],
        "support": [
            support("ticket_opened", "o-2", 2),  # same time as o-2's order: orders go first
            b"not json at all",
            support("customer_message", "o-2", 7),
        ],
        "refunds": [body("refund_requested", "o-1", 4), body("refund_issued", "o-1", 8, amount=1)],
    }


def files_for(tmp_path: Path, streams: dict[str, list[Any]], *, gz: bool = False):
    return {s: write_stream(tmp_path / f"{s}.jsonl", lines, gz=gz) for s, lines in streams.items()}


def _label(stream: str, payload: Any) -> str:
    if isinstance(payload, dict):
        return f"{stream}:{payload.get('event_id')}"
    return f"{stream}:{payload!r}"


def test_merge_interleaves_by_event_time_keeping_each_files_order(tmp_path: Path) -> None:
    streams = sample_streams()
    merged = MergedFiles(files_for(tmp_path, streams))
    got = [_label(s, p) for s, p, _ in merged]
    merged.close()
    assert got == [
        "orders:o-1:order_placed:0",
        "orders:o-2:order_placed:2",  # tie at 2 h: orders before support
        "support:o-2:ticket_opened:2",
        "support:b'not json at all'",  # an unreadable time goes out as soon as it is a head
        "delivery:o-1:shipped:3",
        "delivery:o-2:shipped:1.5",  # out of order in its file, so out of order here too
        "refunds:o-1:refund_requested:4",
        "orders:o-3:order_placed:5",
        "delivery:o-1:delivered:6",
        "support:o-2:customer_message:7",
        "refunds:o-1:refund_issued:8",
    ]


def test_received_at_is_the_replay_clock(tmp_path: Path) -> None:
    merged = MergedFiles(files_for(tmp_path, sample_streams()))
    received = [r for _, _, r in merged]
    assert received == sorted(received)  # never goes back
    assert received[0] == parse_ts(at(0)) and received[-1] == parse_ts(at(8))


_times = st.lists(st.integers(min_value=0, max_value=40), max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({s: _times for s in STREAMS}))
def test_merge_properties_on_random_files(tmp_path_factory, times: dict[str, list[int]]) -> None:
    """Every file's order is kept, and each emitted item is the earliest of the heads
    (outliers aside: the times here jump by more than a day, so their detection is off)."""
    tmp_path = tmp_path_factory.mktemp("merge")
    streams = {
        s: [body("in_transit", f"{s}-{i}", float(h)) for i, h in enumerate(hours)]
        for s, hours in times.items()
    }
    merged = MergedFiles(files_for(tmp_path, streams), spike_gap=None)
    emitted = list(merged)
    merged.close()
    assert len(emitted) == sum(len(v) for v in times.values())
    position = dict.fromkeys(STREAMS, 0)
    for stream, payload, _ in emitted:
        assert payload == streams[stream][position[stream]]  # the file's own order
        t = parse_ts(payload["occurred_at"])
        for other, lines in streams.items():
            if position[other] < len(lines):
                head_t = parse_ts(lines[position[other]]["occurred_at"])
                assert t <= head_t  # no head was earlier
                if t == head_t:
                    assert STREAMS.index(stream) <= STREAMS.index(other)
        position[stream] += 1


def test_an_outlier_goes_out_at_once_received_at_its_files_progress(tmp_path: Path) -> None:
    hours = [0, 1, 2, 24 * 365 * 74, 3, 4, 5]  # one delivery event stamped ~2100
    streams = {
        "orders": [body("order_cancelled", f"o-{h}", h + 0.5) for h in range(6)],
        "delivery": [body("in_transit", f"d-{i}", float(h)) for i, h in enumerate(hours)],
    }
    merged = MergedFiles(files_for(tmp_path, streams))
    emitted = [(s, p["event_id"], r) for s, p, r in merged]
    labels = [e for _, e, _ in emitted]
    # The outlier leaves as soon as it is the head, and does not hold its file back:
    # the merge of the other lines is the one of a file without it.
    spike = body("in_transit", "d-3", float(hours[3]))["event_id"]
    assert labels.index(spike) == labels.index(body("in_transit", "d-2", 2.0)["event_id"]) + 1
    received = dict((e, r) for _, e, r in emitted)
    assert received[spike] == parse_ts(at(4))  # the median of the next lines: 3, 4, 5 h
    rest = [r for e, r in received.items() if e != spike]
    assert max(rest) == parse_ts(at(5.5))  # the replay clock never saw 2100
    clean = {s: [x for x in lines if x["event_id"] != spike] for s, lines in streams.items()}
    (tmp_path / "clean").mkdir()
    baseline = [(s, p["event_id"]) for s, p, _ in MergedFiles(files_for(tmp_path / "clean", clean))]
    assert [x for x in ((s, e) for s, e, _ in emitted) if x[1] != spike] == baseline


def test_gzip_input_reads_the_same_as_plain(tmp_path: Path) -> None:
    streams = sample_streams()
    (tmp_path / "plain").mkdir()
    (tmp_path / "gz").mkdir()
    plain = files_for(tmp_path / "plain", streams)
    gz = files_for(tmp_path / "gz", streams, gz=True)
    assert all(p.suffix == ".gz" for p in gz.values())
    assert find_stream_files(tmp_path / "gz") == gz
    assert list(MergedFiles(gz)) == list(MergedFiles(plain))


@pytest.mark.parametrize("consumed", [0, 1, 4, 6, 10, 11])
def test_resume_from_a_snapshot_skips_consumed_lines(tmp_path: Path, consumed: int) -> None:
    streams = sample_streams()
    streams["support"].insert(1, b"   ")  # blank lines count as consumed lines too
    files = files_for(tmp_path, streams)
    whole = MergedFiles(files)
    full = [(s, p) for s, p, _ in whole]
    first = MergedFiles(files)
    head = [(s, p) for s, p, _ in (next(first) for _ in range(consumed))]
    snapshot = dict(first.consumed)
    first.close()
    resumed = MergedFiles(files, snapshot)
    rest = [(s, p) for s, p, _ in resumed]
    assert head + rest == full
    # The resumed reader's own snapshots count from the file start (resume twice works).
    assert resumed.consumed == whole.consumed == {s: len(v) for s, v in streams.items()}


def test_replay_source_partition_snapshot_and_resume(tmp_path: Path) -> None:
    files_for(tmp_path, sample_streams())
    source = ReplaySource(tmp_path, batch_size=4)
    assert source.list_parts() == ["replay"]
    part = source.build_part("input", "replay", None)
    first = part.next_batch()
    assert len(first) == 4
    snap = part.snapshot()
    part.close()
    resumed = source.build_part("input", "replay", snap)
    rest: list[Any] = []
    while True:
        try:
            rest += resumed.next_batch()
        except StopIteration:
            break
    resumed.close()
    everything = list(MergedFiles(source.files))
    assert [(s, p) for s, p, _ in first + rest] == [(s, p) for s, p, _ in everything]


def test_missing_or_empty_input_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_stream_files(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"orders\.jsonl\[\.gz\]"):
        find_stream_files(tmp_path)


# --- replays of simulated input ---------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "input"
    simulate("launch-week-backlog", 2000, 20260601, out)
    return out


def _output_bytes(out_dir: Path) -> dict[str, bytes]:
    return {name: (out_dir / f"{name}.jsonl").read_bytes() for name in OUTPUTS}


def _input_order_ids(input_dir: Path) -> set[str]:
    ids: set[str] = set()
    for path in find_stream_files(input_dir).values():
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            for line in fh:
                try:
                    oid = orjson.loads(line).get("order_id")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if isinstance(oid, str) and oid:
                    ids.add(oid)
    return ids


@pytest.mark.slow
def test_two_replays_are_byte_identical_and_valid(simulated: Path, tmp_path: Path) -> None:
    policy_file = tmp_path / "short.yaml"
    policy_file.write_text(SHORT_HORIZON_YAML, encoding="utf-8")
    policy = RecoveryPolicy.load(policy_file)
    assert policy.label_horizon_days == 3
    opts = ReplayOptions()
    run_replay(simulated, tmp_path / "a", policy, opts)
    run_replay(simulated, tmp_path / "b", policy, opts)
    first, second = _output_bytes(tmp_path / "a"), _output_bytes(tmp_path / "b")
    assert all(first[name] for name in ("decisions", "interventions", "outcomes"))
    # The learned policy decided from published posteriors (Thompson draws included), so
    # byte-identity covers learned, sampled decisions, not only the prior's.
    decided = read_jsonl(tmp_path / "a" / "decisions.jsonl")
    assert sum(d["model_version"].startswith("river-lr-v") for d in decided) > 1000
    assert all(d["segment"] for d in decided)
    assert any(0 < d["propensity"] < 1 for d in decided)
    for name in OUTPUTS:
        assert first[name] == second[name], f"{name}.jsonl differs between two replays"
    # Also in a fresh interpreter with another string-hash seed (set iteration order).
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = (
        "import sys; from pathlib import Path; from flows.replay import ReplayOptions, "
        "run_replay; from operators.policy import RecoveryPolicy; "
        "run_replay(Path(sys.argv[1]), Path(sys.argv[2]), RecoveryPolicy.load(sys.argv[3]), "
        "ReplayOptions())"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(simulated), str(tmp_path / "c"), str(policy_file)],
        check=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    third = _output_bytes(tmp_path / "c")
    for name in OUTPUTS:
        assert first[name] == third[name], f"{name}.jsonl differs under another hash seed"

    records = {name: read_jsonl(tmp_path / "a" / f"{name}.jsonl") for name in OUTPUTS}
    for name, rows in records.items():
        for row in rows:
            assert VALIDATORS[name](row) == [], (name, row)
    # Exactly one outcome for every order that appears in the input.
    counts = Counter(o["order_id"] for o in records["outcomes"])
    assert set(counts.values()) == {1}
    assert set(counts) == _input_order_ids(simulated)
    # Interventions only for the treatment arm, each with a matching decision.
    decided = {(d["order_id"], d["trigger_event_id"], d["action"]) for d in records["decisions"]}
    for iv in records["interventions"]:
        assert (iv["order_id"], iv["trigger_event_id"], iv["action"]) in decided
    arms = {(d["order_id"], d["trigger_event_id"]): d["arm"] for d in records["decisions"]}
    assert {arms[(iv["order_id"], iv["trigger_event_id"])] for iv in records["interventions"]} == {
        "treatment"
    }


@pytest.mark.slow
def test_replay_of_gzip_input_with_invalid_lines_and_two_workers(tmp_path: Path) -> None:
    data = tmp_path / "input"
    simulate("steady-state", 400, 3, data, compress=True, invalid_rate=0.02)
    assert all(p.suffix == ".gz" for p in find_stream_files(data).values())
    run = run_replay(data, tmp_path / "out", options=ReplayOptions(workers=2))
    assert run.input_records > 400
    records = {name: read_jsonl(tmp_path / "out" / f"{name}.jsonl") for name in OUTPUTS}
    for name, rows in records.items():
        for row in rows:
            assert VALIDATORS[name](row) == [], (name, row)
    reasons = Counter(d["reason"].split(":")[0] for d in records["dead_letter"])
    assert sum(reasons.values()) >= 5, reasons  # the injected invalid lines are all there
    counts = Counter(o["order_id"] for o in records["outcomes"])
    assert set(counts.values()) == {1}
    assert set(counts) == _input_order_ids(data)
    # Both workers' parts were merged into one file per output, in the canonical order.
    assert not any((tmp_path / "out").glob("*.w*.jsonl"))
    assert run.exact, run.exactness


def test_replay_tunes_the_garbage_collector() -> None:
    import gc

    from flows.runtime import GC_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLD
        tune_gc()  # idempotent
        assert gc.get_threshold() == GC_THRESHOLD
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_no_learning_is_the_static_rules_arm_and_learning_changes_decisions(
    simulated: Path, tmp_path: Path
) -> None:
    policy = RecoveryPolicy.from_text(SHORT_HORIZON_YAML, "short.yaml")
    run_replay(simulated, tmp_path / "learned", policy)
    run_replay(simulated, tmp_path / "static", policy, ReplayOptions(learn=False))
    learned = read_jsonl(tmp_path / "learned" / "decisions.jsonl")
    static = read_jsonl(tmp_path / "static" / "decisions.jsonl")
    assert {d["model_version"] for d in static} == {"heuristic-1"}
    assert {d["segment"] for d in static} == {None}
    # The same triggers (eligibility differs only where earlier actions set cooldowns or
    # used up the contact limit), other choices.
    assert [d["trigger_event_id"] for d in learned] == [d["trigger_event_id"] for d in static]
    differ = sum(a["action"] != b["action"] for a, b in zip(learned, static, strict=True))
    assert differ > 20
    # Static rules are deterministic except for their exploration share.
    assert {d["propensity"] for d in static if not d["eligible"]} == {1.0}
