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

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from state.context import DAY, InMemoryContextStore

Check = Callable[[Callable[[], Any]], None]

T0 = 1_780_000_000.0  # 2026-05-28, epoch seconds
FAMILIES = ("skincare", "shoes", "outerwear", None)
LANES = ("dhl:DE-NL", "ups:FR-FR", "gls:DE-AT", None)
OUTCOMES = ("refunded", "kept", "exchanged", "chargeback", "cancelled", "open")


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
        {"customer_id": "hand-1", "outcome": "refunded", "refund_value": 40.0,
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
    outcome = {"order_id": oid, "outcome": "kept"}
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
    ),
    "models": (check_models_keep_the_newest_versions,),
}


def yield_checks(kind: str) -> Iterator[Check]:
    """The checks of one interface: ``context``, ``cases``, ``dispatch`` or ``models``."""
    if kind not in CHECKS:
        raise ValueError(f"unknown store kind {kind!r}; expected one of {sorted(CHECKS)}")
    yield from CHECKS[kind]
