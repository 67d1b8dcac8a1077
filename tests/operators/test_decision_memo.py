"""The decision memo (``operators.memo``): a decision point reached again after a resume
gets the decision it got the first time, whatever the state outside the snapshot did since.

The scenario of issue #11: the case state rolls back with the Bytewax snapshot, the model
(here a scorer whose probabilities change, as a published model does in Redis) does not.
Without the memo the re-read event is decided differently; with it, the records re-emitted
are identical and the case's contact history is that of the first run.
"""

from __future__ import annotations

import pickle
from typing import Any

from operators.engine import DecisionEngine
from operators.memo import MemoEntry, RememberingDecider, decision_point
from operators.window import CaseWindow, WindowConfig
from state.context import InMemoryContextStore
from state.memo import InMemoryDecisionMemo
from tests.helpers import event
from tests.operators.test_engine import StubScorer, late_parcel, make_policy

ACTION = "delayed_shipment_intervention"


def _run(decider: Any, scorer: StubScorer) -> tuple[list[Any], list[Any], CaseWindow, CaseWindow]:
    """Decide an order's events, then 'crash' back to the snapshot taken after its first
    event, let the model move on, and re-read the rest. Returns both runs' outputs and
    windows."""
    placed, delayed = late_parcel("o-1", 0, 300.0, "c-1")
    window = CaseWindow("o-1", decider, WindowConfig())
    window.on_event(event(placed))
    snapshot = pickle.dumps(window.case)
    first, _ = window.on_event(event(delayed))

    scorer.p_refund = 0.01  # the model published meanwhile: this order now looks safe
    resumed = CaseWindow("o-1", decider, WindowConfig(), pickle.loads(snapshot))
    again, _ = resumed.on_event(event(delayed))
    return first, again, window, resumed


def _records(out: list[Any]) -> list[Any]:
    return [(kind, record) for kind, record in out if kind in ("decision", "intervention")]


def test_without_the_memo_a_re_read_event_is_decided_differently() -> None:
    """The failure the memo exists for (kept as a check that the scenario reproduces it)."""
    scorer = StubScorer(p_refund=0.9, recover={ACTION: 0.6})
    engine = DecisionEngine(make_policy(), scorer=scorer, context=InMemoryContextStore())
    first, again, _, _ = _run(engine, scorer)
    assert [r["action"] for k, r in first if k == "decision"] == [ACTION]
    assert [r["action"] for k, r in again if k == "decision"] == ["none"]


def test_a_re_read_event_replays_the_first_decision_byte_for_byte() -> None:
    scorer = StubScorer(p_refund=0.9, recover={ACTION: 0.6})
    policy = make_policy()
    memo = InMemoryDecisionMemo()
    decider = RememberingDecider(
        DecisionEngine(policy, scorer=scorer, context=InMemoryContextStore()), memo, policy.version
    )
    first, again, window, resumed = _run(decider, scorer)

    assert [r["action"] for k, r in first if k == "decision"] == [ACTION]
    assert _records(again) == _records(first)  # same intervention id, offer, message, scores
    assert decider.replayed == 1
    # The case continues as it did the first time: same action history (contact limit,
    # cooldowns), same arm, first propensity and learning-example count.
    for name in ("actions", "arm", "first_propensity", "example_points"):
        assert getattr(resumed.case, name) == getattr(window.case, name), name
    pending = [p for k, p in again if k == "pending"]
    assert len(pending) == 1 and pending[0].action == ACTION
    assert len(memo) == 2  # order placed, parcel delayed: one entry per decision point


def test_a_new_decision_point_is_decided_afresh() -> None:
    scorer = StubScorer(p_refund=0.9, recover={ACTION: 0.6})
    policy = make_policy()
    decider = RememberingDecider(
        DecisionEngine(policy, scorer=scorer, context=InMemoryContextStore()),
        InMemoryDecisionMemo(),
        policy.version,
    )
    _run(decider, scorer)
    placed, delayed = late_parcel("o-2", 0, 300.0, "c-2")
    window = CaseWindow("o-2", decider, WindowConfig())
    window.on_event(event(placed))
    out, _ = window.on_event(event(delayed))
    assert [r["action"] for k, r in out if k == "decision"] == ["none"]  # the new model


def test_a_second_writer_gets_the_standing_decision_and_its_case_marks() -> None:
    """If the point was recorded between the read and the write (an earlier incarnation of
    the worker), that decision stands and the case carries its marks, not ours."""
    scorer = StubScorer(p_refund=0.9, recover={ACTION: 0.6})
    policy = make_policy()
    placed, delayed = late_parcel("o-3", 0, 300.0, "c-3")
    standing = MemoEntry(1.0, "none", "treatment", 0.5, (("decision", {"action": "none"}),), None)

    class Racing(InMemoryDecisionMemo):
        def get(self, p: str) -> MemoEntry | None:
            return None  # the read missed it ...

        def remember(self, p: str, entry: MemoEntry) -> MemoEntry:
            return standing  # ... the write found it

    decider = RememberingDecider(
        DecisionEngine(policy, scorer=scorer, context=InMemoryContextStore()),
        Racing(),
        policy.version,
    )
    window = CaseWindow("o-3", decider, WindowConfig())
    window.on_event(event(placed))
    out, _ = window.on_event(event(delayed))
    assert _records(out) == [("decision", {"action": "none"})]
    assert window.case.actions == [] and window.case.first_propensity == 0.5


def test_decision_points_differ_by_order_trigger_and_policy_version() -> None:
    points = {
        decision_point(o, e, v) for o in ("o-1", "o-2") for e in ("e-1", "e-2") for v in ("1", "2")
    }
    assert len(points) == 8
