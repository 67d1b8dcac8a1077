"""The settings model: one frozen dataclass per section, and how each is shown (masked)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flows.settings.section import (
    INPUT_TOPICS,
    KAFKA_SECRET_KEYS,
    OUTPUT_TOPICS,
    REVIEW_TOPIC,
    SettingsError,
)
from operators.case import DAY, HOUR
from operators.masking import MASK, mask_url
from operators.window import WindowConfig

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


class WebhookDelivery(StrEnum):
    """Which process sends the webhooks (``webhooks.delivery``)."""

    #: The flow's own process, on its delivery threads (one process to run).
    FLOW = "flow"
    #: ``salvage dispatch run`` processes: the flow claims, checks the caps and writes each
    #: delivery to the outbox in Redis (one round trip per batch) and sends nothing itself,
    #: so HTTP, signing and retries take none of its CPU, and dispatch scales on its own.
    DISPATCHER = "dispatcher"


@dataclass(frozen=True)
class WebhookSettings:
    """Endpoints by name and the action -> endpoint routes (``"*"`` routes any action)."""

    endpoints: dict[str, EndpointSettings] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    #: How long a dispatch claim is remembered (re-emitted interventions are skipped).
    ledger_ttl_days: float = 30.0
    delivery: WebhookDelivery = WebhookDelivery.FLOW

    @property
    def sent_by_flow(self) -> bool:
        """True when the flow's process sends the webhooks (``delivery: flow``)."""
        return self.delivery is WebhookDelivery.FLOW

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
                "delivery": str(self.webhooks.delivery),
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
        """Raise SettingsError if a routed endpoint's secret is missing (checked at start).
        With ``webhooks.delivery: dispatcher`` the flow signs nothing and needs none;
        ``salvage dispatch run`` checks them (:meth:`webhook_secrets`)."""
        if self.webhooks.sent_by_flow:
            self.webhook_secrets(env)

    def webhook_secrets(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """Each routed endpoint's secret from the environment; SettingsError if one is
        missing."""
        used = set(self.webhooks.routes.values())
        return {name: self.webhooks.endpoints[name].secret(env) for name in sorted(used)}
