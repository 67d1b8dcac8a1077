"""The scorer decisions use while learning online: the learned models' version for the
decision's event time, blended with the heuristic prior until enough outcomes exist.

Scorers read immutable :class:`~operators.models.ModelSnapshot` versions: from the
:class:`~operators.gate.SnapshotBoard` of their process (posted by the learner), or from a
``ModelStore`` checkpoint when the learner runs in another process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from operators.actions import action_names
from operators.bandit import BanditPosterior
from operators.decision import Scores
from operators.features import to_vector
from operators.gate import SnapshotBoard
from operators.learner import Learner
from operators.models import MODEL_SET, ModelSnapshot
from operators.scoring import HeuristicScorer, abuse_risk, customer_value, promise_sensitivity
from operators.stores import ModelStore


class OnlineScorer:
    """A Scorer backed by published ModelSnapshots (the heuristic before any).

    Scoring a decision at event time ``at`` reads the board's version for that time
    (``SnapshotBoard.for_time``: versions by event time, the same in every replay); without
    a time, or from a board without a clock, the newest version. The version chosen is
    what :attr:`version` and :attr:`posterior` report afterwards, per thread (workers of
    one process share the scorer).

    ``warmup`` sets how fast learned estimates replace the prior: the weight of the model
    is ``n / (n + warmup)`` after ``n`` examples.
    """

    def __init__(
        self,
        board: SnapshotBoard | None = None,
        snapshot: ModelSnapshot | None = None,
        warmup: int = 300,
        store: ModelStore | None = None,
        poll_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prior = HeuristicScorer()
        self.board = board
        self.snapshot = snapshot
        self.warmup = warmup
        # Processes without the learner step read its checkpoints from the store.
        self.store = store
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._polled_at = float("-inf")
        self._local = threading.local()  # .current: the snapshot this thread scored with

    #: Decisions sample the bandit posterior of this scorer (operators.bandit).
    learns = True

    def _current(self) -> ModelSnapshot | None:
        """The snapshot this thread last scored with (the newest if it has not scored)."""
        if hasattr(self._local, "current"):
            current: ModelSnapshot | None = self._local.current
            return current
        if self.board is not None:
            self.use(self.board.latest)
        return self.snapshot

    @property
    def version(self) -> str:
        snap = self._current()
        return f"river-lr-v{snap.version}" if snap else "heuristic-1"

    @property
    def posterior(self) -> BanditPosterior | None:
        """The bandit posterior of the snapshot last scored with (None before the first)."""
        snap = self._current()
        return snap.bandit if snap is not None else None

    def select(self, at: float | None = None) -> ModelSnapshot | None:
        """Choose the snapshot to score a decision at event time ``at`` with."""
        if self.store is not None:
            self.poll()
        board = self.board
        snap: ModelSnapshot | None
        if board is not None and board.clock is not None and at is not None:
            snap = board.for_time(at)
            if snap is None:
                snap = self.snapshot  # a fixed or polled snapshot, if any
        else:
            if board is not None:
                self.use(board.latest)
            snap = self.snapshot
        self._local.current = snap
        return snap

    def use(self, snapshot: ModelSnapshot | None) -> None:
        if snapshot is None:
            return
        if self.snapshot is None or snapshot.version > self.snapshot.version:
            self.snapshot = snapshot

    def _blend(self, learned: float, prior: float, n: int) -> float:
        w = n / (n + self.warmup)
        return w * learned + (1.0 - w) * prior

    def poll(self) -> None:
        """Take a newer checkpoint from the store, if there is one (at most every
        ``poll_seconds``)."""
        now = self.clock()
        if self.store is None or now - self._polled_at < self.poll_seconds:
            return
        self._polled_at = now
        latest = self.store.latest(MODEL_SET)
        current = self.snapshot.version if self.snapshot is not None else 0
        if latest is not None and latest[0] > current:
            self.use(Learner.from_bytes(latest[1]).snapshot())

    def score(self, features: dict[str, float]) -> tuple[Scores, dict[str, float]]:
        scores, recover, _, _ = self.score_with_prior(features)
        return scores, recover

    def score_with_prior(
        self, features: dict[str, float], at: float | None = None
    ) -> tuple[Scores, dict[str, float], float, dict[str, float]]:
        """:meth:`score` for a decision at event time ``at``, plus the heuristic prior's
        P(refund) and P(recovered | action) (the bandit's offsets), computed once for both."""
        snap = self.select(at)
        prior_p = self.prior.return_propensity(features)
        abuse = abuse_risk(features)[0]
        prior_rec = self.prior.recovery(features, abuse)
        if snap is None:
            p_refund, recover = prior_p, prior_rec
        else:
            x = to_vector(features)
            propensity = snap.propensity
            clamped = propensity.clamp(x)  # the same for every model of the snapshot
            learned_p = propensity.predict_clamped(clamped)
            p_refund = self._blend(learned_p, prior_p, snap.propensity_examples)
            recover = {}
            for action in action_names():
                n = snap.recovery_examples.get(action, 0)
                if n == 0:
                    recover[action] = prior_rec[action]
                    continue
                model = snap.recovery[action]
                if model.same_range(propensity):
                    p_treated = model.predict_clamped(clamped)
                else:
                    p_treated = model.predict(x)
                learned = 1.0 - p_treated / p_refund if p_refund > 1e-6 else 0.0
                recover[action] = self._blend(min(max(learned, 0.0), 1.0), prior_rec[action], n)
        scores = Scores(
            recoverability=max(recover.values()),
            customer_value=customer_value(features),
            product_margin=min(max(features.get("margin_share", 0.5), 0.0), 1.0),
            return_propensity=p_refund,
            promise_sensitivity=promise_sensitivity(features),
            abuse_risk=abuse,
        )
        return scores, recover, prior_p, prior_rec

    def learn(self, features: dict[str, float], outcome: dict[str, Any]) -> None:
        """Learning happens in the Learner (one writer); scorers only read snapshots."""
