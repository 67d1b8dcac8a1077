"""The decision memo in process memory (``operators.memo``): replay tools, tests, and live
mode without Redis (then it lasts as long as the process, like the other in-memory stores).

>>> from operators.memo import MemoEntry
>>> memo = InMemoryDecisionMemo()
>>> first = MemoEntry(1.0, "none", "treatment", 0.2, (), None)
>>> memo.remember("p", first) is first, memo.get("p") == first
(True, True)
>>> memo.remember("p", MemoEntry(2.0, "x", "treatment", 0.3, (), None)) == first
True
>>> small = InMemoryDecisionMemo(max_entries=2)
>>> for p in ("a", "b", "c"):
...     _ = small.remember(p, first)
>>> small.get("a") is None, len(small)
(True, 2)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import orjson

from operators.memo import MemoEntry


def copy_entry(entry: MemoEntry) -> MemoEntry:
    """A deep copy through JSON, as a durable store would give it back."""
    return MemoEntry.from_json(orjson.loads(orjson.dumps(entry.to_json())))


#: Entries an in-memory memo keeps: the oldest go first (a long live run without Redis
#: must not grow without bound; a point that old is rarely re-read).
MAX_ENTRIES = 500_000


class InMemoryDecisionMemo:
    """A process-local :class:`~operators.memo.DecisionMemo`, keeping the newest
    ``max_entries`` decision points."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, MemoEntry] = OrderedDict()

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
                if len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
                return entry
        return copy_entry(known)

    def get_many(self, points: Sequence[str]) -> list[MemoEntry | None]:
        return [self.get(p) for p in points]

    def remember_many(self, entries: Sequence[tuple[str, MemoEntry]]) -> list[MemoEntry]:
        return [self.remember(p, e) for p, e in entries]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
