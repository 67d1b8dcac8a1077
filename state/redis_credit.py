"""The credit ledger and the contact book in Redis (live mode), shared by every worker and
process and surviving restarts (with Redis persistence on, see docs/operations.md).

Keys (``<prefix>`` as for the other stores; the ``{...}`` part is the Redis Cluster hash
tag, so one customer's or one order's keys share a slot)::

    <prefix>:{credit:<customer_id>}:grants    sorted set  grant id -> granted at (epoch s)
    <prefix>:{credit:<customer_id>}:amounts   hash        grant id -> amount
    <prefix>:{contacts:<order_id>}:ids        set         intervention ids contacted

``prefetch`` reads the grants of many customers at once (a batch's decision points): ``used``
answers for them from memory until the next ``prefetch``, and a grant this ledger writes
drops its customer from that memory. A grant another process writes meanwhile is seen at
the next ``prefetch``, as the context aggregates lag by about a batch: ``used`` only prices
an offer, the cap itself is held by ``reserve``, which always reads Redis.

A reservation reads the customer's grants, drops those past the 30-day window and adds the
new grant in one ``WATCH``/``MULTI`` transaction on the two keys (retried when another
process changed them meanwhile), so two processes cannot both spend the same room. The
arithmetic is done in Python, exactly as :class:`operators.credit.InMemoryCreditLedger`
does it. Keys expire ``ttl_seconds`` (31 days by default) after their last grant, past the
30-day window. Contact admission is one Lua script.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from operators.case import DAY
from operators.credit import WINDOW_SECONDS, granted_amount
from state.redis_conn import DEFAULT_PREFIX, KeyLayout, RedisClient
from state.redis_scripts import ScriptCall, per_call, run_scripts

CREDIT_TTL_SECONDS = int(31 * DAY)


def _key(prefix: str, entity: str, ident: str, what: str) -> str:
    if not ident:
        raise ValueError(f"empty {entity} id")
    return f"{prefix}:{{{entity}:{ident}}}:{what}"


# Every grant of each customer. KEYS: per customer, its grants sorted set and amounts hash.
# Returns per customer a flat list (grant id, granted at, amount or '' if missing).
_GRANTS_LUA = """
local out = {}
for k = 1, #KEYS, 2 do
  local grants = redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')
  local rows = {}
  for i = 1, #grants, 2 do
    rows[#rows + 1] = grants[i]
    rows[#rows + 1] = grants[i + 1]
    rows[#rows + 1] = redis.call('HGET', KEYS[k + 1], grants[i]) or ''
  end
  out[#out + 1] = rows
end
return out
"""


class RedisCreditLedger:
    """A :class:`~operators.credit.CreditLedger` in Redis; atomic per customer."""

    #: Customers read by one script call of :meth:`prefetch` on one server.
    CUSTOMERS_PER_CALL = 100

    def __init__(
        self,
        client: RedisClient,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: int = CREDIT_TTL_SECONDS,
    ) -> None:
        if ttl_seconds <= WINDOW_SECONDS:
            raise ValueError("ttl_seconds must be longer than the 30-day window")
        self.client = client
        self.prefix = KeyLayout(prefix).prefix  # validated like every store's prefix
        self.ttl_seconds = int(ttl_seconds)
        self._grants_script = client.register_script(_GRANTS_LUA)
        self._lock = threading.Lock()
        #: Customer -> (granted at, amount) of each grant, from the last :meth:`prefetch`.
        self._prefetched: dict[str, list[tuple[float, float]]] = {}

    def keys(self, customer_id: str) -> tuple[str, str]:
        """(grants, amounts) keys of one customer."""
        return (
            _key(self.prefix, "credit", customer_id, "grants"),
            _key(self.prefix, "credit", customer_id, "amounts"),
        )

    @staticmethod
    def _live(pipe: Any, grants: str, amounts: str, now: float) -> tuple[list[str], list[float]]:
        ids = [m.decode() for m in pipe.zrangebyscore(grants, f"({now - WINDOW_SECONDS!r}", "+inf")]
        values = pipe.hmget(amounts, ids) if ids else []
        return ids, [float(v) if v is not None else 0.0 for v in values]

    def used(self, customer_id: str, now: float) -> float:
        with self._lock:
            known = self._prefetched.get(customer_id)
        if known is not None:
            # As ``_live`` selects them: granted after the window's (exclusive) start.
            start = now - WINDOW_SECONDS
            return math.fsum([amount for at, amount in known if at > start])
        grants, amounts = self.keys(customer_id)
        _, values = self._live(self.client, grants, amounts, now)
        return math.fsum(values)

    def prefetch(self, customer_ids: Iterable[str]) -> int:
        """Read the grants of ``customer_ids`` (in one round trip), which ``used`` answers
        from until the next call; this replaces what the last call read. Returns the
        number of customers read."""
        cids = list(dict.fromkeys(c for c in customer_ids if c))
        size = per_call(self.client, self.CUSTOMERS_PER_CALL)
        calls: list[ScriptCall] = [
            (self._grants_script, [k for cid in cids[i : i + size] for k in self.keys(cid)], [])
            for i in range(0, len(cids), size)
        ]
        rows = [r for reply in run_scripts(self.client, calls) for r in reply]
        read = {
            cid: [(float(row[i + 1]), float(row[i + 2] or 0.0)) for i in range(0, len(row), 3)]
            for cid, row in zip(cids, rows, strict=True)
        }
        with self._lock:
            self._prefetched = read
        return len(read)

    def _forget(self, customer_id: str) -> None:
        with self._lock:
            self._prefetched.pop(customer_id, None)

    def grant(self, customer_id: str, now: float, amount: float) -> None:
        if amount > 0:
            self._write(customer_id, now, amount, f"anon:{uuid.uuid4().hex}", [])

    def _write(
        self,
        customer_id: str,
        now: float,
        amount: float,
        gid: str,
        expired: list[bytes],
        pipe: Any = None,
    ) -> None:
        grants, amounts = self.keys(customer_id)
        p = pipe if pipe is not None else self.client.pipeline(transaction=True)
        if expired:
            p.zrem(grants, *expired)
            p.hdel(amounts, *expired)
        p.zadd(grants, {gid: now})
        p.hset(amounts, gid, repr(float(amount)))
        p.expire(grants, self.ttl_seconds)
        p.expire(amounts, self.ttl_seconds)
        if pipe is None:
            p.execute()
            self._forget(customer_id)

    def reserve(
        self,
        customer_id: str,
        now: float,
        amount: float,
        cap_30d: float,
        grant_id: str | None = None,
    ) -> float:
        grants, amounts = self.keys(customer_id)
        gid = grant_id if grant_id is not None else f"anon:{uuid.uuid4().hex}"
        result: list[float] = []

        def attempt(pipe: Any) -> None:
            result.clear()
            expired = pipe.zrangebyscore(grants, "-inf", repr(now - WINDOW_SECONDS))
            ids, values = self._live(pipe, grants, amounts, now)
            if grant_id is not None and grant_id in ids:
                result.append(values[ids.index(grant_id)])
                return
            granted = granted_amount(amount, cap_30d, math.fsum(values))
            result.append(granted)
            pipe.multi()
            if granted > 0:
                self._write(customer_id, now, granted, gid, expired, pipe)
            elif expired:
                pipe.zrem(grants, *expired)
                pipe.hdel(amounts, *expired)

        self.client.transaction(attempt, grants, amounts)
        self._forget(customer_id)  # a price read before this grant is stale now
        return result[0]


_ADMIT_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisContactBook:
    """A :class:`~state.contacts.ContactBook` in Redis: admission is one script."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = KeyLayout(prefix).prefix
        self._admit = client.register_script(_ADMIT_LUA)

    def key(self, order_id: str) -> str:
        return _key(self.prefix, "contacts", order_id, "ids")

    def admit(self, order_id: str, contact_id: str, limit: int, ttl_seconds: int) -> bool:
        return self.admit_many([(order_id, contact_id)], limit, ttl_seconds)[0]

    def admit_many(
        self, contacts: Sequence[tuple[str, str]], limit: int, ttl_seconds: int
    ) -> list[bool]:
        """One pipeline of admission scripts: Redis runs them in the order sent (an
        order's contacts share a slot, so also on a cluster), as the single calls."""
        if int(ttl_seconds) < 1:
            raise ValueError(f"ttl_seconds must be >= 1, got {ttl_seconds}")
        if not contacts:
            return []
        calls = [
            (self._admit, [self.key(order_id)], [contact_id, int(limit), int(ttl_seconds)])
            for order_id, contact_id in contacts
        ]
        return [bool(r) for r in run_scripts(self.client, calls)]

    def count(self, order_id: str) -> int:
        return int(self.client.scard(self.key(order_id)))
