"""Replay input: the four stream files merged by event time, like four Kafka partitions.

Each file is read in its own order (as a partition would be); the merge always takes the
head with the smallest ``occurred_at``, so a file's own disorder is preserved and shows up
downstream exactly as it would live. A line whose time cannot be read is emitted at once
(it goes to the dead-letter output). Resume state is the number of lines consumed per file.

**Outliers.** A line stamped far ahead of its own file (a bad clock: a delivery event
stamped 2100 among 2026 ones) would, as a head, hold its whole file back until every other
file had passed 2100, and every line of the file behind it would then arrive late. A head
more than ``spike_gap`` (default six hours) after the median time of the next lines of its
file is therefore emitted at once, out of line, and "received" at that median: the
stream's own progress, so the clock's future guard dead-letters it if it is more than
``max_future_skew`` ahead, and otherwise its jump waits for confirmation (``max_jump``)
instead of moving the watermark. Every other item is
received at the replay clock, the largest event time emitted in line so far.
"""

from __future__ import annotations

import gzip
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from operators.contract import STREAMS, ContractError, parse_ts

#: An input item: (stream, payload, received_at). The payload is parsed JSON or raw bytes.
RawItem = tuple[str, Any, float]

#: A head this far after the median of the next lines of its file is an outlier: held in
#: line, it would make the lines behind it later than the allowed lateness (default 6 h)
#: by the time they are read.
SPIKE_GAP = 6 * 3600.0
#: Lines read ahead per file to judge its head.
LOOKAHEAD = 3


def _median(values: list[float]) -> float:
    """``statistics.median`` (the same value) without its generality: this runs for every
    line read, on at most LOOKAHEAD values."""
    data = sorted(values)
    n = len(data)
    i = n // 2
    return data[i] if n % 2 else (data[i - 1] + data[i]) / 2


def stream_file(input_dir: Path, stream: str) -> Path | None:
    """The file of ``stream`` in ``input_dir`` (``.jsonl`` or ``.jsonl.gz``), if any."""
    for suffix in (".jsonl", ".jsonl.gz"):
        p = input_dir / f"{stream}{suffix}"
        if p.exists():
            return p
    return None


def find_stream_files(input_dir: Path) -> dict[str, Path]:
    """Stream name -> file, for the streams present. Raises if none is."""
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: not a directory")
    files = {s: p for s in STREAMS if (p := stream_file(input_dir, s)) is not None}
    if not files:
        raise FileNotFoundError(
            f"{input_dir}: no stream files; expected any of "
            + ", ".join(f"{s}.jsonl[.gz]" for s in STREAMS)
        )
    return files


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def occurred_at(payload: Any) -> float | None:
    """A raw record's event time, used to merge streams (None: unreadable, emitted first
    and dead-lettered downstream with the reason)."""
    if isinstance(payload, dict) and isinstance(payload.get("occurred_at"), str):
        try:
            return parse_ts(payload.get("occurred_at"))
        except ContractError:
            return None
    return None


class _Lines:
    """Lines of a binary file, read in large chunks (several times faster than readline);
    ``next_line`` returns None at the end."""

    CHUNK = 1 << 20

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.lines: list[bytes] = []
        self.i = 0
        self.rest = b""
        self.eof = False

    def next_line(self) -> bytes | None:
        while self.i >= len(self.lines):
            if self.eof:
                return None
            data = self.fh.read(self.CHUNK)
            if not data:
                self.eof = True
                self.lines, self.i, self.rest = ([self.rest] if self.rest else []), 0, b""
                continue
            parts = (self.rest + data).split(b"\n")
            self.rest = parts.pop()
            self.lines, self.i = parts, 0
        line = self.lines[self.i]
        self.i += 1
        return line

    def close(self) -> None:
        self.fh.close()


@dataclass(slots=True)
class _Line:
    ts: float | None  # None: the time cannot be read
    payload: Any
    blanks: int  # blank lines just before it (consumed with it, for resume)


class MergedFiles:
    """An iterator over RawItems of several stream files merged by event time."""

    def __init__(
        self,
        files: dict[str, Path],
        skip: dict[str, int] | None = None,
        spike_gap: float | None = SPIKE_GAP,
    ) -> None:
        self.files = files
        self.spike_gap = spike_gap
        self.consumed: dict[str, int] = {s: 0 for s in files}
        self._handles: dict[str, _Lines] = {}
        self._ahead: dict[str, deque[_Line]] = {}
        # Per stream with lines left: (merge key, received_at of its head).
        self._heads: dict[str, tuple[float, float | None]] = {}
        self.now = float("-inf")  # replay clock: the largest event time emitted in line
        # Ties in event time go by stream rank, the same for every line of a file.
        self._rank = {s: i for i, s in enumerate(STREAMS)}
        for stream, path in sorted(files.items(), key=lambda kv: self._rank[kv[0]]):
            lines = self._handles[stream] = _Lines(_open(path))
            for _ in range((skip or {}).get(stream, 0)):
                if lines.next_line() is None:
                    break
                self.consumed[stream] += 1
            self._ahead[stream] = deque()
            self._fill(stream)

    def _read(self, stream: str) -> _Line | None:
        lines = self._handles[stream]
        blanks = 0
        while True:
            line = lines.next_line()
            if line is None:
                return None
            if line.strip():
                break
            blanks += 1  # blank lines are skipped, but count for resume
        payload: Any
        try:
            payload = orjson.loads(line)
        except orjson.JSONDecodeError:
            payload = line.rstrip(b"\r")
        return _Line(occurred_at(payload), payload, blanks)

    def _fill(self, stream: str) -> None:
        """Read ahead, and work out the head's merge key: its time, or -inf (at once) if
        unreadable or an outlier (with the stream's progress as its received time)."""
        ahead = self._ahead[stream]
        while len(ahead) <= LOOKAHEAD:
            line = self._read(stream)
            if line is None:
                break
            ahead.append(line)
        if not ahead:
            self._heads.pop(stream, None)
            return
        head = ahead[0]
        if head.ts is None:
            self._heads[stream] = (float("-inf"), None)
            return
        if self.spike_gap is not None:
            following = [x.ts for i, x in enumerate(ahead) if i and x.ts is not None]
            if following:
                progress = _median(following)
                if head.ts > progress + self.spike_gap:
                    self._heads[stream] = (float("-inf"), progress)
                    return
        self._heads[stream] = (head.ts, None)

    def __iter__(self) -> Iterator[RawItem]:
        return self

    def __next__(self) -> RawItem:
        if not self._heads:
            raise StopIteration
        rank = self._rank
        stream = min(self._heads, key=lambda s: (self._heads[s][0], rank[s]))
        key, progress = self._heads[stream]
        line = self._ahead[stream].popleft()
        self.consumed[stream] += 1 + line.blanks
        self._fill(stream)
        if progress is not None:  # an outlier: received at its stream's progress
            return (stream, line.payload, progress)
        if key > self.now:
            self.now = key
        if self.now == float("-inf"):  # nothing read in line yet: the earliest head's time
            known = [k for k, _ in self._heads.values() if k != float("-inf")]
            return (stream, line.payload, min(known) if known else 0.0)
        return (stream, line.payload, self.now)

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()


#: Empty batches a replay source gives at most while ``hold_end`` says decisions still
#: wait (each lets the learner and the waiting decisions take a turn).
MAX_HOLD_ROUNDS = 20_000


class EndOfInput(Protocol):
    """What a replay source tells the flow's decision gate (``operators.gate``)."""

    def read(self, count: int) -> None:
        """The source hands ``count`` more items to the flow."""

    def hold_end(self) -> bool:
        """The source is at the end of its input: whether to give the flow another turn."""


class _ReplayPartition(StatefulSourcePartition[RawItem, dict[str, int]]):
    def __init__(
        self,
        files: dict[str, Path],
        batch_size: int,
        resume: dict[str, int] | None,
        gate: EndOfInput | None = None,
    ):
        self.merged = MergedFiles(files, resume)
        self.batch_size = batch_size
        self.gate = gate
        self.held_rounds = 0

    def next_batch(self) -> list[RawItem]:
        batch = self._next_batch()
        if batch and self.gate is not None:
            self.gate.read(len(batch))
        return batch

    def _next_batch(self) -> list[RawItem]:
        batch: list[RawItem] = []
        merged = self.merged
        for _ in range(self.batch_size):
            try:
                batch.append(next(merged))
            except StopIteration:
                if batch:
                    break
                return self._end()
        return batch

    def _end(self) -> list[RawItem]:
        """At the end of the files: an empty batch while the gate holds the end of input
        (at most MAX_HOLD_ROUNDS times), then the end (StopIteration)."""
        if self.gate is not None and self.held_rounds < MAX_HOLD_ROUNDS and self.gate.hold_end():
            # Decisions still wait for model versions: end of input now would make them
            # decide before those are cut. Give the flow another turn.
            self.held_rounds += 1
            return []
        raise StopIteration

    def snapshot(self) -> dict[str, int]:
        return dict(self.merged.consumed)

    def close(self) -> None:
        self.merged.close()


class ReplaySource(FixedPartitionedSource[RawItem, dict[str, int]]):
    """Bytewax source over a replay directory (one partition: the merge is global).

    ``gate``: told how many items the source reads and, while its ``hold_end`` returns
    True at the end of the files, the source gives empty batches instead of ending
    (decisions waiting in the flow, see ``operators.gate.DecisionGate``), at most
    ``MAX_HOLD_ROUNDS`` times."""

    def __init__(
        self,
        input_dir: Path,
        batch_size: int = 1000,
        gate: EndOfInput | None = None,
    ) -> None:
        self.files = find_stream_files(Path(input_dir))
        self.batch_size = batch_size
        self.gate = gate

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, int] | None
    ) -> _ReplayPartition:
        return _ReplayPartition(self.files, self.batch_size, resume_state, self.gate)
