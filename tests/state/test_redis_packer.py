"""The lean RESP packer writes exactly what redis-py's packer writes, or leaves it to it."""

from __future__ import annotations

import enum

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from state.redis_conn import connect
from state.redis_packer import LeanPacker, install

STOCK = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)

plain = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)


def wire(packed: list[bytes]) -> bytes:
    return b"".join(bytes(chunk) for chunk in packed)


@given(st.sampled_from(["SET", b"EVALSHA", "HGETALL", "GET"]), st.lists(plain, max_size=12))
def test_plain_arguments_are_packed_byte_for_byte_as_redis_py_packs_them(name, args):
    assert wire(LeanPacker().pack(name, *args)) == wire(STOCK.pack(name, *args))


class Kind(enum.StrEnum):
    CASE = "case"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "args",
    [
        ("CONFIG GET", "maxmemory"),  # a two-word command name, split by redis-py
        (b"SCRIPT LOAD", "return 1"),
        ("SET", Kind.CASE, "v"),  # an enum: str and int subclasses take redis-py's path
        ("SET", "k", Level.HIGH),
        ("SET", "k", memoryview(b"abc")),
        ("SET", "k", bytearray(b"abc")),
        ("SET", "k", b"x" * 10_000),  # past redis-py's buffer cut-off: sent in pieces
    ],
)
def test_anything_else_is_packed_by_redis_py(args):
    assert wire(LeanPacker().pack(*args)) == wire(STOCK.pack(*args))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_an_argument_redis_cannot_take_raises_redis_pys_error(bad):
    with pytest.raises(redis.DataError):
        LeanPacker().pack("SET", "k", bad)


def test_installed_clients_use_it_and_talk_to_a_real_server(redis_url):
    client = connect(redis_url)
    assert isinstance(client.connection_pool.connection_kwargs["command_packer"], LeanPacker)
    client.set("packer:k", 1.5, ex=60)
    client.hset("packer:h", mapping={"a": "é", "b": b"\x00\xff", "c": 7})
    assert client.get("packer:k") == b"1.5"
    assert client.hgetall("packer:h") == {b"a": "é".encode(), b"b": b"\x00\xff", b"c": b"7"}
    assert client.config_get("maxmemory")  # a two-word command goes through as well


def test_each_node_of_a_cluster_gets_it(redis_cluster_url):
    client = install(connect(redis_cluster_url))
    nodes = client.get_nodes()
    assert len(nodes) == 3
    for node in nodes:
        packer = node.redis_connection.connection_pool.connection_kwargs["command_packer"]
        assert isinstance(packer, LeanPacker)
    keys = [f"packer:{{n{i}}}:k" for i in range(20)]  # spread over the nodes
    for i, key in enumerate(keys):
        client.set(key, i)
    assert client.mget_nonatomic(keys) == [str(i).encode() for i in range(20)]
