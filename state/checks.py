"""The store contract: checks every implementation of a ``state`` interface must pass.

One suite, every implementation (in memory, Redis, Redis Cluster, or a store of your own),
in the manner of ``river.checks``: :func:`yield_checks` gives the checks of one interface
and each check takes an ``open_store`` callable. Every call of ``open_store`` must return
a new handle on the *same* state: the in-memory stores return one shared object; the Redis
stores a new client on the same server and prefix, which is what another worker, another
process or a restarted one sees. A check raises AssertionError when the contract is broken.

    for check in yield_checks("dispatch"):
        check(lambda: RedisDispatchLedger(connect(url)))

Buffered writers (``RedisContextStore.record_outcome``) are flushed with their ``flush``
method where the contract says "after the write is settled".

Multi-key updates (a case's four keys, a model's three) run as one script or transaction;
on a cluster they fail with CROSSSLOT unless the keys share a hash slot, so passing this
suite on a Redis Cluster is the proof that they do.
"""

from __future__ import annotations

import inspect
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from operators import stores
from operators.case import DAY
from operators.credit import WINDOW_SECONDS, InMemoryCreditLedger
from operators.memo import DecisionMemo, MemoEntry
from operators.vocabulary import Outcome
from state.context import InMemoryContextStore

Check = Callable[[Callable[[], Any]], None]

T0 = 1_780_000_000.0  # 2026-05-28, epoch seconds
CREDIT_CAP = 30.0
FAMILIES = ("skincare", "shoes", "outerwear", None)
LANES = ("dhl:DE-NL", "ups:FR-FR", "gls:DE-AT", None)
#: Every outcome a closed case can have, plus "open" (a case the store must ignore).
OUTCOMES = (
    *(o.value for o in (Outcome.REFUNDED, Outcome.KEPT, Outcome.EXCHANGED)),
    *(o.value for o in (Outcome.CHARGEBACK, Outcome.CANCELLED)),
    "open",
)


def _settle(store: Any) -> None:
    """Make buffered writes visible (a no-op for stores that write at once)."""
    flush = getattr(store, "flush", None)
    if flush is not None:
        flush()


def random_outcomes(seed: int, n: int, customers: int = 40) -> list[dict[str, Any]]:
    """Closed-case outcomes in roughly increasing event time, with some disorder, unknown
    customers, families and lanes, money given or not."""
    rng = random.Random(seed)
    t = T0
    out = []
    for _ in range(n):
        t += rng.uniform(-6 * 3600, 18 * 3600)  # out-of-order resolutions happen
        out.append(
            {
                "customer_id": rng.choice([f"c{rng.randrange(customers)}", None, ""]),
                "outcome": rng.choice(OUTCOMES),
                "refund_value": round(rng.uniform(0, 250), 2) if rng.random() < 0.5 else None,
                "order_value": rng.uniform(5, 400),
                "sku_family": rng.choice(FAMILIES),
                "courier_lane": rng.choice(LANES),
                "delayed": rng.random() < 0.3,
                "resolved_at_ts": t,
            }
        )
    return out


# --- ContextStore -------------------------------------------------------------------------


def check_context_unknown_reads_give_the_prior(open_store: Callable[[], Any]) -> None:
    store = open_store()
    assert store.customer("never-seen") is None
    assert store.family_rate("never-seen", T0) == store.prior_refund_rate
    assert store.family_rate(None, T0) == store.prior_refund_rate
    assert store.lane_refund_rate("never:seen", T0) == store.prior_refund_rate
    assert store.lane_delay_rate(None, T0) == store.prior_delay_rate


def check_context_one_outcome_by_hand(open_store: Callable[[], Any]) -> None:
    """One refunded order: the numbers worked out by hand from the Beta prior."""
    store = open_store()
    store.record_outcome(
        {"customer_id": "hand-1", "outcome": Outcome.REFUNDED.value, "refund_value": 40.0,
         "order_value": 55.5, "sku_family": "hand-fam", "courier_lane": "hand:lane",
         "delayed": True, "resolved_at_ts": T0}
    )  # fmt: skip
    store.record_outcome({"customer_id": "hand-2", "outcome": "open", "resolved_at_ts": T0})
    _settle(store)
    reader = open_store()
    stats = reader.customer("hand-1")
    assert stats is not None
    assert (stats.orders, stats.refunds, stats.exchanges, stats.chargebacks) == (1, 1, 0, 0)
    assert (stats.refund_value, stats.spend, stats.first_seen) == (40.0, 55.5, T0)
    assert reader.customer("hand-2") is None  # an open case feeds nothing
    w, p = reader.prior_weight, reader.prior_refund_rate
    assert reader.family_rate("hand-fam", T0) == (1.0 + p * w) / (1.0 + w)
    assert reader.lane_refund_rate("hand:lane", T0) == (1.0 + p * w) / (1.0 + w)
    d = reader.prior_delay_rate
    assert reader.lane_delay_rate("hand:lane", T0) == (1.0 + d * w) / (1.0 + w)
    # A half-life later the observation weighs half as much.
    later = T0 + reader.half_life
    assert abs(reader.family_rate("hand-fam", later) - (0.5 + p * w) / (0.5 + w)) < 1e-12


def check_context_matches_the_reference_bit_for_bit(open_store: Callable[[], Any]) -> None:
    """Random outcomes, out of order, in batches: every read equals the reference
    implementation's exactly, from this handle and from a second one."""
    outcomes = random_outcomes(11, 400)
    reference = InMemoryContextStore()
    store = open_store()
    customers = sorted({o["customer_id"] for o in outcomes if o["customer_id"]})
    for start in range(0, len(outcomes), 50):
        for o in outcomes[start : start + 50]:
            reference.record_outcome(o)
            store.record_outcome(o)
        _settle(store)
    for reader in (store, open_store()):
        for now in (T0, outcomes[-1]["resolved_at_ts"], outcomes[-1]["resolved_at_ts"] + 40 * DAY):
            for cid in customers:
                assert reader.customer(cid) == reference.customer(cid), cid
            for f in FAMILIES:
                assert reader.family_rate(f, now) == reference.family_rate(f, now), f
            for lane in LANES:
                assert reader.lane_refund_rate(lane, now) == reference.lane_refund_rate(lane, now)
                assert reader.lane_delay_rate(lane, now) == reference.lane_delay_rate(lane, now)


# --- CaseStore ----------------------------------------------------------------------------


def check_case_round_trip(open_store: Callable[[], Any]) -> None:
    store = open_store()
    assert store.get("case-unknown") is None
    oid = "case-1"
    first = {"order_id": oid, "stage": "open", "as_of": "2026-06-01T00:00:00Z"}
    store.put_view(oid, first)
    decisions = [
        {"order_id": oid, "trigger_event_id": f"e{i}", "action": a, "scores": {"p": i / 10}}
        for i, a in enumerate(["none", "proactive_reassurance", "none"])
    ]
    for d in decisions:
        store.add_decision(oid, d)
    iv = {"order_id": oid, "intervention_id": "iv-case-1", "offer": {"kind": "reassurance"}}
    store.add_intervention(oid, iv)
    last = {"order_id": oid, "stage": "at_risk", "signals": ["late"]}
    store.put_view(oid, last)
    case = open_store().get(oid)
    assert case == {"view": last, "decisions": decisions, "interventions": [iv], "outcome": None}
    outcome = {"order_id": oid, "outcome": Outcome.KEPT.value}
    store.put_outcome(oid, outcome)
    assert open_store().get(oid)["outcome"] == outcome
    assert open_store().get("case-2") is None  # other orders untouched


def check_case_orders_are_independent(open_store: Callable[[], Any]) -> None:
    store = open_store()
    ids = [f"many-{i}" for i in range(60)]  # spread over many slots of a cluster
    for oid in ids:
        store.put_view(oid, {"order_id": oid, "n": oid})
        store.add_decision(oid, {"order_id": oid, "trigger_event_id": "e", "action": "none"})
    reader = open_store()
    for oid in ids:
        case = reader.get(oid)
        assert case is not None and case["view"]["n"] == oid
        assert [d["order_id"] for d in case["decisions"]] == [oid]


# --- DispatchLedger -----------------------------------------------------------------------


def check_dispatch_claims_are_at_most_once_across_handles(open_store: Callable[[], Any]) -> None:
    ids = [f"iv-{i}" for i in range(200)]
    wins: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        ledger = open_store()
        barrier.wait()
        order = ids if n == 0 else list(reversed(ids))
        wins[n] = [iv for iv in order if ledger.claim(iv, 3600)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins[0] + wins[1]) == sorted(ids)  # every id claimed exactly once
    assert not set(wins[0]) & set(wins[1])
    later = open_store()  # a restarted process
    assert later.claim("iv-7", 3600) is False
    assert later.status("iv-7") == "claimed"


def check_dispatch_release_and_delivery(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert ledger.status("iv-a") is None
    assert ledger.claim("iv-a", 60)
    assert ledger.status("iv-a") == "claimed"
    ledger.release("iv-a")
    assert ledger.status("iv-a") is None
    assert ledger.claim("iv-a", 60)  # a later run may retry
    ledger.mark_delivered("iv-a", "delivered", 86400)
    ledger.release("iv-a")  # too late: it was delivered
    other = open_store()
    assert other.status("iv-a") == "delivered"
    assert not other.claim("iv-a", 60)
    ledger.mark_delivered("iv-b", "dead_letter", 60)
    assert other.status("iv-b") == "dead_letter"


# --- ModelStore ---------------------------------------------------------------------------


def check_models_keep_the_newest_versions(open_store: Callable[[], Any]) -> None:
    store = open_store()
    assert store.latest("m") is None

    def blob(version: int) -> bytes:
        return f"state-{version}".encode() + bytes(range(256))  # binary-safe

    for version in (1, 2, 5, 3, 4, 6):
        store.save("m", version, blob(version))
    assert store.latest("m") == (6, blob(6))
    store.save("m", 2, b"too old")  # older than every kept version: dropped at once
    assert open_store().latest("m") == (6, blob(6))
    store.save("m", 7, b"")
    assert open_store().latest("m") == (7, b"")
    assert open_store().latest("other") is None


# --- CreditLedger (operators.credit) ------------------------------------------------------


def check_credit_cap_and_window(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert ledger.used("cw-1", T0) == 0.0
    assert ledger.reserve("cw-1", T0, 12.5, CREDIT_CAP) == 12.5
    assert ledger.reserve("cw-1", T0 + DAY, 12.5, CREDIT_CAP) == 12.5
    assert ledger.reserve("cw-1", T0 + 2 * DAY, 12.5, CREDIT_CAP) == 5.0  # only the room left
    assert ledger.reserve("cw-1", T0 + 3 * DAY, 1.0, CREDIT_CAP) == 0.0  # cap used up
    other = open_store()
    assert other.used("cw-1", T0 + 3 * DAY) == 30.0
    assert other.used("cw-2", T0 + 3 * DAY) == 0.0  # customers are independent
    # The first grant leaves the window exactly 30 days after it was made.
    assert other.used("cw-1", T0 + WINDOW_SECONDS) == 17.5
    assert other.reserve("cw-1", T0 + WINDOW_SECONDS, 20.0, CREDIT_CAP) == 12.5
    assert other.used("cw-1", T0 + 61 * DAY) == 0.0
    ledger.grant("cw-3", T0, 50.0)  # grant does not check the cap
    ledger.grant("cw-3", T0, 0.0)  # nothing granted
    assert open_store().used("cw-3", T0) == 50.0
    assert open_store().reserve("cw-3", T0, 5.0, CREDIT_CAP) == 0.0


def check_credit_grant_ids_are_idempotent(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert ledger.reserve("ci-1", T0, 20.0, CREDIT_CAP, grant_id="iv-1") == 20.0
    # A restarted process re-makes the same decision: the same grant, not a second one.
    again = open_store()
    assert again.reserve("ci-1", T0 + 60, 20.0, CREDIT_CAP, grant_id="iv-1") == 20.0
    assert again.used("ci-1", T0 + 60) == 20.0
    assert again.reserve("ci-1", T0 + 60, 20.0, CREDIT_CAP, grant_id="iv-2") == 10.0
    assert again.reserve("ci-1", T0 + 60, 20.0, CREDIT_CAP, grant_id="iv-2") == 10.0
    assert open_store().used("ci-1", T0 + 60) == 30.0
    # A refused grant is not remembered: with room again, it is granted.
    assert again.reserve("ci-1", T0 + 60, 5.0, CREDIT_CAP, grant_id="iv-3") == 0.0
    assert again.reserve("ci-1", T0 + WINDOW_SECONDS + 1, 5.0, CREDIT_CAP, grant_id="iv-3") == 5.0


def check_credit_matches_the_reference(open_store: Callable[[], Any]) -> None:
    """Random reservations in time order: every grant and total equals the in-memory
    reference's exactly."""
    rng = random.Random(5)
    reference = InMemoryCreditLedger()
    ledger = open_store()
    t = T0
    for n in range(300):
        t += rng.uniform(0, 2 * DAY)
        customer = f"cr-{rng.randrange(6)}"
        amount = round(rng.uniform(0.01, 25.0), 2)
        gid = f"g{rng.randrange(250)}" if rng.random() < 0.5 else None
        want = reference.reserve(customer, t, amount, CREDIT_CAP, grant_id=gid)
        assert ledger.reserve(customer, t, amount, CREDIT_CAP, grant_id=gid) == want, n
    reader = open_store()
    for c in range(6):
        assert reader.used(f"cr-{c}", t) == reference.used(f"cr-{c}", t)


def check_credit_reservations_are_atomic_across_handles(open_store: Callable[[], Any]) -> None:
    """Four workers (own handles) race to reserve 1.00 each for one customer: exactly the
    cap is granted, never more."""
    granted: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        ledger = open_store()
        barrier.wait()
        mine = [ledger.reserve("race-1", T0 + n, 1.0, CREDIT_CAP) for _ in range(15)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == CREDIT_CAP
    assert sorted(set(granted)) == [0.0, 1.0]
    assert open_store().used("race-1", T0 + 10) == CREDIT_CAP


CREDIT_CHECKS = (
    check_credit_cap_and_window,
    check_credit_grant_ids_are_idempotent,
    check_credit_matches_the_reference,
    check_credit_reservations_are_atomic_across_handles,
)


# --- ContactBook --------------------------------------------------------------------------


def check_contacts_limit_per_order(open_store: Callable[[], Any]) -> None:
    book = open_store()
    assert book.count("ck-1") == 0
    assert book.admit("ck-1", "iv-a", 2, 3600)
    assert book.admit("ck-1", "iv-b", 2, 3600)
    assert book.admit("ck-1", "iv-a", 2, 3600)  # the same contact again: still admitted
    assert not open_store().admit("ck-1", "iv-c", 2, 3600)  # a restarted process
    assert open_store().count("ck-1") == 2
    assert book.admit("ck-2", "iv-c", 2, 3600)  # orders are independent


def check_contacts_are_atomic_across_handles(open_store: Callable[[], Any]) -> None:
    ids = [f"iv-{i}" for i in range(40)]
    wins: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        book = open_store()
        barrier.wait()
        order = ids if n == 0 else list(reversed(ids))
        wins[n] = [iv for iv in order if book.admit("ck-race", iv, 3, 3600)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admitted = set(wins[0]) | set(wins[1])
    assert len(admitted) == 3
    assert open_store().count("ck-race") == 3


def check_contacts_batches_answer_like_single_calls(open_store: Callable[[], Any]) -> None:
    book = open_store()
    assert book.admit_many([], 2, 3600) == []
    assert book.admit("ck-b1", "iv-a", 2, 3600)
    # In order: a known contact again, new ones up to the limit, then refused; a repeated
    # id answered as its first admission; another order on its own.
    batch = [
        ("ck-b1", "iv-a"), ("ck-b1", "iv-b"), ("ck-b1", "iv-c"),
        ("ck-b2", "iv-c"), ("ck-b1", "iv-b"), ("ck-b2", "iv-d"), ("ck-b2", "iv-e"),
    ]  # fmt: skip
    assert open_store().admit_many(batch, 2, 3600) == [True, True, False, True, True, True, False]
    assert book.count("ck-b1") == 2 and open_store().count("ck-b2") == 2
    assert not book.admit("ck-b1", "iv-c", 2, 3600)
    assert open_store().admit_many([("ck-b1", "iv-b"), ("ck-b3", "iv-f")], 1, 3600) == [
        True, True,
    ]  # fmt: skip


CONTACT_CHECKS = (
    check_contacts_limit_per_order,
    check_contacts_are_atomic_across_handles,
    check_contacts_batches_answer_like_single_calls,
)


# --- RetryQueue ---------------------------------------------------------------------------


def _retry_item(i: int, due: float) -> Any:
    from state.retry import RetryItem

    iv = {"intervention_id": f"rq-{i}", "order_id": f"o-{i}", "action": "a", "n": [i, None]}
    return RetryItem(iv, "hook", attempts=i, first_at=T0, due_at=due, error="HTTP 500")


def check_retry_park_take_and_done(open_store: Callable[[], Any]) -> None:
    queue = open_store()
    for i, due in enumerate((T0 + 30, T0 + 10, T0 + 20, T0 + 99)):
        queue.park(_retry_item(i, due))
    assert open_store().pending() == 4
    taken = open_store().take_due(T0 + 30, limit=10, lease_seconds=100)
    assert [t.iid for t in taken] == ["rq-1", "rq-2", "rq-0"]  # earliest first
    assert taken[0] == _retry_item(1, T0 + 10)  # complete, as parked
    assert open_store().take_due(T0 + 99, limit=10, lease_seconds=100) == [_retry_item(3, T0 + 99)]
    assert open_store().take_due(T0 + 129) == []  # all leased
    again = open_store().take_due(T0 + 130, limit=10, lease_seconds=100)  # leases ended
    assert [t.iid for t in again] == ["rq-0", "rq-1", "rq-2"]
    later = _retry_item(1, T0 + 500)
    later.attempts = 9
    queue.park(later)  # parked again with its next due time
    for iid in ("rq-0", "rq-2", "rq-3"):
        queue.done(iid)
    assert open_store().pending() == 1
    assert open_store().take_due(T0 + 499) == []
    assert [t.attempts for t in open_store().take_due(T0 + 500)] == [9]
    # A batch parked at once: each item as :meth:`park` would, replacing an earlier one.
    queue.park_many([])
    batch = [_retry_item(7, T0 + 700), _retry_item(1, T0 + 600), _retry_item(8, T0 + 650)]
    open_store().park_many(batch)
    assert open_store().pending() == 3
    assert open_store().take_due(T0 + 700, limit=10) == [batch[1], batch[2], batch[0]]


def check_retry_items_are_taken_once_across_handles(open_store: Callable[[], Any]) -> None:
    queue = open_store()
    for i in range(60):
        queue.park(_retry_item(i, T0 + i))
    got: list[list[str]] = [[], [], []]
    barrier = threading.Barrier(3)

    def worker(n: int) -> None:
        q = open_store()
        barrier.wait()
        for _ in range(10):
            got[n].extend(t.iid for t in q.take_due(T0 + 100, limit=4, lease_seconds=1000))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = got[0] + got[1] + got[2]
    assert sorted(every) == sorted(f"rq-{i}" for i in range(60))  # each exactly once


def check_retry_bury_and_unbury(open_store: Callable[[], Any]) -> None:
    queue = open_store()
    assert queue.buried() == [] and queue.unbury("rq-x") is None
    for i in (2, 1):
        item = _retry_item(i, T0)
        item.reason, item.buried_at = f"HTTP 500 after {i} attempts", T0 + i
        queue.bury(item)
    assert [b.iid for b in open_store().buried()] == ["rq-1", "rq-2"]  # oldest first
    first, second = open_store().unbury("rq-1"), open_store().unbury("rq-1")
    assert first is not None and first.reason == "HTTP 500 after 1 attempts"
    assert second is None  # of two re-sends, one gets it
    assert [b.iid for b in open_store().buried()] == ["rq-2"]


def check_dispatch_only_dead_letters_reopen(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert not ledger.reopen("iv-r", 60)  # unknown: claim() is the way in
    ledger.claim("iv-r", 60)
    assert not ledger.reopen("iv-r", 60)  # being sent
    for status in ("delivered", "retrying", "blocked"):
        ledger.mark_delivered("iv-r", status, 60)
        assert not open_store().reopen("iv-r", 60), status
    ledger.mark_delivered("iv-r", "dead_letter", 60)
    wins = [open_store().reopen("iv-r", 60) for _ in range(2)]
    assert wins == [True, False]  # a deliberate re-send claims it once
    assert open_store().status("iv-r") == "claimed"


# --- DecisionMemo -------------------------------------------------------------------------


def _memo_entry(action: str, n: int) -> Any:
    record = {"order_id": "m-1", "action": action, "scores": {"p": 0.1 * n}, "reasons": ["x"]}
    pending = {
        "order_id": "m-1", "decided_at": T0 + n, "vector": (0.5, 1.0), "predicted": 0.25,
        "action": None, "arm": "treatment", "point": "delivery", "first": True,
        "keys": ("a", "b"), "offset": -0.5,
    }  # fmt: skip
    return MemoEntry(T0 + n, action, "treatment", 0.25, (("decision", record),), pending)


def check_memo_first_decision_stands(open_store: Callable[[], Any]) -> None:
    memo = open_store()
    assert memo.get("pt-1") is None
    first = _memo_entry("proactive_reassurance", 1)
    assert memo.remember("pt-1", first) == first
    # Another handle (another process, a restart) gets the first decision back, unchanged.
    assert open_store().get("pt-1") == first
    assert open_store().remember("pt-1", _memo_entry("none", 2)) == first
    assert open_store().get("pt-2") is None


def check_memo_is_atomic_across_handles(open_store: Callable[[], Any]) -> None:
    barrier = threading.Barrier(4)
    lock = threading.Lock()
    standing: list[Any] = []

    def worker(n: int) -> None:
        memo = open_store()
        barrier.wait()
        got = memo.remember("pt-race", _memo_entry(f"a{n}", n))
        with lock:
            standing.append(got)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({e.action for e in standing}) == 1, standing
    assert open_store().get("pt-race") == standing[0]


def check_memo_batches_answer_like_single_calls(open_store: Callable[[], Any]) -> None:
    memo = open_store()
    first, other = _memo_entry("proactive_reassurance", 1), _memo_entry("none", 2)
    assert memo.get_many([]) == [] and memo.remember_many([]) == []
    assert memo.remember("pt-b1", first) == first
    # In order, absent points as None, a repeated point answered twice.
    assert open_store().get_many(["pt-b0", "pt-b1", "pt-b0", "pt-b1"]) == [
        None, first, None, first,
    ]  # fmt: skip
    # A batch write: new points take their entry, a point another writer holds keeps its.
    new = _memo_entry("exchange_first_offer", 3)
    standing = open_store().remember_many([("pt-b2", new), ("pt-b1", other), ("pt-b3", other)])
    assert standing == [new, first, other]
    assert standing[0] is new  # the caller's own entry when it was written
    assert memo.get_many(["pt-b2", "pt-b3"]) == [new, other]
    assert open_store().remember("pt-b2", first) == new
    # A batch larger than a store sends in one call, some of its points already held.
    points = [f"pt-many-{i}" for i in range(250)]
    for point in points[::7]:
        memo.remember(point, first)
    standing = open_store().remember_many([(point, other) for point in points])
    assert standing == [first if i % 7 == 0 else other for i in range(250)]
    assert open_store().get_many(points) == standing


# --- every store: the domain's protocol ---------------------------------------------------

#: The domain protocol (``operators.stores``) each kind of store implements.
PROTOCOLS: dict[str, type] = {
    "context": stores.ContextStore,
    "cases": stores.CaseStore,
    "dispatch": stores.DispatchLedger,
    "models": stores.ModelStore,
    "credit": stores.CreditLedger,
    "contacts": stores.ContactBook,
    "retries": stores.RetryQueue,
    "memo": DecisionMemo,
}


def protocol_members(protocol: type) -> dict[str, inspect.Signature]:
    """The methods a protocol declares (what the domain may call), with their signatures."""
    return {
        name: inspect.signature(value)
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    }


def _implements(kind: str) -> Check:
    protocol = PROTOCOLS[kind]

    def check_implements_the_domain_protocol(open_store: Callable[[], Any]) -> None:
        """Every method the domain may call exists, and takes the protocol's parameters
        by the same names in the same order (extra optional parameters are allowed)."""
        store = open_store()
        for name, expected in protocol_members(protocol).items():
            method = getattr(store, name, None)
            assert callable(method), f"{type(store).__name__} has no {name}()"
            got = list(inspect.signature(method).parameters.values())
            want = [p for p in expected.parameters.values() if p.name != "self"]
            assert [p.name for p in got[: len(want)]] == [p.name for p in want], (
                f"{type(store).__name__}.{name}{inspect.signature(method)} does not take "
                f"{protocol.__name__}.{name}{expected}"
            )
            extra = got[len(want) :]
            assert all(p.default is not inspect.Parameter.empty for p in extra), (
                f"{type(store).__name__}.{name} requires parameters the domain never passes"
            )

    check_implements_the_domain_protocol.__name__ = f"check_{kind}_implements_the_protocol"
    return check_implements_the_domain_protocol


CHECKS: dict[str, tuple[Check, ...]] = {
    "context": (
        check_context_unknown_reads_give_the_prior,
        check_context_one_outcome_by_hand,
        check_context_matches_the_reference_bit_for_bit,
    ),
    "cases": (check_case_round_trip, check_case_orders_are_independent),
    "dispatch": (
        check_dispatch_claims_are_at_most_once_across_handles,
        check_dispatch_release_and_delivery,
        check_dispatch_only_dead_letters_reopen,
    ),
    "credit": CREDIT_CHECKS,
    "contacts": CONTACT_CHECKS,
    "retries": (
        check_retry_park_take_and_done,
        check_retry_items_are_taken_once_across_handles,
        check_retry_bury_and_unbury,
    ),
    "models": (check_models_keep_the_newest_versions,),
    "memo": (
        check_memo_first_decision_stands,
        check_memo_is_atomic_across_handles,
        check_memo_batches_answer_like_single_calls,
    ),
}
CHECKS = {kind: (_implements(kind), *checks) for kind, checks in CHECKS.items()}


def yield_checks(kind: str) -> Iterator[Check]:
    """The checks of one interface: ``context``, ``cases``, ``dispatch``, ``models``,
    ``credit``, ``contacts``, ``retries`` or ``memo``."""
    if kind not in CHECKS:
        raise ValueError(f"unknown store kind {kind!r}; expected one of {sorted(CHECKS)}")
    yield from CHECKS[kind]
