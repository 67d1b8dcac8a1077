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
    flows.settings.section.SettingsError: workers: must be an integer, got 'zero'

    >>> s = load_settings(env={"SALVAGE_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092"})
    >>> s.kafka.brokers, s.kafka.topic_of("orders")
    (['k1:9092', 'k2:9092'], 'salvage.orders')
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flows.settings.build import build_settings
from flows.settings.model import Settings
from flows.settings.section import CONFIG_ENV, ENV_PREFIX, SettingsError

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
