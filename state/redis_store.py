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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from operators.case import DAY
from state.redis_conn import DEFAULT_PREFIX, KeyLayout, RedisClient, RedisStoreConfig
from state.redis_context import DELAY, REFUND, RedisContextStore
from state.redis_scripts import (
    _CASE_LUA,
    _MODEL_LATEST_LUA,
    _MODEL_SAVE_LUA,
    _RELEASE_LUA,
    _REOPEN_LUA,
    ScriptCall,
    _dumps,
    per_call,
    run_scripts,
)

CASE_KINDS = ("case", "decision", "intervention", "outcome")


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

    #: Orders written by one script call on one server: a batch of a thousand events is
    #: about ten calls instead of a thousand (redis-py's per-command cost was most of the
    #: case sink's time), and no call holds the server for more than about a millisecond.
    ORDERS_PER_CALL = 100

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
        ``intervention``, ``outcome``, in one pipeline (records of an order in the given
        order). Returns the number of records. One script call writes up to
        :attr:`ORDERS_PER_CALL` orders on one server; on a cluster, one order (its keys
        share a slot, another order's need not)."""
        by_order: dict[str, list[Any]] = {}
        # A view or an outcome replaces the order's last one: only the batch's last of each
        # is written (the flow emits a view per event; an order often has several in a batch).
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        n = 0
        for kind, record in items:
            if kind not in CASE_KINDS:
                raise ValueError(f"unknown case record kind {kind!r}; expected {CASE_KINDS}")
            order_id = record.get("order_id")
            if not isinstance(order_id, str) or not order_id:
                raise ValueError(f"{kind} record without an order_id")
            n += 1
            if kind in ("case", "outcome"):
                latest[(order_id, kind)] = record
                by_order.setdefault(order_id, [])
                continue
            by_order.setdefault(order_id, []).extend(
                (kind, _identity(kind, record), _dumps(record))
            )
        for (order_id, kind), record in latest.items():
            by_order[order_id].extend((kind, "", _dumps(record)))
        if not by_order:
            return 0
        head = (self.open_ttl, self.closed_ttl, self.max_list)
        orders = list(by_order.items())
        size = per_call(self.client, self.ORDERS_PER_CALL)
        calls: list[ScriptCall] = []
        for start in range(0, len(orders), size):
            keys: list[str] = []
            args: list[Any] = [*head]
            for order_id, records in orders[start : start + size]:
                keys.extend(self.keys.case_keys(order_id))
                args.append(len(records) // 3)
                args.extend(records)
            calls.append((self._script, keys, args))
        run_scripts(self.client, calls)
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
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    def reopen(self, intervention_id: str, ttl_seconds: int) -> bool:
        """Claim a dead-lettered id again for a deliberate re-send (one script: of two
        re-sends, one wins; a delivered id is never reopened)."""
        key = self.keys.dispatch(intervention_id)
        args: list[str | int] = ["dead_letter", CLAIMED, self._ttl(ttl_seconds)]
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
        # The client never decodes responses (RedisStoreConfig): a blob is bytes.
        return cast("bytes | None", self.client.hget(self.keys.model_blobs(name), str(version)))

    def versions(self, name: str) -> list[int]:
        """The kept versions, oldest first."""
        members = cast("list[bytes]", self.client.zrange(self.keys.model_versions(name), 0, -1))
        return [int(v) for v in members]

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


__all__ = [
    "CASE_KINDS",
    "DELAY",
    "REFUND",
    "RedisCaseStore",
    "RedisContextStore",
    "RedisDispatchLedger",
    "RedisModelStore",
    "RedisStores",
    "ScriptCall",
    "run_scripts",
]
