"""No bad clock costs valid data (docs/events.md "Ordering and lateness").

Each test replays a simulated input twice, clean and with one badly stamped record, and
checks that no valid order's outcome changes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.dataflow import ClockLogic
from flows.jsonl import read_jsonl
from flows.observer import FlowObserver
from flows.replay import ReplayOptions, run_replay
from operators.contract import Event, decode
from operators.simulation import simulate
from operators.window import Expire, WindowConfig
from tests.helpers import epoch, order_placed


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("clean")
    simulate("steady-state", 300, 11, base / "input")
    return base / "input", _outcomes(base / "input", base / "out")


def _outcomes(input_dir: Path, out: Path) -> dict[str, Any]:
    run_replay(input_dir, out, options=ReplayOptions(learn=False))
    return {o["order_id"]: o for o in read_jsonl(out / "outcomes.jsonl")}


def _with_line(src: Path, dst: Path, stream: str, line: dict[str, Any], at: float) -> None:
    """A copy of the input with ``line`` inserted into ``stream`` at fraction ``at``."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        lines = path.read_bytes().splitlines(keepends=True)
        if path.name == f"{stream}.jsonl":
            lines.insert(int(len(lines) * at), orjson.dumps(line) + b"\n")
        (dst / path.name).write_bytes(b"".join(lines))


def _some_event(input_dir: Path, stream: str, type_: str) -> dict[str, Any]:
    for raw in (input_dir / f"{stream}.jsonl").read_bytes().splitlines():
        record = orjson.loads(raw)
        if record.get("type") == type_:
            return record
    raise AssertionError(f"no {type_} in {stream}")


@pytest.mark.parametrize(
    ("stream", "stamp", "at"),
    [
        ("delivery", "2100-01-01T00:00:00Z", 0.5),  # the middle of a file
        ("delivery", "2100-01-01T00:00:00Z", 0.0),  # its first line
        ("delivery", "2100-01-01T00:00:00Z", 1.0),  # its last line: cannot be judged
        ("orders", "9998-12-30T00:00:00Z", 0.5),
    ],
    ids=["delivery-2100-middle", "delivery-2100-first", "delivery-2100-last", "order-9998"],
)
def test_one_far_future_record_changes_no_valid_outcome(
    clean: tuple[Path, dict[str, Any]], tmp_path: Path, stream: str, stamp: str, at: float
) -> None:
    input_dir, expected = clean
    if stream == "orders":
        record = order_placed("o-from-the-future", 0.0)
    else:
        record = dict(_some_event(input_dir, "delivery", "delivered"))
        record["order_id"] = "o-from-the-future"
    record.update(event_id="e-from-the-future", occurred_at=stamp)
    _with_line(input_dir, tmp_path / "input", stream, record, at)
    got = _outcomes(tmp_path / "input", tmp_path / "out")
    changed = sorted(o for o in expected if got.get(o) != expected[o])
    assert changed == [], f"{len(changed)} valid orders changed outcome, e.g. {changed[:3]}"
    dead = read_jsonl(tmp_path / "out" / "dead_letter.jsonl")
    late = [d for d in dead if d["kind"] == "late"]
    assert late == [], f"{len(late)} valid events made late"
    if at < 1.0:  # where the stream's progress is known, the outlier is a future letter
        assert [d["kind"] for d in dead if d["event_id"] == "e-from-the-future"] == ["future"]


# --- the idle advance in live mode ----------------------------------------------------------


def _placed(order_id: str, hours: float, source: str) -> Event:
    ev = decode("orders", order_placed(order_id, hours), epoch(hours), source)
    assert isinstance(ev, Event)
    return ev


def test_idle_advance_never_makes_a_lagging_partitions_events_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """p1 is 8 h behind p0 (a backlog) and stalls for longer than the idle timeout (a
    rebalance, a slow consumer). It must move on from its own time, not p0's."""
    wall = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    cfg = WindowConfig(
        allowed_lateness=6 * 3600.0,
        window_after_placed=10 * 3600.0,
        idle_advance_seconds=60.0,
        sources=("p0", "p1"),
    )
    logic = ClockLogic(cfg, None, FlowObserver(), snapshots=False)
    out = logic.on_batch([_placed("fast-0", 8.0, "p0"), _placed("slow-0", 0.0, "p1")])[0]
    assert all(isinstance(x, Event) for x in out)
    wall[0] += 70.0
    assert logic.notify_at() is not None and logic.notify_at().timestamp() <= wall[0]
    expired = [x for x in logic.on_notify()[0] if isinstance(x, Expire)]
    assert expired == []  # no deadline (10 h) has been reached by the slow partition
    out = logic.on_batch([_placed("slow-1", 0.5, "p1")])[0]  # p1 resumes its backlog
    assert [type(x).__name__ for x in out] == ["Event"], [getattr(x, "reason", x) for x in out]


def test_idle_advance_still_moves_a_quiet_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    cfg = WindowConfig(
        allowed_lateness=0.0, window_after_placed=3600.0, idle_advance_seconds=60.0,
        sources=("p0", "p1"),
    )  # fmt: skip
    logic = ClockLogic(cfg, None, FlowObserver(), snapshots=False)
    logic.on_batch([_placed("o", 0.0, "p0")])
    wall[0] += 2 * 3600.0  # both partitions quiet for two hours
    out = logic.on_notify()[0]
    assert [x.order_id for x in out if isinstance(x, Expire)] == ["o"]
