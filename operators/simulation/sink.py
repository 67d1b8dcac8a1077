"""Writers that turn an unordered flood of events into time-sorted JSON Lines files.

Events of one order are generated together but span weeks, so a stream cannot be written in
generation order. Each stream spills its lines into per-time-bucket temporary files (an
external bucket sort); at the end every bucket is read back, sorted and appended to the final
file. Memory is bounded by the largest bucket instead of by the whole run.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

#: An output file: plain, or gzip over a plain one.
Output = BinaryIO | gzip.GzipFile

# Sort key prefix: 10-digit emit second + 10-digit sequence number, so that plain bytes
# sorting gives (time, generation order) and the output is reproducible.
_KEY_WIDTH = 20
_BUFFER = 1 << 16
_FLUSH_LINES = 50_000


def open_output(path: Path, *, compress: bool) -> Output:
    """Open ``path`` for writing; gzip output is reproducible (no name, mtime 0)."""
    raw = open(path, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by the caller
    if not compress:
        return raw
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)


def close_output(handle: Output) -> None:
    """Close an output from :func:`open_output`, including the file under a gzip wrapper."""
    inner = None
    if isinstance(handle, gzip.GzipFile) and isinstance(handle.fileobj, io.IOBase):
        inner = handle.fileobj  # GzipFile does not close a file it was given
    handle.close()
    if inner is not None:
        inner.close()


class SortedSpill:
    """Collects ``(emit_ts, line)`` pairs in any order and writes them sorted by time."""

    __slots__ = ("_bucket_seconds", "_dir", "_files", "_name", "_seq", "lines")

    def __init__(self, tmp_dir: Path, name: str, bucket_seconds: int) -> None:
        self._dir = tmp_dir
        self._name = name
        self._bucket_seconds = bucket_seconds
        self._files: dict[int, BinaryIO] = {}
        self._seq = 0
        self.lines = 0

    def add(self, emit_ts: int, body: bytes) -> None:
        """Queue one JSON line (without newline) to be written at position ``emit_ts``."""
        bucket = emit_ts // self._bucket_seconds
        handle = self._files.get(bucket)
        if handle is None:
            path = self._dir / f"{self._name}.{bucket}.part"
            handle = self._files[bucket] = open(path, "wb", buffering=_BUFFER)  # noqa: SIM115
        self._seq += 1
        handle.write(b"%010d%010d%b\n" % (emit_ts, self._seq, body))
        self.lines += 1

    def finish(self, out: Output) -> int:
        """Write every queued line to ``out`` in (emit time, arrival) order; return the count."""
        written = 0
        for bucket in sorted(self._files):
            handle = self._files.pop(bucket)
            handle.close()
            path = Path(handle.name)
            lines = path.read_bytes().split(b"\n")
            path.unlink()
            lines.pop()  # the trailing newline leaves an empty last element
            lines.sort()
            for start in range(0, len(lines), _FLUSH_LINES):
                chunk = lines[start : start + _FLUSH_LINES]
                out.write(b"".join([line[_KEY_WIDTH:] + b"\n" for line in chunk]))
            written += len(lines)
        return written

    def discard(self) -> None:
        """Close and delete any temporary files (used when a run fails)."""
        for handle in self._files.values():
            handle.close()
            Path(handle.name).unlink(missing_ok=True)
        self._files.clear()
