"""Lua scripts of the Redis stores and :func:`run_scripts`, which runs a batch of them in one
pipeline on one server or a cluster (part of :mod:`state.redis_store`).

Each script updates the keys of one entity, which share a hash tag, so it runs on Redis
Cluster too. Floats are formatted with 17 significant digits and combined as doubles, the
same arithmetic in the same order as the in-memory stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from state.redis_conn import RedisClient

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

# Writes the records of one or more orders. KEYS: per order, its case hash, decisions list,
# interventions list and seen set. ARGV: open_ttl, closed_ttl, max_list, then per order
# (in the order of KEYS) its number of records and, per record, (kind, identity, json).
# Returns the number of orders written.
_CASE_LUA = """
local open_ttl, closed_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_list = tonumber(ARGV[3])
local a = 4
for k = 0, #KEYS - 4, 4 do
  local case, decisions, interventions, seen = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local last = a + 3 * tonumber(ARGV[a])
  for i = a + 1, last, 3 do
    local kind, ident, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if kind == 'case' then
      redis.call('HSET', case, 'view', body)
    elseif kind == 'outcome' then
      redis.call('HSET', case, 'outcome', body)
    else
      local fresh = 1
      if ident ~= '' then fresh = redis.call('SADD', seen, ident) end
      if fresh == 1 then
        local list = interventions
        if kind == 'decision' then list = decisions end
        redis.call('RPUSH', list, body)
        redis.call('LTRIM', list, -max_list, -1)
      end
    end
  end
  a = last + 1
  local ttl = open_ttl
  if redis.call('HEXISTS', case, 'outcome') == 1 then ttl = closed_ttl end
  redis.call('EXPIRE', case, ttl)
  redis.call('EXPIRE', decisions, ttl)
  redis.call('EXPIRE', interventions, ttl)
  redis.call('EXPIRE', seen, ttl)
end
return #KEYS / 4
"""

# SET NX EX of each key. KEYS: the keys. ARGV: the TTL in seconds, then a value per key.
# Returns per key 1 if it was written, 0 if it was held already.
_SET_NX_LUA = """
local written = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ARGV[1]) then
    written[i] = 1
  else
    written[i] = 0
  end
end
return written
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


def per_call(client: RedisClient, on_one_server: int) -> int:
    """How many entities (orders, points, customers) one script call may touch: up to
    ``on_one_server`` on one server, where any keys may meet in a script; one on a cluster,
    where an entity's keys share a slot (its hash tag) but two entities' need not."""
    return 1 if isinstance(client, RedisCluster) else on_one_server


def _dumps(record: Any) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


def _as_float(raw: bytes | None, default: float = 0.0) -> float:
    return float(raw) if raw is not None else default


def _as_int(raw: bytes | None) -> int:
    return int(float(raw)) if raw is not None else 0
