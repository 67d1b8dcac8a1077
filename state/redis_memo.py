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

from operators.case import DAY
from operators.memo import MemoEntry
from state.redis_conn import DEFAULT_PREFIX, KeyLayout

MEMO_TTL_SECONDS = int(60 * DAY)


class RedisDecisionMemo:
    """A :class:`~operators.memo.DecisionMemo` in Redis."""

    def __init__(
        self, client: Any, prefix: str = DEFAULT_PREFIX, ttl_seconds: int = MEMO_TTL_SECONDS
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        self.client = client
        self.prefix = KeyLayout(prefix).prefix  # validated like every store's prefix
        self.ttl_seconds = int(ttl_seconds)

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
        pipe = self.client.pipeline(transaction=False)
        for point in points:
            pipe.get(self.key(point))
        return [
            MemoEntry.from_json(orjson.loads(raw)) if raw is not None else None
            for raw in pipe.execute()
        ]

    def remember_many(self, entries: Sequence[tuple[str, MemoEntry]]) -> list[MemoEntry]:
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for point, entry in entries:
            pipe.set(self.key(point), orjson.dumps(entry.to_json()), nx=True, ex=self.ttl_seconds)
        written = pipe.execute()
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
