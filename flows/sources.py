"""Replay input: the four stream files merged by event time, like four Kafka partitions.

Each file is read in its own order (as a partition would be); the merge always takes the
head with the smallest ``occurred_at``, so a file's own disorder is preserved and shows up
downstream exactly as it would live. A line whose time cannot be read is emitted at once
(it goes to the dead-letter output). Resume state is the number of lines consumed per file.
"""

from __future__ import annotations

import gzip
import heapq
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from operators.contract import STREAMS, ContractError, parse_ts

#: An input item: (stream, payload, received_at). The payload is parsed JSON or raw bytes.
RawItem = tuple[str, Any, float]


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


def _event_time(payload: Any) -> float | None:
    if isinstance(payload, dict):
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


class MergedFiles:
    """An iterator over RawItems of several stream files merged by event time."""

    def __init__(self, files: dict[str, Path], skip: dict[str, int] | None = None) -> None:
        self.files = files
        self.consumed: dict[str, int] = {s: 0 for s in files}
        self._handles: dict[str, _Lines] = {}
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self.now = float("-inf")  # replay clock: the largest event time emitted so far
        # Ties in event time go by stream rank, the same for every line of a file.
        self._rank = {s: i for i, s in enumerate(STREAMS)}
        for stream, path in sorted(files.items(), key=lambda kv: self._rank[kv[0]]):
            lines = self._handles[stream] = _Lines(_open(path))
            for _ in range((skip or {}).get(stream, 0)):
                if lines.next_line() is None:
                    break
                self.consumed[stream] += 1
            self._push(stream)

    def _push(self, stream: str) -> None:
        lines = self._handles[stream]
        while True:
            line = lines.next_line()
            if line is None:
                return
            if line.strip():
                break
            self.consumed[stream] += 1  # blank lines are skipped, but count for resume
        try:
            payload: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            payload = line.rstrip(b"\r")
        ts = _event_time(payload)
        # Unreadable times go out first, at the current replay time.
        key = ts if ts is not None else float("-inf")
        self._seq += 1
        heapq.heappush(self._heap, (key, self._rank[stream], self._seq, stream, payload))

    def __iter__(self) -> Iterator[RawItem]:
        return self

    def __next__(self) -> RawItem:
        if not self._heap:
            raise StopIteration
        ts, _, _, stream, payload = heapq.heappop(self._heap)
        self.consumed[stream] += 1
        if ts > self.now:
            self.now = ts
        self._push(stream)
        return (stream, payload, self.now if self.now != float("-inf") else 0.0)

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()


class _ReplayPartition(StatefulSourcePartition[RawItem, dict[str, int]]):
    def __init__(self, files: dict[str, Path], batch_size: int, resume: dict[str, int] | None):
        self.merged = MergedFiles(files, resume)
        self.batch_size = batch_size

    def next_batch(self) -> list[RawItem]:
        batch: list[RawItem] = []
        merged = self.merged
        for _ in range(self.batch_size):
            try:
                batch.append(next(merged))
            except StopIteration:
                if not batch:
                    raise
                break
        return batch

    def snapshot(self) -> dict[str, int]:
        return dict(self.merged.consumed)

    def close(self) -> None:
        self.merged.close()


class ReplaySource(FixedPartitionedSource[RawItem, dict[str, int]]):
    """Bytewax source over a replay directory (one partition: the merge is global)."""

    def __init__(self, input_dir: Path, batch_size: int = 1000) -> None:
        self.files = find_stream_files(Path(input_dir))
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, int] | None
    ) -> _ReplayPartition:
        return _ReplayPartition(self.files, self.batch_size, resume_state)
