"""Live-mode settings: one typed object, from a TOML or YAML file plus ``SALVAGE_*`` variables.

Precedence, lowest first: built-in defaults, the file (``--config FILE`` or
``SALVAGE_CONFIG``), then environment variables. A variable names a key path with ``__``
between levels, upper-cased: ``SALVAGE_KAFKA__BOOTSTRAP_SERVERS``, ``SALVAGE_WORKERS``,
``SALVAGE_WEBHOOKS__ENDPOINTS__SUPPORT__URL``. Under ``kafka.security`` the underscores of
the last part become dots, so ``SALVAGE_KAFKA__SECURITY__SASL_PASSWORD`` sets librdkafka's
``sasl.password``. Variables whose first part is not a settings key (the webhook secrets
themselves, ``SALVAGE_CONFIG``) are not read as settings.

Secrets are never read from the file: Kafka passwords and the Redis password come from the
environment, and a webhook endpoint names the *variable* that holds its secret. Every
error names the key::

    >>> load_settings(env={"SALVAGE_WORKERS": "zero"})
    Traceback (most recent call last):
    ...
    flows.settings.SettingsError: workers: must be an integer, got 'zero'

    >>> s = load_settings(env={"SALVAGE_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092"})
    >>> s.kafka.brokers, s.kafka.topic_of("orders")
    (['k1:9092', 'k2:9092'], 'salvage.orders')
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from operators.contract import STREAMS
from operators.policy import ACTION_NAMES
from operators.window import DAY, HOUR, WindowConfig

ENV_PREFIX = "SALVAGE_"
CONFIG_ENV = "SALVAGE_CONFIG"
MASK = "****"

#: Output names -> default topic names. ``dead_letter`` is the flow's output name.
OUTPUT_TOPICS: dict[str, str] = {
    "interventions": "salvage.interventions",
    "decisions": "salvage.decisions",
    "outcomes": "salvage.outcomes",
    "dead_letter": "salvage.dead-letter",
}
INPUT_TOPICS: dict[str, str] = {s: f"salvage.{s}" for s in STREAMS}
REVIEW_TOPIC = "salvage.review-decisions"

#: librdkafka properties that hold secrets: only from the environment, masked when shown.
KAFKA_SECRET_KEYS = frozenset(
    {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.client.secret",
    }
)
#: librdkafka properties the settings set themselves; not allowed in the passthrough.
KAFKA_RESERVED_KEYS = frozenset(
    {"bootstrap.servers", "group.id", "enable.auto.commit", "enable.partition.eof"}
)


class SettingsError(ValueError):
    """Settings that cannot be used; the message starts with the key."""


# --- typed access to one mapping --------------------------------------------------------------


class _Section:
    """Typed reads of one mapping of raw settings, collecting unknown keys as errors.

    Values from the environment are strings; they are converted to the type asked for.
    """

    def __init__(self, path: str, value: Any) -> None:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise SettingsError(f"{path}: must be a table/mapping, got {type(value).__name__}")
        self.path = path
        self.value = dict(value)
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        value = self.value.get(name)
        return default if value is None or value == "" else value

    def integer(self, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        value = self.raw(name, default)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise SettingsError(
                    f"{self.key(name)}: must be an integer, got {value!r}"
                ) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{self.key(name)}: must be an integer, got {value!r}")
        _bounds(self.key(name), value, lo, hi)
        return value

    def number(
        self, name: str, default: float, lo: float | None = None, hi: float | None = None
    ) -> float:
        value = self.raw(name, default)
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise SettingsError(f"{self.key(name)}: must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise SettingsError(f"{self.key(name)}: must be a number, got {value!r}")
        _bounds(self.key(name), value, lo, hi)
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise SettingsError(f"{self.key(name)}: must be true or false, got {value!r}")
        return value

    def string(self, name: str, default: str | None) -> str | None:
        value = self.raw(name, default)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise SettingsError(f"{self.key(name)}: must be a string, got {value!r}")
        return value.strip()

    def required_string(self, name: str) -> str:
        value = self.string(name, None)
        if not value:
            raise SettingsError(f"{self.key(name)}: is required")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.string(name, default) or default
        if value not in allowed:
            raise SettingsError(f"{self.key(name)}: must be one of {list(allowed)}, got {value!r}")
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.raw(name, {})
        if not isinstance(value, Mapping):
            raise SettingsError(f"{self.key(name)}: must be a table/mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def sub(self, name: str) -> _Section:
        return _Section(self.key(name), self.raw(name, {}))

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise SettingsError(f"{self.key(unknown[0])}: unknown key")


def _bounds(key: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"{key}: must be >= {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise SettingsError(f"{key}: must be <= {hi:g}, got {value!r}")


# --- the settings model ---------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaSettings:
    """Brokers, topics and client options. ``security`` is passed through to librdkafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: dict[str, str] = field(default_factory=lambda: dict(INPUT_TOPICS))
    review_decisions_topic: str = REVIEW_TOPIC
    output_topics: dict[str, str] = field(default_factory=lambda: dict(OUTPUT_TOPICS))
    #: Where to start reading a partition that has no recovery snapshot.
    starting_offset: str = "earliest"
    #: How long an idle input partition waits before polling again (latency vs. CPU when idle).
    idle_poll_ms: int = 5
    #: How long the event-time merge of the input topics waits for a topic that is
    #: behind but has nothing buffered, before going on without it.
    max_idle_ms: int = 500
    #: Extra librdkafka properties (security.protocol, sasl.*, ssl.*, client.id, ...).
    security: dict[str, str] = field(default_factory=dict, repr=False)  # holds sasl.password
    #: Extra producer properties (linger.ms, compression.type, acks, ...).
    producer: dict[str, str] = field(default_factory=dict)

    @property
    def brokers(self) -> list[str]:
        return [b.strip() for b in self.bootstrap_servers.split(",") if b.strip()]

    def topic_of(self, stream: str) -> str:
        """The input topic of a stream (``orders``, ``delivery``, ``support``, ``refunds``)."""
        return self.topics[stream]

    def client_config(self) -> dict[str, str]:
        """Base librdkafka config for every client: brokers plus the security passthrough."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security}


@dataclass(frozen=True)
class RedisSettings:
    """Redis for the live stores (dispatch ledger, cases, context, models). Unset: in memory,
    which is fine for trying things out but forgets dispatches on restart."""

    url: str | None = None
    #: Key prefix, so several deployments can share one Redis.
    prefix: str = "salvage"
    #: From ``SALVAGE_REDIS_PASSWORD`` only; overrides a password in the URL.
    password: str | None = None
    #: CA bundle for ``rediss://`` with a private CA.
    ca_file: str | None = None

    def __repr__(self) -> str:  # the password, in the URL or apart, stays out of logs
        url = mask_url(self.url) if self.url else None
        password = MASK if self.password else None
        return (
            f"RedisSettings(url={url!r}, prefix={self.prefix!r}, password={password!r}, "
            f"ca_file={self.ca_file!r})"
        )

    def connection_url(self) -> str | None:
        """The URL with the password (if any) filled in; never log this."""
        if self.url is None or self.password is None:
            return self.url
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:{self.password}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class EndpointSettings:
    """One webhook endpoint. ``secret_env`` names the variable holding the HMAC secret."""

    name: str
    url: str
    secret_env: str
    timeout_seconds: float = 5.0
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_in_flight: int = 8
    #: After the quick attempts fail, keep retrying for this many hours from the first
    #: attempt (0: dead-letter after the quick attempts). Parked in Redis meanwhile.
    retry_hours: float = 6.0
    #: The first slow retry waits about this long; each next one twice as long...
    retry_base_seconds: float = 60.0
    #: ...but never longer than this.
    retry_max_seconds: float = 1800.0
    #: Extra request headers (non-secret), e.g. a routing key of the receiving tool.
    headers: dict[str, str] = field(default_factory=dict)

    def masked(self) -> dict[str, Any]:
        """The settings as shown (``config show``, reprs): webhook URLs carry tokens in
        their user info, path or query, and header values are often credentials."""
        out = {k: v for k, v in asdict(self).items() if k != "name"}
        out["url"] = mask_url(self.url, keep_path=False)
        out["headers"] = dict.fromkeys(self.headers, MASK)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"EndpointSettings(name={self.name!r}, {fields})"

    def secret(self, env: Mapping[str, str] | None = None) -> str:
        """The secret from the environment; raises SettingsError naming the variable."""
        value = (os.environ if env is None else env).get(self.secret_env)
        if not value:
            raise SettingsError(
                f"webhooks.endpoints.{self.name}.secret_env: environment variable "
                f"{self.secret_env} is not set"
            )
        return value


@dataclass(frozen=True)
class WebhookSettings:
    """Endpoints by name and the action -> endpoint routes (``"*"`` routes any action)."""

    endpoints: dict[str, EndpointSettings] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    #: How long a dispatch claim is remembered (re-emitted interventions are skipped).
    ledger_ttl_days: float = 30.0

    def endpoint_for(self, action: str) -> EndpointSettings | None:
        name = self.routes.get(action) or self.routes.get("*")
        return self.endpoints.get(name) if name else None


@dataclass(frozen=True)
class RecoverySettings:
    """Bytewax recovery. Without ``dir`` a restart starts from ``kafka.starting_offset``.

    ``snapshot_interval_seconds`` is also Bytewax's epoch length: on resume, up to one
    interval of input is processed again (outputs of it are re-emitted).
    """

    dir: str | None = None
    partitions: int = 1
    snapshot_interval_seconds: float = 10.0
    backup_interval_seconds: float = 0.0


@dataclass(frozen=True)
class ReviewSettings:
    """The human-review loop. Expiry is by wall-clock time from when the request was seen."""

    #: Hours a review request stays open; unset: the policy's ``limits.review_expires_hours``.
    expires_hours: float | None = None
    #: Hours a closed review is remembered, so late decisions are recorded as such.
    retention_hours: float = 72.0
    #: The variable holding the review secret: decisions must be signed with it (HMAC, as
    #: webhooks are). Unset variable: every decision is dead-lettered.
    secret_env: str = "SALVAGE_REVIEW_SECRET"
    #: Reviewer ids allowed to decide (empty: nobody; every decision is dead-lettered).
    reviewers: tuple[str, ...] = ()
    #: Hosts a reviewer's customer text may link to (and their subdomains).
    link_hosts: tuple[str, ...] = ()
    #: The longest customer text a reviewer may write.
    max_message_chars: int = 500
    #: How long after signing a decision is accepted (a backlog after an outage is fine).
    signature_max_age_hours: float = 168.0

    def secret(self, env: Mapping[str, str] | None = None) -> str | None:
        """The review secret from the environment, or None if the variable is not set."""
        return (os.environ if env is None else env).get(self.secret_env) or None


@dataclass(frozen=True)
class Settings:
    """Everything ``salvage run`` needs, validated."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    window: WindowConfig = field(default_factory=WindowConfig)
    policy: str | None = None
    workers: int = 1
    batch_size: int = 1000
    #: Prometheus metrics port of ``salvage run`` (0: off). Under ``python -m bytewax.run``
    #: with ``BYTEWAX_DATAFLOW_API_ENABLED`` the metrics are also on Bytewax's port 3030.
    metrics_port: int = 9464
    #: Address the metrics port binds to: loopback unless set (a container sets 0.0.0.0
    #: so that Prometheus can reach it; the labels are bounded but still business data).
    metrics_addr: str = "127.0.0.1"
    source: str = "<defaults>"

    def effective(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings as a plain dict with secrets masked (``salvage config show``)."""
        e = os.environ if env is None else env
        out: dict[str, Any] = {
            "source": self.source,
            "policy": self.policy or "(shipped default)",
            "workers": self.workers,
            "batch_size": self.batch_size,
            "metrics_port": self.metrics_port,
            "metrics_addr": self.metrics_addr,
            "kafka": asdict(self.kafka),
            "redis": {
                "url": mask_url(self.redis.url) if self.redis.url else None,
                "prefix": self.redis.prefix,
                "password": MASK if self.redis.password else None,
                "ca_file": self.redis.ca_file,
            },
            "webhooks": {
                "routes": dict(self.webhooks.routes),
                "ledger_ttl_days": self.webhooks.ledger_ttl_days,
                "endpoints": {
                    name: {
                        **ep.masked(),
                        "secret": MASK if e.get(ep.secret_env) else "(not set)",
                    }
                    for name, ep in self.webhooks.endpoints.items()
                },
            },
            "recovery": asdict(self.recovery),
            "review": {
                **asdict(self.review),
                "secret": MASK if self.review.secret(e) else "(not set)",
            },
            "window": {
                "allowed_lateness_hours": self.window.allowed_lateness / HOUR,
                "window_after_delivery_days": self.window.window_after_delivery / DAY,
                "window_after_placed_days": self.window.window_after_placed / DAY,
                "tombstone_retention_days": self.window.tombstone_retention / DAY,
                "shards": self.window.shards,
                "idle_advance_seconds": self.window.idle_advance_seconds,
            },
        }
        out["kafka"]["security"] = {
            k: (MASK if k in KAFKA_SECRET_KEYS else v) for k, v in self.kafka.security.items()
        }
        return out

    def check_secrets(self, env: Mapping[str, str] | None = None) -> None:
        """Raise SettingsError if a routed endpoint's secret is missing (checked at start)."""
        used = set(self.webhooks.routes.values())
        for name in sorted(used):
            self.webhooks.endpoints[name].secret(env)


def mask_url(url: str, keep_path: bool = True) -> str:
    """A URL with its password and query values replaced by ``****`` (and, unless
    ``keep_path``, its path: webhook URLs often carry their token there).

    >>> mask_url("rediss://user:hunter2@cache:6380/0")
    'rediss://user:****@cache:6380/0'
    >>> mask_url("redis://127.0.0.1:6379")
    'redis://127.0.0.1:6379'
    >>> mask_url("https://hooks.example.com/services/T0/B1/XyZ?token=abc&x", keep_path=False)
    'https://hooks.example.com/****?token=****&x=****'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc}"
    elif parts.username:
        netloc = f"{MASK}@{netloc}"  # a lone user info is a token (https://TOKEN@host)
    path = parts.path
    if not keep_path and path not in ("", "/"):
        path = "/" + MASK
    query = "&".join(f"{pair.partition('=')[0]}={MASK}" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


# --- building from raw values ---------------------------------------------------------------


def _topics(sec: _Section, name: str, defaults: dict[str, str]) -> dict[str, str]:
    raw = sec.mapping(name)
    out = dict(defaults)
    for key, value in raw.items():
        if key not in defaults:
            raise SettingsError(f"{sec.key(name)}.{key}: unknown; expected one of {list(defaults)}")
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{sec.key(name)}.{key}: must be a topic name, got {value!r}")
        out[key] = value.strip()
    return out


def _librdkafka(sec: _Section, name: str, *, from_env: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in sec.mapping(name).items():
        prop = key if "." in key else key.replace("_", ".")
        if prop in KAFKA_RESERVED_KEYS:
            raise SettingsError(f"{sec.key(name)}.{prop}: set by Salvage; not allowed here")
        if prop in KAFKA_SECRET_KEYS and key not in from_env:
            raise SettingsError(
                f"{sec.key(name)}.{prop}: a secret; set it in the environment as "
                f"{ENV_PREFIX}KAFKA__{name.upper()}__{prop.replace('.', '_').upper()}"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise SettingsError(f"{sec.key(name)}.{prop}: must be a scalar, got {value!r}")
        out[prop] = str(value)
    return out


def _kafka(
    sec: _Section, env_secrets: dict[str, str], env_producer: dict[str, str]
) -> KafkaSettings:
    servers = sec.string("bootstrap_servers", KafkaSettings.bootstrap_servers) or ""
    if not [b for b in servers.split(",") if b.strip()]:
        raise SettingsError("kafka.bootstrap_servers: is required")
    for broker in servers.split(","):
        host, sep, port = broker.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"kafka.bootstrap_servers: {broker.strip()!r} is not host:port")
    topics = _topics(sec, "topics", INPUT_TOPICS)
    outputs = _topics(sec, "output_topics", OUTPUT_TOPICS)
    review = sec.string("review_decisions_topic", REVIEW_TOPIC) or REVIEW_TOPIC
    every = [*topics.values(), *outputs.values(), review]
    duplicate = next((t for t in every if every.count(t) > 1), None)
    if duplicate is not None:
        raise SettingsError(f"kafka: topic {duplicate!r} is used for more than one stream")
    settings = KafkaSettings(
        bootstrap_servers=servers,
        topics=topics,
        review_decisions_topic=review,
        output_topics=outputs,
        starting_offset=sec.choice("starting_offset", "earliest", ("earliest", "latest")),
        idle_poll_ms=sec.integer("idle_poll_ms", 5, lo=0, hi=10_000),
        max_idle_ms=sec.integer("max_idle_ms", 500, lo=0, hi=600_000),
        security=_librdkafka(sec, "security", from_env=env_secrets),
        producer=_librdkafka(sec, "producer", from_env=env_producer),
    )
    sec.done()
    return settings


def _redis(sec: _Section, password_from_env: bool, url_from_env: bool) -> RedisSettings:
    url = sec.string("url", None) or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
            raise SettingsError(
                "redis.url: must start with redis://, rediss://, unix:// or (a Redis Cluster) "
                f"redis+cluster:// or rediss+cluster://, got {url[:12]!r}"
            )
        if parts.password and not url_from_env:
            raise SettingsError(
                f"redis.url: holds a password; set it in the environment as "
                f"{ENV_PREFIX}REDIS_PASSWORD (or the whole URL as {ENV_PREFIX}REDIS_URL)"
            )
    password = sec.string("password", None) or None
    if password is not None and not password_from_env:
        raise SettingsError(
            f"redis.password: a secret; set it in the environment as {ENV_PREFIX}REDIS_PASSWORD"
        )
    settings = RedisSettings(
        url=url,
        prefix=sec.string("prefix", "salvage") or "salvage",
        password=password,
        ca_file=sec.string("ca_file", None),
    )
    sec.done()
    return settings


def _endpoint(name: str, sec: _Section) -> EndpointSettings:
    url = sec.required_string("url")
    if urlsplit(url).scheme not in ("http", "https"):
        raise SettingsError(f"{sec.key('url')}: must be an http:// or https:// URL, got {url!r}")
    if "secret" in sec.value:
        raise SettingsError(
            f"{sec.key('secret')}: secrets are not read from settings; set secret_env to the "
            "name of the environment variable that holds it"
        )
    secret_env = sec.required_string("secret_env")
    if not secret_env.replace("_", "").isalnum():
        raise SettingsError(f"{sec.key('secret_env')}: must be a variable name, got {secret_env!r}")
    headers = {str(k): str(v) for k, v in sec.mapping("headers").items()}
    ep = EndpointSettings(
        name=name,
        url=url,
        secret_env=secret_env,
        timeout_seconds=sec.number("timeout_seconds", 5.0, lo=0.01, hi=300),
        max_attempts=sec.integer("max_attempts", 5, lo=1, hi=100),
        backoff_base_seconds=sec.number("backoff_base_seconds", 0.5, lo=0.0),
        backoff_max_seconds=sec.number("backoff_max_seconds", 30.0, lo=0.0),
        max_in_flight=sec.integer("max_in_flight", 8, lo=1, hi=1024),
        retry_hours=sec.number("retry_hours", 6.0, lo=0.0, hi=24 * 30),
        retry_base_seconds=sec.number("retry_base_seconds", 60.0, lo=0.001),
        retry_max_seconds=sec.number("retry_max_seconds", 1800.0, lo=0.001),
        headers=headers,
    )
    sec.done()
    return ep


def _webhooks(sec: _Section) -> WebhookSettings:
    endpoints = {
        name: _endpoint(name, _Section(f"webhooks.endpoints.{name}", value))
        for name, value in sec.mapping("endpoints").items()
    }
    routes: dict[str, str] = {}
    for action, target in sec.mapping("routes").items():
        key = f"webhooks.routes.{action}"
        if action != "*" and action not in ACTION_NAMES:
            raise SettingsError(f"{key}: unknown action; expected one of {list(ACTION_NAMES)} or *")
        if not isinstance(target, str) or target not in endpoints:
            raise SettingsError(
                f"{key}: endpoint {target!r} is not defined under webhooks.endpoints "
                f"(defined: {sorted(endpoints) or 'none'})"
            )
        routes[action] = target
    ttl = sec.number("ledger_ttl_days", 30.0, lo=0.001)
    sec.done()
    return WebhookSettings(endpoints=endpoints, routes=routes, ledger_ttl_days=ttl)


def _window(sec: _Section) -> WindowConfig:
    default = WindowConfig()
    try:
        cfg = WindowConfig(
            allowed_lateness=sec.number(
                "allowed_lateness_hours", default.allowed_lateness / HOUR, lo=0
            )
            * HOUR,
            window_after_delivery=sec.number(
                "window_after_delivery_days", default.window_after_delivery / DAY, lo=0
            )
            * DAY,
            window_after_placed=sec.number(
                "window_after_placed_days", default.window_after_placed / DAY, lo=0
            )
            * DAY,
            tombstone_retention=sec.number(
                "tombstone_retention_days", default.tombstone_retention / DAY, lo=0
            )
            * DAY,
            shards=sec.integer("shards", default.shards, lo=1, hi=4096),
            # Live input can go quiet; event time then follows the wall clock.
            idle_advance_seconds=sec.number("idle_advance_seconds", 60.0, lo=1),
        )
    except ValueError as exc:
        raise SettingsError(f"window: {exc}") from None
    sec.done()
    return cfg


def _names(sec: _Section, name: str) -> tuple[str, ...]:
    """A list of names: a YAML/TOML list, or a comma-separated string (from a variable)."""
    value = sec.raw(name, [])
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{sec.key(name)}: must be a list of names, got {value!r}")
    names = tuple(v.strip() for v in value if v.strip())
    if any(len(n) > 200 or any(c.isspace() for c in n) for n in names):
        raise SettingsError(f"{sec.key(name)}: names must be short and have no spaces")
    return names


def build_settings(
    raw: Mapping[str, Any], source: str = "<values>", env_secrets: Mapping[str, Any] | None = None
) -> Settings:
    """Validate raw settings (a parsed file merged with the environment) into Settings.

    ``env_secrets`` is the part of ``raw`` that came from the environment: secrets are
    accepted only from there.
    """
    from_env = env_secrets or {}
    top = _Section("", raw)
    kafka_env = from_env.get("kafka") or {}
    kafka = _kafka(
        top.sub("kafka"), kafka_env.get("security") or {}, kafka_env.get("producer") or {}
    )
    redis_env = from_env.get("redis") or {}
    redis = _redis(top.sub("redis"), "password" in redis_env, "url" in redis_env)
    rec = top.sub("recovery")
    recovery = RecoverySettings(
        dir=rec.string("dir", None) or None,
        partitions=rec.integer("partitions", 1, lo=1, hi=1024),
        snapshot_interval_seconds=rec.number("snapshot_interval_seconds", 10.0, lo=0.1),
        backup_interval_seconds=rec.number("backup_interval_seconds", 0.0, lo=0.0),
    )
    rec.done()
    rv = top.sub("review")
    expires = rv.raw("expires_hours")
    secret_env = rv.string("secret_env", ReviewSettings.secret_env) or ReviewSettings.secret_env
    if not secret_env.replace("_", "").isalnum():
        raise SettingsError(f"review.secret_env: must be a variable name, got {secret_env!r}")
    if "secret" in rv.value:
        raise SettingsError(
            "review.secret: secrets are not read from settings; set review.secret_env to the "
            "name of the environment variable that holds it"
        )
    review = ReviewSettings(
        expires_hours=None if expires is None else rv.number("expires_hours", 48.0, lo=0.0),
        retention_hours=rv.number("retention_hours", 72.0, lo=0.0),
        secret_env=secret_env,
        reviewers=_names(rv, "reviewers"),
        link_hosts=tuple(h.lower().rstrip(".") for h in _names(rv, "link_hosts")),
        max_message_chars=rv.integer("max_message_chars", 500, lo=1, hi=2000),
        signature_max_age_hours=rv.number("signature_max_age_hours", 168.0, lo=0.01),
    )
    rv.done()
    settings = Settings(
        kafka=kafka,
        redis=redis,
        webhooks=_webhooks(top.sub("webhooks")),
        recovery=recovery,
        review=review,
        window=_window(top.sub("window")),
        policy=top.string("policy", None) or None,
        workers=top.integer("workers", 1, lo=1, hi=256),
        batch_size=top.integer("batch_size", 1000, lo=1, hi=1_000_000),
        metrics_port=top.integer("metrics_port", 9464, lo=0, hi=65535),
        metrics_addr=top.string("metrics_addr", "127.0.0.1") or "127.0.0.1",
        source=source,
    )
    top.done()
    return settings


_TOP_KEYS = frozenset(
    {
        "kafka",
        "redis",
        "webhooks",
        "recovery",
        "review",
        "window",
        "policy",
        "workers",
        "batch_size",
        "metrics_port",
    }
)


#: Single-underscore names shared with the Redis stores' own configuration.
ENV_ALIASES = {
    "SALVAGE_REDIS_URL": ("redis", "url"),
    "SALVAGE_REDIS_PASSWORD": ("redis", "password"),
}


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """The nested raw settings given by ``SALVAGE_*`` variables (other variables ignored).

    >>> env_overrides({"SALVAGE_KAFKA__SECURITY__SASL_MECHANISM": "PLAIN",
    ...                "SALVAGE_WORKERS": "2", "SALVAGE_HOOK_SECRET": "x"})
    {'kafka': {'security': {'sasl.mechanism': 'PLAIN'}}, 'workers': '2'}
    """
    out: dict[str, Any] = {}
    for alias, (section, key) in ENV_ALIASES.items():
        if env.get(alias):
            out.setdefault(section, {})[key] = env[alias]
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not parts or parts[0] not in _TOP_KEYS or any(not p for p in parts):
            continue
        if len(parts) == 3 and parts[0] == "kafka" and parts[1] in ("security", "producer"):
            parts[2] = parts[2].replace("_", ".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = env[name]
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML (``.toml``) or YAML (``.yaml``/``.yml``) settings file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{p}: cannot read the settings file: {exc.strerror}") from None
    try:
        if p.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise SettingsError(f"{p}: settings files must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{p}: not valid {p.suffix[1:].upper()}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{p}: the settings file must hold a table/mapping at the top")
    return data


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the file (``path`` or ``$SALVAGE_CONFIG``), then ``SALVAGE_*`` variables."""
    e = os.environ if env is None else env
    file = path or e.get(CONFIG_ENV) or None
    raw: dict[str, Any] = read_file(file) if file else {}
    overrides = env_overrides(e)
    source = f"{file} + environment" if file else "defaults + environment"
    return build_settings(_merge(raw, overrides), source, overrides)
