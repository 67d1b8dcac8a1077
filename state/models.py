"""Model checkpoints: versioned, picklable model state, so a restart warm-starts.

>>> store = InMemoryModelStore()
>>> store.save("return_propensity", 3, b"state-3"); store.save("return_propensity", 4, b"s4")
>>> store.latest("return_propensity")
(4, b's4')
>>> store.latest("nothing") is None
True
"""

from __future__ import annotations

import threading

# The protocol lives in the domain (operators.stores); re-exported for existing imports.
from operators.stores import ModelStore


class InMemoryModelStore:
    """A process-local ModelStore (replay, tests); keeps the last ``keep`` versions."""

    def __init__(self, keep: int = 3) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, list[tuple[int, bytes]]] = {}
        self.keep = keep

    def save(self, name: str, version: int, blob: bytes) -> None:
        with self._lock:
            versions = self._versions.setdefault(name, [])
            versions.append((version, blob))
            versions.sort(key=lambda v: v[0])
            del versions[: -self.keep]

    def latest(self, name: str) -> tuple[int, bytes] | None:
        with self._lock:
            versions = self._versions.get(name)
            return versions[-1] if versions else None


__all__ = ["InMemoryModelStore", "ModelStore"]
