"""Building :class:`~flows.settings.model.Settings` from raw values, key by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flows.settings.model import (
    EndpointSettings,
    KafkaSettings,
    RecoverySettings,
    RedisSettings,
    ReviewSettings,
    Settings,
    WebhookDelivery,
    WebhookSettings,
)
from flows.settings.section import (
    ENV_PREFIX,
    INPUT_TOPICS,
    KAFKA_RESERVED_KEYS,
    KAFKA_SECRET_KEYS,
    OUTPUT_TOPICS,
    REVIEW_TOPIC,
    Section,
    SettingsError,
)
from operators.actions import action_names
from operators.case import DAY, HOUR
from operators.window import WindowConfig

# --- building from raw values ---------------------------------------------------------------


def _topics(sec: Section, name: str, defaults: dict[str, str]) -> dict[str, str]:
    raw = sec.mapping(name)
    out = dict(defaults)
    for key, value in raw.items():
        if key not in defaults:
            raise SettingsError(f"{sec.key(name)}.{key}: unknown; expected one of {list(defaults)}")
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{sec.key(name)}.{key}: must be a topic name, got {value!r}")
        out[key] = value.strip()
    return out


def _librdkafka(sec: Section, name: str, *, from_env: dict[str, str]) -> dict[str, str]:
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
    sec: Section, env_secrets: dict[str, str], env_producer: dict[str, str]
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


def _redis(sec: Section, password_from_env: bool, url_from_env: bool) -> RedisSettings:
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


def _endpoint(name: str, sec: Section) -> EndpointSettings:
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


def _webhooks(sec: Section) -> WebhookSettings:
    endpoints = {
        name: _endpoint(name, Section(f"webhooks.endpoints.{name}", value))
        for name, value in sec.mapping("endpoints").items()
    }
    routes: dict[str, str] = {}
    known = action_names()  # read now: actions registered after import count too
    for action, target in sec.mapping("routes").items():
        key = f"webhooks.routes.{action}"
        if action != "*" and action not in known:
            raise SettingsError(f"{key}: unknown action; expected one of {list(known)} or *")
        if not isinstance(target, str) or target not in endpoints:
            raise SettingsError(
                f"{key}: endpoint {target!r} is not defined under webhooks.endpoints "
                f"(defined: {sorted(endpoints) or 'none'})"
            )
        routes[action] = target
    ttl = sec.number("ledger_ttl_days", 30.0, lo=0.001)
    delivery = WebhookDelivery(
        sec.choice("delivery", WebhookDelivery.FLOW.value, tuple(d.value for d in WebhookDelivery))
    )
    sec.done()
    return WebhookSettings(
        endpoints=endpoints, routes=routes, ledger_ttl_days=ttl, delivery=delivery
    )


def _window(sec: Section) -> WindowConfig:
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


def _names(sec: Section, name: str) -> tuple[str, ...]:
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
    top = Section("", raw)
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
    webhooks = _webhooks(top.sub("webhooks"))
    if not webhooks.sent_by_flow and redis.url is None:
        raise SettingsError(
            "webhooks.delivery: dispatcher needs redis.url (or SALVAGE_REDIS_URL): the "
            "outbox the flow writes and `salvage dispatch run` reads is in Redis"
        )
    settings = Settings(
        kafka=kafka,
        redis=redis,
        webhooks=webhooks,
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
