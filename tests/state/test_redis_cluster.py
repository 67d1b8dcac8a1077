"""Redis Cluster: what only a cluster can show. The store contract and the Redis store
tests run against a cluster too (``tests/state/test_redis_store.py``, ``cluster-`` ids); here:
the client a cluster URL gives, keys spread over every node, scripts after a failover
(NOSCRIPT), the CROSSSLOT refusal the hash tags avoid, live settings, and URL handling.

The cluster is three real ``redis-server --cluster-enabled yes`` processes joined by
``redis-cli --cluster create`` (``tests/fixtures/redis_server.py``).
"""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from flows.live import stores_from_settings
from flows.settings import SettingsError, load_settings
from operators.masking import mask_url
from state.redis_conn import RedisConfigError, RedisStoreConfig, connect, key_slot
from state.redis_conn import parse_url as parse_redis_url
from state.redis_store import RedisCaseStore, run_scripts
from tests.fixtures.processes import free_port


@pytest.mark.services
def test_cluster_url_gives_a_cluster_client_and_scripts_survive_a_script_flush(
    redis_cluster_url: str,
) -> None:
    client = connect(redis_cluster_url)
    assert isinstance(client, RedisCluster)
    assert len(client.get_primaries()) == 3
    assert RedisStoreConfig(redis_cluster_url).cluster
    cases = RedisCaseStore(client)
    ids = [f"o{i}" for i in range(40)]
    slots = {key_slot(cases.keys.case(oid)) for oid in ids}
    owners = {client.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) == 3  # the orders of one batch live on every node
    cases.write_batch([("case", {"order_id": oid, "stage": "open"}) for oid in ids])
    client.script_flush()  # as after a failover to a node that never saw the scripts
    cases.write_batch([("decision", {"order_id": oid, "trigger_event_id": "e1"}) for oid in ids])
    cases.write_batch([("decision", {"order_id": oid, "trigger_event_id": "e1"}) for oid in ids])
    for oid in ids:  # each decision written exactly once, none lost to NOSCRIPT
        case = cases.get(oid)
        assert case is not None and len(case["decisions"]) == 1, oid


@pytest.mark.services
def test_a_script_over_two_slots_is_refused_by_the_cluster(redis_cluster_url: str) -> None:
    """What the hash tags prevent: without them, one order's keys would span nodes."""
    client = connect(redis_cluster_url)
    store = RedisCaseStore(client)
    keys = ["untagged:o1:case", "untagged:o1:decisions", "untagged:o1:interventions", "x:seen"]
    assert len({key_slot(k) for k in keys}) > 1
    # redis-py refuses before sending; a server would answer CROSSSLOT.
    with pytest.raises((redis.RedisError, RedisClusterException), match=r"(?i)slot"):
        run_scripts(client, [(store._script, keys, [60, 60, 5, "case", "", b"{}"])])


def test_cluster_urls_parse_and_reject_what_a_cluster_cannot_do() -> None:
    assert parse_redis_url("redis+cluster://redis-0.redis:7000") == {
        "host": "redis-0.redis",
        "port": 7000,
        "username": None,
        "password": None,
        "ssl": False,
    }
    assert parse_redis_url("rediss+cluster://app:pw@cache/0")["ssl"] is True
    with pytest.raises(RedisConfigError, match="only database 0"):
        parse_redis_url("redis+cluster://:topsecret@cache:7000/3")
    with pytest.raises(RedisConfigError) as info:
        parse_redis_url("redis+clustr://:topsecret@cache:7000")
    assert "topsecret" not in str(info.value)
    assert mask_url("rediss+cluster://app:topsecret@cache:7000") == (
        "rediss+cluster://app:****@cache:7000"
    )


def test_an_unreachable_cluster_fails_with_a_connection_error_without_the_password() -> None:
    url = f"redis+cluster://:topsecret@127.0.0.1:{free_port()}"
    with pytest.raises(redis.ConnectionError) as info:
        connect(url, socket_timeout=0.5, retries=0)
    assert "topsecret" not in str(info.value)
    assert "****" in str(info.value)


@pytest.mark.services
def test_live_settings_with_a_cluster_url_open_cluster_stores(redis_cluster_url: str) -> None:
    settings = load_settings(env={"SALVAGE_REDIS_URL": redis_cluster_url})
    stores = stores_from_settings(settings)
    assert stores.kind == "redis"
    ledger, cases = stores.ledger(), stores.cases()
    assert isinstance(ledger.client, RedisCluster)
    assert ledger.claim("iv-live", 60) and not ledger.claim("iv-live", 60)
    cases.write_batch([("case", {"order_id": "o-live", "stage": "open"})])
    assert cases.get("o-live")["view"]["stage"] == "open"


def test_settings_accept_cluster_urls_only_with_known_schemes() -> None:
    url = "rediss+cluster://redis-0.redis.salvage.svc:6379"
    assert load_settings(env={"SALVAGE_REDIS_URL": url}).redis.url == url
    with pytest.raises(SettingsError, match="redis\\+cluster://"):
        load_settings(env={"SALVAGE_REDIS_URL": "cluster://redis-0:6379"})
