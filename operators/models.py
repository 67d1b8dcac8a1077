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
- One :class:`~operators.learner.Learner` owns the models (a single writer) and cuts
  versions of them by event time; scorers read immutable, versioned
  :class:`ModelSnapshot` objects (``operators.gate.SnapshotBoard``, and a
  ``state.models.ModelStore`` across processes).

>>> from operators.learner import Learner
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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

from operators.bandit import NONE, BanditPosterior
from operators.baselines import truth_for
from operators.features import FEATURE_NAMES
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
    >>> from operators.features import to_vector
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
        return self.predict_clamped(self.clamp(vector))

    def clamp(self, vector: tuple[float, ...]) -> tuple[float, ...]:
        """``vector`` clamped to the learned ranges: the models of one snapshot share
        them, so a scorer clamps once and calls :meth:`predict_clamped` on each model."""
        if self.lo is not None and self.hi is not None:
            return tuple(map(min, map(max, vector, self.lo), self.hi))
        return vector

    def same_range(self, other: CompiledLogit) -> bool:
        """Whether ``other`` clamps exactly as this model does."""
        return (self.lo is other.lo or self.lo == other.lo) and (
            self.hi is other.hi or self.hi == other.hi
        )

    def predict_clamped(self, vector: tuple[float, ...]) -> float:
        """The probability for a vector already clamped by :meth:`clamp`."""
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
