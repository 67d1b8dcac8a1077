"""Features: what a decision at time t may know is the case's events up to t and the
outcomes of other cases closed before t; learning examples carry those same features."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.case import HOUR, OrderCase
from operators.contract import Event, parse_ts
from operators.decision import Scores
from operators.engine import DecisionEngine
from operators.features import FEATURE_NAMES, build_features, from_vector, to_vector
from operators.learner import Learner
from operators.models import Example
from operators.policy import RecoveryPolicy
from operators.scoring import HeuristicScorer
from operators.window import run_in_memory
from state.context import InMemoryContextStore
from tests.helpers import body, epoch, event, order_placed, support

POLICY = RecoveryPolicy.default()


class RecordingLearner(Learner):
    """A learner that keeps every example it learns, in order."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.learned: list[Example] = []

    def learn(self, ex: Example) -> None:
        self.learned.append(ex)
        super().learn(ex)


def learn_all(outputs: list[tuple[str, Any]], horizon: float, margin: float = 0.0) -> list[Example]:
    """Feed a run's pending examples and resolutions to a learner, in output order, then
    end the input; returns what it learned."""
    learner = RecordingLearner(horizon=horizon, margin=margin)
    for tag, item in outputs:
        if tag in ("pending", "resolution"):
            learner.feed(item)
    learner.finish()
    return learner.learned


class RecordingScorer(HeuristicScorer):
    """The heuristic scorer, remembering the features of every call (order, time, features)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def score(self, features: dict[str, float]) -> tuple[Scores, dict[str, float]]:
        self.seen.append(dict(features))
        return super().score(features)


def case_of(events: list[Event]) -> OrderCase:
    case = OrderCase(events[0].order_id)
    for ev in events:
        case.apply(ev)
    return case


def history(order_id: str = "o-1") -> tuple[list[Event], list[Event]]:
    """A late parcel and a where-is-my-order ticket up to t = 60 h, then what came later:
    more delays, an angry message, a refund request, delivery and a refund."""
    before = [
        order_placed(order_id, 0, total=120.0, cost=40.0, lane="dhl:DE-NL"),
        body("shipped", order_id, 10),
        body("delayed", order_id, 40, estimated_delivery_at="2026-06-05T00:00:00Z"),
        support("ticket_opened", order_id, 60, intent="where_is_my_order", sentiment=-0.2),
    ]
    after = [
        body("delayed", order_id, 70, estimated_delivery_at="2026-06-08T00:00:00Z"),
        body("exception", order_id, 75),
        support("customer_message", order_id, 80, intent="refund_request", sentiment=-0.9),
        body("refund_requested", order_id, 85, reason="late_delivery"),
        body("delivered", order_id, 90),
        body("refund_issued", order_id, 95, amount=120.0),
    ]
    return [event(r) for r in before], [event(r) for r in after]


# --- the feature vector ---------------------------------------------------------------------


def test_feature_names_are_the_keys_of_every_feature_dict_in_order() -> None:
    before, _ = history()
    case = case_of(before)
    with_context = build_features(case, InMemoryContextStore(), epoch(60))
    without = build_features(case, None, epoch(60))
    assert tuple(with_context) == tuple(without) == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert all(isinstance(v, float) and math.isfinite(v) for v in with_context.values())
    assert from_vector(to_vector(with_context)) == with_context


def test_features_read_the_case_as_of_now() -> None:
    before, _ = history()
    f = build_features(case_of(before), None, epoch(60))
    # Promised at 48 h, re-estimated for 96 h: 48 h late; a where-is-my-order contact.
    assert f["slip_hours"] == 48.0 and f["slip_over_48h"] == 0.0
    assert (f["delays"], f["contacts"], f["intent_where_is_my_order"]) == (1.0, 1.0, 1.0)
    assert (f["delivered"], f["has_request"], f["lost"]) == (0.0, 0.0, 0.0)
    assert f["log_order_value"] == round(math.log1p(120.0), 4)
    assert f["margin_share"] == round(80.0 / 120.0, 4)
    # Time passing is itself news: at 120 h, with no new event, the parcel is 72 h late.
    later = build_features(case_of(before), None, epoch(120))
    assert (later["slip_hours"], later["slip_over_48h"]) == (72.0, 1.0)


# --- no feature sees the future --------------------------------------------------------------


def test_features_at_t_do_not_depend_on_events_after_t() -> None:
    before, after = history()
    t = epoch(60)
    at_t = case_of(before)
    features_at_t = build_features(at_t, None, t)

    later = copy.deepcopy(at_t)
    for ev in after:
        later.apply(ev)
    # The later events do change what is known about the case...
    assert build_features(later, None, t) != features_at_t
    assert later.outcome == "refunded"
    # ...but the state as of t, and its features at t, are what they were.
    assert build_features(at_t, None, t) == features_at_t
    assert at_t.outcome is None and at_t.refund_value == 0.0
    # No feature is the outcome, the refund or anything named after them.
    assert not any("outcome" in name or name == "refund_value" for name in FEATURE_NAMES)


def test_decisions_and_learning_examples_use_the_features_known_at_decision_time() -> None:
    before, after = history()
    scorer = RecordingScorer()
    engine = DecisionEngine(RecoveryPolicy.default(), scorer, context=InMemoryContextStore())
    # Another order moves event time on to 200 h, so horizons end inside the input.
    late = [event(order_placed("o-later", 200))]
    outputs, _, _ = run_in_memory([*before, *after, *late], engine)
    horizon = 48 * HOUR
    examples = learn_all(outputs, horizon)

    decided = [r for tag, r in outputs if tag == "decision" and r["order_id"] == "o-1"]
    assert len(decided) == len(scorer.seen) - 1 >= 4
    # Every decision saw exactly the features of the case built from the events up to then.
    for i, features in enumerate(scorer.seen[: len(decided)]):
        t = features_time(decided[i])
        known = [ev for ev in [*before, *after] if ev.occurred_at <= t]
        assert features == build_features(case_of(known), InMemoryContextStore(), t)
    # Labels are released exactly at the horizon after each decision, never at the refund
    # (95 h): label 1 iff the refund came within the horizon.
    mine = [ex for ex in examples if ex.decided_at < epoch(200)]
    assert mine and all(ex.labelled_at == ex.decided_at + horizon for ex in mine)
    assert all(ex.label == int(epoch(95) <= ex.decided_at + horizon) for ex in mine)
    # The treatment arm acted: the no-action points whose horizon ended before the first
    # action teach the no-action model; the action's point teaches its action; later
    # points teach nothing (the truth is keyed on the first action).
    acted = next(d for d in decided if d["action"] != "none")
    t_act = features_time(acted)
    expected = [
        (features_time(d), None) for d in decided if features_time(d) + horizon <= t_act
    ] + [(t_act, acted["action"])]
    assert [(ex.decided_at, ex.action) for ex in mine] == expected
    by_time = {features_time(d): f for d, f in zip(decided, scorer.seen, strict=False)}
    decided_p = {features_time(d): d["scores"]["return_propensity"] for d in decided}
    closed = case_of([*before, *after])
    for ex in mine:
        assert ex.features == by_time[ex.decided_at]
        assert ex.features != build_features(closed, InMemoryContextStore(), ex.labelled_at)
        assert ex.predicted == pytest.approx(decided_p[ex.decided_at], abs=5e-5)  # 4 places
        assert ex.point == acted["point"] if ex.action else ex.point in ("order", "delay")


def features_time(decision: dict[str, Any]) -> float:
    return parse_ts(decision["decided_at"])


_TIMELINE_EVENTS = st.lists(
    st.sampled_from(
        [
            ("delayed", {"estimated_delivery_at": "2026-06-06T00:00:00Z"}),
            ("exception", {}),
            ("failed_attempt", {}),
            ("delivered", {}),
            ("ticket_opened", {"intent": "where_is_my_order", "sentiment": -0.5}),
            ("customer_message", {"intent": "size_fit", "sentiment": 0.2}),
            ("customer_message", {"intent": "product_question"}),
            ("return_requested", {"reason": "size_fit"}),
            ("refund_requested", {"reason": "damaged"}),
            ("request_withdrawn", {}),
        ]
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    steps=_TIMELINE_EVENTS,
    gaps=st.lists(st.integers(1, 30), min_size=12, max_size=12),
    horizon_hours=st.integers(1, 60),
    shuffle_seed=st.integers(0, 2**16),
)
def test_stored_features_equal_features_of_the_prefix_for_any_timeline(
    steps: list[tuple[str, dict[str, Any]]], gaps: list[int], horizon_hours: int,
    shuffle_seed: int,
) -> None:  # fmt: skip
    records = [order_placed("o-h", 0, total=70.0, cost=20.0)]
    hours = 0
    for i, (type_, fields) in enumerate(steps):
        hours += gaps[i]
        maker = support if type_ in ("ticket_opened", "customer_message") else body
        records.append(maker(type_, "o-h", hours, event_id=f"e{i}", **fields))
    refund_at = hours + 1
    records.append(body("refund_issued", "o-h", refund_at, amount=70.0))
    records.append(order_placed("o-end", refund_at + 40))  # the end of input
    events = [event(r) for r in records]
    # Out of order within the allowed lateness (6 h): events arrive shuffled in blocks.
    rnd = random.Random(shuffle_seed)
    arrival = sorted(events, key=lambda e: e.occurred_at + rnd.uniform(0, 5.9) * HOUR)
    # A policy that never acts keeps every decision point for learning.
    never = RecoveryPolicy.from_text(
        'version: "never"\nranking: {min_return_propensity: 1.0}\n'
        "actions: {human_review: {cost: 1}}\n"
    )
    scorer = RecordingScorer()
    outputs, _, _ = run_in_memory(
        arrival, DecisionEngine(never, scorer, context=InMemoryContextStore())
    )
    horizon = horizon_hours * HOUR
    end = epoch(refund_at + 40)
    examples = [ex for ex in learn_all(outputs, horizon) if ex.decided_at < end]
    decided = [r for tag, r in outputs if tag == "decision"]
    seen = dict(zip((r["trigger_event_id"] for r in decided), scorer.seen, strict=True))
    # No decision sees an event after its decision time, whatever order events came in:
    # its features are those of the events that had arrived, all at or before it.
    position = {ev.event_id: i for i, ev in enumerate(arrival)}
    at: dict[float, list[dict[str, float]]] = {}
    for r in decided:
        if r["order_id"] != "o-h":
            continue  # o-end comes after o-h closed: its context knows o-h's refund
        t = features_time(r)
        arrived = [
            ev for ev in arrival[: position[r["trigger_event_id"]] + 1]
            if ev.order_id == r["order_id"]
        ]  # fmt: skip
        assert max(ev.occurred_at for ev in arrived) <= t
        expected = build_features(case_of(arrived), InMemoryContextStore(), t)
        assert seen[r["trigger_event_id"]] == expected
        at.setdefault(t, []).append(expected)
    # Nothing was done, so every decision point whose horizon ended within the input is an
    # example, released at its horizon, labelled by whether the refund came within it.
    assert sorted(ex.decided_at for ex in examples) == sorted(
        t for t, fs in at.items() for _ in fs if t + horizon <= end
    )
    for ex in examples:
        assert ex.action is None and ex.labelled_at == ex.decided_at + horizon
        assert ex.label == int(epoch(refund_at) <= ex.decided_at + horizon)
        assert ex.features in at[ex.decided_at]


# --- context aggregates include closed cases only --------------------------------------------


def two_orders(a_closes_at: float | None) -> list[Event]:
    """Orders A and B of one customer, same family and lane. A asks for a refund at 5 h and,
    if ``a_closes_at``, is refunded then; B is decided at 1 (its order), 10, 30 and 60 h."""
    records = [
        order_placed("A", 0, customer_id="c-1", lane="dhl:DE-NL"),
        order_placed("B", 1, customer_id="c-1", lane="dhl:DE-NL"),
        body("refund_requested", "A", 5, reason="damaged"),
        support("ticket_opened", "B", 10, intent="product_question"),
        support("customer_message", "B", 30, intent="product_question"),
        support("customer_message", "B", 60, intent="product_question"),
    ]
    if a_closes_at is not None:
        records.append(body("refund_issued", "A", a_closes_at, amount=80.0))
    return sorted((event(r) for r in records), key=lambda e: e.occurred_at)


def test_an_open_case_does_not_change_other_decisions_until_it_closes() -> None:
    alone = _b_points([e for e in two_orders(None) if e.order_id == "B"])
    open_a = _b_points(two_orders(None))
    closes = _b_points(two_orders(a_closes_at=40))
    assert [t for t, _ in alone] == [epoch(1), epoch(10), epoch(30), epoch(60)]
    # While A is open (its refund request known to the flow), B is decided as if A did not
    # exist; once A is refunded at 40 h, B's customer, family and lane history show it.
    assert open_a == alone
    assert closes[:3] == alone[:3]
    t, after = closes[3]
    before = alone[3][1]
    assert t == epoch(60)
    assert after["seen_refund_rate"] > before["seen_refund_rate"]
    assert after["family_refund_rate"] > before["family_refund_rate"]
    assert after["lane_refund_rate"] > before["lane_refund_rate"]
    changed = {k for k in FEATURE_NAMES if after[k] != before[k]}
    assert changed <= {"seen_refund_rate", "seen_chargebacks", "family_refund_rate",
                       "lane_refund_rate", "lane_delay_rate"}  # fmt: skip


def _b_points(events: list[Event]) -> list[tuple[float, dict[str, float]]]:
    """(decision time, features) of every decision on order B."""
    points: list[tuple[float, dict[str, float]]] = []

    class Spy(DecisionEngine):
        def decide(self, case: OrderCase, trigger: Event) -> list[tuple[str, dict[str, Any]]]:
            if case.order_id == "B":
                now = trigger.occurred_at
                points.append((now, build_features(case, self.context, now)))
            return super().decide(case, trigger)

    run_in_memory(events, Spy(RecoveryPolicy.default(), context=InMemoryContextStore()))
    return points


def test_context_counts_a_closed_case_once_at_its_close_time() -> None:
    store = InMemoryContextStore()
    engine = DecisionEngine(POLICY, context=store)
    events = two_orders(a_closes_at=40)
    run_in_memory(events, engine)
    stats = store.customer("c-1")
    assert stats is not None
    # A refunded at 40 h; B closes open at the end of input and is not folded in.
    assert (stats.orders, stats.refunds, stats.refund_value) == (1, 1, 80.0)
    assert store.families["skincare"].at == epoch(40)
