"""The decision memo in process memory (``operators.memo``): replay tools, tests, and live
mode without Redis (then it lasts as long as the process, like the other in-memory stores).

>>> from operators.memo import MemoEntry
>>> memo = InMemoryDecisionMemo()
>>> first = MemoEntry(1.0, "none", "treatment", 0.2, (), None)
>>> memo.remember("p", first) is first, memo.get("p") == first
(True, True)
>>> memo.remember("p", MemoEntry(2.0, "x", "treatment", 0.3, (), None)) == first
True
"""

from __future__ import annotations

import threading

import orjson

from operators.memo import MemoEntry


def copy_entry(entry: MemoEntry) -> MemoEntry:
    """A deep copy through JSON, as a durable store would give it back."""
    return MemoEntry.from_json(orjson.loads(orjson.dumps(entry.to_json())))


class InMemoryDecisionMemo:
    """A process-local :class:`~operators.memo.DecisionMemo`; entries never expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, MemoEntry] = {}

    def get(self, point: str) -> MemoEntry | None:
        with self._lock:
            entry = self._entries.get(point)
        return copy_entry(entry) if entry is not None else None

    def remember(self, point: str, entry: MemoEntry) -> MemoEntry:
        with self._lock:
            known = self._entries.get(point)
            if known is None:
                # A copy: the emitted records may be changed downstream, the memo's may not.
                self._entries[point] = copy_entry(entry)
                return entry
        return copy_entry(known)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
