"""Online models: learning from delayed labels, checkpoints, compiled predictions, blending
with the prior, and warm start of a replay from a model store."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.jsonl import read_jsonl
from flows.observer import FlowObserver
from flows.replay import ReplayOptions, run_replay
from operators import learner as learner_module
from operators.actions import action_names, customer_facing_names
from operators.case import HOUR, OrderCase
from operators.evaluation import roc_auc
from operators.features import FEATURE_NAMES, build_features, to_vector
from operators.gate import SnapshotBoard
from operators.learner import Learner
from operators.models import (
    MODEL_SET,
    CompiledLogit,
    Example,
    ModelSnapshot,
    Pending,
    ProgressiveValidation,
    Resolution,
)
from operators.online_scorer import OnlineScorer
from operators.scoring import HeuristicScorer
from operators.simulation import simulate
from state.models import InMemoryModelStore

BASE_FEATURES = build_features(OrderCase("synthetic", placed=True, order_value=50.0), None, 0.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def synthetic_cases(n: int, seed: int) -> Iterator[tuple[dict[str, float], int]]:
    """Cases whose refund risk depends on the margin share, the order value and whether the
    customer is new: signals the heuristic prior ignores, so only learning can find them."""
    rnd = random.Random(seed)
    for _ in range(n):
        value, margin, new = rnd.uniform(10.0, 300.0), rnd.random(), float(rnd.random() < 0.5)
        features = dict(BASE_FEATURES)
        features.update(
            log_order_value=round(math.log1p(value), 4), margin_share=round(margin, 4),
            new_customer=new,
        )  # fmt: skip
        z = -1.5 + 2.0 * new - 3.0 * margin + 0.8 * (math.log1p(value) - 4.5)
        yield features, int(rnd.random() < _sigmoid(z))


def examples(n: int, seed: int, treated_share: float = 0.0) -> list[Example]:
    """Labelled examples, some of them treated with one of the recovery actions."""
    rnd = random.Random(seed + 1)
    out = []
    for i, (features, label) in enumerate(synthetic_cases(n, seed)):
        action = rnd.choice(customer_facing_names()) if rnd.random() < treated_share else None
        out.append(Example(features, label, 0.5, action, "treatment", i * HOUR, (i + 48) * HOUR))
    return out


# --- learning from delayed labels -------------------------------------------------------------


def test_learning_from_delayed_labels_improves_the_progressive_auc() -> None:
    """Predict each case at decision time with whatever was published, learn its label only
    `delay` hours later, and validate on the stored predictions (predict, then learn)."""
    delay, n, window = 300, 4000, 600
    cases = list(synthetic_cases(n, seed=7))
    board, learner = SnapshotBoard(), Learner(publish_every=100)
    scorer = OnlineScorer(board)
    waiting: list[tuple[float, int, Example]] = []
    first_model_at = n  # the first case scored with a published model
    for i, (features, label) in enumerate(cases):
        now = i * HOUR
        while waiting and waiting[0][0] <= now:
            learner.learn(heapq.heappop(waiting)[2])
            if learner.examples % learner.publish_every == 0:
                board.post(learner.publish())
                first_model_at = min(first_model_at, i)
        predicted = scorer.score(features)[0].return_propensity
        ex = Example(features, label, predicted, None, "control", now, now + delay * HOUR)
        heapq.heappush(waiting, (ex.labelled_at, i, ex))

    pairs = list(learner.validation.pairs)  # in label order, which here is case order
    assert len(pairs) == learner.examples == n - delay  # the last labels are still on the way
    assert [y for y, _ in pairs] == [y for _, y in cases[: n - delay]]
    assert learner.lag_seconds == delay * HOUR
    # The first model needed 100 labels, the first of which came `delay` hours in; until
    # then every prediction was the prior, which cannot tell these cases apart.
    assert first_model_at == delay + 99
    assert len({p for _, p in pairs[:first_model_at]}) == 1

    def auc(part: list[tuple[int, float]]) -> float:
        value = roc_auc([y for y, _ in part], [p for _, p in part])
        assert value is not None
        return value

    first, last = auc(pairs[:window]), auc(pairs[-window:])
    assert first < 0.6 < 0.75 < last
    # The same last cases scored by the prior alone.
    prior = HeuristicScorer()
    last_cases = cases[n - delay - window : n - delay]
    prior_auc = auc([(y, prior.return_propensity(f)) for f, y in last_cases])
    assert last > prior_auc + 0.2
    assert learner.stats()["roc_auc"] == pytest.approx(auc(pairs), abs=1e-4)


def test_predictions_made_before_any_label_are_the_prior() -> None:
    board = SnapshotBoard()
    scorer = OnlineScorer(board)
    prior = HeuristicScorer()
    features, _ = next(synthetic_cases(1, seed=3))
    assert scorer.version == "heuristic-1"
    assert scorer.score(features) == prior.score(features)


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_predictions_and_learning() -> None:
    data = examples(900, seed=11, treated_share=0.4)
    learner = Learner()
    for ex in data[:600]:
        learner.learn(ex)
    store = InMemoryModelStore()
    store.save(MODEL_SET, 1, learner.to_bytes())
    latest = store.latest(MODEL_SET)
    assert latest is not None
    restored = Learner.from_bytes(latest[1])

    assert restored.snapshot() == learner.snapshot()
    assert restored.stats() == learner.stats()
    probes = [ex.features for ex in data[600:700]]
    for x in probes:
        assert restored.propensity.predict_proba_one(x) == learner.propensity.predict_proba_one(x)
        for action in action_names():
            a = restored.recovery[action].predict_proba_one(x)
            assert a == learner.recovery[action].predict_proba_one(x)
    scorer_a = OnlineScorer(snapshot=learner.publish())
    scorer_b = OnlineScorer(snapshot=restored.publish())
    assert [scorer_a.score(x) for x in probes] == [scorer_b.score(x) for x in probes]

    # Both go on learning the same examples to the same models.
    for ex in data[600:]:
        learner.learn(ex)
        restored.learn(ex)
    assert restored.publish() == learner.publish()
    assert restored.stats() == learner.stats()
    assert learner.snapshot() != Learner.from_bytes(latest[1]).snapshot()  # it did learn


def test_feature_ranges_are_each_features_lowest_and_highest_learned() -> None:
    # The learner folds the ranges in batches (and at each snapshot and checkpoint); they
    # must be what a min and max per example gives, wherever the batches fall.
    data = examples(2 * learner_module._RANGE_BATCH + 300, seed=5, treated_share=0.3)
    learner = Learner()
    lo = [math.inf] * len(FEATURE_NAMES)
    hi = [-math.inf] * len(FEATURE_NAMES)
    for i, ex in enumerate(data):
        learner.learn(ex)
        vector = [ex.features.get(name, 0.0) for name in FEATURE_NAMES]
        lo, hi = list(map(min, lo, vector)), list(map(max, hi, vector))
        if i in (10, learner_module._RANGE_BATCH + 7):
            restored = Learner.from_bytes(learner.to_bytes())
            assert restored.snapshot().propensity.lo == tuple(lo)
    model = learner.snapshot().propensity
    assert (model.lo, model.hi) == (tuple(lo), tuple(hi))
    assert model.lo != model.hi


def _held_stream(seed: int) -> list[Pending | Resolution]:
    """Pending examples of 300 orders (several points each, ties in time, some acted on)
    and how the orders ended (refunds, cancellations), in arrival order."""
    rng = random.Random(seed)
    vector = to_vector(BASE_FEATURES)
    items: list[Pending | Resolution] = []
    for i in range(300):
        order, start = f"o{i:03d}", 1_780_000_000.0 + 600.0 * (i // 3)  # ties: 3 per time
        for k in range(rng.randint(1, 3)):
            acted = k == 1 and rng.random() < 0.5
            items.append(Pending(
                order, start + HOUR * k, vector, rng.random(),
                "proactive_reassurance" if acted else None, "treatment", "delay", k == 0,
                ("*", f"lane={i % 4}"), 0.0,
            ))  # fmt: skip
        end = rng.random()
        if end < 0.3:
            items.append(Resolution(order, "refunded", start + 30 * HOUR))
        elif end < 0.4:
            items.append(Resolution(order, "cancelled", start + 2 * HOUR))
    return items


def test_a_checkpoint_with_held_examples_goes_on_exactly_like_the_learner() -> None:
    """Held examples are saved as blobs pickled once each; the restored learner releases
    them in the same order, with the same labels, and a later checkpoint pickles only
    what arrived since."""
    items = _held_stream(5)
    learner = Learner(horizon=24 * HOUR, margin=0.0, period=6 * HOUR)
    half = len(items) // 2
    for item in items[:half]:
        learner.feed(item)
    assert learner.pending_count > 50
    first = learner.to_bytes()
    saved = [(e[-1], e[-1].blob) for e in learner._heap if e[-1].alive]
    restored = Learner.from_bytes(first)
    assert restored.pending_count == learner.pending_count
    assert sorted(e[:4] for e in restored._heap) == sorted(
        e[:4] for e in learner._heap if e[-1].alive
    )
    for item in items[half : half + 10]:
        learner.feed(item)
        restored.feed(item)
    # Examples held at the first checkpoint keep the blob it made (not pickled again).
    learner.to_bytes()
    still = {id(e[-1]) for e in learner._heap if e[-1].alive}
    kept = [(h, blob) for h, blob in saved if id(h) in still]
    assert len(kept) > 50 and all(blob is not None and h.blob is blob for h, blob in kept)
    for item in items[half + 10 :]:
        learner.feed(item)
        restored.feed(item)
    learner.finish()
    restored.finish()
    assert learner.examples == restored.examples > 100
    assert restored.publish() == learner.publish()
    assert restored.stats() == learner.stats()


def test_learner_routes_examples_by_arm_and_action() -> None:
    learner = Learner()
    features = BASE_FEATURES
    learner.learn(Example(features, 1, 0.7, None, "treatment", 0.0, 10.0))
    learner.learn(Example(features, 0, 0.2, None, "control", 0.0, 20.0))
    learner.learn(Example(features, 0, 0.4, "exchange_first_offer", "treatment", 0.0, 30.0))
    learner.learn(Example(features, 1, 0.4, "teleport", "treatment", 0.0, 40.0))
    assert learner.examples == 4
    # Untreated cases teach the propensity model and are validated; treated ones teach
    # their action's model; an unknown action teaches nothing.
    assert learner.propensity_examples == 2 and learner.validation.seen == 2
    assert list(learner.validation.pairs) == [(1, 0.7), (0, 0.2)]
    assert learner.recovery_examples == {
        **dict.fromkeys(action_names(), 0),
        "exchange_first_offer": 1,
    }
    assert learner.lag_seconds == 40.0


def test_progressive_validation_reports_the_whole_run_and_the_last_window() -> None:
    v = ProgressiveValidation(window=4)
    pairs = [(0, 0.9), (1, 0.1), (0, 0.2), (1, 0.8), (0, 0.3), (1, 0.7)]
    for label, p in pairs:
        v.update(label, p)
    report = v.report()
    assert (report["examples"], report["recent"]["examples"], report["window"]) == (6, 4, 4)
    assert list(v.pairs) == pairs[-4:]
    # Whole run: the two early mistakes count (rank AUC 4/9); the window has dropped them.
    whole = roc_auc([y for y, _ in pairs], [p for _, p in pairs])
    assert report["roc_auc"] == pytest.approx(whole, abs=1e-4) and whole == pytest.approx(4 / 9)
    assert report["recent"]["roc_auc"] == 1.0
    assert report["base_rate"] == report["recent"]["base_rate"] == 0.5
    assert ProgressiveValidation().report()["roc_auc"] is None


# --- compiled predictions ---------------------------------------------------------------------


def test_compiled_logit_equals_river_predict_proba_one() -> None:
    pipeline = Learner().propensity
    x0 = dict(BASE_FEATURES)
    assert CompiledLogit.from_pipeline(pipeline).predict(to_vector(x0)) == pytest.approx(
        pipeline.predict_proba_one(x0)[True]
    )  # untrained: both 0.5
    for ex in examples(500, seed=5):
        pipeline.learn_one(ex.features, bool(ex.label))
    compiled = CompiledLogit.from_pipeline(pipeline)
    assert len(compiled.coefs) == len(FEATURE_NAMES)
    # Constant features (variance 0) carry no weight.
    constant = [i for i, name in enumerate(FEATURE_NAMES) if name not in {
        "log_order_value", "margin_share", "new_customer"}]  # fmt: skip
    assert all(compiled.coefs[i] == 0.0 for i in constant)
    rnd = random.Random(1)
    for features, _ in synthetic_cases(300, seed=99):
        x = dict(features)
        x["slip_hours"] = rnd.uniform(0.0, 200.0)  # unseen by the model: ignored by both
        river = pipeline.predict_proba_one(x)[True]
        assert abs(compiled.predict(to_vector(x)) - river) < 1e-9
    extreme = {**BASE_FEATURES, "log_order_value": 80.0, "margin_share": -50.0}
    assert (
        abs(compiled.predict(to_vector(extreme)) - pipeline.predict_proba_one(extreme)[True]) < 1e-9
    )


def test_online_scorer_blends_learned_and_prior_by_example_count() -> None:
    zeros = (0.0,) * len(FEATURE_NAMES)
    p_treated = 0.2
    snapshot = ModelSnapshot(
        version=3,
        propensity=CompiledLogit(0.0, zeros),  # learned P(refund) = 0.5 everywhere
        propensity_examples=300,
        recovery={
            a: CompiledLogit(math.log(p_treated / (1 - p_treated)), zeros) for a in action_names()
        },
        recovery_examples={**dict.fromkeys(action_names(), 0), "exchange_first_offer": 100},
    )
    scorer = OnlineScorer(snapshot=snapshot, warmup=300)
    features, _ = next(synthetic_cases(1, seed=4))
    prior = HeuristicScorer()
    prior_p, prior_rec = prior.return_propensity(features), prior.recovery(features)
    scores, recover = scorer.score(features)
    assert scorer.version == "river-lr-v3"
    p = 0.5 * 0.5 + 0.5 * prior_p  # weight 300 / (300 + 300)
    assert scores.return_propensity == pytest.approx(p)
    learned = max(0.0, 1.0 - p_treated / p)
    assert recover["exchange_first_offer"] == pytest.approx(
        0.25 * learned + 0.75 * prior_rec["exchange_first_offer"]  # weight 100 / 400
    )
    assert recover["product_guidance"] == prior_rec["product_guidance"]  # nothing learned yet


def test_scorers_read_the_newest_snapshot_posted_to_the_board() -> None:
    learner = Learner()
    for ex in examples(50, seed=2):
        learner.learn(ex)
    board = SnapshotBoard()
    scorer = OnlineScorer(board)
    v1 = learner.publish()
    v2 = learner.publish()
    board.post(v2)
    board.post(v1)  # a late, older snapshot does not replace a newer one
    assert board.latest is v2
    scorer.score(BASE_FEATURES)
    assert scorer.version == "river-lr-v2"
    scorer.use(v1)
    assert scorer.version == "river-lr-v2"


# --- warm start through the model store ---------------------------------------------------------


@pytest.fixture(scope="module")
def warm_runs(tmp_path_factory) -> dict[str, Any]:
    """Two replays of the same input sharing one model store: the first starts cold."""
    base = tmp_path_factory.mktemp("warm")
    data = base / "input"
    simulate("launch-week-backlog", 600, 20260601, data)
    store = InMemoryModelStore()
    runs: dict[str, Any] = {"store": store}
    for name in ("cold", "warm"):
        versions: list[int] = []
        observer = FlowObserver(on_model=lambda s, v=versions: v.append(s["version"]))
        options = ReplayOptions(model_store=store)
        run_replay(data, base / name, options=options, observer=observer)
        saved = store.latest(MODEL_SET)
        runs[name] = {
            "versions": versions,
            "saved": saved[0] if saved else None,
            "decisions": read_jsonl(base / name / "decisions.jsonl"),
        }
    return runs


def test_a_second_replay_continues_from_the_saved_version(warm_runs: dict[str, Any]) -> None:
    cold, warm = warm_runs["cold"], warm_runs["warm"]
    assert cold["versions"][0] == 1 and cold["saved"] == cold["versions"][-1] > 1
    assert warm["versions"][0] == cold["saved"] + 1
    assert warm["saved"] == warm["versions"][-1] > warm["versions"][0]
    restored = Learner.from_bytes(warm_runs["store"].latest(MODEL_SET)[1])
    assert restored.version == warm["saved"]


def test_a_warm_replay_decides_with_the_saved_models_from_its_first_decision(
    warm_runs: dict[str, Any],
) -> None:
    cold, warm = warm_runs["cold"]["decisions"], warm_runs["warm"]["decisions"]
    assert cold[0]["model_version"] == "heuristic-1"
    assert warm[0]["model_version"] == f"river-lr-v{warm_runs['cold']['saved']}"
    assert (cold[0]["order_id"], cold[0]["trigger_event_id"]) == (
        warm[0]["order_id"],
        warm[0]["trigger_event_id"],
    )
    assert warm[0]["scores"]["return_propensity"] != cold[0]["scores"]["return_propensity"]


def test_the_store_keeps_the_newest_versions(tmp_path: Path) -> None:
    store = InMemoryModelStore(keep=2)
    for version in (3, 1, 2):
        store.save(MODEL_SET, version, Learner().to_bytes())
    latest = store.latest(MODEL_SET)
    assert latest is not None and latest[0] == 3
    assert isinstance(Learner.from_bytes(latest[1]), Learner)


def test_a_scorer_in_another_process_polls_the_store_for_newer_checkpoints() -> None:
    from operators.learner import Learner
    from operators.models import MODEL_SET, Example
    from operators.online_scorer import OnlineScorer

    store = InMemoryModelStore()
    learner = Learner()
    rng = random.Random(3)
    for _ in range(400):
        f = build_features(OrderCase("o", placed=True, order_value=50.0), None, 0.0)
        f["has_request"] = float(rng.random() < 0.3)
        learner.learn(Example(f, int(f["has_request"]), 0.5, None, "control", 0.0, 1.0))
    now = [0.0]
    scorer = OnlineScorer(store=store, poll_seconds=30.0, clock=lambda: now[0])
    features = build_features(OrderCase("x", placed=True, order_value=50.0), None, 0.0)
    scorer.score(features)
    assert scorer.version == "heuristic-1"  # nothing stored yet
    snap = learner.publish()
    store.save(MODEL_SET, snap.version, learner.to_bytes())
    now[0] = 10.0
    scorer.score(features)
    assert scorer.version == "heuristic-1"  # not polled again before poll_seconds
    now[0] = 31.0
    scorer.score(features)
    assert scorer.version == f"river-lr-v{snap.version}"
    expected = snap.propensity.predict(to_vector(features))
    assert scorer.snapshot is not None
    assert scorer.snapshot.propensity.predict(to_vector(features)) == pytest.approx(expected)


# --- labels at the horizon --------------------------------------------------------------------

H = 10 * 24 * HOUR


def pending(order_id: str, t: float, action: str | None = None, arm: str = "treatment",
            first: bool = False, source: int = 0) -> Pending:  # fmt: skip
    return Pending(
        order_id, t, to_vector(BASE_FEATURES), 0.3, action, arm, "delay", first,
        ("*", "p=delay"), -1.0, source,
    )  # fmt: skip


class Recording(Learner):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.learned: list[tuple[float, Example]] = []  # (learner clock when learned, example)

    def learn(self, ex: Example) -> None:
        self.learned.append((self.clock, ex))
        super().learn(ex)


def test_labels_are_released_at_the_horizon_and_say_refunded_within_it() -> None:
    learner = Recording(horizon=H, margin=0.0)
    learner.feed(pending("a", 0.0))  # refunded 3 days later: label 1
    learner.feed(pending("b", 1 * HOUR))  # refunded 12 days later: after the horizon, 0
    learner.feed(pending("c", 2 * HOUR))  # kept (expired weeks later): 0
    learner.feed(Resolution("a", "refunded", 3 * 24 * HOUR))
    assert learner.learned == []  # known refunded, but not released before its horizon
    learner.feed(pending("z", H - 1.0))
    assert learner.learned == []
    learner.feed(pending("z2", H + 1.5 * HOUR))
    assert [(ex.decided_at, ex.label) for _, ex in learner.learned] == [(0.0, 1), (HOUR, 0)]
    learner.feed(Resolution("b", "refunded", 12 * 24 * HOUR))
    learner.feed(Resolution("c", "kept", 40 * 24 * HOUR))
    labels = {ex.decided_at: ex.label for _, ex in learner.learned}
    assert labels[2 * HOUR] == 0 and labels[0.0] == 1
    # Never before decided_at + horizon on the learner's clock, and labelled at exactly it.
    for clock, ex in learner.learned:
        assert clock >= ex.decided_at + H and ex.labelled_at == ex.decided_at + H


def test_a_first_action_drops_the_no_action_points_its_horizon_overlaps() -> None:
    learner = Recording(horizon=H, margin=0.0)
    learner.feed(pending("o", 0.0))
    learner.feed(pending("o", 11 * 24 * HOUR))  # the first point was released by now
    learner.feed(pending("o", 12 * 24 * HOUR, action="proactive_reassurance"))
    learner.feed(Resolution("o", "kept", 30 * 24 * HOUR))
    learner.feed(pending("later", 40 * 24 * HOUR))
    got = [(ex.decided_at / (24 * HOUR), ex.action) for _, ex in learner.learned]
    # Day 0 (released before the action) stays; day 11 overlapped the action: dropped.
    assert got == [(0.0, None), (12.0, "proactive_reassurance")]
    assert learner.dropped == 1
    assert learner.recovery_examples["proactive_reassurance"] == 1
    # The treatment arm's no-action point teaches the propensity model, not the bandit:
    # "doing nothing" is learned from the holdout only (a random, unselected sample).
    assert learner.bandit.outcomes == {"proactive_reassurance": 1}


def test_censored_cases_never_become_examples_before_their_horizon() -> None:
    learner = Recording(horizon=H, margin=0.0)
    learner.feed(pending("early", 0.0))
    learner.feed(pending("late", 15 * 24 * HOUR))
    end = 20 * 24 * HOUR
    learner.feed(Resolution("early", "censored", end))
    learner.feed(Resolution("late", "censored", end))
    learner.finish()
    # The early point's horizon passed before the end: no refund within it, label 0. The
    # late point's horizon is after the end: unknown, so never learned.
    assert [(ex.decided_at, ex.label) for _, ex in learner.learned] == [(0.0, 0)]
    assert learner.dropped == 1 and learner.pending_count == 0


def test_a_cancellation_drops_the_points_whose_horizon_ends_after_it() -> None:
    learner = Recording(horizon=H, margin=0.0)
    learner.feed(pending("o", 0.0))
    learner.feed(pending("o", 5 * 24 * HOUR))
    learner.feed(Resolution("o", "cancelled", 12 * 24 * HOUR))
    learner.finish()
    assert [ex.decided_at for _, ex in learner.learned] == [0.0]


def test_a_worker_running_behind_holds_releases_back() -> None:
    """Two workers out of step: the clock is the slower one's, so a refund it reports
    late still labels the point it belongs to."""
    learner = Recording(horizon=H, margin=0.0)
    learner.feed_batch([pending("slow", 0.0, source=1)])
    learner.feed_batch([pending("fast", 30 * 24 * HOUR, source=2)])
    assert learner.learned == []  # source 1 has not been heard from past day 0
    learner.feed_batch([Resolution("slow", "refunded", 2 * 24 * HOUR, source=1)])
    learner.feed_batch([pending("slow2", 12 * 24 * HOUR, source=1)])
    assert [(ex.decided_at, ex.label) for _, ex in learner.learned] == [(0.0, 1)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 60), st.sampled_from(["p", "a", "r", "k"])),
        min_size=1, max_size=40,
    ),
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_no_label_is_released_before_its_horizon_in_any_arrival_order(
    steps: list[tuple[int, int, str]], rnd: random.Random
) -> None:
    items: list[Pending | Resolution] = []
    for order, day, kind in steps:
        t = day * 24 * HOUR
        oid = f"o{order}"
        if kind == "p":
            items.append(pending(oid, t))
        elif kind == "a":
            items.append(pending(oid, t, action="exchange_first_offer"))
        else:
            items.append(Resolution(oid, "refunded" if kind == "r" else "kept", t))
    rnd.shuffle(items)
    learner = Recording(horizon=H, margin=0.0)
    for i in range(0, len(items), 3):
        learner.feed_batch(items[i : i + 3])
    learner.finish()
    for clock, ex in learner.learned:
        assert ex.labelled_at == ex.decided_at + H
        assert max(clock, learner.latest) >= ex.labelled_at
    assert learner.pending_count == 0 and len(learner.learned) <= len(items)
