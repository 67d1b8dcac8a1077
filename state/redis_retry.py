"""The retry queue in Redis: parked deliveries survive restarts and are shared by every
dispatcher of a deployment (see :mod:`state.retry`).

Keys (one hash tag, so one slot on a cluster: the queue is small, deliveries waiting for
a receiver that is down)::

    <prefix>:{retry}:due      sorted set  intervention id -> due time (epoch s)
    <prefix>:{retry}:items    hash        intervention id -> parked delivery (JSON)
    <prefix>:{retry}:buried   hash        intervention id -> buried delivery (JSON)

Taking due items is one Lua script (read the due ids, move their due time past the
lease, return them), so two dispatchers never take the same item at once. Parked and
buried deliveries do not expire: they leave when delivered, buried, or re-sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.redis_conn import DEFAULT_PREFIX, KeyLayout, RedisClient
from state.retry import DEFAULT_LEASE_SECONDS, RetryItem

_TAKE_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local item = redis.call('HGET', KEYS[2], id)
  if item then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    table.insert(out, item)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

_UNBURY_LUA = """
local item = redis.call('HGET', KEYS[1], ARGV[1])
if item then redis.call('HDEL', KEYS[1], ARGV[1]) end
return item
"""


class RedisRetryQueue:
    """A :class:`~state.retry.RetryQueue` in Redis."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        p = KeyLayout(prefix).prefix
        self.due_key = f"{p}:{{retry}}:due"
        self.items_key = f"{p}:{{retry}}:items"
        self.buried_key = f"{p}:{{retry}}:buried"
        self._take = client.register_script(_TAKE_LUA)
        self._unbury = client.register_script(_UNBURY_LUA)

    def park(self, item: RetryItem) -> None:
        self.park_many([item])

    def park_many(self, items: Sequence[RetryItem]) -> None:
        """One transaction for the batch (the queue's keys share a slot)."""
        if not items:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.items_key, mapping={item.iid: item.to_json() for item in items})
        pipe.zadd(self.due_key, {item.iid: item.due_at for item in items})
        pipe.execute()

    def take_due(
        self, now: float, limit: int = 100, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[RetryItem]:
        raw = self._take(
            keys=[self.due_key, self.items_key],
            args=[repr(float(now)), int(limit), repr(float(now + lease_seconds))],
        )
        return [RetryItem.from_json(r) for r in raw]

    def done(self, intervention_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.due_key, intervention_id)
        pipe.hdel(self.items_key, intervention_id)
        pipe.execute()

    def pending(self) -> int:
        return int(self.client.zcard(self.due_key))

    def bury(self, item: RetryItem) -> None:
        self.client.hset(self.buried_key, item.iid, item.to_json())

    def buried(self, limit: int = 1000) -> list[RetryItem]:
        items = [RetryItem.from_json(v) for v in self.client.hvals(self.buried_key)]
        items.sort(key=lambda i: (i.buried_at or 0.0, i.iid))
        return items[:limit]

    def unbury(self, intervention_id: str) -> RetryItem | None:
        raw = self._unbury(keys=[self.buried_key], args=[intervention_id])
        return RetryItem.from_json(raw) if raw else None
