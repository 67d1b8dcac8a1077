"""OrderCase: folding events in, stages, derived signals and the outcome record."""

from __future__ import annotations

import pickle

import pytest

from operators.case import (
    DECISION_TYPES,
    STAGE_AT_RISK,
    STAGE_OPEN,
    STAGE_RESOLVED,
    TIMELINE_LIMIT,
    OrderCase,
)
from operators.contract import format_ts
from operators.records import OutcomeRecord
from tests.helpers import DAY, body, epoch, event, order_placed, support


def outcome_record(case: OrderCase, closed_at: float, *, censored: bool = False) -> dict:
    return OutcomeRecord.of_case(case, closed_at, censored=censored).to_record()


WINDOW_AFTER_DELIVERY = 30 * DAY
WINDOW_AFTER_PLACED = 45 * DAY


def placed_case(order_id: str = "o-1", **kwargs) -> OrderCase:
    case = OrderCase(order_id)
    assert case.apply(event(order_placed(order_id, 0.0, **kwargs))) is True
    return case


# --- stages -------------------------------------------------------------------------------


def test_stage_goes_open_then_at_risk_then_resolved() -> None:
    case = placed_case()
    assert case.stage == STAGE_OPEN
    case.apply(event(body("shipped", "o-1", 5)))
    assert case.stage == STAGE_OPEN and not case.closed
    case.apply(event(body("delayed", "o-1", 40, estimated_delivery_at="2026-06-05T00:00:00Z")))
    assert case.stage == STAGE_AT_RISK and not case.closed
    case.apply(event(body("refund_issued", "o-1", 100, amount=80.0)))
    assert case.stage == STAGE_RESOLVED and case.closed
    assert (case.outcome, case.resolved_at) == ("refunded", epoch(100))


@pytest.mark.parametrize(
    "signal",
    [
        body("exception", "o-1", 10, exception_code="address"),
        body("failed_attempt", "o-1", 10),
        body("lost", "o-1", 10),
        body("returned_to_sender", "o-1", 10),
        body("return_requested", "o-1", 10, reason="changed_mind"),
        body("refund_requested", "o-1", 10),
        body("exchange_requested", "o-1", 10),
        support("ticket_opened", "o-1", 10, sentiment=-0.3),
    ],
    ids=lambda b: b["type"],
)
def test_each_refund_path_signal_puts_the_case_at_risk(signal: dict) -> None:
    case = placed_case()
    case.apply(event(signal))
    assert case.stage == STAGE_AT_RISK


def test_mild_contact_and_routine_tracking_keep_the_case_open() -> None:
    case = placed_case()
    for record in (
        body("shipped", "o-1", 2),
        body("in_transit", "o-1", 10),
        body("out_for_delivery", "o-1", 20),
        support("ticket_opened", "o-1", 21, intent="product_question", sentiment=-0.29),
        body("delivered", "o-1", 22),
    ):
        case.apply(event(record))
    assert case.stage == STAGE_OPEN


def test_at_risk_does_not_fall_back_to_open_when_the_request_is_withdrawn() -> None:
    case = placed_case()
    case.apply(event(body("refund_requested", "o-1", 30)))
    case.apply(event(body("request_withdrawn", "o-1", 31)))
    assert not case.has_open_request()
    assert case.stage == STAGE_AT_RISK


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        (body("refund_issued", "o-1", 50, amount=20.0), "refunded"),
        (body("exchange_completed", "o-1", 50), "exchanged"),
        (body("order_cancelled", "o-1", 50), "cancelled"),
        (body("chargeback_opened", "o-1", 50), "chargeback"),
    ],
    ids=lambda x: x if isinstance(x, str) else x["type"],
)
def test_resolving_events_close_with_their_outcome(record: dict, outcome: str) -> None:
    case = placed_case()
    assert case.apply(event(record)) is False  # no decision on a resolving event
    assert case.closed and case.outcome == outcome


def test_first_resolution_wins() -> None:
    case = placed_case()
    case.apply(event(body("exchange_completed", "o-1", 50)))
    case.apply(event(body("refund_issued", "o-1", 60, amount=80.0)))
    assert (case.outcome, case.resolved_at, case.refund_value) == ("exchanged", epoch(50), 0.0)


# --- which events ask for a decision ------------------------------------------------------


def test_only_decision_types_ask_for_a_decision() -> None:
    case = placed_case()
    asked = {}
    for i, type_ in enumerate(
        ["shipped", "in_transit", "out_for_delivery", "delivered", "delayed", "exception",
         "failed_attempt", "lost", "returned_to_sender", "return_requested",
         "refund_requested", "exchange_requested", "return_received", "request_withdrawn"]
    ):  # fmt: skip
        asked[type_] = case.apply(event(body(type_, "o-1", 10 + i)))
    for type_ in ("ticket_opened", "customer_message", "ticket_resolved"):
        asked[type_] = case.apply(event(support(type_, "o-1", 40)))
    assert {t for t, a in asked.items() if a} == DECISION_TYPES - {"order_placed"}


def test_duplicate_detection_by_event_id() -> None:
    case = placed_case()
    ev = event(body("delayed", "o-1", 10))
    assert not case.is_duplicate(ev)
    case.apply(ev)
    assert case.is_duplicate(ev)
    assert not case.is_duplicate(event(body("delayed", "o-1", 10, event_id="other")))


# --- slip against the promise -------------------------------------------------------------


def test_slip_before_delivery_counts_from_the_promise_to_now() -> None:
    case = placed_case(promised_in_hours=48)
    assert case.slip_hours(epoch(47)) == 0.0  # not late yet
    assert case.slip_hours(epoch(48)) == 0.0
    assert case.slip_hours(epoch(78)) == pytest.approx(30.0)


def test_slip_after_delivery_is_fixed_at_the_delivery_time() -> None:
    late = placed_case(promised_in_hours=48)
    late.apply(event(body("delivered", "o-1", 60)))
    assert late.slip_hours(epoch(60)) == pytest.approx(12.0)
    assert late.slip_hours(epoch(500)) == pytest.approx(12.0)
    early = placed_case(promised_in_hours=48)
    early.apply(event(body("delivered", "o-1", 30)))
    assert early.slip_hours(epoch(500)) == 0.0


def test_slip_with_a_revised_estimate_uses_the_later_of_estimate_and_now() -> None:
    case = placed_case(promised_in_hours=48)
    case.apply(event(body("delayed", "o-1", 40, estimated_delivery_at="2026-06-05T00:00:00Z")))
    # Promise 2026-06-03T00:00, revised to 06-05T00:00: already 48 h late as far as we know.
    assert case.slip_hours(epoch(40)) == pytest.approx(48.0)
    assert case.slip_hours(epoch(100)) == pytest.approx(52.0)  # the estimate passed, too
    case.apply(event(body("delivered", "o-1", 110)))
    assert case.slip_hours(epoch(200)) == pytest.approx(62.0)  # delivered: the estimate is moot


def test_a_later_estimate_replaces_an_earlier_one() -> None:
    case = placed_case(promised_in_hours=48)
    case.apply(event(body("delayed", "o-1", 40, estimated_delivery_at="2026-06-06T00:00:00Z")))
    case.apply(event(body("in_transit", "o-1", 45, estimated_delivery_at="2026-06-04T00:00:00Z")))
    assert case.slip_hours(epoch(45)) == pytest.approx(24.0)


def test_no_promise_means_no_slip() -> None:
    case = placed_case(promised_in_hours=None)
    case.apply(event(body("delayed", "o-1", 40, estimated_delivery_at="2026-06-09T00:00:00Z")))
    assert case.slip_hours(epoch(300)) == 0.0


# --- signals before order_placed ----------------------------------------------------------


def test_signals_before_order_placed_make_a_pending_case_without_decisions() -> None:
    case = OrderCase("o-1")
    assert (
        case.apply(event(support("ticket_opened", "o-1", 5, intent="where_is_my_order"))) is False
    )
    assert case.apply(event(body("refund_requested", "o-1", 6))) is False
    assert not case.placed and case.stage == STAGE_AT_RISK
    assert case.deadline(WINDOW_AFTER_DELIVERY, WINDOW_AFTER_PLACED) == epoch(5) + 45 * DAY
    # An even earlier signal, arriving late, moves the anchor back.
    case.apply(event(body("shipped", "o-1", 3)))
    assert case.deadline(WINDOW_AFTER_DELIVERY, WINDOW_AFTER_PLACED) == epoch(3) + 45 * DAY
    # The order arrives: decisions start, and the window counts from the order.
    assert case.apply(event(order_placed("o-1", 1.0))) is True
    assert case.placed and case.customer_id == "c-1" and case.order_value == 80.0
    assert case.deadline(WINDOW_AFTER_DELIVERY, WINDOW_AFTER_PLACED) == epoch(1) + 45 * DAY
    # Signals folded in while pending are kept.
    assert case.last_intent == "where_is_my_order" and case.has_open_request()
    # And the next signal asks for a decision.
    assert case.apply(event(body("delayed", "o-1", 8))) is True


def test_deadline_is_30_days_after_delivery_once_delivered() -> None:
    case = placed_case()
    case.apply(event(body("delivered", "o-1", 50)))
    assert case.deadline(WINDOW_AFTER_DELIVERY, WINDOW_AFTER_PLACED) == epoch(50) + 30 * DAY


def test_pending_case_keeps_delivery_lane_until_the_order_says_otherwise() -> None:
    case = OrderCase("o-1")
    case.apply(event(body("shipped", "o-1", 3, courier="ups", lane="FR-ES")))
    assert (case.courier, case.lane) == ("ups", "FR-ES")
    case.apply(event(order_placed("o-1", 1.0, courier="dhl", lane="DE-NL")))
    assert (case.courier, case.lane) == ("dhl", "DE-NL")


# --- exchange preference ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "preferred"),
    [
        (support("ticket_opened", "o-1", 30, intent="size_fit"), True),
        (body("exchange_requested", "o-1", 30), True),
        (body("return_requested", "o-1", 30, reason="size_fit"), True),
        (body("refund_requested", "o-1", 30, reason="size_fit"), True),
        (body("return_requested", "o-1", 30, reason="damaged"), False),
        (support("ticket_opened", "o-1", 30, intent="where_is_my_order"), False),
        (body("refund_requested", "o-1", 30), False),
    ],
    ids=lambda x: x if isinstance(x, bool) else f"{x['type']}-{x.get('reason', x.get('intent'))}",
)
def test_exchange_preference(record: dict, preferred: bool) -> None:
    case = placed_case(sku_family="loungewear")
    case.apply(event(record))
    assert case.exchange_preferred is preferred


# --- derived order fields -----------------------------------------------------------------


def test_main_sku_family_is_the_one_with_most_value_ties_by_name() -> None:
    rec = order_placed("o-1", 0.0)
    rec["items"] = [
        {"sku": "a", "sku_family": "makeup", "quantity": 2, "unit_price": 10.0},
        {"sku": "b", "sku_family": "tools", "quantity": 1, "unit_price": 25.0},
        {"sku": "c", "sku_family": "makeup", "quantity": 1, "unit_price": 6.0},
    ]
    case = OrderCase("o-1")
    case.apply(event(rec))
    assert case.sku_family == "makeup"  # 26 > 25
    rec["items"] = [
        {"sku": "b", "sku_family": "tools", "quantity": 1, "unit_price": 10.0},
        {"sku": "a", "sku_family": "haircare", "quantity": 1, "unit_price": 10.0},
    ]
    tie = OrderCase("o-2")
    tie.apply(event({**rec, "order_id": "o-2"}))
    assert tie.sku_family == "haircare"


def test_margin_uses_costs_when_every_item_has_one() -> None:
    assert placed_case(total=100.0, cost=35.0).margin == pytest.approx(65.0)
    assert placed_case(total=100.0, cost=None).margin == pytest.approx(50.0)


def test_timeline_is_sorted_by_event_time_and_bounded() -> None:
    case = placed_case()
    for h in (10, 5, 7, 12, 6):
        case.apply(event(body("in_transit", "o-1", h)))
    times = [t for t, _ in case.timeline]
    assert times == sorted(times) and len(times) == 6
    for h in range(100):
        case.apply(event(body("in_transit", "o-1", 20 + h)))
    assert len(case.timeline) == TIMELINE_LIMIT
    assert case.last_event_at == epoch(119) and case.first_event_at == epoch(0)


def test_case_is_picklable_for_snapshots() -> None:
    case = placed_case()
    case.apply(event(body("delayed", "o-1", 40)))
    copy = pickle.loads(pickle.dumps(case))
    assert copy == case and copy.seen == case.seen


# --- outcome record -----------------------------------------------------------------------

OUTCOME_FIELDS = {
    # contract v1
    "order_id", "outcome", "resolved_at", "refund_value", "retained_value", "currency", "arm",
    "actions", "predicted_return_propensity", "sku_family", "courier_lane", "campaign",
    "support_reason",
    # additional
    "customer_id", "order_value", "at_risk",
}  # fmt: skip


def _case_for_outcome() -> OrderCase:
    case = placed_case(total=120.0, lane="DE-NL", campaign="launch-email", sku_family="makeup")
    case.apply(event(support("ticket_opened", "o-1", 30, intent="not_as_described")))
    case.arm = "treatment"
    case.first_propensity = 0.42
    case.record_action(epoch(30), "product_guidance")
    return case


def test_outcome_record_of_a_refund() -> None:
    case = _case_for_outcome()
    case.apply(event(body("refund_requested", "o-1", 40, reason="damaged")))
    case.apply(event(body("refund_issued", "o-1", 50, amount=45.5)))
    rec = outcome_record(case, epoch(50))
    assert set(rec) == OUTCOME_FIELDS
    assert rec == {
        "order_id": "o-1",
        "customer_id": "c-1",
        "outcome": "refunded",
        "resolved_at": "2026-06-03T02:00:00Z",
        "refund_value": 45.5,
        "retained_value": 74.5,  # partial refund: the rest was kept
        "order_value": 120.0,
        "currency": "EUR",
        "arm": "treatment",
        "actions": ["product_guidance"],
        "predicted_return_propensity": 0.42,
        "sku_family": "makeup",
        "courier_lane": "DE-NL",
        "campaign": "launch-email",
        "support_reason": "not_as_described",  # the intent wins over the refund reason
        "at_risk": True,
    }


def test_outcome_record_when_kept_exchanged_cancelled_chargeback_or_censored() -> None:
    kept = _case_for_outcome()
    rec = outcome_record(kept, epoch(0) + 45 * DAY)
    assert (rec["outcome"], rec["resolved_at"]) == ("kept", "2026-07-16T00:00:00Z")
    assert (rec["refund_value"], rec["retained_value"]) == (0.0, 120.0)

    exchanged = _case_for_outcome()
    exchanged.apply(event(body("exchange_completed", "o-1", 90)))
    rec = outcome_record(exchanged, epoch(90))
    assert (rec["outcome"], rec["refund_value"], rec["retained_value"]) == ("exchanged", 0, 120)

    cancelled = _case_for_outcome()
    cancelled.apply(event(body("order_cancelled", "o-1", 2)))
    rec = outcome_record(cancelled, epoch(2))
    assert (rec["outcome"], rec["refund_value"], rec["retained_value"]) == ("cancelled", 0, 0)

    chargeback = _case_for_outcome()
    chargeback.apply(event(body("chargeback_opened", "o-1", 300)))
    rec = outcome_record(chargeback, epoch(300))
    assert (rec["outcome"], rec["refund_value"], rec["retained_value"]) == ("chargeback", 120, 0)

    # Still unresolved when the input ends: censored at the end of input, no refund (the
    # order's value counts as retained as of then), never "open".
    still_open = _case_for_outcome()
    rec = outcome_record(still_open, epoch(400), censored=True)
    assert (rec["outcome"], rec["resolved_at"], rec["refund_value"], rec["retained_value"]) == (
        "censored", format_ts(epoch(400)), 0.0, 120.0,
    )  # fmt: skip


def test_outcome_of_a_case_whose_order_never_arrived() -> None:
    case = OrderCase("o-1")
    case.apply(event(body("refund_requested", "o-1", 6, reason="late_delivery")))
    rec = outcome_record(case, epoch(6) + 45 * DAY)
    assert rec["outcome"] == "kept" and rec["currency"] is None and rec["arm"] is None
    assert rec["support_reason"] == "late_delivery"
    assert rec["predicted_return_propensity"] is None and rec["actions"] == []


def test_refund_value_is_rounded_to_cents() -> None:
    case = placed_case(total=10.0)
    case.apply(event(body("refund_issued", "o-1", 5, amount=3.3333333)))
    rec = outcome_record(case, epoch(5))
    assert rec["refund_value"] == 3.33 and rec["retained_value"] == 6.67
