"""Online learning in the flow: the learner step (a single writer) and its runtime.

The learner step takes the case step's ``pending``, ``resolution`` and ``progress``
records, learns each example at its label horizon and cuts a version of the models at
each event-time boundary (:mod:`operators.learner`); scorers read those versions from
the :class:`~operators.gate.SnapshotBoard` of their process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bytewax.operators import StatefulBatchLogic

from flows.observer import FlowObserver
from operators.case import DAY
from operators.gate import PROGRESS_STEP, DecisionGate, SnapshotBoard
from operators.learner import Learner
from operators.models import MODEL_SET, TruthLookup
from operators.policy import RecoveryPolicy
from operators.versions import VersionClock
from operators.vocabulary import Covariance
from operators.window import WindowConfig
from state.models import ModelStore


@dataclass
class ModelRuntime:
    """The online-learning side of a flow: one learner step (a single writer, keyed on a
    constant) publishes a version of the models per event-time boundary of ``versions``
    to ``board`` for the scorers of this process, and checkpoints to ``store`` (warm
    start, and scorers in other processes). A decision at event time ``t`` reads the
    version of ``versions.visible(t)`` (see ``operators.versions``)."""

    versions: VersionClock = field(default_factory=VersionClock)
    board: SnapshotBoard = field(default_factory=SnapshotBoard)
    store: ModelStore | None = None
    last_stats: dict[str, Any] | None = None
    #: Every decision is labelled "refunded within this horizon" (policy
    #: ``learning.label_horizon_days``), released once the learner's event time passes it.
    horizon: float = 14 * DAY
    #: Room for resolutions arriving after later decisions (at least the allowed lateness;
    #: live mode: with a gate the learner's clock is already a bound and needs none).
    margin: float = 1 * DAY
    prior_precision: float = 12.5
    #: The bandit's posterior keeps the full covariance (policy ``learning.covariance``).
    full_covariance: bool = False
    #: Event seconds after which the bandit counts an outcome half (policy
    #: ``learning.outcome_half_life_days``; None: never forgets).
    outcome_half_life: float | None = None
    #: Simulator ground truth for treated examples (backtests); never checkpointed.
    truth: TruthLookup | None = None
    #: Replays: decisions wait until the model version they read is complete, and the
    #: learner's clock follows the workers' progress (exact replays). None: live mode,
    #: where decisions read the newest complete version and never wait.
    wait_for_versions: bool = False
    gate: DecisionGate | None = None
    #: False: a replay with the fixed scorer; the learner step keeps only the clock (the
    #: context aggregates' versions) and builds no models.
    learn: bool = True
    #: Workers of this process's flow (the gate waits to hear from each).
    workers: int = 1
    #: The clock's shards (``WindowConfig.shards``): a worker's progress is the lowest of
    #: their watermarks, so the gate waits for a bound from each.
    shards: int = WindowConfig().shards
    #: Wall seconds at least between two checkpoints to ``store`` (0: one per version).
    #: Scorers of this process read the board; the store serves warm starts and other
    #: processes' scorers, which poll it every 30 s. In real time a version is cut every
    #: ``version_period_hours``, far apart; a backlog drain cuts one nearly every batch,
    #: and pickling the learner with its held examples for each cost a twentieth of the
    #: drain. The newest version is checkpointed at every epoch and at the end regardless.
    checkpoint_every_seconds: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def for_policy(
        cls, policy: RecoveryPolicy, window: WindowConfig, **kwargs: Any
    ) -> ModelRuntime:
        """A runtime with the policy's ``learning`` settings (label horizon, prior, version
        period and lag) and a release margin of at least the window's allowed lateness.
        The lag is at least the margin: a version can only be complete once the learner's
        clock is a margin past its boundary."""
        margin = max(DAY, window.allowed_lateness)
        versions = VersionClock(
            period=policy.version_period_hours * 3600.0,
            lag=max(policy.version_lag_hours * 3600.0, margin + PROGRESS_STEP),
        )
        return cls(
            versions=versions,
            horizon=policy.label_horizon_days * DAY,
            margin=margin,
            prior_precision=policy.prior_precision,
            full_covariance=policy.covariance is Covariance.FULL,
            outcome_half_life=(
                policy.outcome_half_life_days * DAY
                if policy.outcome_half_life_days is not None
                else None
            ),
            **{"shards": window.shards, **kwargs},
        )

    def __post_init__(self) -> None:
        if self.board.clock is None:
            self.board.clock = self.versions
        if self.wait_for_versions and self.gate is None:
            self.gate = DecisionGate(self.board, self.workers, shards=self.shards)
        # Warm start: scorers read the last checkpoint from the first decision on, not
        # only once the learner step (built on its first example) exists.
        if self.store is not None and self.board.latest is None:
            latest = self.store.latest(MODEL_SET)
            if latest is not None:
                self.board.post(Learner.from_bytes(latest[1]).snapshot())


class LearnerLogic(StatefulBatchLogic[tuple[str, Any], dict[str, Any], bytes | None]):
    """Bytewax wrapper of :class:`~operators.learner.Learner`: takes the case step's
    ``pending`` examples and ``resolution`` records, learns each example at its label
    horizon, publishes a version of the models at each event-time boundary its clock
    passes (``ModelRuntime.versions``)."""

    def __init__(
        self,
        runtime: ModelRuntime,
        snap: bytes | None,
        observer: FlowObserver,
        snapshots: bool = True,
    ):
        self.runtime = runtime
        self.observer = observer
        #: The newest version not yet checkpointed to the store, and when the last was.
        self._unsaved: int | None = None
        self._saved_at = -math.inf
        self.snapshots = snapshots
        blob = snap
        warm = False
        if blob is None and runtime.store is not None:
            latest = runtime.store.latest(MODEL_SET)
            blob = latest[1] if latest else None  # warm start from the last checkpoint
            warm = blob is not None
        if blob:
            self.learner = Learner.from_bytes(blob)
            if warm:
                self.learner.restart_clock()
        else:
            self.learner = Learner(
                horizon=runtime.horizon,
                margin=runtime.margin,
                prior_precision=runtime.prior_precision,
                models=runtime.learn,
                full_covariance=runtime.full_covariance,
            )
        self.learner.horizon = runtime.horizon
        self.learner.bandit.half_life = runtime.outcome_half_life
        # With a gate the clock is a bound on everything still to come (DecisionGate): no
        # room for late items is needed. Without one it follows the items themselves.
        self.learner.margin = 0.0 if runtime.gate is not None else runtime.margin
        self.learner.period = runtime.versions.period
        self.learner.clock_from_progress = runtime.gate is not None
        gate = runtime.gate
        self.learner.finished = gate.finished if gate is not None else None
        self.learner.heard_all = gate.heard_all if gate is not None else None
        self.learner.truth = runtime.truth
        if blob:
            # Restored: the state as it was is the base every later version builds on.
            runtime.board.post(self.learner.snapshot())

    def _report(self, stats: dict[str, Any], boundary: float | None = None) -> None:
        stats["early_reads"] = self.runtime.board.early_reads
        #: The event-time boundary of the version (None: the last one, at end of input).
        stats["version_boundary"] = (
            boundary if boundary is not None and math.isfinite(boundary) else None
        )
        self.runtime.last_stats = stats
        if self.observer.on_model is not None:
            self.observer.on_model(stats)

    def _publish_cuts(self) -> None:
        """Hand the versions cut since the last batch to the board (and the store)."""
        board, store = self.runtime.board, self.runtime.store
        newest = None
        for boundary, snapshot, stats in self.learner.take_cuts():
            board.publish(boundary, snapshot)
            if snapshot is not None and stats is not None:
                newest = snapshot
                self._report(stats, boundary)
        if newest is not None and store is not None:
            self._unsaved = newest.version
            now = self.runtime.clock()
            if now - self._saved_at >= self.runtime.checkpoint_every_seconds:
                self._checkpoint(now)

    def _checkpoint(self, now: float, blob: bytes | None = None) -> None:
        """Save the newest version to the store, if one is not saved yet (``blob``: the
        learner as pickled already)."""
        if self._unsaved is not None and self.runtime.store is not None:
            blob = blob if blob is not None else self.learner.to_bytes()
            self.runtime.store.save(MODEL_SET, self._unsaved, blob)
            self._unsaved = None
            self._saved_at = now

    def on_batch(self, values: list[tuple[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        self.learner.feed_batch([v[1] for v in values])
        self._publish_cuts()
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[dict[str, Any]], bool]:
        learner = self.learner
        before = learner.examples
        learner.finish()
        # What end of input released is one last version (for the store and the stats:
        # no decision is left to read it).
        final = learner.publish() if learner.examples > before else None
        self.runtime.board.publish(math.inf, final)
        if final is not None:
            self._unsaved = final.version
        self._checkpoint(self.runtime.clock())
        self._report(learner.stats())
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        # The learner holds its pending examples (a horizon's worth of decisions): pickling
        # them at every epoch is the cost of recovery, not worth paying without it.
        blob = self.learner.to_bytes() if self.snapshots else None
        self._checkpoint(self.runtime.clock(), blob)
        return blob
