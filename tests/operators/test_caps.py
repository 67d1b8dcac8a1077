"""check_caps: every cap of the policy, alone, at its boundary, and over a grid of cases
against the cap definitions; and the dispatcher's guard built on it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from operators.caps import CapCheck, DispatchCaps, check_caps, offered_credit
from operators.contract import parse_ts
from operators.credit import InMemoryCreditLedger
from operators.policy import RecoveryPolicy
from state.contacts import InMemoryContactBook

POLICY = RecoveryPolicy.default()  # 15 per order, 30 per customer in 30 days, 2 contacts
CREDIT_ACTION = "delayed_shipment_intervention"  # credit_share 0.10
DAY_TS = parse_ts("2026-01-15T12:00:00Z")  # 13:00 in Berlin: not quiet
NIGHT_TS = parse_ts("2026-01-15T21:30:00Z")  # 22:30 in Berlin: quiet until 08:00
HELD_UNTIL = parse_ts("2026-01-16T07:00:00Z")


def kinds(reasons: list[str]) -> set[str]:
    out = set()
    for r in reasons:
        if "max_credit_per_order" in r:
            out.add("order")
        elif "credit_share" in r or "credit the policy offered" in r:
            out.add("share")
        elif "30 days" in r:
            out.add("30d")
        elif r.startswith("contact limit"):
            out.add("contacts")
        elif r.startswith("quiet hours"):
            out.add("quiet")
        else:
            out.add(r)
    return out


def caps(**kw: Any) -> set[str]:
    return kinds(check_caps(POLICY, CapCheck(**{"action": CREDIT_ACTION, **kw})))


def test_nothing_is_broken_within_every_cap() -> None:
    assert caps(credit=10.0, order_value=100.0, contacts_before=1, credit_used_30d=20.0) == set()
    assert caps(at=NIGHT_TS, send_after=HELD_UNTIL) == set()
    assert caps(at=DAY_TS, send_after=None) == set()


@pytest.mark.parametrize(
    ("kw", "broken"),
    [
        ({"credit": 15.0, "order_value": 500.0}, set()),  # exactly the per-order cap
        ({"credit": 15.01, "order_value": 500.0}, {"order"}),
        ({"credit": 10.0, "order_value": 100.0}, set()),  # exactly the share
        ({"credit": 10.01, "order_value": 100.0}, {"share"}),
        ({"credit": 5.0, "order_value": 100.0, "credit_used_30d": 25.0}, set()),  # exactly 30
        ({"credit": 5.01, "order_value": 100.0, "credit_used_30d": 25.0}, {"30d"}),
        ({"contacts_before": 1}, set()),
        ({"contacts_before": 2}, {"contacts"}),
        ({"at": NIGHT_TS, "send_after": None}, {"quiet"}),
        ({"at": NIGHT_TS, "send_after": HELD_UNTIL - 60}, {"quiet"}),
        ({"at": NIGHT_TS, "send_after": HELD_UNTIL + 3600}, set()),
        ({"at": None, "send_after": None}, set()),  # no message: no quiet hours
    ],
)
def test_each_cap_at_its_boundary(kw: dict[str, Any], broken: set[str]) -> None:
    assert caps(**kw) == broken


def test_the_reasons_carry_the_numbers_and_the_limit() -> None:
    reasons = check_caps(
        POLICY,
        CapCheck(CREDIT_ACTION, credit=20.0, order_value=100.0, credit_used_30d=25.0,
                 contacts_before=3, at=NIGHT_TS),
    )  # fmt: skip
    assert reasons == [
        "credit 20.00 is over max_credit_per_order=15",
        "credit 20.00 is above credit_share 0.1 of the order value 100.00 (10.00)",
        "credit 20.00 takes the customer to 45.00 in 30 days, over max_credit_per_customer_30d=30",
        "contact limit: the order already had 3 contacts (max_contacts_per_order=2)",
        "quiet hours: a message decided at 2026-01-15T21:30:00Z must be held until "
        "2026-01-16T07:00:00Z",
    ]


def test_credit_share_without_the_order_value_is_bounded_by_the_policy_offer() -> None:
    assert caps(credit=8.0, policy_credit=8.0) == set()
    assert caps(credit=8.01, policy_credit=8.0) == {"share"}
    assert caps(credit=8.0) == {"share"}  # no order value, no offer: nothing to allow it
    # An action without a credit share cannot carry credit at all...
    assert caps(action="exchange_first_offer", credit=1.0, order_value=1000.0) == {"share"}
    assert caps(action="exchange_first_offer", credit=1.0, policy_credit=5.0) == {"share"}
    # ...unless it was proposed in place of one that has (an approval of a review).
    assert (
        caps(action="exchange_first_offer", credit=10.0, order_value=100.0,
             proposed_action=CREDIT_ACTION)
        == set()
    )  # fmt: skip


def test_human_review_is_not_a_customer_contact() -> None:
    assert caps(action="human_review", contacts_before=5, at=NIGHT_TS) == set()


def test_unknown_actions_and_negative_credit() -> None:
    assert check_caps(POLICY, CapCheck("free_car")) == ["action 'free_car' is not in the policy"]
    assert caps(credit=-1.0) == {"credit -1.00 is negative"}


def test_a_policy_without_quiet_hours_holds_nothing() -> None:
    policy = replace(POLICY, quiet_hours=None)
    assert check_caps(policy, CapCheck(CREDIT_ACTION, at=NIGHT_TS)) == []


CREDITS = (0.0, 5.0, 10.0, 10.01, 15.0, 15.01)
VALUES = (None, 50.0, 100.0, 150.1)
CONTACTS = (0, 1, 2, 3)
USED = (0.0, 15.0, 20.0, 25.0)
TIMES = ((DAY_TS, None), (NIGHT_TS, None), (NIGHT_TS, HELD_UNTIL), (NIGHT_TS, HELD_UNTIL - 1))
OFFERED = (None, 10.0)


def expected(
    credit: float,
    value: float | None,
    contacts: int,
    used: float,
    at: float,
    send_after: float | None,
    offered: float | None,
) -> set[str]:
    """The caps, from their definitions in docs/policy.md."""
    out = set()
    if credit > 15.0:
        out.add("order")
    if credit > 0:
        bound = round(0.1 * value, 2) if value is not None else offered
        if bound is None or credit > bound:
            out.add("share")
        if used + credit > 30.0:
            out.add("30d")
    if contacts >= 2:
        out.add("contacts")
    if at == NIGHT_TS and (send_after is None or send_after < HELD_UNTIL):
        out.add("quiet")
    return out


def test_every_combination_against_the_definitions() -> None:
    n = 0
    for credit, value, contacts, used, (at, send_after), offered in itertools.product(
        CREDITS, VALUES, CONTACTS, USED, TIMES, OFFERED
    ):
        got = caps(
            credit=credit, order_value=value, contacts_before=contacts, credit_used_30d=used,
            at=at, send_after=send_after, policy_credit=offered,
        )  # fmt: skip
        want = expected(credit, value, contacts, used, at, send_after, offered)
        assert got == want, (credit, value, contacts, used, at, send_after, offered)
        n += 1
    assert n == 6 * 4 * 4 * 4 * 4 * 2


# --- the dispatcher's guard ----------------------------------------------------------------


def iv(iid: str, order: str = "o1", action: str = "proactive_reassurance", **kw: Any):
    return {
        "intervention_id": iid,
        "order_id": order,
        "customer_id": "c1",
        "action": action,
        "automated": True,
        "decided_at": "2026-01-15T12:00:00Z",
        "offer": None,
        "message": {"channel": "email", "text": "hi", "send_after": None},
        **kw,
    }


def credit(amount: float) -> dict[str, Any]:
    return {"type": "store_credit", "amount": amount, "currency": "EUR"}


def guard() -> DispatchCaps:
    return DispatchCaps(POLICY, InMemoryCreditLedger(), InMemoryContactBook())


def test_the_guard_holds_the_contact_limit_keyed_by_intervention() -> None:
    g = guard()
    assert g(iv("a")) is None
    assert g(iv("b")) is None
    assert g(iv("a")) is None  # re-emitted after a restart: the same contact
    why = g(iv("c"))  # a third, different contact (a decision re-made differently)
    assert why is not None and why.startswith("contact limit")
    assert g(iv("r", action="human_review", message=None)) is None  # not a contact
    assert g(iv("d", order="o2")) is None


def test_the_guard_reserves_credit_once_per_intervention() -> None:
    g = guard()
    big = {"action": CREDIT_ACTION, "offer": credit(15.0)}
    assert g(iv("a", order="o1", **big)) is None
    assert g(iv("a", order="o1", **big)) is None  # retried: not reserved twice
    assert g.credit.used("c1", parse_ts("2026-01-15T12:00:00Z")) == 15.0
    assert g(iv("b", order="o2", **big)) is None  # 30 of 30
    why = g(iv("c", order="o3", **big))
    assert why is not None and "max_credit_per_customer_30d=30 (0.00)" in why
    over = g(iv("d", order="o4", action=CREDIT_ACTION, offer=credit(16.0)))
    assert over is not None and "max_credit_per_order=15" in over


def test_the_guard_checks_quiet_hours_of_the_message() -> None:
    g = guard()
    night = {"decided_at": "2026-01-15T21:30:00Z"}
    why = g(iv("a", **night))
    assert why is not None and why.startswith("quiet hours")
    held = {"channel": "email", "text": "hi", "send_after": "2026-01-16T07:00:00Z"}
    assert g(iv("b", message=held, **night)) is None
    assert g.contacts.count("o1") == 1  # the refused one took no contact


def test_offered_credit() -> None:
    assert offered_credit({"offer": credit(3.5)}) == 3.5
    assert offered_credit({"offer": None}) == 0.0
    assert offered_credit({"offer": {"type": "voucher", "amount": 9}}) == 0.0


def test_a_reviewed_intervention_is_not_share_checked_again_at_dispatch() -> None:
    assert caps(action="exchange_first_offer", credit=5.0, check_share=False) == set()
    g = guard()
    approved = iv("a", action="exchange_first_offer", offer=credit(5.0), automated=False,
                  review_id="iv-r")  # fmt: skip
    assert g(approved) is None
    assert g(iv("b", action="exchange_first_offer", offer=credit(5.0))) is not None


def test_a_review_request_offer_is_not_reserved_at_dispatch() -> None:
    g = guard()
    request = iv("r", action="human_review", message=None, offer=credit(15.0), automated=False)
    assert g(request) is None
    assert g.credit.used("c1", parse_ts("2026-01-15T12:00:00Z")) == 0.0


def test_a_batch_of_checks_answers_like_one_by_one() -> None:
    """``check_many`` admits the batch's contacts in one call to the book, then reserves
    credit: the same answers, contacts and credit as the single calls, in order."""
    big = {"action": CREDIT_ACTION, "offer": credit(15.0)}
    batch = [
        iv("a", order="o1", **big), iv("b", order="o1"), iv("a", order="o1", **big),
        iv("c", order="o1"), iv("d", order="o2", **big), iv("e", order="o3", **big),
        iv("r", order="o1", action="human_review", message=None),
        iv("f", order="o4", action=CREDIT_ACTION, offer=credit(16.0)),
    ]  # fmt: skip
    single, batched = guard(), guard()
    expected = [single(x) for x in batch]
    assert batched.check_many(batch) == expected
    assert [w is None for w in expected] == [True, True, True, False, True, False, True, False]
    assert "contact limit" in str(expected[3]) and "(0.00)" in str(expected[5])
    at = parse_ts("2026-01-15T12:00:00Z")
    for order in ("o1", "o2", "o3"):
        assert batched.contacts.count(order) == single.contacts.count(order)
    assert batched.credit.used("c1", at) == single.credit.used("c1", at) == 30.0
    assert batched.check_many([]) == []
