"""The credit ledger and contact book contracts, against every implementation.

Written in the manner of the store contract suite (``state/checks.py`` on the scale
branch): each ``check_*`` takes ``open_store``, and every call of ``open_store`` returns a
new handle on the *same* state (the in-memory stores one shared object; the Redis stores a
new client on the same server and prefix: what another process or a restarted one sees).
The Redis runs use a real ``redis-server``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from operators.credit import WINDOW_SECONDS, InMemoryCreditLedger
from state.contacts import InMemoryContactBook
from state.redis_credit import RedisContactBook, RedisCreditLedger

T0 = 1_780_000_000.0
DAY = 86400.0
CAP = 30.0


# --- CreditLedger -------------------------------------------------------------------------


def check_credit_cap_and_window(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert ledger.used("cw-1", T0) == 0.0
    assert ledger.reserve("cw-1", T0, 12.5, CAP) == 12.5
    assert ledger.reserve("cw-1", T0 + DAY, 12.5, CAP) == 12.5
    assert ledger.reserve("cw-1", T0 + 2 * DAY, 12.5, CAP) == 5.0  # only the room left
    assert ledger.reserve("cw-1", T0 + 3 * DAY, 1.0, CAP) == 0.0  # cap used up
    other = open_store()
    assert other.used("cw-1", T0 + 3 * DAY) == 30.0
    assert other.used("cw-2", T0 + 3 * DAY) == 0.0  # customers are independent
    # The first grant leaves the window exactly 30 days after it was made.
    assert other.used("cw-1", T0 + WINDOW_SECONDS) == 17.5
    assert other.reserve("cw-1", T0 + WINDOW_SECONDS, 20.0, CAP) == 12.5
    assert other.used("cw-1", T0 + 61 * DAY) == 0.0
    ledger.grant("cw-3", T0, 50.0)  # grant does not check the cap
    ledger.grant("cw-3", T0, 0.0)  # nothing granted
    assert open_store().used("cw-3", T0) == 50.0
    assert open_store().reserve("cw-3", T0, 5.0, CAP) == 0.0


def check_credit_grant_ids_are_idempotent(open_store: Callable[[], Any]) -> None:
    ledger = open_store()
    assert ledger.reserve("ci-1", T0, 20.0, CAP, grant_id="iv-1") == 20.0
    # A restarted process re-makes the same decision: the same grant, not a second one.
    again = open_store()
    assert again.reserve("ci-1", T0 + 60, 20.0, CAP, grant_id="iv-1") == 20.0
    assert again.used("ci-1", T0 + 60) == 20.0
    assert again.reserve("ci-1", T0 + 60, 20.0, CAP, grant_id="iv-2") == 10.0
    assert again.reserve("ci-1", T0 + 60, 20.0, CAP, grant_id="iv-2") == 10.0
    assert open_store().used("ci-1", T0 + 60) == 30.0
    # A refused grant is not remembered: with room again, it is granted.
    assert again.reserve("ci-1", T0 + 60, 5.0, CAP, grant_id="iv-3") == 0.0
    assert again.reserve("ci-1", T0 + WINDOW_SECONDS + 1, 5.0, CAP, grant_id="iv-3") == 5.0


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
        want = reference.reserve(customer, t, amount, CAP, grant_id=gid)
        assert ledger.reserve(customer, t, amount, CAP, grant_id=gid) == want, n
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
        mine = [ledger.reserve("race-1", T0 + n, 1.0, CAP) for _ in range(15)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == CAP
    assert sorted(set(granted)) == [0.0, 1.0]
    assert open_store().used("race-1", T0 + 10) == CAP


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


CONTACT_CHECKS = (check_contacts_limit_per_order, check_contacts_are_atomic_across_handles)


# --- running the checks --------------------------------------------------------------------


def _shared(make: Callable[[], Any]) -> Callable[[], Any]:
    one = make()
    return lambda: one


@pytest.mark.parametrize("check", CREDIT_CHECKS, ids=lambda c: c.__name__)
def test_in_memory_credit_ledger(check: Callable[..., None]) -> None:
    check(_shared(InMemoryCreditLedger))


@pytest.mark.parametrize("check", CONTACT_CHECKS, ids=lambda c: c.__name__)
def test_in_memory_contact_book(check: Callable[..., None]) -> None:
    check(_shared(InMemoryContactBook))


@pytest.fixture
def clients(redis_url: str) -> Any:
    made: list[redis.Redis] = []

    def client() -> redis.Redis:
        made.append(redis.Redis.from_url(redis_url))
        return made[-1]

    yield client
    for c in made:
        c.close()


@pytest.mark.parametrize("check", CREDIT_CHECKS, ids=lambda c: c.__name__)
def test_redis_credit_ledger(check: Callable[..., None], clients: Any) -> None:
    check(lambda: RedisCreditLedger(clients(), "credit-test"))


@pytest.mark.parametrize("check", CONTACT_CHECKS, ids=lambda c: c.__name__)
def test_redis_contact_book(check: Callable[..., None], clients: Any) -> None:
    check(lambda: RedisContactBook(clients(), "contact-test"))


def test_redis_credit_keys_share_a_slot_and_expire_past_the_window(clients: Any) -> None:
    from state.redis_conn import key_slot

    client = clients()
    ledger = RedisCreditLedger(client, "credit-test")
    ledger.reserve("c-ttl", T0, 5.0, CAP, grant_id="iv-1")
    grants, amounts = ledger.keys("c-ttl")
    assert key_slot(grants) == key_slot(amounts)
    assert grants == "credit-test:{credit:c-ttl}:grants"
    for key in (grants, amounts):
        assert WINDOW_SECONDS < client.ttl(key) <= 31 * DAY
    book = RedisContactBook(client, "contact-test")
    book.admit("o-ttl", "iv-1", 2, 3600)
    assert 0 < client.ttl(book.key("o-ttl")) <= 3600


def test_the_in_memory_ledger_snapshots_deterministically() -> None:
    import pickle

    a, b = InMemoryCreditLedger(), InMemoryCreditLedger()
    a.reserve("z", T0, 5.0, CAP, grant_id="iv-z")
    a.reserve("y", T0, 7.0, CAP)
    b.reserve("y", T0, 7.0, CAP)
    b.reserve("z", T0, 5.0, CAP, grant_id="iv-z")
    assert pickle.dumps(a) == pickle.dumps(b)  # same grants, same bytes
    restored = pickle.loads(pickle.dumps(a))
    assert restored.used("z", T0) == 5.0
    assert restored.reserve("z", T0, 5.0, CAP, grant_id="iv-z") == 5.0  # id remembered
    assert InMemoryCreditLedger.from_state(a.state()).state() == a.state()


def test_a_resumed_replay_restores_the_ledger_in_place() -> None:
    ledger = InMemoryCreditLedger()
    ledger.reserve("c", T0, 20.0, CAP, grant_id="iv-1")
    snapshot = ledger.state()
    ledger.reserve("c", T0 + 1, 10.0, CAP, grant_id="iv-2")  # after the snapshot
    engine_holds = ledger
    engine_holds.restore(snapshot)  # the resume rolls it back with the cases
    assert ledger.used("c", T0 + 1) == 20.0
    assert ledger.reserve("c", T0 + 1, 10.0, CAP, grant_id="iv-2") == 10.0  # decided again
    assert ledger.used("c", T0 + 1) == 30.0
