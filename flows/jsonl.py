"""Reading the JSONL files Salvage writes: one reader for the summary, the report, the CLI
and the tests.

A file written by several workers is split into parts (``name.jsonl``, ``name.w1.jsonl``,
...: :func:`flows.sinks.output_path`); the readers take the base name and read every part.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class JsonlError(ValueError):
    """A line that is not a JSON object; the message names the file and the line."""


def worker_parts(path: Path) -> list[Path]:
    """``name.jsonl`` and its other workers' parts (``name.w1.jsonl``...), those present."""
    parts = [path, *sorted(path.parent.glob(path.name.replace(".jsonl", ".w*.jsonl")))]
    return [p for p in parts if p.exists()]


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file and of its worker parts (``name.w1.jsonl``...), streamed.

    A missing file yields nothing; ``.gz`` files are decompressed; blank lines are skipped.
    """
    for p in worker_parts(Path(path)):
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise JsonlError(f"{p}:{lineno}: not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise JsonlError(f"{p}:{lineno}: expected a JSON object")
                yield record


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (all worker parts of it when given the base name)."""
    return list(iter_jsonl(path))
