"""Redis stores against a real redis-server and a real 3-node Redis Cluster: parity with the
in-memory stores (the store contract itself runs in ``tests/state/test_store_contract.py``),
key layout, TTLs, at-most-once dispatch, model retention, the case store and its Bytewax
sink.

Every test that takes ``store_url`` or ``client`` runs twice: against one redis-server and
against a Redis Cluster, where a multi-key script or transaction whose keys are not in one
hash slot fails with CROSSSLOT. URL parsing and masking are pure unit tests (no server).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.case_sink import CaseStoreSink, attach_case_store, write_case_records
from flows.dataflow import FlowParts, build_streams
from operators.case import DAY
from operators.contract import format_ts
from operators.engine import DecisionEngine
from operators.masking import mask_url
from operators.policy import RecoveryPolicy
from state.cases import InMemoryCaseStore
from state.checks import FAMILIES, LANES, T0, random_outcomes
from state.context import InMemoryContextStore
from state.models import InMemoryModelStore
from state.redis_conn import (
    KeyLayout,
    RedisClient,
    RedisConfigError,
    RedisStoreConfig,
    connect,
    key_slot,
    parse_url,
)
from state.redis_store import (
    RedisCaseStore,
    RedisContextStore,
    RedisDispatchLedger,
    RedisModelStore,
    RedisStores,
)

#: The servers every Redis test runs against: fixture name per implementation.
SERVERS = {"redis": "redis_url", "cluster": "redis_cluster_url"}


def assert_same_context(
    mem: InMemoryContextStore, red: RedisContextStore, customers: list[str], now: float
) -> None:
    for cid in customers:
        assert red.customer(cid) == mem.customer(cid), cid
    for family in [*FAMILIES, "never-seen"]:
        assert red.family_rate(family, now) == mem.family_rate(family, now), family
    for lane in [*LANES, "never:seen"]:
        assert red.lane_refund_rate(lane, now) == mem.lane_refund_rate(lane, now), lane
        assert red.lane_delay_rate(lane, now) == mem.lane_delay_rate(lane, now), lane


@pytest.fixture(params=sorted(SERVERS))
def store_url(request: pytest.FixtureRequest) -> str:
    """A flushed redis-server, then a flushed Redis Cluster (``redis+cluster://``)."""
    return str(request.getfixturevalue(SERVERS[request.param]))


@pytest.fixture
def client(store_url: str) -> Iterator[RedisClient]:
    c = connect(store_url)
    yield c
    c.close()


# --- URLs, masking, settings (no server) -----------------------------------------------------


def test_rediss_url_parses_to_tls_with_decoded_password() -> None:
    kw = parse_url("rediss://app:p%40ss%3Aw0rd@cache.internal:6380/2")
    assert kw == {
        "host": "cache.internal",
        "port": 6380,
        "db": 2,
        "username": "app",
        "password": "p@ss:w0rd",
        "ssl": True,
    }
    client = connect("rediss://app:p%40ss%3Aw0rd@cache.internal:6380/2")
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert client.connection_pool.connection_kwargs["password"] == "p@ss:w0rd"
    assert connect("redis://cache/0").connection_pool.connection_class is redis.Connection


@pytest.mark.parametrize(
    "url",
    [
        "http://u:topsecret@cache:6379/0",
        "redis://u:topsecret@cache:port/0",
        "redis://:topsecret@/0",
    ],
)
def test_bad_urls_are_rejected_without_showing_the_password(url: str) -> None:
    with pytest.raises(RedisConfigError) as info:
        parse_url(url)
    assert "topsecret" not in str(info.value)


def test_password_comes_from_the_environment_when_the_url_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALVAGE_REDIS_PASSWORD", "from-env")
    kwargs = connect("redis://cache:6379/0").connection_pool.connection_kwargs
    assert kwargs["password"] == "from-env"
    kwargs = connect("redis://:in-url@cache:6379/0").connection_pool.connection_kwargs
    assert kwargs["password"] == "in-url"
    kwargs = connect("redis://:in-url@cache/0", password="given").connection_pool.connection_kwargs
    assert kwargs["password"] == "given"


def test_store_config_from_env_and_its_repr_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALVAGE_REDIS_URL", "rediss://:hunter22@cache:6380/1")
    monkeypatch.setenv("SALVAGE_REDIS_PREFIX", "shop7")
    monkeypatch.setenv("SALVAGE_CASE_TTL_DAYS", "30")
    config = RedisStoreConfig.from_env()
    assert (config.prefix, config.case_closed_ttl_days) == ("shop7", 30.0)
    assert "hunter22" not in repr(config) and "hunter22" not in config.masked_url
    over = RedisStoreConfig.from_env(url="redis://cache/0", ca_file=None, case_open_ttl_days=7)
    assert (over.url, over.case_open_ttl_days, over.case_closed_ttl_days) == (
        "redis://cache/0",
        7,
        30.0,
    )
    monkeypatch.setenv("SALVAGE_CASE_TTL_DAYS", "ninety")
    with pytest.raises(RedisConfigError, match="SALVAGE_CASE_TTL_DAYS"):
        RedisStoreConfig.from_env()


# --- key layout (no server) -------------------------------------------------------------------


def test_keys_of_one_entity_share_a_slot_and_entities_spread() -> None:
    keys = KeyLayout("salvage")
    for oid in ["o-1", "o{2}", "weird}:id", "ü-3"]:
        assert len({key_slot(k) for k in keys.case_keys(oid)}) == 1, oid
    for name in ["return_propensity", "recover"]:
        model = [keys.model_versions(name), keys.model_blobs(name), keys.model_latest(name)]
        assert len({key_slot(k) for k in model}) == 1
    slots = {key_slot(keys.customer(f"c{i}")) for i in range(200)}
    assert len(slots) > 150  # customers spread over the cluster, not one hot slot
    assert keys.case("o-1") == "salvage:{order:o-1}:case"
    with pytest.raises(RedisConfigError):
        KeyLayout("bad{prefix}")
    with pytest.raises(ValueError, match="empty"):
        keys.customer("")


# --- context ----------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_context_matches_in_memory_for_the_same_outcomes(client: RedisClient, seed: int) -> None:
    outcomes = random_outcomes(seed, 600)
    mem = InMemoryContextStore()
    red = RedisContextStore(client, flush_max_pending=10_000)
    customers = sorted({o["customer_id"] for o in outcomes if o["customer_id"]})
    # Interleave writes and reads as the flow does, one "batch" of 50 at a time.
    for start in range(0, len(outcomes), 50):
        for o in outcomes[start : start + 50]:
            mem.record_outcome(o)
            red.record_outcome(o)
        red.flush()
        now = outcomes[start]["resolved_at_ts"] + DAY
        assert_same_context(mem, red, customers[:10], now)
    for now in (T0, outcomes[-1]["resolved_at_ts"], outcomes[-1]["resolved_at_ts"] + 40 * DAY):
        assert_same_context(mem, red, customers, now)
    # A second store (another worker or a restart) reads the same numbers from Redis.
    assert_same_context(mem, RedisContextStore(client, cache_seconds=0), customers, T0 + 9 * DAY)


@pytest.mark.services
def test_outcomes_wait_for_flush_then_are_visible(client: RedisClient) -> None:
    red = RedisContextStore(client, flush_max_pending=1000, flush_max_delay=3600)
    o = random_outcomes(5, 1)[0] | {"customer_id": "c1", "outcome": "refunded"}
    assert red.customer("c1") is None  # cached as unknown
    red.record_outcome(o)
    assert red.pending == 1
    assert red.customer("c1") is None  # lags until the batch is flushed
    assert red.flush() == 1
    stats = red.customer("c1")
    assert stats is not None and (stats.orders, stats.refunds) == (1, 1)


@pytest.mark.services
def test_flush_runs_by_itself_when_full_or_old(client: RedisClient) -> None:
    clock = [0.0]
    red = RedisContextStore(
        client, flush_max_pending=3, flush_max_delay=2.0, clock=lambda: clock[0]
    )
    base = {"outcome": "kept", "order_value": 10.0, "resolved_at_ts": T0}
    for i in range(3):
        red.record_outcome(base | {"customer_id": f"c{i}"})
    assert red.pending == 0  # the third filled the buffer
    red.record_outcome(base | {"customer_id": "late"})
    clock[0] = 1.0
    red.family_rate("shoes", T0)
    assert red.pending == 1
    clock[0] = 2.5
    red.family_rate("shoes", T0)  # any read flushes an old buffer
    assert red.pending == 0
    clock[0] = 10.0
    red.record_outcome(base | {"customer_id": "a"})
    clock[0] = 12.5
    red.record_outcome(base | {"customer_id": "b"})  # ...and so does a write
    assert red.pending == 0
    assert RedisContextStore(client).customer("late") is not None


@pytest.mark.services
def test_read_cache_serves_stale_rates_until_its_ttl(client: RedisClient) -> None:
    clock = [0.0]
    reader = RedisContextStore(client, cache_seconds=5.0, clock=lambda: clock[0])
    writer = RedisContextStore(client)
    assert reader.family_rate("shoes", T0) == reader.prior_refund_rate
    trips = reader.round_trips
    for _ in range(10):
        writer.record_outcome(
            {"outcome": "refunded", "sku_family": "shoes", "resolved_at_ts": T0, "refund_value": 1}
        )
    writer.flush()
    clock[0] = 4.9
    assert reader.family_rate("shoes", T0) == reader.prior_refund_rate  # cached
    assert reader.round_trips == trips
    clock[0] = 5.1
    expected = writer.family_rate("shoes", T0)
    assert expected > reader.prior_refund_rate
    assert reader.family_rate("shoes", T0) == expected
    assert reader.round_trips == trips + 1


@pytest.mark.services
def test_prefetch_loads_a_batch_of_customers_in_one_round_trip(client: RedisClient) -> None:
    writer = RedisContextStore(client, flush_max_pending=10_000)
    mem = InMemoryContextStore()
    for o in random_outcomes(9, 400, customers=80):
        writer.record_outcome(o)
        mem.record_outcome(o)
    writer.flush()
    reader = RedisContextStore(client)
    ids = [f"c{i}" for i in range(100)]  # 20 of them were never seen
    fetched = reader.prefetch(ids, families=["shoes", "skincare"], lanes=["dhl:DE-NL"])
    assert fetched == 103
    assert reader.round_trips == 1
    for cid in ids:
        assert reader.customer(cid) == mem.customer(cid)
    assert reader.family_rate("shoes", T0) == mem.family_rate("shoes", T0)
    assert reader.lane_delay_rate("dhl:DE-NL", T0) == mem.lane_delay_rate("dhl:DE-NL", T0)
    assert reader.round_trips == 1
    assert reader.prefetch(ids) == 0  # all fresh in the cache


@pytest.mark.services
def test_a_prepared_engine_decides_a_batch_from_one_customer_fetch(client: RedisClient) -> None:
    """Live mode hands the engine each batch before the cases: the customers of the batch's
    orders (named by their ``order_placed``, remembered for their later events) are read
    in one round trip, and the decisions match those of an unprepared engine."""
    from operators.window import CaseWindow, WindowConfig
    from tests.helpers import event
    from tests.operators.test_engine import late_parcel

    writer = RedisContextStore(client, flush_max_pending=10_000)
    for o in random_outcomes(3, 200, customers=20):
        writer.record_outcome(o)
    writer.flush()
    orders = [late_parcel(f"o-{i}", 0, 300.0, f"c{i}") for i in range(8)]

    def decide(prepared: bool) -> tuple[list[Any], int]:
        store = RedisContextStore(client)
        engine = DecisionEngine(RecoveryPolicy.default(), context=store)
        windows = {f"o-{i}": CaseWindow(f"o-{i}", engine, WindowConfig()) for i in range(8)}
        out: list[Any] = []
        for batch in zip(*orders, strict=True):  # every order's placed, then every delay
            events = [event(b) for b in batch]
            if prepared:
                engine.prepare(events)
            for e in events:
                out += [r for k, r in windows[e.order_id].on_event(e)[0] if k == "decision"]
        return out, store.round_trips

    plain, plain_trips = decide(prepared=False)
    batched, batched_trips = decide(prepared=True)
    assert batched == plain and len(plain) == 16
    # Eight customer reads (one at each order's first decision; the delays find them in
    # the store's cache) became one fetch; the family and lane reads are the same.
    assert plain_trips - batched_trips == 8 - 1


@pytest.mark.services
def test_context_keys_have_the_documented_ttls(client: RedisClient) -> None:
    red = RedisContextStore(client, customer_ttl_days=10)
    red.record_outcome(
        {"customer_id": "c1", "outcome": "kept", "sku_family": "shoes",
         "courier_lane": "dhl:DE-NL", "resolved_at_ts": T0}
    )  # fmt: skip
    red.flush()
    keys = red.keys
    assert 9 * DAY < client.ttl(keys.customer("c1")) <= 10 * DAY
    assert client.ttl(keys.family("shoes")) == -1  # few keys, kept
    assert client.ttl(keys.lane("dhl:DE-NL")) == -1


# --- dispatch ---------------------------------------------------------------------------------


@pytest.mark.services
def test_dispatch_claim_many_in_one_pipeline_and_the_ttls(client: RedisClient) -> None:
    ledger = RedisDispatchLedger(client)
    assert ledger.claim("iv-7", 3600)
    assert ledger.claim_many(["iv-1", "iv-7", "iv-new", "iv-new"], 3600) == [
        True,
        False,
        True,
        False,
    ]
    assert ledger.claim_many([], 3600) == []
    assert 3500 < client.ttl(ledger.keys.dispatch("iv-7")) <= 3600
    ledger.mark_delivered("iv-7", "delivered", 86400)
    assert client.ttl(ledger.keys.dispatch("iv-7")) > 86000
    with pytest.raises(ValueError, match="ttl_seconds"):
        ledger.claim("iv-b", 0)


# --- models -----------------------------------------------------------------------------------


@pytest.mark.services
def test_model_store_keeps_the_last_versions_and_a_latest_pointer(
    client: RedisClient, store_url: str
) -> None:
    store = RedisModelStore(client, keep=3)
    mem = InMemoryModelStore(keep=3)
    assert store.latest("propensity") is None

    def blob(version: int) -> bytes:
        return f"state-{version}".encode() + bytes(range(256))  # binary-safe

    for version in (1, 2, 5, 3, 4, 6):
        store.save("propensity", version, blob(version))
        mem.save("propensity", version, blob(version))
        assert store.latest("propensity") == mem.latest("propensity")
    assert store.versions("propensity") == [4, 5, 6]
    assert store.load("propensity", 2) is None
    assert store.load("propensity", 5) == blob(5)
    assert client.get(store.keys.model_latest("propensity")) == b"6"
    assert client.hlen(store.keys.model_blobs("propensity")) == 3
    store.save("propensity", 2, b"too old")  # older than every kept version: dropped
    assert store.versions("propensity") == [4, 5, 6]
    fresh = RedisModelStore(connect(store_url))  # a restarted process
    assert fresh.latest("propensity") == (6, blob(6))
    assert client.ttl(store.keys.model_blobs("propensity")) == -1
    assert store.latest("other") is None


# --- credit --------------------------------------------------------------------------------


@pytest.mark.services
def test_a_prefetched_credit_ledger_answers_as_redis_until_the_next_prefetch(
    store_url: str,
) -> None:
    from operators.credit import WINDOW_SECONDS
    from state.redis_credit import RedisCreditLedger

    writer, reader = connect(store_url), connect(store_url)
    ledger = RedisCreditLedger(reader, "cp")
    other = RedisCreditLedger(writer, "cp")  # another process
    for days, amount in ((0, 5.0), (10, 7.25), (25, 1.1)):
        other.reserve("c1", T0 + days * DAY, amount, 100.0)
    other.reserve("c3", T0, 4.0, 100.0, grant_id="g3")
    writer.hdel(other.keys("c3")[1], "g3")  # a grant whose amount is gone counts 0
    customers = ["c1", "c2", "c3", "c1"] + [f"empty-{i}" for i in range(150)]
    assert ledger.prefetch(customers) == 153
    times = [T0, T0 + 10 * DAY, T0 + WINDOW_SECONDS, T0 + WINDOW_SECONDS + 1, T0 + 60 * DAY]
    fresh = RedisCreditLedger(writer, "cp")  # never prefetched: reads Redis each time
    for cid in ("c1", "c2", "c3", "empty-149"):
        for now in times:
            assert ledger.used(cid, now) == fresh.used(cid, now), (cid, now)
    assert ledger.used("c1", T0 + 25 * DAY) == 5.0 + 7.25 + 1.1
    # Until the next prefetch another process's grant is not seen; this ledger's own is.
    other.grant("c2", T0, 3.0)
    assert ledger.used("c2", T0) == 0.0
    assert ledger.reserve("c1", T0 + 25 * DAY, 2.0, 100.0) == 2.0
    assert ledger.used("c1", T0 + 25 * DAY) == fresh.used("c1", T0 + 25 * DAY)
    ledger.prefetch(["c1"])  # replaces what was read: c2 is read from Redis again
    assert ledger.used("c2", T0) == 3.0
    assert ledger.prefetch([]) == 0


# --- cases ------------------------------------------------------------------------------------


def _case_records(order_id: str, n_decisions: int) -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = [
        ("case", {"order_id": order_id, "stage": "open", "as_of": "2026-06-01T00:00:00Z"})
    ]
    for i in range(n_decisions):
        items.append(
            (
                "decision",
                {"order_id": order_id, "trigger_event_id": f"e{i}", "action": "none",
                 "reasons": [f"P(refund)=0.{i}"], "scores": {"abuse_risk": 0.1}},
            )
        )  # fmt: skip
    items.append(("intervention", {"order_id": order_id, "intervention_id": f"iv-{order_id}"}))
    items.append(("case", {"order_id": order_id, "stage": "at_risk"}))
    return items


@pytest.mark.services
def test_case_store_round_trip_matches_in_memory(client: RedisClient) -> None:
    red = RedisCaseStore(client)
    mem = InMemoryCaseStore()
    items = _case_records("o1", 3) + _case_records("o2", 2)
    items.append(("outcome", {"order_id": "o1", "outcome": "kept"}))
    # An order's later view and outcome in the same batch replace its earlier ones.
    items.insert(3, ("case", {"order_id": "o2", "stage": "delivered"}))
    items.append(("outcome", {"order_id": "o1", "outcome": "refunded"}))
    assert red.write_batch(items) == len(items)
    write_case_records(mem, items)
    for oid in ("o1", "o2"):
        assert red.get(oid) == mem.get(oid)
    assert red.get("o1")["view"]["stage"] == "at_risk"  # the latest view wins
    assert red.get("o1")["outcome"]["outcome"] == "refunded"
    assert red.get("unknown") is None
    red.put_outcome("o2", {"outcome": "refunded"})
    assert red.get("o2")["outcome"] == {"outcome": "refunded", "order_id": "o2"}


@pytest.mark.services
def test_a_batch_of_many_orders_is_written_as_one_order_at_a_time_would_be(
    client: RedisClient,
) -> None:
    # More orders than one script call takes, orders of every size (one with nothing but a
    # view), an order with an outcome among open ones: each order's case as in memory, and
    # each order's TTL its own.
    red = RedisCaseStore(client, open_ttl_days=20, closed_ttl_days=90)
    mem = InMemoryCaseStore()
    count = 2 * RedisCaseStore.ORDERS_PER_CALL + 7
    items: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        oid = f"m{i}"
        items += _case_records(oid, i % 4) if i % 5 else [("case", {"order_id": oid})]
    items.append(("outcome", {"order_id": "m130", "outcome": "kept"}))
    assert red.write_batch(items) == len(items)
    write_case_records(mem, items)
    for i in range(count):
        assert red.get(f"m{i}") == mem.get(f"m{i}"), i
    assert 89 * DAY < client.ttl(red.keys.case("m130")) <= 90 * DAY
    assert 19 * DAY < client.ttl(red.keys.case("m131")) <= 20 * DAY


@pytest.mark.services
def test_case_lists_are_bounded_and_replays_do_not_duplicate(client: RedisClient) -> None:
    red = RedisCaseStore(client, max_list=4)
    items = _case_records("o1", 6)
    red.write_batch(items)
    red.write_batch(items)  # a replay or a resume writes the same records again
    case = red.get("o1")
    assert [d["trigger_event_id"] for d in case["decisions"]] == ["e2", "e3", "e4", "e5"]
    assert len(case["interventions"]) == 1


@pytest.mark.services
def test_case_keys_expire_open_ttl_then_closed_ttl_after_the_outcome(client: RedisClient) -> None:
    red = RedisCaseStore(client, open_ttl_days=20, closed_ttl_days=90)
    red.write_batch(_case_records("o1", 1))
    keys = red.keys.case_keys("o1")
    for key in keys:
        assert 19 * DAY < client.ttl(key) <= 20 * DAY, key
    red.put_outcome("o1", {"outcome": "kept"})
    for key in keys:
        assert 89 * DAY < client.ttl(key) <= 90 * DAY, key
    assert len({key_slot(k.decode()) for k in client.keys("salvage:{order:o1}:*")}) == 1


@pytest.mark.services
def test_case_store_rejects_records_it_cannot_file(client: RedisClient) -> None:
    red = RedisCaseStore(client)
    with pytest.raises(ValueError, match="unknown case record kind"):
        red.write_batch([("example", {"order_id": "o1"})])
    with pytest.raises(ValueError, match="without an order_id"):
        red.write_batch([("decision", {"action": "none"})])


@pytest.mark.services
def test_case_sink_writes_each_batch_to_the_store(store_url: str) -> None:
    items = _case_records("o1", 2) + _case_records("o2", 1)
    flow = Dataflow("case_sink_test")
    stream = op.input("in", flow, TestingSource(items, batch_size=3))
    op.output("out", stream, CaseStoreSink(lambda: RedisCaseStore(connect(store_url))))
    run_main(flow)
    store = RedisCaseStore(connect(store_url))
    mem = InMemoryCaseStore()
    write_case_records(mem, items)
    assert store.get("o1") == mem.get("o1")
    assert store.get("o2") == mem.get("o2")


def _event(type_: str, order_id: str, hours: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{order_id}:{type_}:{hours:g}",
        "type": type_,
        "order_id": order_id,
        "occurred_at": format_ts(T0 + hours * 3600),
        **fields,
    }


@pytest.mark.services
def test_flow_with_case_views_fills_the_case_store(store_url: str) -> None:
    """The real dataflow with ``emit_case_views``: every order ends up in the store with
    its view, decisions and outcome, exactly as the flow emitted them."""
    promised = T0 + 48 * 3600

    item = {"sku": "s1", "sku_family": "shoes", "quantity": 1, "unit_price": 120, "unit_cost": 40}

    def placed(oid: str, cid: str) -> tuple[str, dict[str, Any], float]:
        body = _event(
            "order_placed",
            oid,
            0,
            customer_id=cid,
            currency="EUR",
            total=120,
            promised_delivery_at=format_ts(promised),
            lane="dhl:DE-NL",
            items=[item],
        )
        return ("orders", body, 0.0)

    late = format_ts(T0 + 5 * DAY)
    unhappy = {"ticket_id": "t1", "intent": "where_is_my_order", "sentiment": -0.6}
    inputs = [
        placed("o1", "c1"),
        placed("o2", "c2"),
        ("delivery", _event("delayed", "o1", 40, estimated_delivery_at=late), 0.0),
        ("support", _event("ticket_opened", "o1", 60, **unhappy), 0.0),
        ("refunds", _event("refund_requested", "o1", 70, reason="late_delivery"), 0.0),
        ("refunds", _event("refund_issued", "o1", 90, amount=120), 0.0),
        ("delivery", _event("delivered", "o2", 30), 0.0),
    ]
    parts = FlowParts(
        source=TestingSource(inputs),
        sinks={},
        decider_factory=lambda: DecisionEngine(
            RecoveryPolicy.default(), context=InMemoryContextStore()
        ),
        emit_case_views=True,
    )
    streams = build_streams(parts)
    attach_case_store(streams, lambda: RedisCaseStore(connect(store_url)))
    emitted: dict[str, list[dict[str, Any]]] = {}
    for name in ("cases", "decisions", "interventions", "outcomes"):
        emitted[name] = []
        op.output(f"test_{name}", streams.records[name], TestingSink(emitted[name]))
    run_main(streams.flow)

    store = RedisCaseStore(connect(store_url))
    for oid in ("o1", "o2"):
        case = store.get(oid)
        assert case is not None, oid
        views = [v for v in emitted["cases"] if v["order_id"] == oid]
        assert case["view"] == views[-1]
        assert case["decisions"] == [d for d in emitted["decisions"] if d["order_id"] == oid]
        ivs = [i for i in emitted["interventions"] if i["order_id"] == oid]
        assert case["interventions"] == ivs
        outcome = [o for o in emitted["outcomes"] if o["order_id"] == oid]
        assert case["outcome"] == (outcome[-1] if outcome else None)
    o1 = store.get("o1")
    assert o1["outcome"]["outcome"] == "refunded"
    assert o1["view"]["stage"] == "resolved"
    assert len(o1["decisions"]) >= 2


# --- all stores, auth -------------------------------------------------------------------------


@pytest.mark.services
def test_stores_share_one_client_and_close_flushes(store_url: str) -> None:
    stores = RedisStores.open(RedisStoreConfig(store_url, prefix="t1"))
    assert stores.context.client is stores.cases.client is stores.dispatch.client
    stores.context.record_outcome({"customer_id": "c9", "outcome": "kept", "resolved_at_ts": T0})
    stores.close()
    check = RedisContextStore(connect(store_url), "t1")
    assert check.customer("c9") is not None
    assert RedisContextStore(connect(store_url)).customer("c9") is None  # other prefix


@pytest.mark.services
def test_password_protected_server(
    redis_auth_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, password = redis_auth_server
    monkeypatch.delenv("SALVAGE_REDIS_PASSWORD", raising=False)
    with pytest.raises(redis.AuthenticationError) as info:
        connect(url).ping()
    assert password not in str(info.value)
    with_url = url.replace("redis://", f"redis://:{password}@")
    assert connect(with_url).ping()
    assert password not in mask_url(with_url)
    monkeypatch.setenv("SALVAGE_REDIS_PASSWORD", password)
    ledger = RedisDispatchLedger(connect(url))
    assert ledger.claim("iv-auth", 60)
    assert not RedisDispatchLedger(RedisStoreConfig.from_env(url).connect()).claim("iv-auth", 60)
