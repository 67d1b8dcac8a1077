"""Online models with River: return propensity and per-action recovery, learned as outcomes
arrive, with progressive validation and versioned snapshots.

Design (see ``docs/decisions.md``):

- *Return propensity* P(refund | case, no action) is a logistic regression on standardized
  features. It learns from cases on which nothing was emitted (the control arm, and
  treatment cases the policy left alone), because an intervention changes the label.
- *Recovery* per action is a T-learner: one logistic model per action estimates
  P(refund | case, action) from treatment cases whose first action it was; the recovery
  chance is ``1 - P(refund | action) / P(refund | no action)``, floored at 0. Until an action
  has ``warmup`` examples its estimate is blended with the transparent prior of
  :class:`~operators.scoring.HeuristicScorer`, so cold start is sensible, not random.
- Every example carries the features stored at decision time and the prediction made
  then, so progressive validation (predict, then learn) is honest under delayed labels.
- One :class:`Learner` owns the models (a single writer); scorers read immutable,
  versioned :class:`ModelSnapshot` objects published to a ``state.models.ModelStore``.

>>> learner = Learner()
>>> for i in range(4):
...     learner.learn(Example({"has_request": float(i % 2)}, i % 2, 0.5, None, "control",
...                           0.0, 3600.0))
>>> snapshot = learner.publish()
>>> snapshot.version, learner.examples, learner.stats()["roc_auc"]
(1, 4, 0.5)
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import mul
from typing import Any

from operators.decision import ACTIONS, Scores
from operators.features import FEATURE_NAMES, to_vector
from operators.scoring import HeuristicScorer, abuse_risk, customer_value, promise_sensitivity
from state.models import ModelStore

PROPENSITY = "return_propensity"
MODEL_SET = "salvage-models"


def _model() -> Any:
    # River (and SciPy under it) is imported here, not at module import: scorers, the CLI's
    # start-up and commands that never learn do not pay for it.
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4, intercept_lr=0.02
    )


def model_input(features: dict[str, float]) -> dict[str, float]:
    """The features a model reads (private keys, such as the stored prediction, dropped)."""
    return {k: v for k, v in features.items() if not k.startswith("_")}


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled case: the features and prediction from its last decision, its label
    (1 = ended in a refund), the first action emitted for it (None if none was emitted)
    and its arm, and the event times of the decision and the label."""

    features: dict[str, float]
    label: int
    predicted: float
    action: str | None
    arm: str
    decided_at: float
    labelled_at: float

    def to_record(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "label": self.label,
            "predicted": self.predicted,
            "action": self.action,
            "arm": self.arm,
            "decided_at": self.decided_at,
            "labelled_at": self.labelled_at,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Example:
        return cls(
            r["features"], r["label"], r["predicted"], r["action"], r["arm"],
            r["decided_at"], r["labelled_at"],
        )  # fmt: skip


class _Histogram:
    """Label counts per prediction bin: ROC AUC, log loss and calibration in O(bins).

    With 1,000 bins the AUC differs from the exact rank AUC only through predictions that
    fall in the same 0.001-wide bin, which count as ties.
    """

    BINS = 1000
    CAL_BINS = 10

    def __init__(self) -> None:
        self.pos = [0] * self.BINS
        self.neg = [0] * self.BINS
        self.n = 0
        self.n_pos = 0
        self.loss = 0.0

    def add(self, label: int, p: float, sign: int = 1) -> None:
        b = min(max(int(p * self.BINS), 0), self.BINS - 1)
        if label:
            self.pos[b] += sign
            self.n_pos += sign
        else:
            self.neg[b] += sign
        self.n += sign
        q = min(max(p, 1e-6), 1 - 1e-6)
        self.loss += sign * -(math.log(q) if label else math.log(1 - q))

    def roc_auc(self) -> float | None:
        n_neg = self.n - self.n_pos
        if self.n_pos <= 0 or n_neg <= 0:
            return None
        area = 0.0
        below = 0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            area += pos * (below + neg / 2.0)
            below += neg
        return area / (self.n_pos * n_neg)

    def calibration(self) -> dict[str, Any]:
        """Reliability table over 10 equal-width bins and the expected calibration error."""
        if self.n <= 0:
            return {"ece": None, "bins": []}
        width = self.BINS // self.CAL_BINS
        table, ece = [], 0.0
        for c in range(self.CAL_BINS):
            lo = c * width
            count = pos = 0
            mass = 0.0
            for b in range(lo, lo + width):
                k = self.pos[b] + self.neg[b]
                count += k
                pos += self.pos[b]
                mass += k * (b + 0.5) / self.BINS
            if count:
                mean_p, rate = mass / count, pos / count
                ece += count / self.n * abs(mean_p - rate)
                table.append(
                    {"bin": c, "count": count, "mean_predicted": round(mean_p, 4),
                     "observed_rate": round(rate, 4)}
                )  # fmt: skip
        return {"ece": round(ece, 4), "bins": table}

    def report(self) -> dict[str, Any]:
        auc = self.roc_auc()
        cal = self.calibration()
        return {
            "examples": self.n,
            "roc_auc": round(auc, 4) if auc is not None else None,
            "log_loss": round(self.loss / self.n, 4) if self.n else None,
            "calibration_error": cal["ece"],
            "calibration": cal,
            "base_rate": round(self.n_pos / self.n, 4) if self.n else None,
        }


class ProgressiveValidation:
    """Quality of predictions made before their labels were known, over the whole run and
    over the last ``window`` examples. Updates are O(1); reports are O(bins)."""

    def __init__(self, window: int = 5_000) -> None:
        self.window = window
        self.recent_pairs: deque[tuple[int, float]] = deque()
        self.lifetime = _Histogram()
        self.recent = _Histogram()

    @property
    def seen(self) -> int:
        return self.lifetime.n

    @property
    def pairs(self) -> deque[tuple[int, float]]:
        """The last ``window`` (label, prediction) pairs, oldest first."""
        return self.recent_pairs

    def update(self, label: int, predicted: float) -> None:
        self.lifetime.add(label, predicted)
        self.recent.add(label, predicted)
        self.recent_pairs.append((label, predicted))
        if len(self.recent_pairs) > self.window:
            old_label, old_p = self.recent_pairs.popleft()
            self.recent.add(old_label, old_p, -1)

    def report(self) -> dict[str, Any]:
        """Whole-run figures at the top level, the last ``window`` under ``recent``."""
        return {**self.lifetime.report(), "recent": self.recent.report(), "window": self.window}


@dataclass(frozen=True, slots=True)
class CompiledLogit:
    """A River ``StandardScaler | LogisticRegression`` pipeline folded into one dot product
    over a feature vector (FEATURE_NAMES order): the same probabilities, ~10x faster.

    >>> m = _model()
    >>> for i in range(50):
    ...     x = {n: float((i * 7 + j) % 5) for j, n in enumerate(FEATURE_NAMES)}
    ...     m.learn_one(x, i % 3 == 0)
    >>> x = {n: float(j % 4) for j, n in enumerate(FEATURE_NAMES)}
    >>> c = CompiledLogit.from_pipeline(m)
    >>> abs(c.predict(to_vector(x)) - m.predict_proba_one(x)[True]) < 1e-9
    True
    """

    intercept: float
    coefs: tuple[float, ...]

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> CompiledLogit:
        scaler, lr = pipeline["StandardScaler"], pipeline["LogisticRegression"]
        weights = lr.weights
        intercept = lr.intercept
        coefs = []
        for name in FEATURE_NAMES:
            var = scaler.vars.get(name, 0.0)
            w = weights.get(name, 0.0)
            if var and w:
                sd = var**0.5
                coefs.append(w / sd)
                intercept -= w * scaler.means.get(name, 0.0) / sd
            else:
                coefs.append(0.0)
        return cls(intercept, tuple(coefs))

    def predict(self, vector: tuple[float, ...]) -> float:
        z = self.intercept + sum(map(mul, self.coefs, vector))
        if z < -35.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class ModelSnapshot:
    """An immutable copy of the models that scorers read."""

    version: int
    propensity: CompiledLogit
    propensity_examples: int
    recovery: dict[str, CompiledLogit]
    recovery_examples: dict[str, int]


class Learner:
    """The single writer of the models: learns from examples, tracks quality, publishes."""

    def __init__(self, publish_every: int = 200, validation_window: int = 5_000) -> None:
        self.propensity = _model()
        self.recovery: dict[str, Any] = {a: _model() for a in ACTIONS}
        self.propensity_examples = 0
        self.recovery_examples: dict[str, int] = dict.fromkeys(ACTIONS, 0)
        self.validation = ProgressiveValidation(validation_window)
        self.examples = 0
        self.version = 0
        self.publish_every = publish_every
        self.lag_seconds = 0.0

    def learn(self, ex: Example) -> None:
        """Learn one example (the caller publishes snapshots when it wants them)."""
        x = model_input(ex.features)
        self.examples += 1
        self.lag_seconds = max(ex.labelled_at - ex.decided_at, 0.0)
        if ex.action is None or ex.arm == "control":
            # Predict-then-learn: the stored prediction was made at decision time.
            self.validation.update(ex.label, ex.predicted)
            self.propensity.learn_one(x, bool(ex.label))
            self.propensity_examples += 1
        elif ex.action in self.recovery:
            self.recovery[ex.action].learn_one(x, bool(ex.label))
            self.recovery_examples[ex.action] += 1

    def publish(self) -> ModelSnapshot:
        """A new version of the models, for scorers to read."""
        self.version += 1
        return self.snapshot()

    def snapshot(self) -> ModelSnapshot:
        """The models as they are, at the current version (no new version): what scorers
        should read right after this learner was restored from a checkpoint."""
        return ModelSnapshot(
            self.version,
            CompiledLogit.from_pipeline(self.propensity),
            self.propensity_examples,
            {a: CompiledLogit.from_pipeline(m) for a, m in self.recovery.items()},
            dict(self.recovery_examples),
        )

    def stats(self) -> dict[str, Any]:
        """Model quality for metrics and the summary (see FlowObserver.on_model)."""
        report = self.validation.report()
        return {
            "model": PROPENSITY,
            "version": self.version,
            "examples": self.examples,
            "roc_auc": report["roc_auc"],
            "log_loss": report["log_loss"],
            "calibration_error": report["calibration_error"],
            "learning_lag_seconds": self.lag_seconds,
            "recovery_examples": dict(self.recovery_examples),
            "propensity_examples": self.propensity_examples,
            "validation": report,
        }

    # --- checkpoints (Bytewax snapshot/restore and the ModelStore) -------------------

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.__dict__, pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Learner:
        learner = cls.__new__(cls)
        learner.__dict__.update(pickle.loads(blob))
        return learner


class SnapshotBoard:
    """Where the learner posts snapshots and scorers in the same process read them.

    Posting replaces a reference (atomic), so a scorer never sees a half-updated model.
    Across processes the learner also saves checkpoints to a ``ModelStore``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: ModelSnapshot | None = None

    def post(self, snapshot: ModelSnapshot) -> None:
        with self._lock:
            if self.latest is None or snapshot.version > self.latest.version:
                self.latest = snapshot


class OnlineScorer:
    """A Scorer backed by the latest published ModelSnapshot (the heuristic before any).

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

    @property
    def version(self) -> str:
        return f"river-lr-v{self.snapshot.version}" if self.snapshot else "heuristic-1"

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
        if self.board is not None and self.board.latest is not self.snapshot:
            self.use(self.board.latest)  # type: ignore[arg-type]
        if self.store is not None:
            self.poll()
        prior_p = self.prior.return_propensity(features)
        abuse = abuse_risk(features)[0]
        prior_rec = self.prior.recovery(features, abuse)
        snap = self.snapshot
        if snap is None:
            p_refund, recover = prior_p, prior_rec
        else:
            x = to_vector(features)
            learned_p = snap.propensity.predict(x)
            p_refund = self._blend(learned_p, prior_p, snap.propensity_examples)
            recover = {}
            for action in ACTIONS:
                n = snap.recovery_examples.get(action, 0)
                if n == 0:
                    recover[action] = prior_rec[action]
                    continue
                p_treated = snap.recovery[action].predict(x)
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
        return scores, recover

    def learn(self, features: dict[str, float], outcome: dict[str, Any]) -> None:
        """Learning happens in the Learner (one writer); scorers only read snapshots."""
