"""The credit ledger, the contact book and the retry queue: what the store contract
(``state.checks``, run for every implementation in ``tests/state/test_redis_store.py``) does not
cover: Redis key layout and TTLs, and the in-memory ledger's snapshots."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from operators.case import DAY
from operators.credit import WINDOW_SECONDS, InMemoryCreditLedger
from state.redis_credit import RedisContactBook, RedisCreditLedger

T0 = 1_780_000_000.0
CAP = 30.0


@pytest.fixture
def clients(redis_url: str) -> Any:
    made: list[redis.Redis] = []

    def client() -> redis.Redis:
        made.append(redis.Redis.from_url(redis_url))
        return made[-1]

    yield client
    for c in made:
        c.close()


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


class PrefetchingLedger(InMemoryCreditLedger):
    """An in-memory ledger that records what the engine asks it to read ahead."""

    def __init__(self) -> None:
        super().__init__()
        self.prefetched: list[list[str]] = []

    def prefetch(self, customer_ids: Any) -> int:
        self.prefetched.append(list(customer_ids))
        return len(self.prefetched[-1])


def test_before_a_batch_the_engine_reads_ahead_the_credit_of_its_decision_points() -> None:
    from operators.engine import DecisionEngine
    from state.context import InMemoryContextStore
    from tests.helpers import body, event, order_placed
    from tests.operators.test_engine import make_policy

    ledger = PrefetchingLedger()
    engine = DecisionEngine(make_policy(), context=InMemoryContextStore(), ledger=ledger)
    # The customer of a later event comes from its order's order_placed, in this batch or
    # an earlier one; a tracking scan cannot be a decision point, so its customer is not read.
    engine.prepare([event(order_placed("o-1", 0, customer_id="c-1"))])
    engine.prepare(
        [
            event(order_placed("o-2", 1, customer_id="c-2")),
            event(body("delayed", "o-1", 5, estimated_delivery_at="2026-06-09T00:00:00Z")),
            event(body("in_transit", "o-2", 6)),
            event(body("delayed", "o-unknown", 7, estimated_delivery_at="2026-06-09T00:00:00Z")),
        ]
    )
    assert ledger.prefetched == [["c-1"], ["c-2", "c-1"]]
    engine.prepare([])  # an empty batch still replaces what was read: nothing stays stale
    assert ledger.prefetched[-1] == []
