"""The names settings use, their error, and typed access to one mapping of raw settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.contract import STREAMS

ENV_PREFIX = "SALVAGE_"
CONFIG_ENV = "SALVAGE_CONFIG"

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


class Section:
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

    def sub(self, name: str) -> Section:
        return Section(self.key(name), self.raw(name, {}))

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise SettingsError(f"{self.key(unknown[0])}: unknown key")


def _bounds(key: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise SettingsError(f"{key}: must be >= {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise SettingsError(f"{key}: must be <= {hi:g}, got {value!r}")
