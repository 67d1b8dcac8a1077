"""Redis connection settings and the key layout shared by the Redis stores.

The URL comes from the command line or ``SALVAGE_REDIS_URL`` (``redis://`` or ``rediss://``
for TLS); the password may be in the URL or, better, in ``SALVAGE_REDIS_PASSWORD``. It is
never logged or printed: use :func:`operators.masking.mask_url` for anything a person
sees.

A ``redis+cluster://`` (or ``rediss+cluster://``) URL names one node of a Redis Cluster:
:func:`connect` then returns redis-py's ``RedisCluster``, which finds the other nodes and
sends each key to the node that holds its slot.

Every key is ``<prefix>:{<entity>:<id>}:<what>``. The braces are a Redis Cluster *hash
tag*: all keys of one entity (one order, one customer, one model) hash to the same slot,
so the multi-key scripts and transactions of one entity work on a cluster.

>>> keys = KeyLayout("salvage")
>>> keys.customer("c1"), keys.case("o-9")
('salvage:{cust:c1}:stats', 'salvage:{order:o-9}:case')
>>> key_slot(keys.case("o-9")) == key_slot(keys.decisions("o-9"))
True
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot as _key_slot
from redis.exceptions import AuthenticationError, RedisClusterException
from redis.retry import Retry

from operators.masking import mask_url
from state.redis_packer import install

log = logging.getLogger("salvage.redis")

#: What :func:`connect` returns: one server, or a cluster client routing keys by slot. Both
#: have the same commands, pipelines and scripts (see ``state.redis_store`` for the one
#: difference, scripts inside pipelines).
RedisClient: TypeAlias = redis.Redis | RedisCluster

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "salvage"

URL_ENV = "SALVAGE_REDIS_URL"
PASSWORD_ENV = "SALVAGE_REDIS_PASSWORD"
PREFIX_ENV = "SALVAGE_REDIS_PREFIX"
CASE_TTL_ENV = "SALVAGE_CASE_TTL_DAYS"
CACHE_TTL_ENV = "SALVAGE_CONTEXT_CACHE_SECONDS"
OUTAGE_ENV = "SALVAGE_REDIS_OUTAGE_SECONDS"
#: How long live mode waits through a Redis outage before a command fails (and the
#: process exits for its supervisor to restart): a restart or a failover fits in it.
LIVE_OUTAGE_SECONDS = 120.0


def live_outage_seconds() -> float:
    """``$SALVAGE_REDIS_OUTAGE_SECONDS`` or :data:`LIVE_OUTAGE_SECONDS`."""
    raw = os.environ.get(OUTAGE_ENV)
    try:
        value = float(raw) if raw else LIVE_OUTAGE_SECONDS
    except ValueError:
        raise RedisConfigError(f"{OUTAGE_ENV} must be a number, got {str(raw)[:20]!r}") from None
    if value < 0:
        raise RedisConfigError(f"{OUTAGE_ENV} must be >= 0")
    return value


#: Cluster URL schemes -> whether they use TLS.
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)


class RedisConfigError(ValueError):
    """A Redis URL or setting that cannot be used; the message never holds the password."""


def parse_url(url: str) -> dict[str, Any]:
    """Connection keyword arguments of ``redis.Redis`` for ``url``; raises RedisConfigError.

    >>> kw = parse_url("rediss://:pw@cache:6380/2")
    >>> kw["host"], kw["port"], kw["db"], kw["ssl"], kw["password"]
    ('cache', 6380, 2, True, 'pw')
    >>> parse_url("unix:///run/redis.sock?db=3")
    {'unix_socket_path': '/run/redis.sock', 'db': 3, 'username': None, 'password': None}

    A cluster URL gives the seed node's address (no ``db``: a cluster has only database 0):

    >>> parse_url("rediss+cluster://:pw@redis-0.redis:6379")
    {'host': 'redis-0.redis', 'port': 6379, 'username': None, 'password': 'pw', 'ssl': True}
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RedisConfigError(f"invalid Redis URL {mask_url(url)}") from None
    if parts.scheme not in _SCHEMES:
        raise RedisConfigError(
            "Redis URL must start with redis://, rediss://, unix://, redis+cluster:// or "
            "rediss+cluster:// "
            f"(got {f'scheme {parts.scheme[:10]!r}' if parts.scheme else 'no scheme'})"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme == "unix":
        if not parts.path:
            raise RedisConfigError(f"Redis unix URL has no socket path: {mask_url(url)}")
        db = parse_qs(parts.query).get("db", ["0"])[0]
        if not db.isdigit():
            raise RedisConfigError(f"Redis URL database must be a number: {mask_url(url)}")
        return {
            "unix_socket_path": unquote(parts.path),
            "db": int(db),
            "username": username,
            "password": password,
        }
    if not parts.hostname:
        raise RedisConfigError(f"Redis URL has no host: {mask_url(url)}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise RedisConfigError(f"Redis URL database must be a number: {mask_url(url)}")
    if parts.scheme in CLUSTER_SCHEMES:
        if path and int(path) != 0:
            raise RedisConfigError(f"a Redis Cluster has only database 0: {mask_url(url)}")
        return {
            "host": parts.hostname,
            "port": port or 6379,
            "username": username,
            "password": password,
            "ssl": CLUSTER_SCHEMES[parts.scheme],
        }
    return {
        "host": parts.hostname,
        "port": port or 6379,
        "db": int(path) if path else 0,
        "username": username,
        "password": password,
        "ssl": parts.scheme == "rediss",
    }


class RedisHealth:
    """Whether this process can reach Redis, for the logs and the metrics.

    Commands that fail on a dropped connection or a timeout report here, and so does the
    first command that succeeds after them. The first failure logs a warning (decisions
    pause: the flow waits in the command), an outage that lasts logs again every
    ``LOG_EVERY`` seconds, and the recovery logs how long it took. ``listen`` registers a
    callback ``(up, error)`` called on every failure and on the recovery (metrics).
    """

    LOG_EVERY = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = True
        self.errors = 0
        self.outages = 0
        self.down_since: float | None = None
        self._logged_at = 0.0
        self._listeners: list[Callable[[bool, BaseException | None], None]] = []

    def listen(self, callback: Callable[[bool, BaseException | None], None]) -> None:
        with self._lock:
            if callback not in self._listeners:
                self._listeners.append(callback)

    def failed(self, error: BaseException, patience: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            first = self.up
            if first:
                self.up = False
                self.outages += 1
                self.down_since = now
            down_for = now - (self.down_since or now)
            due = first or now - self._logged_at >= self.LOG_EVERY
            if due:
                self._logged_at = now
            listeners = list(self._listeners)
        if first:
            log.warning(
                "redis unreachable (%s: %s): waiting for it, retrying for up to %g s",
                type(error).__name__, str(error)[:200], patience,
            )  # fmt: skip
        elif due:
            log.warning(
                "redis still unreachable after %.0f s (%d errors so far)", down_for, self.errors
            )
        for callback in listeners:
            callback(False, error)

    def recovered(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self.up:
                return
            self.up = True
            down_for = now - (self.down_since or now)
            self.down_since = None
            listeners = list(self._listeners)
        log.warning("redis is back after %.1f s (%d errors so far)", down_for, self.errors)
        for callback in listeners:
            callback(True, None)


#: One per process: every client of :func:`connect` reports here.
HEALTH = RedisHealth()


class _Retry(Retry):
    """Retries dropped connections and timeouts with exponential backoff; never a wrong
    or missing password (redis-py counts that as a connection error and would back off
    for a long while before saying so).

    ``patience_seconds``: keep retrying until the failures have lasted this long (a Redis
    restart or failover), not just ``retries`` times; then the error is raised. Failures
    and the recovery are reported to :data:`HEALTH`."""

    def __init__(self, backoff: Any, retries: int, patience_seconds: float = 0.0) -> None:
        super().__init__(backoff, retries)
        self.patience_seconds = patience_seconds

    def call_with_retry(
        self,
        do: Any,
        fail: Any,
        is_retryable: Any = None,
        with_failure_count: bool = False,
        **kwargs: Any,
    ) -> Any:
        self._backoff.reset()
        failures = 0
        started = 0.0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if isinstance(error, AuthenticationError):
                    raise
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if failures == 1:
                    started = time.monotonic()
                HEALTH.failed(error, self.patience_seconds)
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                waited = time.monotonic() - started
                if failures > self._retries and waited >= self.patience_seconds:
                    raise
                time.sleep(self._backoff.compute(failures))
            else:
                if not HEALTH.up:
                    HEALTH.recovered()
                return result


def _retry(retries: int, patience_seconds: float = 0.0) -> Retry:
    if patience_seconds > 0:
        # Through an outage: waits of 0.1 s doubling up to 2 s, for patience_seconds.
        return _Retry(ExponentialBackoff(cap=2.0, base=0.1), retries, patience_seconds)
    return _Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)


def resolve_url(url: str | None = None) -> str:
    """``url`` if given, else ``$SALVAGE_REDIS_URL``, else the local default."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``).

    >>> is_cluster_url("redis+cluster://redis-0:6379"), is_cluster_url("redis://cache:6379")
    (True, False)
    """
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def connect(
    url: str | None = None,
    *,
    password: str | None = None,
    ca_file: str | None = None,
    socket_timeout: float = 5.0,
    retries: int = 3,
    client_name: str = "salvage",
    outage_seconds: float = 0.0,
) -> RedisClient:
    """A Redis client for ``url`` (see :func:`resolve_url`). Replies are raw bytes.

    The password is ``password``, else the URL's, else ``$SALVAGE_REDIS_PASSWORD``.
    ``ca_file`` verifies a ``rediss://`` server signed by a private CA. A dropped
    connection is retried ``retries`` times within about a second; authentication errors
    are not retried. ``outage_seconds`` > 0 (live mode): a command keeps retrying, with
    backoff, until Redis has been unreachable that long (see :class:`RedisHealth`), so a
    Redis restart pauses the caller instead of failing it. Nothing is sent until the first
    command, except with a cluster URL: ``RedisCluster`` asks the seed node for the slot
    map at once, and an unreachable cluster raises ``redis.ConnectionError`` here.
    """
    resolved = resolve_url(url)
    kw = parse_url(resolved)
    if password is not None:
        kw["password"] = password
    elif kw["password"] is None:
        kw["password"] = os.environ.get(PASSWORD_ENV) or None
    if ca_file is not None:
        if not kw.get("ssl"):
            raise RedisConfigError("a CA file is only used with rediss:// URLs")
        kw["ssl_ca_certs"] = ca_file
    if is_cluster_url(resolved):
        return install(_connect_cluster(resolved, kw, socket_timeout, retries, client_name))
    return install(
        redis.Redis(
            **kw,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
            retry=_retry(retries, outage_seconds),
            client_name=client_name,
        )
    )


def _connect_cluster(
    url: str, kw: dict[str, Any], socket_timeout: float, retries: int, client_name: str
) -> RedisCluster:
    try:
        return RedisCluster(
            **kw,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
            # The cluster client retries whole commands (and follows MOVED/ASK) itself;
            # node connections must not retry on their own.
            retry=_retry(retries),
            client_name=client_name,
        )
    except RedisClusterException as exc:
        # Its message names nodes, never the password; say which URL, masked.
        raise redis.ConnectionError(
            f"Redis Cluster at {mask_url(url)} cannot be used: {exc}"
        ) from None


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (CRC16 of its hash tag, mod 16384).

    >>> key_slot("salvage:{cust:c1}:stats") == key_slot("other:{cust:c1}:x")
    True
    """
    return int(_key_slot(key.encode()))


def _check_prefix(prefix: str) -> str:
    if not prefix or any(c in prefix for c in "{} \t\r\n"):
        raise RedisConfigError(
            f"Redis key prefix must be non-empty without braces or spaces, got {prefix!r}"
        )
    return prefix


class KeyLayout:
    """Every Redis key Salvage uses, under one prefix. ``docs/state.md`` lists them."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = _check_prefix(prefix)

    def _key(self, entity: str, ident: str, what: str) -> str:
        if not ident:
            raise ValueError(f"empty {entity} id")
        return f"{self.prefix}:{{{entity}:{ident}}}:{what}"

    # context
    def customer(self, customer_id: str) -> str:
        """Hash of one customer's observed stats."""
        return self._key("cust", customer_id, "stats")

    def family(self, family: str) -> str:
        """Hash of one SKU family's decayed refund rate."""
        return self._key("fam", family, "rates")

    def lane(self, lane: str) -> str:
        """Hash of one courier lane's decayed refund and delay rates."""
        return self._key("lane", lane, "rates")

    # cases
    def case(self, order_id: str) -> str:
        """Hash with the latest view and the outcome of one order."""
        return self._key("order", order_id, "case")

    def decisions(self, order_id: str) -> str:
        """List of the order's decisions (bounded)."""
        return self._key("order", order_id, "decisions")

    def interventions(self, order_id: str) -> str:
        """List of the order's interventions (bounded)."""
        return self._key("order", order_id, "interventions")

    def case_seen(self, order_id: str) -> str:
        """Set of decision/intervention identities already written (replay dedup)."""
        return self._key("order", order_id, "seen")

    def case_keys(self, order_id: str) -> list[str]:
        """All keys of one order, in the order the case script takes them."""
        return [
            self.case(order_id),
            self.decisions(order_id),
            self.interventions(order_id),
            self.case_seen(order_id),
        ]

    # dispatch
    def dispatch(self, intervention_id: str) -> str:
        """String holding the dispatch status of one intervention."""
        return self._key("iv", intervention_id, "dispatch")

    # models
    def model_versions(self, name: str) -> str:
        """Sorted set of a model's kept versions (score = version)."""
        return self._key("model", name, "versions")

    def model_blobs(self, name: str) -> str:
        """Hash version -> checkpoint bytes."""
        return self._key("model", name, "blobs")

    def model_latest(self, name: str) -> str:
        """String: the newest kept version."""
        return self._key("model", name, "latest")


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    """Where live state lives and how long it is kept. ``from_env`` reads the environment.

    ``password`` overrides one in the URL; it is left out of ``repr``.

    >>> RedisStoreConfig("redis://:pw@cache:6379/0", password="pw2")
    RedisStoreConfig(url='redis://:****@cache:6379/0', prefix='salvage')
    """

    url: str = DEFAULT_URL
    prefix: str = DEFAULT_PREFIX
    password: str | None = None
    ca_file: str | None = None
    case_closed_ttl_days: float = 90.0
    case_open_ttl_days: float = 60.0
    customer_ttl_days: float = 730.0
    context_cache_seconds: float = 5.0
    #: How long a command waits through a Redis outage before failing (0: about a second).
    outage_seconds: float = 0.0

    def __post_init__(self) -> None:
        parse_url(self.url)
        _check_prefix(self.prefix)
        for name in ("case_closed_ttl_days", "case_open_ttl_days", "customer_ttl_days"):
            if getattr(self, name) <= 0:
                raise RedisConfigError(f"{name} must be > 0")
        if self.context_cache_seconds < 0:
            raise RedisConfigError("context_cache_seconds must be >= 0")

    @classmethod
    def from_env(
        cls, url: str | None = None, prefix: str | None = None, **overrides: Any
    ) -> RedisStoreConfig:
        """Settings from arguments, then ``SALVAGE_REDIS_URL``, ``SALVAGE_REDIS_PASSWORD``,
        ``SALVAGE_REDIS_PREFIX``, ``SALVAGE_CASE_TTL_DAYS`` and
        ``SALVAGE_CONTEXT_CACHE_SECONDS``, then defaults. ``overrides`` (any field, e.g.
        ``password`` or ``ca_file``) win over the environment unless None."""
        env = os.environ

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if not raw:
                return default
            try:
                return float(raw)
            except ValueError:
                raise RedisConfigError(f"{name} must be a number, got {raw[:20]!r}") from None

        fields: dict[str, Any] = {
            "url": resolve_url(url),
            "prefix": prefix or env.get(PREFIX_ENV) or DEFAULT_PREFIX,
            "password": env.get(PASSWORD_ENV) or None,
            "case_closed_ttl_days": number(CASE_TTL_ENV, 90.0),
            "context_cache_seconds": number(CACHE_TTL_ENV, 5.0),
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    @property
    def masked_url(self) -> str:
        """The URL without its password."""
        return mask_url(self.url)

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"RedisStoreConfig(url={self.masked_url!r}, prefix={self.prefix!r})"

    @property
    def cluster(self) -> bool:
        """Whether the URL names a Redis Cluster."""
        return is_cluster_url(self.url)

    def connect(self) -> RedisClient:
        """A new client for these settings (``RedisCluster`` for a cluster URL)."""
        return connect(
            self.url,
            password=self.password,
            ca_file=self.ca_file,
            outage_seconds=self.outage_seconds,
        )
