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


# --- per batch (live mode: FlowParts.decides_per_batch) ------------------------------------


class CountingMemo(InMemoryDecisionMemo):
    """Counts calls: a batch must cost one read and one write, not two calls per point."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get(self, p: str) -> MemoEntry | None:
        self.calls.append("get")
        return super().get(p)

    def remember(self, p: str, entry: MemoEntry) -> MemoEntry:
        self.calls.append("remember")
        return super().remember(p, entry)

    def get_many(self, points: Any) -> list[MemoEntry | None]:
        self.calls.append("get_many")
        return [super(CountingMemo, self).get(p) for p in points]

    def remember_many(self, entries: Any) -> list[MemoEntry]:
        self.calls.append("remember_many")
        return [super(CountingMemo, self).remember(p, e) for p, e in entries]


def _batched(memo: InMemoryDecisionMemo, scorer: StubScorer) -> RememberingDecider:
    policy = make_policy()
    engine = DecisionEngine(policy, scorer=scorer, context=InMemoryContextStore())
    return RememberingDecider(engine, memo, policy.version)


def _step(decider: RememberingDecider, window: CaseWindow, events: list[Any]) -> list[Any]:
    """One batch through prepare, the case step and settle, as the flow runs it."""
    decider.prepare(events)
    out = [(window.case.order_id, o) for e in events for o in window.on_event(e)[0]]
    return [o for _key, o in decider.settle(out)]


def test_per_batch_a_re_read_event_replays_the_first_decision_with_one_read_and_one_write() -> None:
    scorer = StubScorer(p_refund=0.9, recover={ACTION: 0.6})
    memo = CountingMemo()
    decider = _batched(memo, scorer)
    placed, delayed = late_parcel("o-1", 0, 300.0, "c-1")
    window = CaseWindow("o-1", decider, WindowConfig())
    _step(decider, window, [event(placed)])
    snapshot = pickle.dumps(window.case)
    memo.calls.clear()
    first = _step(decider, window, [event(delayed)])
    assert memo.calls == ["get_many", "remember_many"]
    # Nothing is recorded before settle: the write comes after the case step, in one go.
    assert [r["action"] for k, r in first if k == "decision"] == [ACTION]

    scorer.p_refund = 0.01  # the model moved on; the resumed case must not see it
    resumed = CaseWindow("o-1", decider, WindowConfig(), pickle.loads(snapshot))
    memo.calls.clear()
    again = _step(decider, resumed, [event(delayed)])
    assert memo.calls == ["get_many"]  # known from the batch read: no write, no single read
    assert _records(again) == _records(first)
    for name in ("actions", "arm", "first_propensity", "example_points"):
        assert getattr(resumed.case, name) == getattr(window.case, name), name


def test_per_batch_a_decision_is_not_recorded_until_settled() -> None:
    memo = InMemoryDecisionMemo()
    decider = _batched(memo, StubScorer(p_refund=0.9, recover={ACTION: 0.6}))
    placed, delayed = late_parcel("o-1", 0, 300.0, "c-1")
    window = CaseWindow("o-1", decider, WindowConfig())
    decider.prepare([event(placed), event(delayed)])
    outs = [o for e in (event(placed), event(delayed)) for o in window.on_event(e)[0]]
    assert len(memo) == 0
    decider.settle([("o-1", o) for o in outs])
    assert len(memo) == 2
    decider.settle([])  # nothing left to write
    assert len(memo) == 2


def test_per_batch_a_point_another_writer_recorded_first_is_replaced_by_the_standing_one() -> None:
    """Two incarnations at once: ours decided after the batch read, the other wrote first.
    The standing decision's records take the place of ours, and the case its marks."""
    standing = MemoEntry(1.0, "none", "treatment", 0.5, (("decision", {"action": "none"}),), None)
    placed, delayed = late_parcel("o-3", 0, 300.0, "c-3")
    point = decision_point("o-3", event(delayed).event_id, make_policy().version)

    class Racing(InMemoryDecisionMemo):
        def remember_many(self, entries: Any) -> list[MemoEntry]:
            return [standing if p == point else e for p, e in entries]

    decider = _batched(Racing(), StubScorer(p_refund=0.9, recover={ACTION: 0.6}))
    window = CaseWindow("o-3", decider, WindowConfig(), emit_views=True)
    _step(decider, window, [event(placed)])
    examples_before = window.case.example_points
    out = _step(decider, window, [event(delayed)])
    assert _records(out) == [("decision", {"action": "none"})]
    assert [k for k, _ in out] == ["decision", "case"]  # no pending example: the standing has none
    # Our action is undone; the standing decision made none and no learning example.
    assert window.case.actions == [] and window.case.example_points == examples_before
    assert decider.overruled == 1


def test_per_batch_only_events_that_can_be_decision_points_are_read() -> None:
    """The batch read asks for the points of decision-type events only (a shipment scan
    can never be one); a point reached anyway would be read on its own, and none is."""
    from tests.helpers import body

    asked: list[str] = []

    class Asked(CountingMemo):
        def get_many(self, points: Any) -> list[MemoEntry | None]:
            asked.extend(points)
            return super().get_many(points)

    memo = Asked()
    decider = _batched(memo, StubScorer(p_refund=0.9, recover={ACTION: 0.6}))
    placed, delayed = late_parcel("o-4", 0, 300.0, "c-4")
    scans = [event(body(t, "o-4", h)) for t, h in (("shipped", 20.0), ("in_transit", 30.0))]
    batch = [event(placed), *scans, event(delayed)]
    version = make_policy().version
    out = _step(decider, CaseWindow("o-4", decider, WindowConfig()), batch)
    assert asked == [decision_point("o-4", e.event_id, version) for e in (batch[0], batch[-1])]
    assert "get" not in memo.calls
    assert [r["action"] for k, r in out if k == "decision"][-1] == ACTION
