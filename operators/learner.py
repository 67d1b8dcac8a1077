"""The learner: the single writer of the online models, versioned by event time.

It holds each decision point until its label horizon, learns it, and cuts versions of
the models at event-time boundaries (``operators.versions.VersionClock``): version *k* is the
models after learning exactly the examples released at or before boundary *k*, in the
order (release time, order id, decision time). A scorer deciding at event time *t* reads
the version of ``clock.visible(t)`` from the :class:`SnapshotBoard`; which version that is
depends on *t* alone, not on where the flow's batches broke or how many workers ran it
(see ``docs/decisions.md``, "Replay determinism").

>>> from operators.case import OrderCase
>>> from operators.features import build_features, to_vector
>>> x = to_vector(build_features(OrderCase("o"), None, 0.0))
>>> learner = Learner(horizon=10.0, margin=0.0, period=100.0)
>>> for t in (0.0, 95.0, 120.0):  # released at 10, 105 and 130
...     _ = learner.feed(Pending(f"o{t:g}", t, x, 0.2, None, "control", "other", True, (), 0.0))
>>> [(b, s.version if s else None) for b, s, _ in learner.take_cuts()]
[(0.0, None), (100.0, 1)]
>>> learner.examples, learner.late
(1, 0)
>>> _ = learner.feed(Pending("straggler", 50.0, x, 0.2, None, "control", "other", True, (), 0.0))
>>> learner.late  # its example (released at 60) belonged in the version cut at 100
1
"""

from __future__ import annotations

import heapq
import math
import operator
import pickle
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from operators.actions import action_names
from operators.bandit import NONE, BanditLearner
from operators.case import DAY
from operators.features import FEATURE_NAMES, from_vector
from operators.gate import Progress
from operators.models import (
    _REFUNDS,
    PROPENSITY,
    CompiledLogit,
    Example,
    ModelSnapshot,
    Pending,
    ProgressiveValidation,
    Resolution,
    TruthLookup,
    _Histogram,
    _model,
    model_input,
)
from operators.vocabulary import Outcome

#: Positions and names of the features the models read (``model_input``), in order.
_MODEL_NAMES = tuple(model_input(dict.fromkeys(FEATURE_NAMES, 0.0)))
_MODEL_INDEX = tuple(FEATURE_NAMES.index(name) for name in _MODEL_NAMES)
_model_values = operator.itemgetter(*_MODEL_INDEX)

#: Learned vectors kept before they are folded into the feature ranges (a bound on the
#: memory between two snapshots when nothing publishes).
_RANGE_BATCH = 4096

#: Batches after which a silent source stops holding the learner's clock back.
STALE_BATCHES = 10_000


#: A version cut: its boundary, and the new version with its stats (None, None: nothing
#: was learned since the previous cut).
Cut = tuple[float, ModelSnapshot | None, dict[str, Any] | None]


class _Held:
    """A pending example in the learner's buffer (``alive`` False once dropped); ``seq``
    orders examples that are released at the same time (their arrival)."""

    __slots__ = ("alive", "blob", "pending", "release_at", "seq")

    def __init__(self, pending: Pending, release_at: float, seq: int) -> None:
        self.pending = pending
        self.release_at = release_at
        self.seq = seq
        self.alive = True
        self.blob: bytes | None = None  # as saved in a checkpoint (see held_blob)

    def held_blob(self) -> bytes:
        """This example as a checkpoint stores it, pickled once: a learner holds a label
        horizon's worth of examples, and live mode checkpoints it at every Bytewax epoch
        and every new version. Pickled anew each time, they were the flow's longest pause
        (about 0.3 s for 16,000 examples); now a checkpoint pickles only the examples
        that arrived since the last one.

        >>> h = _Held(Pending("o", 1.0, (0.5,), 0.2, None, "control", "other", True, (),
        ...                   0.0), 10.0, 3)
        >>> h.held_blob() is h.held_blob()
        True
        >>> _Held.from_blob(h.held_blob()).pending == h.pending
        True
        """
        blob = self.blob
        if blob is None:
            blob = self.blob = pickle.dumps(
                (self.pending, self.release_at, self.seq), pickle.HIGHEST_PROTOCOL
            )
        return blob

    @classmethod
    def from_blob(cls, blob: bytes) -> _Held:
        pending, release_at, seq = pickle.loads(blob)
        held = cls(pending, release_at, seq)
        held.blob = blob
        return held


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

    *Versions by event time* (``period``, the flow's): examples are released only up to
    the boundaries of a :class:`~operators.versions.VersionClock` the clock has passed, in
    (release time, order id, decision time) order, and after each boundary at which
    something was learned a new version is cut (:meth:`take_cuts`). The float state of
    version *k* is therefore the same whatever the batches or workers were, provided every
    item inside its boundary arrived before the cut; one that arrives after it is counted
    in ``late`` (and surfaced in the stats), so an inexact run is never silent. Without a
    period (tests, tools) examples are released as soon as the clock allows and the
    caller publishes when it likes.
    """

    def __init__(
        self,
        publish_every: int = 200,
        validation_window: int = 5_000,
        horizon: float = 14 * DAY,
        margin: float = 1 * DAY,
        prior_precision: float = 12.5,
        period: float | None = None,
        models: bool = True,
        full_covariance: bool = False,
    ) -> None:
        # models=False: a learner that only keeps the event-time clock and cuts versions
        # (a replay without learning: no River import, no examples ever come).
        self.propensity: Any = _model() if models else None
        self.recovery: dict[str, Any] = {a: _model() for a in action_names()} if models else {}
        self.propensity_examples = 0
        self.recovery_examples: dict[str, int] = dict.fromkeys(action_names(), 0)
        self.validation = ProgressiveValidation(validation_window)
        #: Quality at each case's first decision point, and per decision point.
        self.first_point = _Histogram()
        self.by_point: dict[str, _Histogram] = {}
        self.bandit = BanditLearner(prior_precision, full=full_covariance)
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
        #: (release time, order id, decision time, arrival): the release order is the same
        #: whatever order the items arrived in (arrival only breaks ties within one order,
        #: whose items always arrive in their own order).
        self._heap: list[tuple[float, str, float, int, _Held]] = []
        self._seq = 0
        self.dropped = 0
        self.period = period
        #: Move the clock on Progress items only (a DecisionGate reports them), not on the
        #: times of examples: a worker may decide an order at t while another waits earlier.
        self.clock_from_progress = False
        #: Sources with nothing left to send, and whether every source has been heard
        #: from, given how many were (DecisionGate.finished, .heard_all); not checkpointed.
        self.finished: Callable[[Mapping[int, int]], frozenset[int]] | None = None
        self.heard_all: Callable[[Collection[int], Collection[int]], bool] | None = None
        #: Examples (pending, resolutions) taken from each source, for ``finished``.
        self.received: dict[int, int] = {}
        #: Every example released at or before this was learned (the last cut).
        self.released_until = -math.inf
        #: Items that arrived after a cut they belonged inside (0 in a deterministic run).
        self.late = 0
        #: Cuts not yet taken by the caller: (boundary, new version or None if nothing
        #: was learned since the previous cut).
        self.cuts: list[Cut] = []
        self.truth: TruthLookup | None = None  # not checkpointed: the caller sets it
        #: Per feature (FEATURE_NAMES order), the lowest and highest value learned from.
        self.lo = [math.inf] * len(FEATURE_NAMES)
        self.hi = [-math.inf] * len(FEATURE_NAMES)
        #: Vectors learned since ``lo`` and ``hi`` were last brought up to date.
        self._unranged: list[tuple[float, ...]] = []

    # --- pending examples and their release ------------------------------------------

    def feed(self, item: Pending | Resolution | Progress) -> int:
        """Take one pending example or resolution; returns how many examples were learned."""
        return self.feed_batch((item,))

    def feed_batch(self, items: Iterable[Pending | Resolution | Progress]) -> int:
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
        by_progress = self.clock_from_progress
        received = self.received
        for item in items:
            if isinstance(item, Pending):
                self._hold(item)
                t = item.decided_at
                received[item.source] = received.get(item.source, 0) + 1
            elif isinstance(item, Resolution):
                self._resolve(item)
                t = item.resolved_at
                received[item.source] = received.get(item.source, 0) + 1
            else:
                t = item.at
                if t > self.latest:
                    self.latest = t
            if by_progress and not isinstance(item, Progress):
                if t > self.latest:
                    self.latest = t
                continue  # the clock moves on the workers' progress only
            src = sources.get(item.source)
            if src is None:
                sources[item.source] = [t, n]
            else:
                if t > src[0]:
                    src[0] = t
                src[1] = n
            if t > self.latest:
                self.latest = t
        # A source silent for STALE_BATCHES batches of the others (a worker that stopped),
        # or one the gate knows has nothing left (end of input), no longer holds the
        # clock back.
        done = self.finished(received) if self.finished is not None else frozenset()
        live = [
            t for src, (t, at) in sources.items() if n - at <= STALE_BATCHES and src not in done
        ]
        clock = min(live) if live else self.latest
        if by_progress and self.heard_all is not None and not self.heard_all(sources, done):
            clock = -math.inf  # a worker not heard from yet may still send anything
        if clock > self.clock:
            self.clock = clock
        if self.period is None:
            return self.release(self.clock - self.margin)
        return self.cut(self.clock - self.margin)

    def cut(self, until: float) -> int:
        """Release the examples of every boundary at or before ``until`` (versioned mode),
        cutting a version after each boundary at which something was learned; returns
        how many examples were learned."""
        assert self.period is not None
        if not math.isfinite(until):
            return 0
        period = self.period
        last = math.floor(until / period) * period
        if last <= self.released_until:
            return 0
        learned = 0
        heap = self._heap
        while heap and heap[0][0] <= last:
            boundary = math.ceil(heap[0][0] / period) * period
            n = self.release(boundary)
            self.released_until = boundary
            learned += n
            self.cuts.append((boundary, self.publish() if n else None, self.stats() if n else None))
        if self.released_until < last:
            self.released_until = last
            self.cuts.append((last, None, None))
        return learned

    def restart_clock(self) -> None:
        """Warm start from a checkpoint into another run (a model store, not Bytewax
        recovery): keep what was learned, and start the event-time clock and the version
        boundaries afresh from the new run's items."""
        self.clock = self.latest = self.released_until = -math.inf
        self.sources = {}
        self.received = {}
        self.items = 0
        self.cuts = []

    def take_cuts(self) -> list[Cut]:
        """The cuts made since the last call, oldest first."""
        cuts, self.cuts = self.cuts, []
        return cuts

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
        done = self.released_until
        if p.decided_at + self.horizon <= done or (p.action is not None and p.decided_at < done):
            self.late += 1  # its example, or the points it drops, belonged in a cut version
        if p.action is not None:
            # The first action: the no-action points whose horizon it falls into no longer
            # have a no-action outcome.
            self._drop_after(p.order_id, p.decided_at)
        entries = self.held.setdefault(p.order_id, [])
        self._seq += 1
        h = _Held(p, p.decided_at + self.horizon, self._seq)
        entries.append(h)
        heapq.heappush(self._heap, (h.release_at, p.order_id, p.decided_at, self._seq, h))

    def _resolve(self, r: Resolution) -> None:
        # A refund labels, a cancellation drops, the points released at or after it: if
        # the last cut is past it, points of this order may have been cut without it.
        done = self.released_until
        if (r.outcome in _REFUNDS and r.resolved_at <= done) or (
            r.outcome == Outcome.CANCELLED and r.resolved_at < done
        ):
            self.late += 1
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
        if heap and heap[0][0] <= until:
            # Forget in event time up to this release, before learning it (a no-op unless
            # the policy sets ``learning.outcome_half_life_days``).
            self.bandit.forget_until(min(until, self.latest))
        while heap and heap[0][0] <= until:
            h = heapq.heappop(heap)[-1]
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
        self.released_until = math.inf
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
        f = ex.features
        if len(f) == len(FEATURE_NAMES) and tuple(f) == FEATURE_NAMES:
            # A stored vector's features (every released example): the same values and
            # model input, without a lookup per feature.
            vector = tuple(f.values())
            x = dict(zip(_MODEL_NAMES, _model_values(vector), strict=True))
        else:
            vector = tuple(f.get(name, 0.0) for name in FEATURE_NAMES)
            x = model_input(f)
        self.examples += 1
        # The feature ranges are folded in per release, column by column (see _fold_ranges).
        unranged = self._unranged
        unranged.append(vector)
        if len(unranged) >= _RANGE_BATCH:
            self._fold_ranges()
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
        self._fold_ranges()
        # One tuple each, shared by every model: scorers then clamp a vector once.
        lo, hi = (tuple(self.lo), tuple(self.hi)) if self.examples else (None, None)
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
            "version_period_seconds": self.period,
            "late_examples": self.late,
        }

    def _fold_ranges(self) -> None:
        """Fold the vectors learned since the last fold into ``lo`` and ``hi``: the same
        values as a min and max per example (both keep the first of equal values), one
        C-level pass per feature instead of two calls per feature and example."""
        rows = self._unranged
        if rows:
            self.lo = [min(c) for c in zip(self.lo, *rows, strict=True)]
            self.hi = [max(c) for c in zip(self.hi, *rows, strict=True)]
            self._unranged = []

    # --- checkpoints (Bytewax snapshot/restore and the ModelStore) -------------------

    def to_bytes(self) -> bytes:
        self._fold_ranges()
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_SAVED}
        # The held examples, each pickled once (_Held.held_blob); held and the heap are
        # rebuilt from them (from_bytes).
        state["_held_blobs"] = [e[-1].held_blob() for e in self._heap if e[-1].alive]
        return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Learner:
        learner = cls.__new__(cls)
        state = pickle.loads(blob)
        blobs = state.pop("_held_blobs", None)
        learner.__dict__.update(state)
        if blobs is not None:
            learner._restore_held(blobs)
        learner.truth = None
        learner.finished = learner.heard_all = None
        learner.received = {}
        # Checkpoints from before versions by event time.
        for name, value in (
            ("period", None), ("released_until", -math.inf), ("late", 0),
            ("clock_from_progress", False), ("_unranged", []),
        ):  # fmt: skip
            learner.__dict__.setdefault(name, value)
        learner.cuts = []
        if learner._heap and len(learner._heap[0]) != 5:  # before release ties by arrival
            learner._heap = [
                (e[-1].release_at, e[-1].pending.order_id, e[-1].pending.decided_at, e[1], e[-1])
                for e in learner._heap
            ]
            heapq.heapify(learner._heap)
        for e in learner._heap if blobs is None else ():  # held pickled whole, as before
            if not hasattr(e[-1], "seq"):
                e[-1].seq, e[-1].blob = e[3], None
        return learner

    def _restore_held(self, blobs: list[bytes]) -> None:
        """Rebuild the held examples and their release heap from a checkpoint's blobs: in
        arrival order per order, and the heap's order is its keys' (unique by arrival)."""
        restored = sorted((_Held.from_blob(b) for b in blobs), key=lambda h: h.seq)
        self.held = {}
        for h in restored:
            self.held.setdefault(h.pending.order_id, []).append(h)
        self._heap = [
            (h.release_at, h.pending.order_id, h.pending.decided_at, h.seq, h) for h in restored
        ]
        heapq.heapify(self._heap)


#: Run-bound (the gate's callables, thread ids of this run's workers) or the caller's.
#: ``held`` and ``_heap`` are saved as the held examples' blobs (see to_bytes).
_NOT_SAVED = frozenset({"truth", "cuts", "finished", "heard_all", "received", "held", "_heap"})


def _brief(h: _Histogram) -> dict[str, Any]:
    """Mean prediction against the realised rate (label-horizon calibration), and AUC."""
    auc = h.roc_auc()
    return {
        "examples": h.n,
        "mean_predicted": round(h.sum_p / h.n, 4) if h.n else None,
        "base_rate": round(h.n_pos / h.n, 4) if h.n else None,
        "roc_auc": round(auc, 4) if auc is not None else None,
    }
