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
- *Label horizon*: every decision point is labelled "refunded within ``horizon`` of event
  time after the decision", and released to the models only once the learner's own
  event-time clock has passed ``decided_at + horizon`` (see :class:`Learner`): a refund
  closes a case in days but "kept" only weeks later, so learning each label when its case
  closes would see refunds first and over-estimate the refund rate.
- The same examples update the bandit posteriors (``operators.bandit``) of the action
  taken at the point (``none`` for untreated points) that decisions sample from.
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

import heapq
import math
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

from operators.actions import action_names
from operators.bandit import NONE, BanditLearner, BanditPosterior
from operators.baselines import truth_for
from operators.decision import Scores
from operators.features import FEATURE_NAMES, from_vector, to_vector
from operators.scoring import HeuristicScorer, abuse_risk, customer_value, promise_sensitivity
from operators.stores import ModelStore
from operators.vocabulary import Outcome

PROPENSITY = "return_propensity"
MODEL_SET = "salvage-models"


def _model() -> Any:
    # River (and SciPy under it) is imported here, not at module import: scorers, the CLI's
    # start-up and commands that never learn do not pay for it.
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.02), l2=1e-4, intercept_lr=0.02
    )


#: Rates the flow derives from its own closed cases (``state.context``). Refunds close in
#: days, "kept" only at the end of the recovery window, so for the first weeks of a run
#: these rates count mostly refunds and drift upwards as kept cases close: a model that
#: learned on early values over-predicts later (on ``steady-state``, 20,000 orders: mean
#: prediction 0.130 against a realised 0.066). The models do not read them; the bandit
#: segments by family and lane directly, with labels at the horizon.
CONTEXT_RATES = frozenset(
    {"family_refund_rate", "lane_refund_rate", "lane_delay_rate", "seen_refund_rate",
     "seen_chargebacks"}
)  # fmt: skip


def model_input(features: dict[str, float]) -> dict[str, float]:
    """The features a model reads (private keys, such as the stored prediction, and the
    flow's own context rates dropped)."""
    return {k: v for k, v in features.items() if not k.startswith("_") and k not in CONTEXT_RATES}


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled decision point: the features and prediction stored at the decision,
    its label (1 = refunded within the horizon), the first action taken at this point
    (None if none was), its arm, the event times of the decision and of the label's
    release, and for the bandit its decision point, whether it was the case's first,
    its segment keys and the prior's logit offset for the arm taken."""

    features: dict[str, float]
    label: int
    predicted: float
    action: str | None
    arm: str
    decided_at: float
    labelled_at: float
    point: str = "other"
    first: bool = False
    keys: tuple[str, ...] = ()
    offset: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "label": self.label,
            "predicted": self.predicted,
            "action": self.action,
            "arm": self.arm,
            "decided_at": self.decided_at,
            "labelled_at": self.labelled_at,
            "point": self.point,
            "first": self.first,
            "keys": list(self.keys),
            "offset": self.offset,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Example:
        return cls(
            r["features"], r["label"], r["predicted"], r["action"], r["arm"],
            r["decided_at"], r["labelled_at"], r.get("point", "other"), r.get("first", False),
            tuple(r.get("keys", ())), r.get("offset", 0.0),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Pending:
    """A decision point waiting for its label: what the case step emits at each decision
    until the case's first action (``action``: that action, at the point it was taken)."""

    order_id: str
    decided_at: float
    vector: tuple[float, ...]  # features in FEATURE_NAMES order
    predicted: float
    action: str | None
    arm: str
    point: str
    first: bool
    keys: tuple[str, ...]
    offset: float
    source: int = 0  # the emitting worker (see Learner: one event-time clock per source)


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a case with pending examples ended (``censored``: the input ended first)."""

    order_id: str
    outcome: str
    resolved_at: float
    source: int = 0


#: (order_id, action, decided_at) -> (refunded under that first action, refunded under no
#: action) from a simulator's ground truth, each None where the truth does not say.
TruthLookup = Callable[[str, str, float], tuple[bool | None, bool | None]]

_REFUNDS = frozenset({Outcome.REFUNDED, Outcome.CHARGEBACK})


def truth_lookup(truth: dict[str, dict[str, Any]]) -> TruthLookup:
    """Ground-truth outcomes by first action and its timing: ``outcomes_late[action]``
    when the action came at or after the customer's first request (``request_at``),
    ``outcomes[action]`` before it (or when the row has no timing).

    >>> rows = {"o": {"outcomes": {"none": {"outcome": "refunded"}, "a": {"outcome": "kept"}},
    ...               "outcomes_late": {"a": {"outcome": "refunded"}},
    ...               "request_at": "2026-06-02T00:00:00Z"}}
    >>> from operators.contract import parse_ts
    >>> look = truth_lookup(rows)
    >>> look("o", "a", parse_ts("2026-06-01T00:00:00Z")), look("o", "a", 1.0e10)
    ((False, True), (True, True))
    """

    def look(order_id: str, action: str, decided_at: float) -> tuple[bool | None, bool | None]:
        row = truth.get(order_id)
        if row is None:
            return None, None
        o, n = truth_for(row, action, decided_at), truth_for(row, NONE, None)
        return (
            None if o is None else o["outcome"] in _REFUNDS,
            None if n is None else n["outcome"] in _REFUNDS,
        )

    return look


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
        self.sum_p = 0.0

    def add(self, label: int, p: float, sign: int = 1) -> None:
        b = min(max(int(p * self.BINS), 0), self.BINS - 1)
        if label:
            self.pos[b] += sign
            self.n_pos += sign
        else:
            self.neg[b] += sign
        self.n += sign
        self.sum_p += sign * p
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
            "mean_predicted": round(self.sum_p / self.n, 4) if self.n else None,
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
    #: The range of each feature in the examples learned so far: predictions clamp to it,
    #: so a feature that barely varied yet (a context rate early in a run, whose scaled
    #: coefficient is huge) cannot extrapolate the logit to 0 or 1.
    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None

    @classmethod
    def from_pipeline(
        cls,
        pipeline: Any,
        lo: Sequence[float] | None = None,
        hi: Sequence[float] | None = None,
    ) -> CompiledLogit:
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
        if lo is None or hi is None:
            return cls(intercept, tuple(coefs))
        return cls(intercept, tuple(coefs), tuple(lo), tuple(hi))

    def predict(self, vector: tuple[float, ...]) -> float:
        if self.lo is not None and self.hi is not None:
            vector = tuple(map(min, map(max, vector, self.lo), self.hi))
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
    bandit: BanditPosterior | None = None


DAY = 86400.0
#: Batches after which a silent source stops holding the learner's clock back.
STALE_BATCHES = 10_000


class _Held:
    """A pending example in the learner's buffer (``alive`` False once dropped)."""

    __slots__ = ("alive", "pending", "release_at")

    def __init__(self, pending: Pending, release_at: float) -> None:
        self.pending = pending
        self.release_at = release_at
        self.alive = True


class Learner:
    """The single writer of the models: holds pending examples until their label horizon,
    learns from them, tracks quality, publishes.

    Labels: every decision point is labelled at ``decided_at + horizon`` by whether its
    case was refunded (refund or chargeback) within the horizon. The learner's event-time
    clock is the latest decision or resolution time it has seen, less ``margin`` (room for
    resolutions that arrive late, up to the flow's allowed lateness): an example is
    released when that clock passes its horizon, never earlier. Hence

    - a refund that comes after the horizon, and a case still open then, are label 0;
      a cancelled order's points whose horizon ends after the cancellation are dropped;
    - when a case's first action is taken, its ``none`` points whose horizon ends after
      it are dropped (the action changed their outcome) and the action's point waits for
      its own horizon; the case emits no later points;
    - a censored case (input ended first) gives its points whose horizon passed before
      the end, label 0, at :meth:`finish`; the rest never become examples.

    With ``truth`` (a simulator's ground truth) a treated point's label is the truth's: the
    observed within-horizon label where the action changes nothing in the truth, else the
    truth's outcome under the action (released at the same horizon).
    """

    def __init__(
        self,
        publish_every: int = 200,
        validation_window: int = 5_000,
        horizon: float = 14 * DAY,
        margin: float = 1 * DAY,
        prior_precision: float = 12.5,
    ) -> None:
        self.propensity = _model()
        self.recovery: dict[str, Any] = {a: _model() for a in action_names()}
        self.propensity_examples = 0
        self.recovery_examples: dict[str, int] = dict.fromkeys(action_names(), 0)
        self.validation = ProgressiveValidation(validation_window)
        #: Quality at each case's first decision point, and per decision point.
        self.first_point = _Histogram()
        self.by_point: dict[str, _Histogram] = {}
        self.bandit = BanditLearner(prior_precision)
        self.examples = 0
        self.version = 0
        self.publish_every = publish_every
        self.lag_seconds = 0.0
        self.horizon = horizon
        self.margin = margin
        self.clock = float("-inf")  # event time up to which every source has been heard
        self.latest = float("-inf")  # latest event time seen
        self.sources: dict[int, list[float]] = {}  # source -> [latest time, batch number]
        self.items = 0  # batches taken
        self.held: dict[str, list[_Held]] = {}
        self.resolved: dict[str, tuple[str, float]] = {}
        self._heap: list[tuple[float, int, _Held]] = []
        self._seq = 0
        self.dropped = 0
        self.truth: TruthLookup | None = None  # not checkpointed: the caller sets it
        #: Per feature (FEATURE_NAMES order), the lowest and highest value learned from.
        self.lo = [math.inf] * len(FEATURE_NAMES)
        self.hi = [-math.inf] * len(FEATURE_NAMES)

    # --- pending examples and their release ------------------------------------------

    def feed(self, item: Pending | Resolution) -> int:
        """Take one pending example or resolution; returns how many examples were learned."""
        return self.feed_batch((item,))

    def feed_batch(self, items: Iterable[Pending | Resolution]) -> int:
        """Take a batch of pending examples and resolutions, then release what the clock
        allows; returns how many examples were learned.

        The flow's items arrive in batches whose order is not event-time order, so the whole
        batch is applied before the clock moves. The clock is the lowest of the latest event
        times of the sources (workers) heard from recently: a worker that runs behind the
        others (they run out of step in a replay) holds releases back until it catches up.
        """
        sources = self.sources
        self.items += 1
        n = self.items
        for item in items:
            if isinstance(item, Pending):
                self._hold(item)
                t = item.decided_at
            else:
                self._resolve(item)
                t = item.resolved_at
            src = sources.get(item.source)
            if src is None:
                sources[item.source] = [t, n]
            else:
                if t > src[0]:
                    src[0] = t
                src[1] = n
            if t > self.latest:
                self.latest = t
        # A source silent for STALE_BATCHES batches of the others (a worker that stopped)
        # no longer holds the clock back.
        live = [t for t, at in sources.values() if n - at <= STALE_BATCHES]
        clock = min(live) if live else self.latest
        if clock > self.clock:
            self.clock = clock
        return self.release(self.clock - self.margin)

    def _drop_after(self, order_id: str, t: float) -> None:
        """Drop the order's held points whose horizon ends after ``t``: what happened at
        ``t`` decides their outcome (an action, a cancellation), not the point itself."""
        entries = self.held.get(order_id)
        if not entries:
            return
        keep = []
        for e in entries:
            if e.release_at > t:
                e.alive = False
                self.dropped += 1
            else:
                keep.append(e)
        if keep:
            entries[:] = keep
        else:
            del self.held[order_id]
            self.resolved.pop(order_id, None)

    def _hold(self, p: Pending) -> None:
        if p.action is not None:
            # The first action: the no-action points whose horizon it falls into no longer
            # have a no-action outcome.
            self._drop_after(p.order_id, p.decided_at)
        entries = self.held.setdefault(p.order_id, [])
        h = _Held(p, p.decided_at + self.horizon)
        entries.append(h)
        self._seq += 1
        heapq.heappush(self._heap, (h.release_at, self._seq, h))

    def _resolve(self, r: Resolution) -> None:
        if r.outcome == Outcome.CANCELLED:
            # Points whose horizon ended before the cancellation keep their label (no
            # refund); the others have no refund question left.
            self._drop_after(r.order_id, r.resolved_at)
            return
        if self.held.get(r.order_id):
            self.resolved[r.order_id] = (r.outcome, r.resolved_at)

    def release(self, until: float) -> int:
        """Label and learn every held example whose horizon is at or before ``until``."""
        learned = 0
        heap = self._heap
        while heap and heap[0][0] <= until:
            _, _, h = heapq.heappop(heap)
            if not h.alive:
                continue
            p = h.pending
            entries = self.held.get(p.order_id)
            if entries is not None:
                entries.remove(h)
                if not entries:
                    del self.held[p.order_id]
            resolved = (
                self.resolved.get(p.order_id) if entries else self.resolved.pop(p.order_id, None)
            )
            label = int(
                resolved is not None and resolved[0] in _REFUNDS and resolved[1] <= h.release_at
            )
            if self.truth is not None and p.action is not None and p.arm != "control":
                under_action, under_none = self.truth(p.order_id, p.action, p.decided_at)
                if under_action is not None and under_action != under_none:
                    label = int(under_action)
            self.learn(
                Example(
                    from_vector(p.vector), label, p.predicted, p.action, p.arm, p.decided_at,
                    h.release_at, p.point, p.first, p.keys, p.offset,
                )
            )  # fmt: skip
            learned += 1
        return learned

    def finish(self) -> int:
        """End of input: release what the end's event time allows; the rest (censored
        before their horizon) is dropped, never learned."""
        learned = self.release(self.latest)
        for entries in self.held.values():
            for e in entries:
                e.alive = False
            self.dropped += len(entries)
        self.held.clear()
        self.resolved.clear()
        self._heap.clear()
        return learned

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self.held.values())

    # --- learning ----------------------------------------------------------------------

    def learn(self, ex: Example) -> None:
        """Learn one labelled example (the caller publishes snapshots when it wants them)."""
        x = model_input(ex.features)
        self.examples += 1
        f = ex.features
        vector = [f.get(name, 0.0) for name in FEATURE_NAMES]
        self.lo = list(map(min, self.lo, vector))
        self.hi = list(map(max, self.hi, vector))
        self.lag_seconds = max(ex.labelled_at - ex.decided_at, 0.0)
        untreated = ex.action is None or ex.arm == "control"
        if untreated:
            # Predict-then-learn: the stored prediction was made at decision time.
            self.validation.update(ex.label, ex.predicted)
            if ex.first:
                self.first_point.add(ex.label, ex.predicted)
            hist = self.by_point.get(ex.point)
            if hist is None:
                hist = self.by_point[ex.point] = _Histogram()
            hist.add(ex.label, ex.predicted)
            self.propensity.learn_one(x, bool(ex.label))
            self.propensity_examples += 1
        elif ex.action in self.recovery:
            self.recovery[ex.action].learn_one(x, bool(ex.label))
            self.recovery_examples[ex.action] += 1
        # "Doing nothing" is learned from the holdout only: a random share of orders, so it
        # is compared with the actions on the same kind of case. Treatment-arm points left
        # alone are those the policy judged not worth an action, a biased sample.
        if ex.keys and (ex.arm == "control" if untreated else ex.action in self.recovery):
            self.bandit.update(NONE if untreated else str(ex.action), ex.keys, ex.offset, ex.label)

    def publish(self) -> ModelSnapshot:
        """A new version of the models, for scorers to read."""
        self.version += 1
        return self.snapshot()

    def snapshot(self) -> ModelSnapshot:
        """The models as they are, at the current version (no new version): what scorers
        should read right after this learner was restored from a checkpoint."""
        lo, hi = (self.lo, self.hi) if self.examples else (None, None)
        return ModelSnapshot(
            self.version,
            CompiledLogit.from_pipeline(self.propensity, lo, hi),
            self.propensity_examples,
            {a: CompiledLogit.from_pipeline(m, lo, hi) for a, m in self.recovery.items()},
            dict(self.recovery_examples),
            self.bandit.posterior(),
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
            "label_horizon_days": round(self.horizon / DAY, 4),
            "pending_examples": self.pending_count,
            "dropped_examples": self.dropped,
            "recovery_examples": dict(self.recovery_examples),
            "propensity_examples": self.propensity_examples,
            "bandit_outcomes": dict(sorted(self.bandit.outcomes.items())),
            "validation": report,
            "first_point": _brief(self.first_point),
            "by_point": {k: _brief(h) for k, h in sorted(self.by_point.items())},
        }

    # --- checkpoints (Bytewax snapshot/restore and the ModelStore) -------------------

    def to_bytes(self) -> bytes:
        state = {k: v for k, v in self.__dict__.items() if k != "truth"}
        return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Learner:
        learner = cls.__new__(cls)
        learner.__dict__.update(pickle.loads(blob))
        learner.truth = None
        return learner


def _brief(h: _Histogram) -> dict[str, Any]:
    """Mean prediction against the realised rate (label-horizon calibration), and AUC."""
    auc = h.roc_auc()
    return {
        "examples": h.n,
        "mean_predicted": round(h.sum_p / h.n, 4) if h.n else None,
        "base_rate": round(h.n_pos / h.n, 4) if h.n else None,
        "roc_auc": round(auc, 4) if auc is not None else None,
    }


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

    #: Decisions sample the bandit posterior of this scorer (operators.bandit).
    learns = True

    @property
    def version(self) -> str:
        return f"river-lr-v{self.snapshot.version}" if self.snapshot else "heuristic-1"

    @property
    def posterior(self) -> BanditPosterior | None:
        """The bandit posterior of the newest snapshot (None before the first)."""
        if self.board is not None and self.board.latest is not self.snapshot:
            self.use(self.board.latest)
        return self.snapshot.bandit if self.snapshot is not None else None

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
        self, features: dict[str, float]
    ) -> tuple[Scores, dict[str, float], float, dict[str, float]]:
        """:meth:`score`, plus the heuristic prior's P(refund) and P(recovered | action)
        (the bandit's offsets), computed once for both."""
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
            for action in action_names():
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
        return scores, recover, prior_p, prior_rec

    def learn(self, features: dict[str, float], outcome: dict[str, Any]) -> None:
        """Learning happens in the Learner (one writer); scorers only read snapshots."""
