"""The human-review loop: decisions, edits within caps, expiry, close, and the flow step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from operators.case import HOUR
from operators.contract import DeadLetter, parse_ts
from operators.credit import InMemoryCreditLedger
from operators.decision import intervention_id
from operators.policy import RecoveryPolicy
from operators.review import (
    CapStores,
    ReviewAuth,
    ReviewBook,
    ReviewDecision,
    parse_decision,
    sign_decision,
)
from state.contacts import InMemoryContactBook

POLICY = RecoveryPolicy.default()


def request(oid: str = "o1", rid: str = "iv-r1", **extra: Any) -> dict[str, Any]:
    return {
        "intervention_id": rid,
        "order_id": oid,
        "customer_id": "c1",
        "action": "human_review",
        "automated": False,
        "proposed_action": "delayed_shipment_intervention",
        "decided_at": "2026-06-03T12:00:00Z",
        "trigger_event_id": "e9",
        "policy_version": POLICY.version,
        "reasons": ["value at risk 400.00 above 250"],
        "currency": "EUR",
        "sku_family": "skincare",
        "offer": {"type": "store_credit", "amount": 15.0, "currency": "EUR"},
        "message": None,
        "review_expires_at": "2026-06-05T12:00:00Z",
        **extra,
    }


def decision(rid: str = "iv-r1", oid: str = "o1", verdict: str = "approve", **edits: Any):
    raw: dict[str, Any] = {
        "review_id": rid,
        "order_id": oid,
        "decision": verdict,
        "reviewer_id": "agent-7",
        "decided_at": "2026-11-01T10:00:00Z",
    }
    if edits:
        raw["edits"] = edits
    d = parse_decision(raw, received_at=0.0)
    assert isinstance(d, ReviewDecision), d
    return d


def book(now: float = 0.0, expires: float = 48 * HOUR) -> ReviewBook:
    b = ReviewBook(expires_seconds=expires, retention_seconds=72 * HOUR)
    assert b.on_request(request(), now) == []
    return b


def test_approval_emits_the_proposed_action_as_not_automated() -> None:
    b = book()
    out = b.on_decision(decision(), POLICY, now=HOUR)
    (tag_iv, iv), (tag_rv, rv) = out
    assert (tag_iv, tag_rv) == ("intervention", "review")
    assert iv["action"] == "delayed_shipment_intervention"
    assert iv["automated"] is False
    assert iv["reviewer_id"] == "agent-7" and iv["review_id"] == "iv-r1"
    assert iv["decided_at"] == "2026-11-01T10:00:00Z"
    assert iv["intervention_id"] == intervention_id("o1", iv["action"], "iv-r1", POLICY.version)
    assert iv["intervention_id"] != "iv-r1"
    assert iv["offer"] == {"type": "store_credit", "amount": 15.0, "currency": "EUR"}
    assert "15.00 EUR" in iv["message"]["text"]  # rendered from the policy template
    assert iv["review_expires_at"] is None
    assert rv["status"] == "approved" and rv["intervention_id"] == iv["intervention_id"]
    assert not b.pending


def test_edits_within_caps_are_applied() -> None:
    b = book()
    d = decision(action="exchange_first_offer", credit_amount=5, message_text="Hi there")
    iv = b.on_decision(d, POLICY, now=HOUR)[0][1]
    assert iv["action"] == "exchange_first_offer"
    assert iv["offer"]["amount"] == 5.0
    assert iv["message"]["text"] == "Hi there"


def test_an_other_action_without_credit_drops_the_proposed_credit() -> None:
    iv = book().on_decision(decision(action="product_guidance"), POLICY, now=HOUR)[0][1]
    assert iv["action"] == "product_guidance" and iv["offer"] is None


@pytest.mark.parametrize(
    ("edits", "why"),
    [
        ({"credit_amount": 500}, "over max_credit_per_order=15"),
        ({"credit_amount": 15.01}, "above the credit the policy offered (15.00)"),
        ({"action": "exchange_first_offer", "credit_amount": 16}, "max_credit_per_order"),
        ({"action": "human_review"}, "cannot be approved"),
        ({"action": "free_car"}, "cannot be approved"),
    ],
)
def test_edits_beyond_the_policy_are_refused_and_the_review_stays_open(
    edits: dict[str, Any], why: str
) -> None:
    b = book()
    [(tag, rv)] = b.on_decision(decision(**edits), POLICY, now=HOUR)
    assert tag == "review" and rv["status"] == "invalid" and why in rv["reason"]
    assert "iv-r1" in b.pending
    # A corrected decision still goes through.
    assert b.on_decision(decision(), POLICY, now=2 * HOUR)[0][0] == "intervention"


def test_rejection_is_recorded_and_emits_nothing() -> None:
    b = book()
    [(tag, rv)] = b.on_decision(decision(verdict="reject"), POLICY, now=HOUR)
    assert (tag, rv["status"], rv["reviewer_id"]) == ("review", "rejected", "agent-7")
    [(_, again)] = b.on_decision(decision(), POLICY, now=2 * HOUR)
    assert again["status"] == "ignored" and "already rejected" in again["reason"]


def test_a_decision_after_the_case_closed_is_recorded_and_ignored() -> None:
    b = book()
    [(_, closed)] = b.on_close({"order_id": "o1", "outcome": "refunded"}, now=HOUR)
    assert closed["status"] == "closed" and "refunded" in closed["reason"]
    [(tag, rv)] = b.on_decision(decision(), POLICY, now=2 * HOUR)
    assert tag == "review" and rv["status"] == "ignored"
    assert rv["reason"] == "the case closed before the decision"


def test_requests_expire_by_wall_clock() -> None:
    b = book(now=1000.0, expires=2 * HOUR)
    assert b.next_wakeup() == 1000.0 + 2 * HOUR
    assert b.on_time(1000.0 + 2 * HOUR - 1) == []
    [(_, rv)] = b.on_time(1000.0 + 2 * HOUR)
    assert rv["status"] == "expired" and rv["reason"] == "no decision within 2 h"
    [(_, late)] = b.on_decision(decision(), POLICY, now=1000.0 + 3 * HOUR)
    assert late["status"] == "ignored" and "expired" in late["reason"]
    assert not b.finished(1000.0 + 3 * HOUR)
    assert b.finished(1000.0 + 2 * HOUR + 72 * HOUR)


def test_a_decision_arriving_after_expiry_but_before_the_timer_is_ignored() -> None:
    b = book(now=0.0, expires=HOUR)
    out = b.on_decision(decision(), POLICY, now=2 * HOUR)
    assert [r["status"] for _, r in out] == ["expired", "ignored"]
    assert all(tag == "review" for tag, _ in out)


def test_unknown_reviews_are_refused_and_re_emitted_requests_keep_their_clock() -> None:
    b = book(expires=100 * HOUR)
    out = b.on_decision(decision(rid="iv-nope"), POLICY, now=HOUR)
    assert [tag for tag, _ in out] == ["review", "dead_letter"]
    assert out[0][1]["status"] == "ignored"
    dead = out[1][1]
    assert dead["stream"] == "review_decisions" and dead["event_id"] == "iv-nope"
    assert dead["reason"] == "no review request with this review_id was issued for the order"
    assert b.on_request(request(), HOUR) == []  # re-emitted after a resume: no reset
    assert b.pending["iv-r1"].raised_at == 0.0


def test_an_approval_read_before_its_request_is_never_applied() -> None:
    """A forged approval for a request the engine is about to raise (review ids are
    deterministic) is refused at once, not kept until the request appears."""
    b = ReviewBook()
    out = b.on_decision(decision(), POLICY, now=1.0)
    assert [tag for tag, _ in out] == ["review", "dead_letter"]
    assert b.on_request(request(), 2.0, POLICY) == []
    assert "iv-r1" in b.pending  # waits for a real decision
    assert b.on_decision(decision(), POLICY, now=3.0)[0][0] == "intervention"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"order_id": "o", "decision": "approve", "reviewer_id": "a"}', "review_id"),
        (
            b'{"review_id": "r", "order_id": "o", "decision": "reject", "reviewer_id": "a",'
            b' "edits": {"credit_amount": 1}}',
            "only allowed with decision approve",
        ),
        (
            b'{"review_id": "r", "order_id": "o", "decision": "approve", "reviewer_id": "a",'
            b' "edits": {"customer_id": "x"}}',
            "edits.customer_id is not an editable field",
        ),
        (
            b'{"review_id": "r", "order_id": "o", "decision": "approve", "reviewer_id": "a",'
            b' "edits": {"credit_amount": -1}}',
            "credit_amount must be a number >= 0",
        ),
        (
            b'{"review_id": "r", "order_id": "o", "decision": "approve", "reviewer_id": "a",'
            b' "decided_at": "yesterday"}',
            "decided_at is not an RFC 3339",
        ),
    ],
)
def test_bad_decisions_become_dead_letters_with_the_reason(raw: bytes, reason: str) -> None:
    dead = parse_decision(raw, received_at=5.0)
    assert isinstance(dead, DeadLetter)
    assert reason in dead.reason
    assert dead.stream == "review_decisions"


def test_decided_at_defaults_to_when_it_was_read() -> None:
    d = parse_decision(
        {"review_id": "r", "order_id": "o", "decision": "reject", "reviewer_id": "a"}, 77.0
    )
    assert isinstance(d, ReviewDecision) and d.decided_at == 77.0
    assert parse_ts("2026-11-01T10:00:00Z") == decision().decided_at


def test_review_step_in_a_dataflow() -> None:
    """The Bytewax wrapper: requests, decisions and closes keyed by order; state for
    orders without reviews is not kept."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    from flows.dataflow import FlowStreams
    from flows.live import add_review_loop

    flow = Dataflow("review_test")
    ivs = op.input("ivs", flow, TestingSource([request("o1"), request("o2", rid="iv-r2")]))
    outcomes = op.input("outcomes", flow, TestingSource([{"order_id": "o3", "outcome": "kept"}]))
    raw = [
        {"review_id": "iv-r1", "order_id": "o1", "decision": "approve", "reviewer_id": "a"},
        b"not json",
    ]
    decisions = op.input(
        "decisions", flow, TestingSource([("review_decisions", r, 1.0) for r in raw])
    )
    dead = op.input("dead", flow, TestingSource([]))
    tagged = op.input("tagged", flow, TestingSource([]))
    streams = FlowStreams(
        flow, None, {"interventions": ivs, "outcomes": outcomes, "dead_letter": dead}, tagged
    )
    reviews = add_review_loop(
        streams, decisions, POLICY, 48 * HOUR, HOUR, clock=lambda: 1.0
    ).reviews
    got_iv: list[dict[str, Any]] = []
    got_rv: list[dict[str, Any]] = []
    got_dead: list[dict[str, Any]] = []
    op.output("iv_out", streams.records["interventions"], TestingSink(got_iv))
    op.output("rv_out", reviews, TestingSink(got_rv))
    op.output("dead_out", streams.records["dead_letter"], TestingSink(got_dead))
    run_main(flow)
    approved = [iv for iv in got_iv if iv["action"] == "delayed_shipment_intervention"]
    assert len(approved) == 1 and approved[0]["order_id"] == "o1"
    assert [r["status"] for r in got_rv] == ["approved"]
    assert len(got_dead) == 1 and "not valid JSON" in got_dead[0]["reason"]


# --- authentication --------------------------------------------------------------------------

REVIEW_SECRET = "review-test-secret-0123456789"
AUTH = ReviewAuth.create(REVIEW_SECRET, ["agent-7"], ["shop.example"], max_message_chars=120)
NOW = 1_780_000_000.0


def signed(secret: str = REVIEW_SECRET, at: float = NOW, **fields: Any) -> bytes:
    record: dict[str, Any] = {
        "review_id": "iv-r1",
        "order_id": "o1",
        "decision": "approve",
        "reviewer_id": "agent-7",
        **fields,
    }
    return sign_decision(secret, record, timestamp=int(at))


def refused(raw: Any, auth: ReviewAuth = AUTH, at: float = NOW) -> str:
    got = parse_decision(raw, received_at=at, auth=auth)
    assert isinstance(got, DeadLetter), got
    assert got.stream == "review_decisions"
    assert REVIEW_SECRET not in got.reason and REVIEW_SECRET not in got.raw
    return got.reason


def test_a_signed_decision_from_an_allowed_reviewer_is_accepted() -> None:
    got = parse_decision(signed(edits={"message_text": "See shop.example/help"}), NOW, AUTH)
    assert isinstance(got, ReviewDecision)
    assert (got.review_id, got.reviewer_id, got.decision) == ("iv-r1", "agent-7", "approve")
    assert got.message_text == "See shop.example/help"
    # Read a day later (a backlog after an outage): still within the signature's age.
    assert isinstance(parse_decision(signed(), NOW + 86400, AUTH), ReviewDecision)


def test_unsigned_and_badly_signed_decisions_are_dead_letters() -> None:
    plain = b'{"review_id": "iv-r1", "order_id": "o1", "decision": "approve", "reviewer_id": "a"}'
    assert refused(plain).startswith("unsigned review decision")
    assert refused(signed(secret="someone-else")) == (
        "review signature refused: signature does not match the body and secret"
    )
    envelope = orjson.loads(signed())
    tampered = envelope["body"].replace("approve", "reject")
    forged = orjson.dumps({"body": tampered, "signature": envelope["signature"]})
    assert "does not match" in refused(forged)
    assert "timestamp is" in refused(signed(at=NOW - 8 * 86400))  # replayed much later
    no_header = orjson.dumps({"body": envelope["body"], "signature": ""})
    assert refused(no_header) == "review signature refused: no signature header"
    assert refused(b"{nope").startswith("not valid JSON")


def test_without_a_review_secret_every_decision_is_refused() -> None:
    auth = ReviewAuth.create(None, ["agent-7"])
    assert "no review secret is set" in refused(signed(), auth)


def test_only_reviewers_on_the_allowlist_decide() -> None:
    reason = refused(signed(reviewer_id="mallory"))
    assert reason == "reviewer_id is not on the reviewer allowlist (review.reviewers)"
    assert "mallory" not in reason
    assert "allowlist" in refused(signed(), ReviewAuth.create(REVIEW_SECRET, []))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("x" * 121, "longer than 120 characters"),
        ("Claim it at https://evil.example/login", "links to evil.example"),
        ("Claim it at evil.example", "links to evil.example"),
        ("Claim: https://shop.example.evil.example/", "links to shop.example.evil.example"),
        ("Log in: https://shop.example@evil.example/x", "links to evil.example"),
        ("Write to refunds@evil.example", "links to evil.example"),
        ("Go to http://192.168.0.1/x", "links to 192.168.0.1"),
        ("Go to https://shop.ex\u0430mple/x", "links to shop.ex\u0430mple"),  # Cyrillic a
        ("Open javascript:alert(1)", "javascript: link"),
        ("Mail mailto:x@shop.example", "mailto: link"),
        ("Go to ftp://shop.example/x", "ftp:// link"),
        ("Hidden\u200bhttps://shop.example", "control or invisible characters"),
        ("Bell\x07", "control or invisible characters"),
    ],
)
def test_reviewer_text_is_bounded_and_links_are_allowlisted(text: str, why: str) -> None:
    assert why in refused(signed(edits={"message_text": text}))


@pytest.mark.parametrize(
    "text",
    [
        "We are sorry about the delay.\nYour exchange ships today.",
        "Track it at https://shop.example/track?o=1 or www.shop.example.",
        "Help: https://help.shop.example:443/a, e.g. for 10.50 EUR, v1.2, i.e. today.",
    ],
)
def test_reviewer_text_within_the_rules_passes(text: str) -> None:
    got = parse_decision(signed(edits={"message_text": text}), NOW, AUTH)
    assert isinstance(got, ReviewDecision) and got.message_text == text


# --- caps at approval --------------------------------------------------------------------------


def stores() -> CapStores:
    return CapStores(InMemoryCreditLedger(), InMemoryContactBook())


def test_an_approval_reserves_its_credit_under_the_new_intervention() -> None:
    s = stores()
    b = book()
    iv = b.on_decision(decision(credit_amount=10), POLICY, now=HOUR, stores=s)[0][1]
    assert iv["offer"]["amount"] == 10.0
    assert s.credit.used("c1", HOUR) == 10.0
    assert s.credit.reserve("c1", HOUR, 10.0, 30.0, grant_id=iv["intervention_id"]) == 10.0
    assert s.credit.used("c1", HOUR) == 10.0  # the dispatcher's check does not add to it


def test_an_approval_over_the_customer_30_day_cap_is_refused() -> None:
    s = stores()
    s.credit.reserve("c1", 0.0, 25.0, 30.0)
    b = book()
    [(tag, rv)] = b.on_decision(decision(credit_amount=10), POLICY, now=HOUR, stores=s)
    assert tag == "review" and rv["status"] == "invalid"
    assert "takes the customer to 35.00 in 30 days" in rv["reason"]
    assert s.credit.used("c1", HOUR) == 25.0  # nothing reserved
    out = b.on_decision(decision(credit_amount=5), POLICY, now=2 * HOUR, stores=s)
    assert out[0][0] == "intervention" and s.credit.used("c1", HOUR) == 30.0


def test_an_approval_past_the_contact_limit_is_refused() -> None:
    s = stores()
    s.contacts.admit("o1", "iv-a", 2, 60)
    s.contacts.admit("o1", "iv-b", 2, 60)
    [(_, rv)] = book().on_decision(decision(), POLICY, now=HOUR, stores=s)
    assert rv["status"] == "invalid" and rv["reason"].startswith("contact limit")


def test_an_approval_in_quiet_hours_is_held() -> None:
    night = parse_ts("2026-01-15T21:30:00Z")
    b = book(now=night)
    d = replace(decision(), decided_at=night)
    iv = b.on_decision(d, POLICY, now=night, stores=stores())[0][1]
    assert iv["message"]["send_after"] == "2026-01-16T07:00:00Z"
    # Held from the later of the reviewer's time and when it is applied.
    b = book(now=night)
    d = replace(decision(), decided_at=night - 12 * HOUR)  # 10:30 in Berlin
    iv = b.on_decision(d, POLICY, now=night, stores=stores())[0][1]
    assert iv["message"]["send_after"] == "2026-01-16T07:00:00Z"


def test_the_review_loop_dead_letters_unauthenticated_decisions() -> None:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    from flows.dataflow import FlowStreams
    from flows.live import add_review_loop

    flow = Dataflow("review_auth_test")
    ivs = op.input("ivs", flow, TestingSource([request("o1")]))
    outcomes = op.input("outcomes", flow, TestingSource([]))
    raw = [
        signed(reviewer_id="mallory"),
        orjson.dumps(orjson.loads(signed())["body"]),  # the decision, without its envelope
        signed(review_id="iv-other"),
        signed(edits={"credit_amount": 5}),
    ]
    decisions = op.input(
        "decisions", flow, TestingSource([("review_decisions", r, NOW) for r in raw])
    )
    dead = op.input("dead", flow, TestingSource([]))
    tagged = op.input("tagged", flow, TestingSource([]))
    streams = FlowStreams(
        flow, None, {"interventions": ivs, "outcomes": outcomes, "dead_letter": dead}, tagged
    )
    s = stores()
    reviews = add_review_loop(
        streams, decisions, POLICY, 48 * HOUR, HOUR, clock=lambda: NOW, auth=AUTH, stores=s
    ).reviews
    got_iv: list[dict[str, Any]] = []
    got_dead: list[dict[str, Any]] = []
    got_rv: list[dict[str, Any]] = []
    op.output("iv_out", streams.records["interventions"], TestingSink(got_iv))
    op.output("rv_out", reviews, TestingSink(got_rv))
    op.output("dead_out", streams.records["dead_letter"], TestingSink(got_dead))
    run_main(flow)
    approved = [iv for iv in got_iv if iv["action"] != "human_review"]
    assert len(approved) == 1 and approved[0]["offer"]["amount"] == 5.0
    reasons = sorted(d["reason"] for d in got_dead)
    assert reasons == [
        "no review request with this review_id was issued for the order",
        "reviewer_id is not on the reviewer allowlist (review.reviewers)",
        'unsigned review decision: expected {"body": ..., "signature": ...}',
    ]
    assert s.credit.used("c1", NOW) == 5.0
