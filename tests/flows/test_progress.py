"""Progress lines: the formatting (pure functions), when a line is drawn at all (a terminal,
no ``--quiet``), what it counts, and that showing it changes no output."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pytest

from flows.cli import main
from flows.observer import FlowObserver
from flows.progress import (
    Progress,
    RateMeter,
    count_lines,
    format_duration,
    format_progress,
    progress_enabled,
)
from flows.sources import find_stream_files
from operators.simulation import simulate

CLEAR = "\r\x1b[K"


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def last_line(text: str) -> str:
    """What a terminal shows last: the text after the final redraw."""
    assert text.endswith("\n"), repr(text[-80:])
    return text.rstrip("\n").rsplit(CLEAR, 1)[-1]


# --- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00"), (59.4, "0:59"), (59.6, "1:00"), (3599, "59:59"), (3600, "1:00:00"),
     (90061, "25:01:01"), (None, "?"), (-1, "?"), (float("inf"), "?"), (float("nan"), "?")],
)  # fmt: skip
def test_durations(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_line_with_a_total_shows_share_rate_and_eta() -> None:
    line = format_progress("replay", 250, 1000, 50.0)
    assert line == "replay  250/1,000 events  25.0%  50 events/s  ETA 0:15"
    done = format_progress("replay", 1000, 1000, 50.0)
    assert "100.0%" in done and done.endswith("ETA 0:00")
    over = format_progress("x", 1200, 1000, 10.0)  # a total that was an estimate
    assert "100.0%" in over and over.endswith("ETA 0:00")
    assert format_progress("x", 0, 0, None, unit="rows").endswith("100.0%  ? rows/s  ETA ?")


def test_line_without_a_total_shows_count_and_rate_only() -> None:
    line = format_progress("import", 12_345, None, 999.6, unit="rows")
    assert line == "import  12,345 rows  1,000 rows/s"
    assert "ETA" not in line and "%" not in line


def test_rate_follows_the_recent_window() -> None:
    meter = RateMeter(window=10.0)
    assert meter.rate() is None
    meter.add(0.0, 0)
    assert meter.rate() is None
    for t in range(1, 11):
        meter.add(float(t), t * 100)  # 100/s for 10 s
    assert meter.rate() == 100.0
    for t in range(11, 31):
        meter.add(float(t), 1000 + (t - 10) * 10)  # then 10/s
    assert meter.rate() == pytest.approx(10.0, rel=0.05)


# --- when it is drawn ----------------------------------------------------------------------


def test_drawn_only_on_a_terminal_and_not_with_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    assert progress_enabled(FakeTerminal())
    assert not progress_enabled(FakeTerminal(), quiet=True)
    assert not progress_enabled(io.StringIO())
    assert not progress_enabled(None)
    monkeypatch.setenv("TERM", "dumb")
    assert not progress_enabled(FakeTerminal())


def test_a_disabled_progress_draws_nothing_and_hooks_nothing() -> None:
    stream = io.StringIO()
    observer = FlowObserver()
    with Progress("replay", 10, stream=stream) as p:  # not a terminal
        assert not p.enabled
        assert p.callback is None
        assert p.observe(observer) is observer
        assert p.observe(None) is None
    assert stream.getvalue() == ""


def test_an_enabled_progress_counts_input_records_and_ends_its_line() -> None:
    term = FakeTerminal()
    seen: list[str] = []
    with Progress("replay", lambda: 3, stream=term) as p:
        observer = p.observe(FlowObserver(on_input=lambda stream, payload: seen.append(stream)))
        for stream in ("orders", "delivery", "refunds"):
            observer.on_input(stream, {})
    assert seen == ["orders", "delivery", "refunds"]  # the existing hook still runs
    assert p.done == 3
    assert re.fullmatch(
        r"replay  3/3 events  100\.0%  \S+ events/s  ETA \S+", last_line(term.getvalue())
    )


def test_count_lines_reads_plain_and_gzip_files(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b'{"a":1}\n{"a":2}\n{"a":3}')  # no newline at the end
    packed = tmp_path / "b.csv"  # gzip known by its bytes, not its name
    packed.write_bytes(gzip.compress(b"h\n" + b"row\n" * 2500))
    empty = tmp_path / "c.jsonl"
    empty.write_bytes(b"")
    assert count_lines([plain]) == 3
    assert count_lines([packed]) == 2501
    assert count_lines([plain, packed, empty]) == 2504


# --- the subcommands -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    simulate("launch-week-backlog", 150, 5, out)
    return out


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stderr: io.StringIO) -> str:
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(argv) == 0
    return stderr.getvalue()


def test_replay_on_a_terminal_shows_every_input_record_and_changes_no_output(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = _run(
        ["replay", str(small_world), "--out", str(tmp_path / "shown")], monkeypatch, FakeTerminal()
    )
    records = count_lines(find_stream_files(small_world).values())
    assert re.fullmatch(
        rf"replay shown  {records:,}/{records:,} events  100\.0%  .* events/s  ETA \S+",
        last_line(shown),
    )
    quiet = _run(
        ["replay", str(small_world), "--out", str(tmp_path / "quiet"), "--quiet"],
        monkeypatch,
        FakeTerminal(),
    )
    assert "events/s  ETA" not in quiet
    for name in ("decisions", "interventions", "outcomes", "dead_letter"):
        shown_bytes = (tmp_path / "shown" / f"{name}.jsonl").read_bytes()
        assert shown_bytes == (tmp_path / "quiet" / f"{name}.jsonl").read_bytes(), name


def test_simulate_is_quiet_when_stderr_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["simulate", "steady-state", "--orders", "60", "--out"]
    piped = _run([*argv, str(tmp_path / "a")], monkeypatch, io.StringIO())
    assert piped == ""
    term = _run([*argv, str(tmp_path / "b")], monkeypatch, FakeTerminal())
    assert last_line(term).startswith("simulate steady-state  60/60 orders  100.0%")
    quiet = _run([*argv, str(tmp_path / "c"), "-q"], monkeypatch, FakeTerminal())
    assert quiet == ""
