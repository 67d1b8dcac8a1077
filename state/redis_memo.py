"""The decision memo in Redis (live mode): shared by every worker and process, and kept
across restarts (with Redis persistence on: see docs/operations.md).

One key per decision point (``operators.memo.decision_point``, a hash of order id, trigger
event id and policy version)::

    <prefix>:{memo:<point>}:decision    string   the first decision's MemoEntry, as JSON

``remember`` is one ``SET NX EX``: of two writers the first wins, and the second reads the
winner back. ``get_many`` and ``remember_many`` do the same for a batch of points in one
pipeline (not a transaction: each ``SET NX`` is atomic on its own, which is all a point
needs; in a Redis Cluster the client splits the pipeline by node).

Entries expire after ``ttl_seconds``, by default the open-case TTL of the
Redis stores (60 days): longer than any case stays open, so a point can only be re-decided
after its case could no longer be re-read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.cluster import RedisCluster

from operators.case import DAY
from operators.memo import MemoEntry
from state.redis_conn import DEFAULT_PREFIX, KeyLayout
from state.redis_scripts import _SET_NX_LUA, ScriptCall, per_call, run_scripts

MEMO_TTL_SECONDS = int(60 * DAY)


class RedisDecisionMemo:
    """A :class:`~operators.memo.DecisionMemo` in Redis."""

    #: Points written by one script call on one server (``remember_many``; one on a cluster).
    POINTS_PER_CALL = 100

    def __init__(
        self, client: Any, prefix: str = DEFAULT_PREFIX, ttl_seconds: int = MEMO_TTL_SECONDS
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        self.client = client
        self.prefix = KeyLayout(prefix).prefix  # validated like every store's prefix
        self.ttl_seconds = int(ttl_seconds)
        self._set_nx = client.register_script(_SET_NX_LUA)

    def key(self, point: str) -> str:
        if not point:
            raise ValueError("empty decision point")
        return f"{self.prefix}:{{memo:{point}}}:decision"

    def get(self, point: str) -> MemoEntry | None:
        raw = self.client.get(self.key(point))
        return MemoEntry.from_json(orjson.loads(raw)) if raw is not None else None

    def get_many(self, points: Sequence[str]) -> list[MemoEntry | None]:
        if not points:
            return []
        keys = [self.key(point) for point in points]
        # One MGET, not a pipeline of GETs (a command object each in redis-py); a cluster
        # client splits it by slot and puts the replies back in order.
        if isinstance(self.client, RedisCluster):
            raws = self.client.mget_nonatomic(keys)
        else:
            raws = self.client.mget(keys)
        return [MemoEntry.from_json(orjson.loads(raw)) if raw is not None else None for raw in raws]

    def remember_many(self, entries: Sequence[tuple[str, MemoEntry]]) -> list[MemoEntry]:
        if not entries:
            return []
        values = [orjson.dumps(entry.to_json()) for _, entry in entries]
        keys = [self.key(point) for point, _ in entries]
        # Script calls of many points, not a pipeline of SETs (a command object each in
        # redis-py, several times the script's packing); one point a call on a cluster.
        size = per_call(self.client, self.POINTS_PER_CALL)
        calls: list[ScriptCall] = [
            (self._set_nx, keys[i : i + size], [self.ttl_seconds, *values[i : i + size]])
            for i in range(0, len(keys), size)
        ]
        written = [flag for reply in run_scripts(self.client, calls) for flag in reply]
        # A point another writer holds: read its entry back (rare; one call each).
        return [
            entry if ok else self.remember(point, entry)
            for (point, entry), ok in zip(entries, written, strict=True)
        ]

    def remember(self, point: str, entry: MemoEntry) -> MemoEntry:
        key = self.key(point)
        if self.client.set(key, orjson.dumps(entry.to_json()), nx=True, ex=self.ttl_seconds):
            return entry
        raw = self.client.get(key)
        if raw is None:  # expired in between: ours is as good as any
            self.client.set(key, orjson.dumps(entry.to_json()), nx=True, ex=self.ttl_seconds)
            return entry
        return MemoEntry.from_json(orjson.loads(raw))
