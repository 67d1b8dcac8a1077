"""One store contract (``state.checks``), every implementation: in memory, one redis-server
and a 3-node Redis Cluster (the servers are started by ``tests/conftest.py``).

Each kind of store is checked against its domain protocol (``operators.stores``) and its
behaviour: the same checks, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from operators.credit import InMemoryCreditLedger
from state.cases import InMemoryCaseStore
from state.checks import CHECKS, PROTOCOLS, Check, yield_checks
from state.contacts import InMemoryContactBook
from state.context import InMemoryContextStore
from state.dispatch import InMemoryDispatchLedger
from state.memo import InMemoryDecisionMemo
from state.models import InMemoryModelStore
from state.redis_conn import RedisClient, connect
from state.redis_credit import RedisContactBook, RedisCreditLedger
from state.redis_memo import RedisDecisionMemo
from state.redis_retry import RedisRetryQueue
from state.redis_store import (
    RedisCaseStore,
    RedisContextStore,
    RedisDispatchLedger,
    RedisModelStore,
)
from state.retry import InMemoryRetryQueue

#: The Redis servers: fixture name per implementation.
SERVERS = {"redis": "redis_url", "cluster": "redis_cluster_url"}

IN_MEMORY: dict[str, Callable[[], Any]] = {
    "context": InMemoryContextStore,
    "cases": InMemoryCaseStore,
    "dispatch": InMemoryDispatchLedger,
    "models": lambda: InMemoryModelStore(keep=3),
    "credit": InMemoryCreditLedger,
    "contacts": InMemoryContactBook,
    "retries": InMemoryRetryQueue,
    "memo": InMemoryDecisionMemo,
}
REDIS: dict[str, Callable[[RedisClient], Any]] = {
    "context": RedisContextStore,
    "cases": RedisCaseStore,
    "dispatch": RedisDispatchLedger,
    "models": lambda c: RedisModelStore(c, keep=3),
    "credit": RedisCreditLedger,
    "contacts": RedisContactBook,
    "retries": RedisRetryQueue,
    "memo": RedisDecisionMemo,
}


def _contract_cases() -> list[Any]:
    cases = []
    for kind, checks in CHECKS.items():
        for check in checks:
            name = check.__name__.removeprefix("check_")
            cases.append(pytest.param("memory", kind, check, id=f"memory-{name}"))
            for impl in sorted(SERVERS):
                mark = pytest.mark.services
                cases.append(pytest.param(impl, kind, check, id=f"{impl}-{name}", marks=mark))
    return cases


def test_every_kind_has_both_implementations_and_a_protocol() -> None:
    assert set(CHECKS) == set(IN_MEMORY) == set(REDIS) == set(PROTOCOLS)


@pytest.mark.parametrize(("impl", "kind", "check"), _contract_cases())
def test_store_contract(impl: str, kind: str, check: Check, request: pytest.FixtureRequest) -> None:
    """One contract, every implementation: in memory, one redis-server, a Redis Cluster."""
    if impl == "memory":
        shared = IN_MEMORY[kind]()
        check(lambda: shared)
        return
    url = request.getfixturevalue(SERVERS[impl])
    clients: list[RedisClient] = []

    def open_store() -> Any:  # a new client on the same server: another worker or process
        clients.append(connect(url))
        return REDIS[kind](clients[-1])

    try:
        check(open_store)
    finally:
        for c in clients:
            c.close()


def test_the_protocol_check_catches_a_store_that_drifted() -> None:
    """A store whose method lost a parameter, or lacks one, fails the protocol check."""

    class Drifted(InMemoryContactBook):
        def admit(self, order_id: str, contact_id: str) -> bool:  # type: ignore[override]  # the drift under test
            return True

    class Partial:
        def count(self, order_id: str) -> int:
            return 0

    (protocol_check, *_) = yield_checks("contacts")
    for broken in (Drifted(), Partial()):
        with pytest.raises(AssertionError):
            protocol_check(lambda store=broken: store)
    protocol_check(lambda: InMemoryContactBook())
