"""File sinks for replay: one JSONL file per output and worker, written in arrival order;
:func:`write_canonical` then merges the parts of a replay into one file per output in a
canonical order (the arrival order depends on batch breaks and worker count)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.dataflow import OUTPUT_NAMES
from flows.jsonl import worker_parts

#: One file per output of the flow.
OUTPUTS: tuple[str, ...] = OUTPUT_NAMES
#: The event-time field each output is ordered by (then order id, then the line's bytes).
ORDER_BY: dict[str, str] = {
    "interventions": "decided_at",
    "decisions": "decided_at",
    "outcomes": "resolved_at",
    "dead_letter": "received_at",
}


def output_path(out_dir: Path, name: str, worker_index: int = 0) -> Path:
    """``name.jsonl`` for worker 0, ``name.w<i>.jsonl`` for other workers."""
    suffix = ".jsonl" if worker_index == 0 else f".w{worker_index}.jsonl"
    return out_dir / f"{name}{suffix}"


class _JsonlPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = open(path, "wb", buffering=1 << 20)  # noqa: SIM115

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        dumps = orjson.dumps
        self._fh.write(b"".join(dumps(item) + b"\n" for item in items))

    def close(self) -> None:
        self._fh.close()


class JsonlSink(DynamicSink[dict[str, Any]]):
    """Writes records as JSON lines to ``out_dir/name.jsonl`` (one file per worker)."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.out_dir = Path(out_dir)
        self.name = name

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonlPartition:
        return _JsonlPartition(output_path(self.out_dir, self.name, worker_index))


def _canonical_key(line: bytes, time_field: str) -> tuple[str, str, bytes]:
    record = orjson.loads(line)
    if not isinstance(record, dict):
        return ("", "", line)
    at, order_id = record.get(time_field), record.get("order_id")
    return (at if isinstance(at, str) else "", order_id if isinstance(order_id, str) else "", line)


def sort_canonical(path: Path, name: str) -> int:
    """Rewrite one file of output ``name`` (a cluster process's own part) in the canonical
    order of :func:`write_canonical`: the same records give the same bytes, whatever order
    they arrived in. Returns the number of records; a missing file is left missing."""
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        lines = [line.rstrip(b"\n") for line in fh if line.strip()]
    return _write_sorted(path, name, lines)


def _write_sorted(path: Path, name: str, lines: list[bytes]) -> int:
    """Write the records ``lines`` of output ``name`` to ``path`` in the canonical order,
    through a temporary file (a reader never sees half a file)."""
    field = ORDER_BY.get(name, "")
    lines.sort(key=lambda line: _canonical_key(line, field))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb", buffering=1 << 20) as fh:
        fh.write(b"".join(line + b"\n" for line in lines))
    tmp.replace(path)
    return len(lines)


def write_canonical(out_dir: Path, name: str) -> int:
    """Merge the worker parts of output ``name`` into ``name.jsonl``, ordered by event time,
    then order id, then the line's bytes: a total order on the records themselves, so the
    file is byte-identical however the records were batched or spread over workers.
    Returns the number of records."""
    path = Path(out_dir) / f"{name}.jsonl"
    parts = worker_parts(path)
    lines: list[bytes] = []
    for part in parts:
        with open(part, "rb") as fh:
            lines.extend(line.rstrip(b"\n") for line in fh if line.strip())
    count = _write_sorted(path, name, lines)
    for part in parts:
        if part != path:
            part.unlink()
    return count
