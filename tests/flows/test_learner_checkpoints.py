"""The learner step's checkpoints to the model store: at most one per
``checkpoint_every_seconds`` of wall time, the newest version always saved at an epoch's
snapshot and at the end of input (a backlog drain cuts a version nearly every batch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows.learning import LearnerLogic, ModelRuntime
from flows.observer import FlowObserver
from operators.models import MODEL_SET


@dataclass
class Snap:
    version: int


@dataclass
class FakeLearner:
    """Cuts one version per batch it is fed (what a drain through event time does)."""

    version: int = 0
    examples: int = 0
    pickled: int = 0
    releases: bool = True  # whether the end of input releases a held example
    cuts: list[Any] = field(default_factory=list)

    def feed_batch(self, values: list[Any]) -> None:
        self.version += 1
        self.examples += len(values)
        self.cuts.append((float(self.version), Snap(self.version), {"version": self.version}))

    def take_cuts(self) -> list[Any]:
        cuts, self.cuts = self.cuts, []
        return cuts

    def to_bytes(self) -> bytes:
        self.pickled += 1
        return f"learner-v{self.version}".encode()

    def finish(self) -> None:
        self.examples += self.releases

    def publish(self) -> Snap:
        self.version += 1
        return Snap(self.version)

    def stats(self) -> dict[str, Any]:
        return {"version": self.version}


class Board:
    def __init__(self) -> None:
        self.latest = None
        self.clock = None
        self.early_reads = 0
        self.published: list[int] = []

    def publish(self, boundary: float, snapshot: Snap | None) -> None:
        if snapshot is not None:
            self.published.append(snapshot.version)


class Store:
    def __init__(self) -> None:
        self.saved: list[tuple[str, int, bytes]] = []

    def save(self, name: str, version: int, blob: bytes) -> None:
        self.saved.append((name, version, blob))

    def latest(self, name: str) -> tuple[int, bytes] | None:
        return (self.saved[-1][1], self.saved[-1][2]) if self.saved else None


def logic(every: float, snapshots: bool = True) -> tuple[LearnerLogic, Store, list[float]]:
    now = [100.0]
    store = Store()
    runtime = ModelRuntime(
        board=Board(),  # type: ignore[arg-type]  # what the step reads of it
        store=store,
        checkpoint_every_seconds=every,
        clock=lambda: now[0],
    )
    step = LearnerLogic(runtime, None, FlowObserver(), snapshots=snapshots)
    step.learner = FakeLearner()  # type: ignore[assignment]
    return step, store, now


def test_checkpoints_are_spaced_in_wall_time_and_the_newest_is_saved_at_each_epoch() -> None:
    step, store, now = logic(every=5.0)
    for _ in range(12):  # one version per batch, a second of wall time apart
        step.on_batch([("learner", {"x": 1})])
        now[0] += 1.0
    # Versions 1 (the first), 6 and 11 (5 s later each); every version reached the board.
    assert [v for _, v, _ in store.saved] == [1, 6, 11]
    assert step.runtime.board.published == list(range(1, 13))  # type: ignore[attr-defined]
    assert all(name == MODEL_SET for name, _, _ in store.saved)
    # The epoch's snapshot saves the newest (12), with the blob it pickled for recovery.
    pickled = step.learner.pickled  # type: ignore[attr-defined]
    blob = step.snapshot()
    assert store.saved[-1] == (MODEL_SET, 12, blob) and blob == b"learner-v12"
    assert step.learner.pickled == pickled + 1  # type: ignore[attr-defined]  # pickled once
    assert step.snapshot() == b"learner-v12" and len(store.saved) == 4  # nothing new


def test_the_end_of_input_saves_what_is_not_saved_yet() -> None:
    step, store, _ = logic(every=60.0, snapshots=False)
    step.on_batch([("learner", {"x": 1})])
    step.on_batch([("learner", {"x": 1})])
    assert [v for _, v, _ in store.saved] == [1]
    assert step.snapshot() is None  # no recovery: nothing to snapshot, but a checkpoint
    assert [v for _, v, _ in store.saved] == [1, 2]
    step.on_batch([("learner", {"x": 1})])
    step.on_eof()  # a final version (4) from what the end released, in place of 3
    assert [v for _, v, _ in store.saved] == [1, 2, 4]
    step, store, _ = logic(every=60.0, snapshots=False)
    step.learner = FakeLearner(releases=False)  # type: ignore[assignment]
    step.on_batch([("learner", {"x": 1})])
    step.on_batch([("learner", {"x": 1})])
    step.on_eof()
    assert [v for _, v, _ in store.saved] == [1, 2]  # the unsaved version 2, at the end


def test_without_spacing_every_version_is_saved() -> None:
    step, store, _ = logic(every=0.0)
    for _ in range(3):
        step.on_batch([("learner", {"x": 1})])
    assert [v for _, v, _ in store.saved] == [1, 2, 3]
