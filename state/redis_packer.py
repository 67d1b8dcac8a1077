"""A leaner RESP command packer for the stores' Redis clients.

redis-py turns every command into the Redis protocol with a general packer that, per
argument, calls an encoder and rebuilds the output buffer; a live flow sends a few
thousand commands per batch (a case-store script call per order, a memo read and write
per decision point), and that packing was about a twentieth of its dataflow thread.
:class:`LeanPacker` writes the same bytes for the argument types the stores send (``bytes``,
``str``, ``int``, ``float``) in one join, and hands any other command to redis-py's own
packer, so what goes on the wire never differs:

>>> from redis.connection import PythonRespSerializer
>>> from redis._parsers.encoders import Encoder
>>> stock = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
>>> args = ("SET", "k:{o1}", b"v", "EX", 60, 0.5)
>>> b"".join(LeanPacker().pack(*args)) == b"".join(stock.pack(*args))
True
>>> LeanPacker().pack("GET", "k")
[b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n']

:func:`install` sets it on a client's connections (one node, or each node of a cluster
known when it is called; a node found later packs with redis-py's packer, the same bytes).
"""

from __future__ import annotations

from typing import Any

from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

#: redis-py's packer and encoder as every client here is configured (UTF-8, strict, bytes
#: replies): what :class:`LeanPacker` falls back to, and what it must match.
_STOCK = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)


class LeanPacker:
    """Packs a command as redis-py's ``PythonRespSerializer`` does, for plain arguments."""

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        # A command name with a space ("CONFIG GET") is split by redis-py: leave it to it.
        if (type(first) is str and " " in first) or (type(first) is bytes and b" " in first):
            return list(_STOCK.pack(*args))
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            kind = type(arg)  # exact types: a subclass (an enum, a bool) goes to redis-py
            if kind is bytes:
                raw = arg
            elif kind is str:
                raw = arg.encode()
            elif kind is int or kind is float:
                raw = repr(arg).encode()
            else:
                return list(_STOCK.pack(*args))
            out.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
        return [b"".join(out)]


def install(client: Any) -> Any:
    """Use a :class:`LeanPacker` for the connections ``client`` makes from now on (a
    ``redis.Redis``, or each node of a ``RedisCluster``). Returns ``client``."""
    packer = LeanPacker()
    pools = []
    get_nodes = getattr(client, "get_nodes", None)
    if get_nodes is not None:  # a cluster: a client per node
        pools = [node.redis_connection.connection_pool for node in get_nodes()
                 if node.redis_connection is not None]  # fmt: skip
    elif getattr(client, "connection_pool", None) is not None:
        pools = [client.connection_pool]
    for pool in pools:
        pool.connection_kwargs["command_packer"] = packer
        # Connections made before this (a cluster's first slot read) keep redis-py's packer.
    return client
