"""Redis implementations of the ``state`` interfaces, for live mode.

- :class:`RedisContextStore` (``ContextStore``): customer stats and event-time decayed
  SKU-family / courier-lane rates, the same numbers as ``InMemoryContextStore``. Reads go
  through a short wall-clock cache; ``prefetch`` loads many customers in one round trip;
  ``record_outcome`` is buffered and written by ``flush`` in one pipeline.
- :class:`RedisCaseStore` (``CaseStore``): latest case view, bounded decision and
  intervention lists, outcome; ``write_batch`` writes a whole Bytewax batch in one
  pipeline. Keys expire ``closed_ttl`` after the outcome (90 days by default).
- :class:`RedisDispatchLedger` (``DispatchLedger``): ``SET NX EX`` claims, shared by all
  workers and surviving restarts.
- :class:`RedisModelStore` (``ModelStore``): versioned checkpoints, the last ``keep``
  versions and a ``latest`` pointer.

Updates that must be atomic run as Lua scripts on the keys of one entity, which share a
hash tag (see :class:`~state.redis_conn.KeyLayout`), so they work on Redis Cluster too:
every store takes a ``redis.Redis`` or a ``RedisCluster`` (a ``redis+cluster://`` URL).
Script calls batched in a pipeline go through :func:`run_scripts`, which works on both.
Floats are stored with 17 significant digits and combined as doubles inside the scripts,
which is what makes the aggregates bit-for-bit equal to the in-memory ones.

Consistency: an outcome recorded with ``record_outcome`` is visible to readers after the
next ``flush`` (explicit, or automatic when ``flush_max_pending`` outcomes are waiting or
the oldest has waited ``flush_max_delay`` seconds), and to other processes up to
``cache_seconds`` later. Aggregates may therefore lag by about one batch. That is fine:
only closed cases feed them, and no decision depends on its own outcome.

See ``docs/state.md`` for the key layout and TTLs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from operators.vocabulary import Outcome
from state.context import DAY, CustomerStats, DecayedRate
from state.redis_conn import DEFAULT_PREFIX, KeyLayout, RedisClient, RedisStoreConfig

log = logging.getLogger(__name__)

#: Rate groups in the rates hashes: a family has ``refund``; a lane ``refund`` and ``delay``.
REFUND = "refund"
DELAY = "delay"

CASE_KINDS = ("case", "decision", "intervention", "outcome")

_CUSTOMER_INT_FIELDS = ("orders", "refunds", "exchanges", "chargebacks")

# --- Lua ----------------------------------------------------------------------------------

# Folds outcomes into one customer hash. ARGV: ttl, then per outcome
# (now, refunded, exchanged, chargeback, refund_value, spend). Same arithmetic, same order
# as InMemoryContextStore.record_outcome, in doubles.
_CUSTOMER_LUA = """
local key = KEYS[1]
local ttl = tonumber(ARGV[1])
local function fmt(x) return string.format('%.17g', x) end
local v = redis.call('HMGET', key, 'orders', 'refunds', 'exchanges', 'chargebacks',
                     'refund_value', 'spend', 'first_seen')
local orders = tonumber(v[1]) or 0
local refunds = tonumber(v[2]) or 0
local exchanges = tonumber(v[3]) or 0
local chargebacks = tonumber(v[4]) or 0
local refund_value = tonumber(v[5]) or 0.0
local spend = tonumber(v[6]) or 0.0
local first = v[7]
for i = 2, #ARGV, 6 do
  if not first then first = ARGV[i] end
  orders = orders + 1
  refunds = refunds + tonumber(ARGV[i + 1])
  exchanges = exchanges + tonumber(ARGV[i + 2])
  chargebacks = chargebacks + tonumber(ARGV[i + 3])
  refund_value = refund_value + tonumber(ARGV[i + 4])
  spend = spend + tonumber(ARGV[i + 5])
end
redis.call('HSET', key, 'orders', fmt(orders), 'refunds', fmt(refunds),
           'exchanges', fmt(exchanges), 'chargebacks', fmt(chargebacks),
           'refund_value', fmt(refund_value), 'spend', fmt(spend), 'first_seen', first)
if ttl > 0 then redis.call('EXPIRE', key, ttl) end
return orders
"""

# Adds observations to decayed rates in one hash. ARGV: half_life, then per observation
# (group, now, hit). Mirrors DecayedRate.add (created at the first observation's time).
_RATES_LUA = """
local key = KEYS[1]
local half_life = tonumber(ARGV[1])
local ln2 = math.log(2.0)
local function fmt(x) return string.format('%.17g', x) end
for i = 2, #ARGV, 3 do
  local g = ARGV[i]
  local now = tonumber(ARGV[i + 1])
  local v = redis.call('HMGET', key, g .. ':hits', g .. ':total', g .. ':at')
  local hits, total, at
  if v[3] then
    hits, total, at = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  else
    hits, total, at = 0.0, 0.0, now
  end
  if now > at then
    local factor = math.exp(-ln2 * (now - at) / half_life)
    hits = hits * factor
    total = total * factor
    at = now
  end
  total = total + 1.0
  if ARGV[i + 2] == '1' then hits = hits + 1.0 end
  redis.call('HSET', key, g .. ':hits', fmt(hits), g .. ':total', fmt(total), g .. ':at', fmt(at))
end
return 1
"""

# Writes records of one order. KEYS: case hash, decisions list, interventions list, seen
# set. ARGV: open_ttl, closed_ttl, max_list, then per record (kind, identity, json).
_CASE_LUA = """
local open_ttl, closed_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_list = tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local kind, ident, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'case' then
    redis.call('HSET', KEYS[1], 'view', body)
  elseif kind == 'outcome' then
    redis.call('HSET', KEYS[1], 'outcome', body)
  else
    local fresh = 1
    if ident ~= '' then fresh = redis.call('SADD', KEYS[4], ident) end
    if fresh == 1 then
      local list = KEYS[3]
      if kind == 'decision' then list = KEYS[2] end
      redis.call('RPUSH', list, body)
      redis.call('LTRIM', list, -max_list, -1)
    end
  end
end
local ttl = open_ttl
if redis.call('HEXISTS', KEYS[1], 'outcome') == 1 then ttl = closed_ttl end
for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
return ttl
"""

# KEYS: versions zset, blobs hash, latest string. ARGV: version, blob, keep.
_MODEL_SAVE_LUA = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local keep = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)
  for _, version in ipairs(old) do redis.call('HDEL', KEYS[2], version) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1)
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
redis.call('SET', KEYS[3], top[1])
return top[1]
"""

# KEYS: latest string, blobs hash. Returns {version, blob} or nil.
_MODEL_LATEST_LUA = """
local version = redis.call('GET', KEYS[1])
if not version then return nil end
local blob = redis.call('HGET', KEYS[2], version)
if not blob then return nil end
return {version, blob}
"""

# KEYS: dispatch key. ARGV: expected status. Deletes only a claim still in that status.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_REOPEN_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


ScriptCall = tuple[Script, Sequence[str], Sequence[Any]]


def run_scripts(client: RedisClient, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``(script, keys, args)`` calls in one pipeline; replies in the order given.

    Works on one server and on a cluster alike. redis-py's cluster pipeline refuses
    ``Script`` objects (EVALSHA is blocked there), so the calls go out as plain EVALSHA
    commands, each routed by its keys (all of one hash slot, or the cluster refuses it).
    A node that does not know a script yet (a fresh node, a failover, a SCRIPT FLUSH)
    answers NOSCRIPT without running it: the script is loaded on every primary and only
    those calls are sent again, so nothing runs twice.
    """
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    error: Exception | None = None
    for _attempt in range(3):
        if not pending:
            break
        pipe = client.pipeline(transaction=False)
        for i in pending:
            script, keys, args = calls[i]
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        missing: list[int] = []
        for i, reply in zip(pending, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, NoScriptError):
                missing.append(i)
            elif isinstance(reply, Exception):
                error = error or reply  # raised once the others have run
            else:
                results[i] = reply
        for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
            client.script_load(script.script)
        pending = missing
    if error is None and pending:
        error = NoScriptError("Lua scripts were flushed again while being loaded")
    if error is not None:
        raise error
    return results


def _dumps(record: Any) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


def _as_float(raw: bytes | None, default: float = 0.0) -> float:
    return float(raw) if raw is not None else default


def _as_int(raw: bytes | None) -> int:
    return int(float(raw)) if raw is not None else 0


def parse_customer(fields: dict[bytes, bytes]) -> CustomerStats | None:
    """A customer hash (as HGETALL returns it) as CustomerStats; None if empty.

    >>> parse_customer({b"orders": b"3", b"refunds": b"1", b"spend": b"120.5"})
    CustomerStats(orders=3, refunds=1, exchanges=0, chargebacks=0, refund_value=0.0, spend=120.5, first_seen=None)
    >>> parse_customer({}) is None
    True
    """  # noqa: E501
    if not fields:
        return None
    first = fields.get(b"first_seen")
    return CustomerStats(
        orders=_as_int(fields.get(b"orders")),
        refunds=_as_int(fields.get(b"refunds")),
        exchanges=_as_int(fields.get(b"exchanges")),
        chargebacks=_as_int(fields.get(b"chargebacks")),
        refund_value=_as_float(fields.get(b"refund_value")),
        spend=_as_float(fields.get(b"spend")),
        first_seen=float(first) if first else None,
    )


def parse_rates(fields: dict[bytes, bytes]) -> dict[str, DecayedRate]:
    """A rates hash as ``{group: DecayedRate}`` (groups without a time are skipped).

    >>> parse_rates({b"refund:hits": b"1", b"refund:total": b"4", b"refund:at": b"10"})
    {'refund': DecayedRate(hits=1.0, total=4.0, at=10.0)}
    """
    groups: dict[str, DecayedRate] = {}
    for field in fields:
        name, _, attr = field.decode().rpartition(":")
        if attr == "at" and name:
            groups[name] = DecayedRate(
                _as_float(fields.get(f"{name}:hits".encode())),
                _as_float(fields.get(f"{name}:total".encode())),
                float(fields[field]),
            )
    return groups


def _fmt(x: float) -> str:
    """Shortest exact repr: a float survives the round trip through Redis exactly."""
    return repr(float(x))


def _encode_field(name: str, value: float) -> str:
    return str(int(value)) if name in _CUSTOMER_INT_FIELDS else _fmt(value)


# --- context ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    customer_id: str | None
    family: str | None
    lane: str | None
    now: float
    refunded: bool
    exchanged: bool
    chargeback: bool
    refund_value: float
    spend: float
    delayed: bool


class RedisContextStore:
    """A ``ContextStore`` in Redis, shared by all workers and processes.

    Reads are cached for ``cache_seconds`` of wall-clock time (0 disables the cache).
    Thread-safe: Bytewax workers of one process share it.
    """

    def __init__(
        self,
        client: RedisClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        half_life_days: float = 14.0,
        prior_refund_rate: float = 0.08,
        prior_delay_rate: float = 0.1,
        prior_weight: float = 20.0,
        cache_seconds: float = 5.0,
        customer_cache_size: int = 100_000,
        customer_ttl_days: float = 730.0,
        flush_max_pending: int = 512,
        flush_max_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_seconds < 0 or customer_cache_size < 0:
            raise ValueError("cache_seconds and customer_cache_size must be >= 0")
        if flush_max_pending < 1:
            raise ValueError("flush_max_pending must be >= 1")
        self.client = client
        self.keys = KeyLayout(prefix)
        self.half_life = half_life_days * DAY
        self.prior_refund_rate = prior_refund_rate
        self.prior_delay_rate = prior_delay_rate
        self.prior_weight = prior_weight
        self.cache_seconds = cache_seconds
        self.customer_cache_size = customer_cache_size
        self.customer_ttl = int(customer_ttl_days * DAY)
        self.flush_max_pending = flush_max_pending
        self.flush_max_delay = flush_max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._customers: OrderedDict[str, tuple[float, CustomerStats | None]] = OrderedDict()
        self._rates: dict[str, tuple[float, dict[str, DecayedRate]]] = {}
        self._pending: list[_Pending] = []
        self._pending_since = 0.0
        self._customer_script = client.register_script(_CUSTOMER_LUA)
        self._rates_script = client.register_script(_RATES_LUA)
        #: Round trips to Redis so far (reads and flushes); for benchmarks and tests.
        self.round_trips = 0

    @classmethod
    def from_config(cls, config: RedisStoreConfig, **kw: Any) -> RedisContextStore:
        """A store for ``config`` with its own client."""
        kw.setdefault("cache_seconds", config.context_cache_seconds)
        kw.setdefault("customer_ttl_days", config.customer_ttl_days)
        return cls(config.connect(), config.prefix, **kw)

    # --- reads -------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerStats | None:
        """What the flow has observed about ``customer_id`` (cached ``cache_seconds``)."""
        if not customer_id:
            return None
        self._maybe_flush()
        now = self._clock()
        with self._lock:
            hit = self._customers.get(customer_id)
            if hit is not None and hit[0] > now:
                self._customers.move_to_end(customer_id)  # least recently used goes first
                return hit[1]
        self.round_trips += 1
        stats = parse_customer(self.client.hgetall(self.keys.customer(customer_id)))
        self._remember_customers({customer_id: stats}, now)
        return stats

    def _remember_customers(self, found: dict[str, CustomerStats | None], now: float) -> None:
        if self.cache_seconds <= 0 or self.customer_cache_size == 0:
            return
        expires = now + self.cache_seconds
        with self._lock:
            cache = self._customers
            for cid, stats in found.items():
                cache[cid] = (expires, stats)
                cache.move_to_end(cid)
            while len(cache) > self.customer_cache_size:
                cache.popitem(last=False)

    def _groups(self, key: str) -> dict[str, DecayedRate]:
        now = self._clock()
        with self._lock:
            hit = self._rates.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        self.round_trips += 1
        groups = parse_rates(self.client.hgetall(key))
        if self.cache_seconds > 0:
            with self._lock:
                self._rates[key] = (now + self.cache_seconds, groups)
        return groups

    def _rate(self, key: str | None, group: str, now: float, prior: float) -> float:
        if key is None:
            return prior
        self._maybe_flush()
        r = self._groups(key).get(group)
        if r is None:
            return prior
        return r.rate(now, self.half_life, prior, self.prior_weight)

    def family_rate(self, family: str | None, now: float) -> float:
        """Decayed refund rate of a SKU family at event time ``now`` (prior if unknown)."""
        key = self.keys.family(family) if family else None
        return self._rate(key, REFUND, now, self.prior_refund_rate)

    def lane_refund_rate(self, lane: str | None, now: float) -> float:
        """Decayed refund rate of a courier lane at event time ``now``."""
        key = self.keys.lane(lane) if lane else None
        return self._rate(key, REFUND, now, self.prior_refund_rate)

    def lane_delay_rate(self, lane: str | None, now: float) -> float:
        """Decayed delay rate of a courier lane at event time ``now``."""
        key = self.keys.lane(lane) if lane else None
        return self._rate(key, DELAY, now, self.prior_delay_rate)

    def prefetch(
        self,
        customer_ids: Iterable[str],
        families: Iterable[str] = (),
        lanes: Iterable[str] = (),
    ) -> int:
        """Load the given customers (and families, lanes) not already cached, in one
        pipeline, so the decisions of a batch read from memory. Returns keys fetched."""
        now = self._clock()
        with self._lock:

            def stale_customer(cid: str) -> bool:
                hit = self._customers.get(cid)
                return hit is None or hit[0] <= now

            def stale_rates(key: str) -> bool:
                hit = self._rates.get(key)
                return hit is None or hit[0] <= now

            cids = [c for c in dict.fromkeys(customer_ids) if c and stale_customer(c)]
            rate_keys = [
                k
                for k in dict.fromkeys(
                    [self.keys.family(f) for f in families if f]
                    + [self.keys.lane(la) for la in lanes if la]
                )
                if stale_rates(k)
            ]
        if not cids and not rate_keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for cid in cids:
            pipe.hgetall(self.keys.customer(cid))
        for key in rate_keys:
            pipe.hgetall(key)
        replies = pipe.execute()
        self.round_trips += 1
        self._remember_customers(
            {cid: parse_customer(r) for cid, r in zip(cids, replies, strict=False)}, now
        )
        if self.cache_seconds > 0:
            expires = now + self.cache_seconds
            with self._lock:
                for key, r in zip(rate_keys, replies[len(cids) :], strict=True):
                    self._rates[key] = (expires, parse_rates(r))
        return len(cids) + len(rate_keys)

    def invalidate(self) -> None:
        """Drop everything cached (the next reads go to Redis)."""
        with self._lock:
            self._customers.clear()
            self._rates.clear()

    # --- writes ------------------------------------------------------------------------

    def record_outcome(self, outcome: dict[str, Any]) -> None:
        """Fold in a closed case (fields as for ``InMemoryContextStore.record_outcome``).

        Buffered: written by the next :meth:`flush`, which runs by itself once
        ``flush_max_pending`` outcomes wait or the oldest waited ``flush_max_delay`` s.
        """
        kind = outcome["outcome"]
        if kind == "open":
            return
        item = _Pending(
            customer_id=outcome.get("customer_id") or None,
            family=outcome.get("sku_family") or None,
            lane=outcome.get("courier_lane") or None,
            now=float(outcome.get("resolved_at_ts") or 0.0),
            refunded=kind in (Outcome.REFUNDED, Outcome.CHARGEBACK),
            exchanged=kind == Outcome.EXCHANGED,
            chargeback=kind == Outcome.CHARGEBACK,
            refund_value=float(outcome.get("refund_value") or 0.0),
            spend=float(outcome.get("order_value") or 0.0),
            delayed=bool(outcome.get("delayed")),
        )
        now = self._clock()
        with self._lock:
            if not self._pending:
                self._pending_since = now
            self._pending.append(item)
            due = (
                len(self._pending) >= self.flush_max_pending
                or now - self._pending_since >= self.flush_max_delay
            )
        if due:
            self.flush()

    def _maybe_flush(self) -> None:
        if self._pending and self._clock() - self._pending_since >= self.flush_max_delay:
            self.flush()

    @property
    def pending(self) -> int:
        """Outcomes recorded but not yet written."""
        return len(self._pending)

    def flush(self) -> int:
        """Write the buffered outcomes in one pipeline; returns how many were written.

        The buffer is emptied before sending, so a failed flush (raised to the caller) is
        not retried and cannot double-count part of a batch.
        """
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        customers: dict[str, list[Any]] = {}
        rates: dict[str, list[Any]] = {}
        keys = self.keys
        for p in pending:
            if p.customer_id:
                customers.setdefault(p.customer_id, []).extend(
                    (
                        _fmt(p.now),
                        int(p.refunded and not p.chargeback),
                        int(p.exchanged),
                        int(p.chargeback),
                        _fmt(p.refund_value),
                        _fmt(p.spend),
                    )
                )
            if p.family:
                rates.setdefault(keys.family(p.family), []).extend(
                    (REFUND, _fmt(p.now), int(p.refunded))
                )
            if p.lane:
                rates.setdefault(keys.lane(p.lane), []).extend(
                    (REFUND, _fmt(p.now), int(p.refunded), DELAY, _fmt(p.now), int(p.delayed))
                )
        calls: list[ScriptCall] = [
            (self._customer_script, [keys.customer(cid)], [self.customer_ttl, *args])
            for cid, args in customers.items()
        ]
        half_life = _fmt(self.half_life)
        calls += [(self._rates_script, [key], [half_life, *args]) for key, args in rates.items()]
        run_scripts(self.client, calls)
        self.round_trips += 1
        # This process sees its own writes at once; other processes after their cache TTL.
        with self._lock:
            for cid in customers:
                self._customers.pop(cid, None)
            for key in rates:
                self._rates.pop(key, None)
        return len(pending)

    # --- seeding (``salvage context load``) ----------------------------------------------

    def seed_customers(
        self, rows: Iterable[tuple[str, dict[str, float]]], *, add: bool = False
    ) -> int:
        """Write customer stats from an export: ``(customer_id, {field: value})`` with
        fields of :class:`CustomerStats`. Replaces the given fields (idempotent), or adds
        to them with ``add=True``. One pipeline per 1000 rows; returns rows written."""
        written = 0
        pipe = self.client.pipeline(transaction=False)
        for cid, values in rows:
            key = self.keys.customer(cid)
            if add:
                for name, value in values.items():
                    if name == "first_seen":
                        pipe.hsetnx(key, name, _fmt(value))
                    elif name in _CUSTOMER_INT_FIELDS:
                        pipe.hincrby(key, name, int(value))
                    else:
                        pipe.hincrbyfloat(key, name, float(value))
            elif values:
                pipe.hset(key, mapping={k: _encode_field(k, v) for k, v in values.items()})
            if self.customer_ttl > 0:
                pipe.expire(key, self.customer_ttl)
            written += 1
            if len(pipe) >= 2000:
                pipe.execute()
        if len(pipe):
            pipe.execute()
        self.invalidate()
        return written

    def seed_rates(self, rows: Iterable[tuple[str, str, str, DecayedRate]]) -> int:
        """Write base rates: ``(kind, name, group, rate)`` with kind ``family`` or
        ``lane`` and group ``refund`` or ``delay``. Replaces those groups."""
        written = 0
        pipe = self.client.pipeline(transaction=False)
        for kind, name, group, r in rows:
            if kind == "family" and group == REFUND:
                key = self.keys.family(name)
            elif kind == "lane" and group in (REFUND, DELAY):
                key = self.keys.lane(name)
            else:
                raise ValueError(f"no {group!r} rate for kind {kind!r}")
            pipe.hset(
                key,
                mapping={
                    f"{group}:hits": _fmt(r.hits),
                    f"{group}:total": _fmt(r.total),
                    f"{group}:at": _fmt(r.at),
                },
            )
            written += 1
            if len(pipe) >= 1000:
                pipe.execute()
        if len(pipe):
            pipe.execute()
        self.invalidate()
        return written

    def close(self) -> None:
        """Flush what is buffered and close the connection pool."""
        try:
            self.flush()
        finally:
            self.client.close()


# --- cases --------------------------------------------------------------------------------


def _identity(kind: str, record: dict[str, Any]) -> str:
    """What makes a decision or intervention the same one when it is written again."""
    if kind == "intervention":
        iv = record.get("intervention_id")
        return f"i:{iv}" if iv else ""
    if kind == "decision":
        trigger = record.get("trigger_event_id")
        return f"d:{trigger}:{record.get('action')}" if trigger else ""
    return ""


class RedisCaseStore:
    """A ``CaseStore`` in Redis: latest view, decisions, interventions and outcome per order.

    Decision and intervention lists keep the latest ``max_list`` entries; writing the same
    decision (trigger event and action) or intervention (id) again is a no-op, so replays
    and resumes do not duplicate them. All keys of an order expire ``open_ttl_days`` after
    the last write while the case is open, ``closed_ttl_days`` after it once it has an
    outcome.
    """

    def __init__(
        self,
        client: RedisClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        closed_ttl_days: float = 90.0,
        open_ttl_days: float = 60.0,
        max_list: int = 50,
    ) -> None:
        if closed_ttl_days <= 0 or open_ttl_days <= 0 or max_list < 1:
            raise ValueError("TTLs must be > 0 and max_list >= 1")
        self.client = client
        self.keys = KeyLayout(prefix)
        self.closed_ttl = int(closed_ttl_days * DAY)
        self.open_ttl = int(open_ttl_days * DAY)
        self.max_list = max_list
        self._script = client.register_script(_CASE_LUA)

    @classmethod
    def from_config(cls, config: RedisStoreConfig, **kw: Any) -> RedisCaseStore:
        """A store for ``config`` with its own client."""
        kw.setdefault("closed_ttl_days", config.case_closed_ttl_days)
        kw.setdefault("open_ttl_days", config.case_open_ttl_days)
        return cls(config.connect(), config.prefix, **kw)

    def write_batch(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Write tagged records ``(kind, record)``, kind in ``case``, ``decision``,
        ``intervention``, ``outcome``, in one pipeline (one script call per order, records
        of an order in the given order). Returns the number of records."""
        by_order: dict[str, list[Any]] = {}
        n = 0
        for kind, record in items:
            if kind not in CASE_KINDS:
                raise ValueError(f"unknown case record kind {kind!r}; expected {CASE_KINDS}")
            order_id = record.get("order_id")
            if not isinstance(order_id, str) or not order_id:
                raise ValueError(f"{kind} record without an order_id")
            by_order.setdefault(order_id, []).extend(
                (kind, _identity(kind, record), _dumps(record))
            )
            n += 1
        if not by_order:
            return 0
        head = (self.open_ttl, self.closed_ttl, self.max_list)
        run_scripts(
            self.client,
            [
                (self._script, self.keys.case_keys(order_id), [*head, *args])
                for order_id, args in by_order.items()
            ],
        )
        return n

    def put_view(self, order_id: str, view: dict[str, Any]) -> None:
        self.write_batch([("case", {**view, "order_id": order_id})])

    def add_decision(self, order_id: str, decision: dict[str, Any]) -> None:
        self.write_batch([("decision", {**decision, "order_id": order_id})])

    def add_intervention(self, order_id: str, intervention: dict[str, Any]) -> None:
        self.write_batch([("intervention", {**intervention, "order_id": order_id})])

    def put_outcome(self, order_id: str, outcome: dict[str, Any]) -> None:
        self.write_batch([("outcome", {**outcome, "order_id": order_id})])

    def get(self, order_id: str) -> dict[str, Any] | None:
        """``{"view", "decisions", "interventions", "outcome"}`` or None if unknown."""
        keys = self.keys
        # One slot, one transaction: a consistent read of the whole case.
        pipe = self.client.pipeline(transaction=True)
        pipe.hmget(keys.case(order_id), "view", "outcome")
        pipe.lrange(keys.decisions(order_id), 0, -1)
        pipe.lrange(keys.interventions(order_id), 0, -1)
        (view, outcome), decisions, interventions = pipe.execute()
        if view is None and outcome is None and not decisions and not interventions:
            return None
        return {
            "view": orjson.loads(view) if view is not None else None,
            "decisions": [orjson.loads(d) for d in decisions],
            "interventions": [orjson.loads(i) for i in interventions],
            "outcome": orjson.loads(outcome) if outcome is not None else None,
        }

    def ttl(self, order_id: str) -> int:
        """Seconds until the order's case expires (-2: unknown, -1: no expiry)."""
        return int(self.client.ttl(self.keys.case(order_id)))

    def close(self) -> None:
        self.client.close()


# --- dispatch -----------------------------------------------------------------------------

CLAIMED = "claimed"


class RedisDispatchLedger:
    """A ``DispatchLedger`` in Redis: ``SET NX EX`` claims, at most once per id across
    workers, processes, restarts and replays (until the claim expires)."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.keys = KeyLayout(prefix)
        self._release = client.register_script(_RELEASE_LUA)
        self._reopen = client.register_script(_REOPEN_LUA)

    @classmethod
    def from_config(cls, config: RedisStoreConfig) -> RedisDispatchLedger:
        """A ledger for ``config`` with its own client."""
        return cls(config.connect(), config.prefix)

    @staticmethod
    def _ttl(ttl_seconds: int) -> int:
        if int(ttl_seconds) < 1:
            raise ValueError(f"ttl_seconds must be >= 1, got {ttl_seconds}")
        return int(ttl_seconds)

    def claim(self, intervention_id: str, ttl_seconds: int) -> bool:
        """True if this caller now owns the id (first claim); False if already claimed."""
        key = self.keys.dispatch(intervention_id)
        return bool(self.client.set(key, CLAIMED, nx=True, ex=self._ttl(ttl_seconds)))

    def claim_many(self, intervention_ids: Sequence[str], ttl_seconds: int) -> list[bool]:
        """:meth:`claim` for a batch, in one pipeline; results in the order given."""
        ttl = self._ttl(ttl_seconds)
        pipe = self.client.pipeline(transaction=False)
        for iv in intervention_ids:
            pipe.set(self.keys.dispatch(iv), CLAIMED, nx=True, ex=ttl)
        return [bool(r) for r in pipe.execute()] if intervention_ids else []

    def release(self, intervention_id: str) -> None:
        """Give a claim back so a later run may retry. A claim already marked delivered
        or dead-lettered is kept: releasing it would let the message go out twice."""
        self._release(keys=[self.keys.dispatch(intervention_id)], args=[CLAIMED])

    def mark_delivered(self, intervention_id: str, status: str, ttl_seconds: int) -> None:
        """Record how the delivery ended (``delivered`` or ``dead_letter``)."""
        self.client.set(self.keys.dispatch(intervention_id), status, ex=self._ttl(ttl_seconds))

    def status(self, intervention_id: str) -> str | None:
        """``claimed``, ``delivered``, ``dead_letter`` or None."""
        raw = self.client.get(self.keys.dispatch(intervention_id))
        return raw.decode() if raw is not None else None

    def reopen(self, intervention_id: str, ttl_seconds: int) -> bool:
        """Claim a dead-lettered id again for a deliberate re-send (one script: of two
        re-sends, one wins; a delivered id is never reopened)."""
        key = self.keys.dispatch(intervention_id)
        args = ["dead_letter", CLAIMED, self._ttl(ttl_seconds)]
        return bool(self._reopen(keys=[key], args=args))

    def close(self) -> None:
        self.client.close()


# --- models -------------------------------------------------------------------------------


class RedisModelStore:
    """A ``ModelStore`` in Redis: the last ``keep`` versions of each model and a
    ``latest`` pointer, updated atomically. Checkpoints do not expire."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.client = client
        self.keys = KeyLayout(prefix)
        self.keep = keep
        self._save = client.register_script(_MODEL_SAVE_LUA)
        self._latest = client.register_script(_MODEL_LATEST_LUA)

    @classmethod
    def from_config(cls, config: RedisStoreConfig, keep: int = 3) -> RedisModelStore:
        """A store for ``config`` with its own client."""
        return cls(config.connect(), config.prefix, keep)

    def _model_keys(self, name: str) -> list[str]:
        k = self.keys
        return [k.model_versions(name), k.model_blobs(name), k.model_latest(name)]

    def save(self, name: str, version: int, blob: bytes) -> None:
        """Save ``blob`` as ``version`` of ``name``; drops versions beyond the newest
        ``keep``; the ``latest`` pointer names the highest version kept."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, got {type(version).__name__}")
        self._save(keys=self._model_keys(name), args=[version, bytes(blob), self.keep])

    def latest(self, name: str) -> tuple[int, bytes] | None:
        """The newest (version, blob) saved under ``name``, or None."""
        k = self.keys
        found = self._latest(keys=[k.model_latest(name), k.model_blobs(name)])
        if not found:
            return None
        return int(found[0]), bytes(found[1])

    def load(self, name: str, version: int) -> bytes | None:
        """One kept version's blob, or None if it was never saved or was dropped."""
        return self.client.hget(self.keys.model_blobs(name), str(version))

    def versions(self, name: str) -> list[int]:
        """The kept versions, oldest first."""
        return [int(v) for v in self.client.zrange(self.keys.model_versions(name), 0, -1)]

    def close(self) -> None:
        self.client.close()


# --- all together -------------------------------------------------------------------------


@dataclass
class RedisStores:
    """The four live-mode stores for one configuration, sharing one client (its
    connection pool is thread-safe)."""

    context: RedisContextStore
    cases: RedisCaseStore
    dispatch: RedisDispatchLedger
    models: RedisModelStore

    @classmethod
    def open(cls, config: RedisStoreConfig | None = None, model_keep: int = 3) -> RedisStores:
        """Stores for ``config`` (default: from the environment)."""
        c = config or RedisStoreConfig.from_env()
        client = c.connect()
        return cls(
            RedisContextStore(
                client,
                c.prefix,
                cache_seconds=c.context_cache_seconds,
                customer_ttl_days=c.customer_ttl_days,
            ),
            RedisCaseStore(
                client,
                c.prefix,
                closed_ttl_days=c.case_closed_ttl_days,
                open_ttl_days=c.case_open_ttl_days,
            ),
            RedisDispatchLedger(client, c.prefix),
            RedisModelStore(client, c.prefix, model_keep),
        )

    def close(self) -> None:
        """Flush buffered context updates and close the client."""
        try:
            self.context.flush()
        finally:
            self.context.client.close()
