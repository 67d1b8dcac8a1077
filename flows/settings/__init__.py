"""Live-mode settings: one typed object, from a TOML or YAML file plus ``SALVAGE_*`` variables.

- :mod:`~flows.settings.loading`: precedence (defaults, file, environment), reading the
  file, ``SALVAGE_*`` variables (:func:`load_settings`);
- :mod:`~flows.settings.build`: raw values to typed sections, each error naming its key;
- :mod:`~flows.settings.model`: the frozen settings dataclasses and their masked view;
- :mod:`~flows.settings.section`: topic names, secret keys, :class:`SettingsError` and
  typed access to one mapping.

Secrets are masked with :func:`operators.masking.mask_url` wherever they are shown.
"""

from flows.settings.build import build_settings
from flows.settings.loading import env_overrides, load_settings, read_file
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
from flows.settings.section import SettingsError

__all__ = [
    "EndpointSettings",
    "KafkaSettings",
    "RecoverySettings",
    "RedisSettings",
    "ReviewSettings",
    "Settings",
    "SettingsError",
    "WebhookDelivery",
    "WebhookSettings",
    "build_settings",
    "env_overrides",
    "load_settings",
    "read_file",
]
