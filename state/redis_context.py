"""The Redis context store: customer stats and event-time decayed SKU-family and
courier-lane rates, bit-for-bit the numbers of ``InMemoryContextStore`` (part of
:mod:`state.redis_store`; see its docstring for consistency and ``docs/state.md`` for keys).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from operators.case import DAY
from operators.vocabulary import Outcome
from state.context import CustomerStats, DecayedRate
from state.redis_conn import DEFAULT_PREFIX, KeyLayout, RedisClient, RedisStoreConfig
from state.redis_scripts import (
    _CUSTOMER_LUA,
    _RATES_LUA,
    ScriptCall,
    _as_float,
    _as_int,
    run_scripts,
)

log = logging.getLogger(__name__)

#: Rate groups in the rates hashes: a family has ``refund``; a lane ``refund`` and ``delay``.
REFUND = "refund"
DELAY = "delay"

_CUSTOMER_INT_FIELDS = ("orders", "refunds", "exchanges", "chargebacks")


def _hash(reply: Any) -> dict[bytes, bytes]:
    """An HGETALL reply: the client never decodes responses (RedisStoreConfig), so bytes."""
    return cast("dict[bytes, bytes]", reply)


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
        stats = parse_customer(_hash(self.client.hgetall(self.keys.customer(customer_id))))
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
        groups = parse_rates(_hash(self.client.hgetall(key)))
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
