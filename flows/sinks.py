"""File sinks for replay: one JSONL file per output, written in arrival order."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

OUTPUTS: tuple[str, ...] = ("interventions", "decisions", "outcomes", "dead_letter")


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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (all worker parts of it when given the base name)."""
    records: list[dict[str, Any]] = []
    parts = [path, *sorted(path.parent.glob(path.name.replace(".jsonl", ".w*.jsonl")))]
    for p in parts:
        if p.exists():
            with open(p, "rb") as fh:
                records.extend(orjson.loads(line) for line in fh if line.strip())
    return records
