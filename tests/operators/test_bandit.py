"""The bandit: per-action Bayesian logistic posteriors, Thompson choices with an epsilon
floor, exact propensities, and exploration that stays inside the policy."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

import pytest
import yaml

from operators.bandit import (
    NONE,
    BanditLearner,
    BanditPosterior,
    Option,
    guarded_choice,
    logit,
    prior_offsets,
    seed_of,
    sigmoid,
    thompson_choice,
)
from operators.engine import DecisionEngine
from operators.gate import SnapshotBoard
from operators.learner import Learner
from operators.online_scorer import OnlineScorer
from operators.policy import RecoveryPolicy
from operators.segments import Context
from operators.vocabulary import SegmentCross
from operators.window import CaseWindow, WindowConfig
from state.context import InMemoryContextStore
from tests.helpers import body, event, order_placed, support
from tests.operators.test_engine import DEFAULT_DOC, Orders

REASSURE = "proactive_reassurance"
CREDIT = "delayed_shipment_intervention"


def lane_keys(lane: str) -> tuple[str, ...]:
    return Context.of("request", f"dhl:{lane}", "skincare", "refund_request", 2, None).keys()


def test_choice_shares_move_apart_per_lane_once_outcomes_arrive() -> None:
    """The world of the issue: late-parcel customers ask for a refund (60 %). Reassurance
    recovers 70 % of them in lane X and none in lane Y; a delayed-shipment credit recovers
    40 % in X and 70 % in Y. The prior says 50 % for both everywhere, so before any
    outcome both lanes get the same shares (mostly reassurance: it is cheaper); after
    enough outcomes the bandit reassures in X and pays the credit in Y."""
    p_none, value = 0.6, 60.0
    offsets = prior_offsets(p_none, {REASSURE: 0.5, CREDIT: 0.5}, [REASSURE, CREDIT])
    recovers = {"X": {REASSURE: 0.7, CREDIT: 0.4}, "Y": {REASSURE: 0.0, CREDIT: 0.7}}
    options = [Option(REASSURE, 0.15, value), Option(CREDIT, 10.5, value)]
    bandit = BanditLearner(prior_precision=12.5)

    def shares(lane: str, posterior: BanditPosterior, n: int = 200) -> dict[str, float]:
        total: Counter[str] = Counter()
        for i in range(n):
            c = thompson_choice(
                posterior, lane_keys(lane), offsets, options, 0.05, random.Random(i), 0.5
            )
            total.update(c.shares)
        return {a: v / n for a, v in total.items()}

    prior = bandit.posterior()
    assert shares("X", prior) == pytest.approx(shares("Y", prior), abs=1e-9)
    assert shares("X", prior)[REASSURE] > 0.5  # the static answer: reassure everywhere

    world = random.Random(5)
    for i in range(4000):
        lane = "XY"[i % 2]
        keys = lane_keys(lane)
        choice = thompson_choice(
            bandit.posterior(), keys, offsets, options, 0.05,
            random.Random(seed_of(str(i), "t")), 0.5,
        )  # fmt: skip
        p = p_none * (1.0 - recovers[lane].get(choice.action, 0.0))
        bandit.update(choice.action, keys, offsets[choice.action], int(world.random() < p))

    learned = bandit.posterior()
    x, y = shares("X", learned), shares("Y", learned)
    assert x[REASSURE] > 0.8 and x[CREDIT] < 0.15
    assert y[CREDIT] > 0.7 and y[REASSURE] < 0.2
    # Doing nothing kept its epsilon floor in both lanes: the holdout-free comparison.
    assert min(x[NONE], y[NONE]) >= 0.05 / 3 - 1e-9


def test_a_segment_learns_its_rate_and_keeps_the_prior_where_it_has_no_data() -> None:
    bandit = BanditLearner(prior_precision=12.5)
    keys = lane_keys("X")
    offset = logit(0.5)
    for i in range(2000):  # 20 % refund when nothing is done in lane X
        bandit.update(NONE, keys, offset, int(i % 5 == 0))
    post = bandit.posterior()
    mu, var = post.moments(NONE, keys, offset)
    assert sigmoid(mu) == pytest.approx(0.2, abs=0.02)
    # Each of the 7 keys holds about 2000 * 0.16 outcomes of precision: the diagonal
    # posterior's variance of the logit is 7 / 332, wider than the exact 1 / 332.
    assert var == pytest.approx(len(keys) / (12.5 + 2000 * 0.16), rel=0.1)
    # An action without outcomes: the no-action part it shares, plus the prior's effect.
    effect_var = len(keys) / post.precision_of(REASSURE)
    assert post.weights(REASSURE, keys) == (0.0, pytest.approx(effect_var))
    mu_a, var_a = post.moments(REASSURE, keys, -1.0)
    assert mu_a == pytest.approx(mu - offset - 1.0) and var_a == pytest.approx(var + effect_var)


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.3])
def test_propensities_sum_to_one_and_respect_the_epsilon_floor(epsilon: float) -> None:
    post = BanditPosterior(12.5)
    options = [Option(REASSURE, 0.15, 40.0), Option(CREDIT, 6.0, 40.0)]
    offsets = prior_offsets(0.6, {REASSURE: 0.3, CREDIT: 0.6}, [REASSURE, CREDIT])
    seen = Counter()
    for i in range(300):
        c = thompson_choice(post, lane_keys("X"), offsets, options, epsilon, random.Random(i))
        assert set(c.shares) == {NONE, REASSURE, CREDIT}
        assert sum(c.shares.values()) == pytest.approx(1.0)
        assert min(c.shares.values()) >= epsilon / 3 - 1e-12
        assert c.propensity == c.shares[c.action] > 0
        seen[c.action] += 1
    # Every option is chosen at about the rate its mean share says.
    assert set(seen) == {NONE, REASSURE, CREDIT}


def test_the_same_seed_draws_the_same_choice() -> None:
    post = BanditPosterior(12.5)
    options = [Option(REASSURE, 0.15, 40.0)]
    offsets = prior_offsets(0.6, {REASSURE: 0.3}, [REASSURE])

    def draw(order_id: str) -> Any:
        return thompson_choice(
            post, lane_keys("X"), offsets, options, 0.05, random.Random(seed_of(order_id, "e1"))
        )

    assert [draw(f"o{i}") for i in range(50)] == [draw(f"o{i}") for i in range(50)]
    assert len({draw(f"o{i}").action for i in range(50)}) == 2


# --- the engine with a learning scorer ---------------------------------------------------------


def learning_policy(exploration: float) -> RecoveryPolicy:
    doc = copy.deepcopy(DEFAULT_DOC)
    doc["holdout"]["share"] = 0.0
    doc["ranking"]["exploration"] = exploration
    return RecoveryPolicy.from_text(yaml.safe_dump(doc), "explore.yaml")


def test_exploration_never_picks_human_review_or_an_ineligible_action() -> None:
    policy = learning_policy(0.5)
    engine = DecisionEngine(policy, OnlineScorer(SnapshotBoard()), context=InMemoryContextStore())
    orders = Orders(engine)
    decisions = []
    for i in range(120):
        oid = f"o-{i}"
        value = 400.0 if i % 3 == 0 else 80.0  # above max_value_at_risk: a person decides
        out = orders.feed(
            order_placed(oid, 0, total=value, cost=value / 3),
            body("delayed", oid, 40, estimated_delivery_at="2026-06-06T00:00:00Z"),
            support("ticket_opened", oid, 90, intent="where_is_my_order", sentiment=-0.6),
            body("refund_requested", oid, 100, reason="late_delivery"),
        )
        decisions.extend(r for tag, r in out if tag == "decision")
    assert {d["segment"] is not None for d in decisions} == {True}
    explored = [d for d in decisions if "exploration" in d["reasons"]]
    assert explored  # half of the decisions with a choice explore
    for d in decisions:
        if d["action"] == "human_review":
            # The automation boundary is deterministic: never explored, never sampled.
            assert d["rule"] == "automation_boundary" and d["propensity"] == 1.0
            assert "exploration" not in d["reasons"]
        else:
            assert d["action"] in (NONE, *d["eligible"])
        if not d["eligible"]:
            assert d["action"] in (NONE, "human_review") and d["propensity"] == 1.0
        else:
            assert 0 < d["propensity"] <= 1.0
            if d["action"] != "human_review" and d["rule"] != "below_propensity_threshold":
                # The epsilon floor: every option had at least e / (1 + eligible).
                assert d["propensity"] >= 0.5 / (1 + len(d["eligible"])) - 1e-6
    assert {d["point"] for d in decisions} == {"order", "delay", "ticket", "request"}


def test_the_engine_samples_the_posterior_the_learner_published() -> None:
    """A learner that has seen reassurance fail in a segment makes the engine stop
    choosing it there; the prior alone would reassure."""
    policy = learning_policy(0.0)
    board = SnapshotBoard()

    def reassured(tag: str) -> float:
        orders = Orders(DecisionEngine(policy, OnlineScorer(board), context=InMemoryContextStore()))
        acted = []
        for i in range(60):
            oid = f"{tag}-{i}"
            out = orders.feed(
                order_placed(oid, 0, total=80.0, cost=30.0, lane="dhl:DE-NL"),
                body("delayed", oid, 40, estimated_delivery_at="2026-06-04T00:00:00Z"),
                support("ticket_opened", oid, 80, intent="where_is_my_order", sentiment=-0.9),
            )
            last = [r for t, r in out if t == "decision"][-1]
            assert last["eligible"] == [REASSURE]
            acted.append(last["action"] == REASSURE)
        return sum(acted) / len(acted)

    before = reassured("a")
    assert before > 0.5
    learner = Learner(prior_precision=policy.prior_precision)
    keys = Context.of("ticket", "dhl:DE-NL", "skincare", "where_is_my_order", None, None).keys()
    for i in range(1000):  # reassured customers ask for their money back more (60 % vs 50 %)
        learner.bandit.update(REASSURE, keys, logit(0.2), int(i % 5 < 3))
        learner.bandit.update(NONE, keys, logit(0.4), int(i % 2 == 0))
    board.post(learner.publish())
    after = reassured("b")
    assert after < 0.2


def test_the_guard_keeps_the_static_choice_until_the_data_are_conclusive() -> None:
    """An action the prior likes backfires in lane X. The guarded choice keeps the static
    rules' choice without data and after a handful of outcomes, and drops the action once
    the outcomes are conclusive."""
    offsets = {NONE: logit(0.3), "a": logit(0.3 * (1 - 0.5))}  # prior: a saves half
    options = [Option("a", 1.0, 100.0)]

    def choose(learner: BanditLearner) -> str:
        c = guarded_choice(
            learner.posterior(), lane_keys("X"), offsets, options, 0.0, random.Random(1),
            baseline="a",
        )  # fmt: skip
        return c.action

    learner = BanditLearner(12.5)
    assert choose(learner) == "a"  # no data: the baseline
    rng = random.Random(7)

    def feed(n: int) -> None:
        for _ in range(n):
            learner.update(NONE, lane_keys("X"), offsets[NONE], int(rng.random() < 0.3))
            learner.update("a", lane_keys("X"), offsets["a"], int(rng.random() < 0.6))

    feed(5)
    assert choose(learner) == "a"  # a handful of outcomes is not conclusive
    feed(3000)
    assert choose(learner) == NONE  # it backfires there, and the data say so


def _level_error_world(joint: bool, n: int = 3000) -> tuple[float, float]:
    """The prior says 20 % refund when nothing is done and that reassurance halves it; in
    truth 60 % refund with or without it. 9 in 10 outcomes are of reassured cases, 1 in 10
    of the holdout (nothing done). Returns the posterior means of P(refund | none) and
    P(refund | reassured)."""
    keys = lane_keys("X")
    offsets = prior_offsets(0.2, {REASSURE: 0.5}, [REASSURE])
    bandit = BanditLearner(prior_precision=12.5, joint=joint)
    world = random.Random(11)
    for i in range(n):
        arm = NONE if i % 10 == 0 else REASSURE
        bandit.update(arm, keys, offsets[arm], int(world.random() < 0.6))
    post = bandit.posterior()
    p_none = sigmoid(post.moments(NONE, keys, offsets[NONE])[0])
    p_reassured = sigmoid(
        post.moments(REASSURE, keys, offsets[NONE])[0] + offsets[REASSURE] - offsets[NONE]
    )
    return p_none, p_reassured


def test_a_wrong_prior_level_is_not_taken_for_an_effect_of_the_action() -> None:
    """600 outcomes, about what a segment gets in a 10,000-order run. Learned jointly, the
    reassured outcomes teach the segment's refund level too: the level is right and the
    action is not seen to do harm (its effect is still near the prior's, which the data
    have not yet overruled). Learned from the holdout alone (60 outcomes), the level lags
    far behind and the action's weights absorb the difference: reassurance looks harmful,
    and a learner would stop it."""
    p_none, p_reassured = _level_error_world(joint=True, n=600)
    assert p_none == pytest.approx(0.6, abs=0.05)
    assert p_reassured <= p_none
    separate_none, separate_reassured = _level_error_world(joint=False, n=600)
    assert separate_none < 0.52
    assert separate_reassured - separate_none > 0.05


def _learned(full: bool, n: int, lane: str = "X") -> BanditLearner:
    """``n`` reassured cases in one segment (30 % refund) and a holdout twelfth (50 %)."""
    bandit = BanditLearner(prior_precision=1.25, full=full)
    keys = lane_keys(lane)
    for i in range(n):
        bandit.update(REASSURE, keys, logit(0.4), int(i % 10 < 3))
        if i % 12 == 0:
            bandit.update(NONE, keys, logit(0.5), int(i % 24 == 0))
    return bandit


def test_a_full_covariance_narrows_a_segment_the_diagonal_keeps_seven_times_too_wide() -> None:
    """The seven keys of a case always occur together: the diagonal posterior adds seven
    variances for a logit its outcomes pin down; the full covariance does not."""
    keys = lane_keys("X")
    diag, full = _learned(False, 600).posterior(), _learned(True, 600).posterior()
    mu_d, var_d = diag.moments(REASSURE, keys, logit(0.4))
    mu_f, var_f = full.moments(REASSURE, keys, logit(0.4))
    exact = 1.0 / (600 * 0.3 * 0.7)  # the binomial's own variance of the logit, about
    assert var_f == pytest.approx(exact, rel=0.35)
    assert var_d > 4 * var_f
    # And its mean is the segment's rate, where the diagonal's steps overshoot it.
    assert sigmoid(mu_f) == pytest.approx(0.3, abs=0.02)
    assert abs(sigmoid(mu_d) - 0.3) > 2 * abs(sigmoid(mu_f) - 0.3)
    # A segment it has never seen keeps (close to) the prior's width in both.
    other = lane_keys("unseen")
    assert full.moments(REASSURE, other, 0.0)[1] > 20 * var_f


def test_with_one_key_the_full_and_the_diagonal_posterior_are_the_same() -> None:
    diag, full = BanditLearner(2.0, full=False), BanditLearner(2.0, full=True)
    world = random.Random(3)
    for i in range(500):
        arm = REASSURE if i % 3 else NONE
        y = int(world.random() < 0.4)
        for b in (diag, full):
            # Not joint: one weight per outcome, which the diagonal gets exactly right.
            b.joint = False
            b.update(arm, ("*",), -0.5, y)
    for arm in (NONE, REASSURE):
        d, f = diag.posterior().weights(arm, ("*",)), full.posterior().weights(arm, ("*",))
        assert f == pytest.approx(d, rel=1e-9)


def test_a_full_covariance_learner_survives_a_pickle_and_goes_on_alike() -> None:
    import pickle

    learner = _learned(True, 300)
    restored = pickle.loads(pickle.dumps(learner))
    for b in (learner, restored):
        for i in range(200):  # enough new keys to grow the matrix past its first size
            b.update(CREDIT, lane_keys(f"L{i % 40}"), 0.0, i % 2)
    keys = lane_keys("L7")
    assert restored.posterior().moments(CREDIT, keys, 0.0) == learner.posterior().moments(
        CREDIT, keys, 0.0
    )


def test_the_guard_tells_two_actions_apart_sooner_with_a_full_covariance() -> None:
    """Reassurance leaves 25 % refunds in the segment and the credit 45 %; the holdout has
    a tenth as many outcomes. The static rules pay the credit (the baseline). Their
    difference is what the outcomes pin down: with the full covariance the guard is sure
    of it after 120 outcomes of each in most worlds, the diagonal posterior (each effect
    as wide as the level it cannot tell apart) in few."""
    keys = lane_keys("X")
    offsets = prior_offsets(0.5, {REASSURE: 0.2, CREDIT: 0.2}, [REASSURE, CREDIT])
    options = [Option(REASSURE, 1.0, 40.0), Option(CREDIT, 1.0, 40.0)]

    def switched(full: bool) -> float:
        shares = []
        for seed in range(10):
            bandit = BanditLearner(prior_precision=1.25, full=full)
            world = random.Random(seed)
            for i in range(120):
                if i % 10 == 0:
                    bandit.update(NONE, keys, offsets[NONE], int(world.random() < 0.5))
                bandit.update(REASSURE, keys, offsets[REASSURE], int(world.random() < 0.25))
                bandit.update(CREDIT, keys, offsets[CREDIT], int(world.random() < 0.45))
            post = bandit.posterior()
            picks = [
                guarded_choice(
                    post, keys, offsets, options, 0.0, random.Random(i), 0.0, CREDIT, 0.99
                )
                for i in range(20)
            ]
            shares.append(sum(c.action == REASSURE for c in picks) / len(picks))
        return sum(shares) / len(shares)

    assert switched(True) > 0.6
    assert switched(False) < 0.4


def test_a_learner_pickled_before_the_full_covariance_restores_as_a_diagonal_one() -> None:
    import pickle

    old = _learned(False, 50)
    del old.__dict__["gaussian"]  # what a checkpoint of an earlier version holds
    restored = pickle.loads(pickle.dumps(old))
    assert restored.gaussian is None
    restored.update(REASSURE, lane_keys("X"), 0.0, 1)  # goes on learning, diagonally
    assert restored.posterior().gaussian is None
    assert restored.outcomes[REASSURE] == 51


# ----------------------------------------------------------------------- forgetting
DAY_S = 86400.0


def _changing_lane(full: bool, half_life_days: float | None) -> list[float]:
    """Reassurance in lane X leaves 20 % refunds for 60 days (4 a day), then stops working
    (60 %). The mean P(refund | reassured) each day after the change."""
    bandit = BanditLearner(prior_precision=1.25, full=full)
    bandit.half_life = None if half_life_days is None else half_life_days * DAY_S
    keys, world = lane_keys("X"), random.Random(11)
    after: list[float] = []
    for day in range(120):
        bandit.forget_until(day * DAY_S)
        rate = 0.2 if day < 60 else 0.6
        for _ in range(4):
            bandit.update(REASSURE, keys, logit(0.4), int(world.random() < rate))
            if world.random() < 0.25:
                bandit.update(NONE, keys, logit(0.5), int(world.random() < 0.5))
        if day >= 60:
            after.append(sigmoid(bandit.posterior().moments(REASSURE, keys, logit(0.4))[0]))
    return after


def test_a_forgetting_posterior_follows_a_lane_where_reassurance_stopped_working() -> None:
    """The full covariance is calibrated, and so stubborn: 60 days of old outcomes outvote
    the new ones for more than six weeks. With a 14-day half-life its estimate is past
    halfway to the new rate within three weeks, and near it by the end. (The diagonal
    posterior keeps about seven times the variance its outcomes justify and jumps after
    the newest outcomes anyway.)"""
    kept, forgetting = _changing_lane(True, None), _changing_lane(True, 14.0)
    days_to = [next(i for i, p in enumerate([*run, 1.0]) if p > 0.45) for run in (kept, forgetting)]
    assert days_to[1] <= 21
    assert days_to[0] >= 42
    assert forgetting[-1] == pytest.approx(0.6, abs=0.08)
    assert abs(kept[-1] - 0.6) > 2 * abs(forgetting[-1] - 0.6)


def test_without_a_half_life_forgetting_changes_nothing() -> None:
    for full in (False, True):
        a, b = _learned(full, 200), _learned(full, 200)
        b.forget_until(0.0)
        b.forget_until(400 * DAY_S)
        keys = lane_keys("X")
        assert a.posterior().moments(REASSURE, keys, 0.0) == b.posterior().moments(
            REASSURE, keys, 0.0
        )


@pytest.mark.parametrize("full", [False, True])
def test_forgetting_in_steps_is_forgetting_at_once_and_keeps_unseen_keys_at_the_prior(
    full: bool,
) -> None:
    steps, once = _learned(full, 300), _learned(full, 300)
    for b in (steps, once):
        b.half_life = 10 * DAY_S
        b.forget_until(0.0)
    for day in range(1, 21):
        steps.forget_until(day * DAY_S)
    once.forget_until(20 * DAY_S)
    keys = lane_keys("X")
    for arm in (NONE, REASSURE):
        s, o = steps.posterior().moments(arm, keys, 0.0), once.posterior().moments(arm, keys, 0.0)
        assert s == pytest.approx(o, rel=1e-6, abs=1e-9)
    # A segment no outcome touched is still exactly at the prior; a learned one is wider
    # than before but not beyond the prior.
    fresh = BanditLearner(prior_precision=1.25, full=full).posterior()
    unseen = lane_keys("never")
    learned = _learned(full, 300).posterior().moments(REASSURE, keys, 0.0)[1]
    faded = once.posterior().moments(REASSURE, keys, 0.0)[1]
    prior = fresh.moments(REASSURE, keys, 0.0)[1]
    assert learned < faded < prior
    if not full:  # the diagonal keeps untouched keys exactly at the prior
        assert once.posterior().weights(REASSURE, ("l=never",)) == fresh.weights(
            REASSURE, ("l=never",)
        )
    assert once.posterior().moments(REASSURE, unseen, 0.0)[1] > faded


def test_steps_shorter_than_the_forget_step_add_up() -> None:
    a, b = _learned(False, 200), _learned(False, 200)
    for x in (a, b):
        x.half_life = 5 * DAY_S
        x.forget_until(0.0)
    for minute in range(1, 241):  # four hours in minutes: each below FORGET_STEP
        a.forget_until(minute * 60.0)
    b.forget_until(240 * 60.0)
    keys = lane_keys("X")
    assert a.posterior().moments(REASSURE, keys, 0.0) == pytest.approx(
        b.posterior().moments(REASSURE, keys, 0.0), rel=1e-9
    )


def test_the_eligible_set_key_learns_an_effect_that_depends_on_what_else_is_eligible() -> None:
    """Reassurance leaves 20 % refunds where it is the only eligible action and 40 % (as
    many as doing nothing) where the delayed-shipment credit is eligible too (a parcel
    that is later still). Every other key is the same, so without the point x eligible-set
    key both sets get one averaged effect; with it, each its own."""
    ctx = Context.of("delay", "dhl:DE-NL", "skincare", None, 2, None)
    effects = {}
    for crosses in ((), (SegmentCross.POINT_ELIGIBLE_SET,)):
        learner = BanditLearner(prior_precision=1.25, full=True)
        alone, with_credit = ctx.keys((REASSURE,), crosses), ctx.keys((CREDIT, REASSURE), crosses)
        for i in range(1500):
            for keys, refunds_in_five in ((alone, 1), (with_credit, 2)):
                learner.update(NONE, keys, 0.0, int(i % 5 < 2))
                learner.update(REASSURE, keys, 0.0, int(i % 5 < refunds_in_five))
        post = learner.posterior()

        def effect(keys: tuple[str, ...], post: BanditPosterior = post) -> float:
            return post.moments(REASSURE, keys, 0.0)[0] - post.moments(NONE, keys, 0.0)[0]

        effects[crosses] = (effect(alone), effect(with_credit))
    averaged, apart = effects.values()
    assert averaged[0] == averaged[1]  # the same keys: one effect for both
    assert apart[0] < logit(0.2) - logit(0.4) + 0.2  # about -0.98 logits where it works
    assert abs(apart[1]) < 0.2  # about nothing where it does not


def test_the_engine_gives_the_policy_s_segment_crosses_to_the_choice_and_the_learner() -> None:
    doc = copy.deepcopy(DEFAULT_DOC)
    doc["holdout"]["share"] = 0.0
    doc.setdefault("learning", {})["segment_crosses"] = ["point_x_eligible_set"]
    crossed = RecoveryPolicy.from_text(yaml.safe_dump(doc), "crossed.yaml")
    for policy, cross in ((learning_policy(0.0), None), (crossed, "pe=delay/")):
        engine = DecisionEngine(
            policy, OnlineScorer(SnapshotBoard()), context=InMemoryContextStore()
        )
        window = CaseWindow("o-1", engine, WindowConfig())
        pending = []
        for record in (
            order_placed("o-1", 0, total=80.0, cost=30.0, lane="dhl:DE-NL"),
            body("delayed", "o-1", 130, estimated_delivery_at="2026-06-09T00:00:00Z"),
        ):
            emitted, _ = window.on_event(event(record))
            pending += [p for tag, p in emitted if tag == "pending" and p.keys]
            decided = [r for tag, r in emitted if tag == "decision"]
        assert pending and decided[-1]["eligible"]
        extra = pending[-1].keys[7:]
        if cross is None:
            assert extra == ()
        else:
            assert extra == (cross + "+".join(decided[-1]["eligible"]),)
