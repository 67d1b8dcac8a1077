"""Property-based tests with hostile payloads: nothing crashes, and valid records in the
same input keep their outcome (issue: no record can stop the flow).

Runs in CI as part of pytest: a fixed, derandomized profile keeps it reproducible and to
seconds. ``benchmarks/hostile_inputs.py`` runs the named hostile inputs one by one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.jsonl import read_jsonl
from flows.replay import ReplayOptions, run_replay
from operators.contract import (
    MAX_RAW_CHARS,
    STREAM_TYPES,
    STREAMS,
    VALIDATORS,
    DeadLetter,
    Event,
    decode,
)
from operators.simulation import simulate

# Reproducible: the same examples on every run and machine, no example database.
HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_TIMES = st.sampled_from(
    [
        "2026-03-04T10:00:00Z",
        "2100-01-01T00:00:00Z",
        "9998-12-30T00:00:00Z",
        "1971-01-01T00:00:00Z",
        "2026-03-04T10:00:00",  # no offset
        "yesterday",
        "2026-13-45T99:99:99Z",
    ]
)
_TYPES = st.sampled_from([*sorted({t for ts in STREAM_TYPES.values() for t in ts}), "x", ""])


def _nested_text(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def _obj_text(fields: dict[str, str]) -> str:
    """A JSON object from already-encoded values (so values orjson would refuse fit)."""
    return "{" + ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in fields.items()) + "}"


@st.composite
def hostile_lines(draw: st.DrawFn, n: int) -> bytes:
    """One hostile input line (no newline in it) for order ``hostile-<n>``."""
    head = {
        "event_id": orjson.dumps(f"h-{n}").decode(),
        "type": orjson.dumps(draw(_TYPES)).decode(),
        "order_id": orjson.dumps(f"hostile-{n}").decode(),
        "occurred_at": orjson.dumps(draw(_TIMES)).decode(),
    }
    kind = draw(
        st.sampled_from(
            ["deep", "long", "utf8", "nonfinite", "bigint", "wrongtype", "notobject", "junk"]
        )
    )
    field = draw(st.sampled_from(["extra", "total", "amount", "items", "sentiment", "order_id"]))
    if kind == "deep":
        head[field] = _nested_text(draw(st.integers(30, 3000)))
    elif kind == "long":
        head[field] = orjson.dumps("x" * draw(st.integers(1000, 400_000))).decode()
    elif kind == "nonfinite":
        head[field] = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]))
    elif kind == "bigint":
        head[field] = "9" * draw(st.integers(17, 5000))
    elif kind == "wrongtype":
        value = draw(
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                allow_infinity=False) | st.text(max_size=20),
                lambda inner: st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                max_leaves=12,
            )
        )  # fmt: skip
        head[field] = json.dumps(value)  # json writes integers of any size, as a sender may
    text = _obj_text(head)
    if kind == "utf8":
        cut = draw(st.integers(0, len(text)))
        return (
            text[:cut].encode()
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
            + text[cut:].encode()
        )
    if kind == "notobject":
        return draw(
            st.sampled_from([b"[]", b"null", b'"order"', b"42", _nested_text(900).encode()])
        )
    if kind == "junk":
        return (
            draw(st.binary(min_size=1, max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
            or b"x"
        )
    return text.encode()


# --- decode --------------------------------------------------------------------------------


def _assert_dead_letter_is_writable(letter: DeadLetter) -> None:
    record = letter.to_record()
    assert VALIDATORS["dead_letter"](record) == []
    assert len(letter.raw) <= MAX_RAW_CHARS + 1 and len(letter.reason) < 1000
    assert orjson.loads(orjson.dumps(record)) == record


@HOSTILE
@given(st.sampled_from(STREAMS), st.integers(0, 10**6).flatmap(hostile_lines))
def test_decode_of_a_hostile_line_never_raises(stream: str, line: bytes) -> None:
    for raw in (line, line.decode("utf-8", errors="surrogateescape")):
        result = decode(stream, raw, received_at=1.0)
        if isinstance(result, DeadLetter):
            _assert_dead_letter_is_writable(result)
        else:
            assert isinstance(result, Event)
            orjson.dumps(result.body)  # whatever got through can be written out


_PY_HOSTILE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats()  # NaN and infinities included
    | st.text()  # lone surrogates included
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=5)
        | st.tuples(inner)
    ),
    max_leaves=20,
)


@HOSTILE
@given(
    st.sampled_from(STREAMS), _PY_HOSTILE, st.sampled_from(["event", "total", "order_id", "items"])
)
def test_decode_of_a_hostile_parsed_object_never_raises(
    stream: str, value: Any, where: str
) -> None:
    """Parsed input (a live source or a caller handing over objects): values JSON cannot
    carry (NaN, giant ints, surrogates, bytes, tuples) must not get through or crash."""
    payload = value if where == "event" else {
        "event_id": "e", "type": "order_placed", "order_id": "o", "occurred_at":
        "2026-03-04T10:00:00Z", where: value,
    }  # fmt: skip
    result = decode(stream, payload, received_at=1.0)
    if isinstance(result, DeadLetter):
        _assert_dead_letter_is_writable(result)
    else:
        orjson.dumps(result.body)
        for number in (result.get("total"),):
            assert number is None or math.isfinite(number)


# --- the whole replay path -----------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[Any, ...]]]:
    base = tmp_path_factory.mktemp("hostile")
    simulate("steady-state", 40, 5, base / "input")
    return base / "input", _settled(base / "input", base / "out")


def _settled(input_dir: Path, out: Path) -> dict[str, tuple[Any, ...]]:
    """How each order ended: the fields decided by its events and the clock."""
    run_replay(input_dir, out, options=ReplayOptions(learn=False, batch_size=7))
    records = {name: read_jsonl(out / f"{name}.jsonl") for name in VALIDATORS}
    for name, rows in records.items():
        for row in rows:
            assert VALIDATORS[name](row) == [], (name, row)
    return {
        o["order_id"]: (o["outcome"], o["resolved_at"], o["refund_value"], o["retained_value"])
        for o in records["outcomes"]
    }


@settings(HOSTILE, max_examples=30)
@given(
    st.lists(
        st.tuples(st.sampled_from(STREAMS), st.floats(0.0, 1.0), st.integers(0, 10**6)),
        min_size=1,
        max_size=6,
    ).flatmap(
        lambda spots: st.tuples(st.just(spots), st.tuples(*[hostile_lines(n) for _, _, n in spots]))
    )
)
def test_hostile_lines_in_a_replay_cost_no_valid_order_its_outcome(
    baseline: tuple[Path, dict[str, tuple[Any, ...]]], tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[tuple[str, float, int]], tuple[bytes, ...]],
) -> None:  # fmt: skip
    input_dir, expected = baseline
    spots, lines = case
    work = tmp_path_factory.mktemp("run")
    files = {p.name: p.read_bytes().splitlines(keepends=True) for p in input_dir.glob("*.jsonl")}
    for (stream, at, _), line in zip(spots, lines, strict=True):
        rows = files.setdefault(f"{stream}.jsonl", [])
        rows.insert(int(len(rows) * at), line + b"\n")
    (work / "input").mkdir()
    for name, rows in files.items():
        (work / "input" / name).write_bytes(b"".join(rows))
    got = _settled(work / "input", work / "out")
    changed = {o: (expected[o], got.get(o)) for o in expected if got.get(o) != expected[o]}
    assert changed == {}
