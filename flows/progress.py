"""Progress of long work on a terminal: items per second, share done and ETA, on stderr.

``replay``, ``backtest``, ``simulate``, ``demo`` and ``import`` show one line, redrawn in
place a few times a second, while they run::

    replay  1,234,567/2,000,000 events  61.7%  13,300 events/s  ETA 0:58

It is drawn only when stderr is a terminal and ``--quiet`` is not given: piped or
redirected output, CI logs and tests stay clean, and the work itself runs with no hook at
all (no cost, nothing that could change an output). The count is a plain attribute the
work bumps; a daemon thread draws it, so drawing costs the work nothing either. The total,
when it has to be counted (lines of the input files), is counted by that thread too: the
line shows the rate at once and the share and ETA once the count is known.

The formatting is made of pure functions (:func:`format_progress`, :func:`format_duration`),
tested without a terminal.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: Seconds between redraws.
REDRAW_SECONDS = 0.25
#: The rate is measured over this many seconds of recent samples, so the ETA follows a
#: run that speeds up or slows down.
RATE_WINDOW_SECONDS = 10.0

_CLEAR_LINE = "\r\x1b[K"


def add_progress_args(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress line (it is shown only on a terminal anyway)."""
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line on stderr (shown only when stderr is a terminal)",
    )


def progress_enabled(stream: IO[str] | None, quiet: bool = False) -> bool:
    """Whether to draw: not ``quiet``, ``stream`` is a terminal, and TERM is not ``dumb``.

    >>> import io
    >>> progress_enabled(io.StringIO())
    False
    """
    if quiet or stream is None or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def format_duration(seconds: float | None) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` above; ``?`` when unknown.

    >>> format_duration(57.4), format_duration(3 * 3600 + 62), format_duration(None)
    ('0:57', '3:01:02', '?')
    """
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(
    label: str, done: int, total: int | None, rate: float | None, unit: str = "events"
) -> str:
    """One progress line. ``total`` None (not known yet): no share and no ETA. ``rate`` in
    items per second, None before there is one.

    >>> format_progress("replay", 1_234_567, 2_000_000, 13_300.0)
    'replay  1,234,567/2,000,000 events  61.7%  13,300 events/s  ETA 0:58'
    >>> format_progress("replay", 5_000, None, 2_500.4)
    'replay  5,000 events  2,500 events/s'
    >>> format_progress("simulate", 0, 1000, None, unit="orders")
    'simulate  0/1,000 orders  0.0%  ? orders/s  ETA ?'
    """
    rate_text = f"{rate:,.0f} {unit}/s" if rate is not None else f"? {unit}/s"
    if total is None:
        return f"{label}  {done:,} {unit}  {rate_text}"
    share = min(done / total, 1.0) if total > 0 else 1.0
    eta = max(total - done, 0) / rate if rate else None
    return (
        f"{label}  {done:,}/{total:,} {unit}  {share:.1%}  {rate_text}  ETA {format_duration(eta)}"
    )


class RateMeter:
    """Items per second over the last ``window`` seconds of ``(time, count)`` samples.

    >>> m = RateMeter(window=10.0)
    >>> m.add(0.0, 0); m.add(2.0, 1000); m.rate()
    500.0
    >>> m.add(20.0, 3000); m.rate()  # the old samples fall out of the window
    111.11111111111111
    """

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, count: int) -> None:
        self._samples.append((at, count))
        # Keep one sample at or before the window's start, so there is always a span.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


class Progress:
    """A progress line for one piece of work. Bump :attr:`done` (or call :meth:`update`)
    from the work; a daemon thread draws it every :data:`REDRAW_SECONDS` while the
    ``with`` block runs, and :meth:`close` draws the last line and ends it.

    ``total`` may be an int, None (unknown), or a callable that computes it (run on the
    drawing thread, so the work starts at once). A disabled Progress draws nothing and
    starts no thread.
    """

    def __init__(
        self,
        label: str,
        total: int | Callable[[], int | None] | None = None,
        *,
        unit: str = "events",
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_enabled(self.stream, quiet) if enabled is None else enabled
        self.done = 0
        self._total_fn = total if callable(total) else None
        self.total: int | None = None if callable(total) else total
        self._clock = clock
        self._meter = RateMeter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the work's side -------------------------------------------------------------------

    def update(self, done: int) -> None:
        """Set the count of items done so far."""
        self.done = done

    @property
    def callback(self) -> Callable[[int], None] | None:
        """:meth:`update` for work that reports its count, or None when disabled (the
        work then skips the call altogether)."""
        return self.update if self.enabled else None

    def on_input(self, _stream: str, _payload: Any) -> None:
        """A ``FlowObserver.on_input`` hook: one more input record."""
        self.done += 1

    def observe(self, observer: Any = None) -> Any:
        """``observer`` (a ``FlowObserver`` or None) with this progress counting its input
        records; ``observer`` itself, unchanged, when disabled."""
        if not self.enabled:
            return observer
        from dataclasses import replace

        from flows.observer import FlowObserver

        base = observer or FlowObserver()
        inner = base.on_input
        if inner is None:
            return replace(base, on_input=self.on_input)

        def both(stream: str, payload: Any) -> None:
            self.done += 1
            inner(stream, payload)

        return replace(base, on_input=both)

    # --- drawing ---------------------------------------------------------------------------

    def line(self) -> str:
        """The line as it would be drawn now."""
        self._meter.add(self._clock(), self.done)
        return format_progress(self.label, self.done, self.total, self._meter.rate(), self.unit)

    def _draw(self) -> None:
        self.stream.write(_CLEAR_LINE + self.line())
        self.stream.flush()

    def _run(self) -> None:
        self._meter.add(self._clock(), self.done)
        if self._total_fn is not None:
            try:
                self.total = self._total_fn()
            except OSError:
                self.total = None  # an unreadable file is the work's error to report
        while not self._stop.wait(REDRAW_SECONDS):
            self._draw()

    def start(self) -> Progress:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop drawing; on a terminal, draw the final line and end it."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._thread = None
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def progress(
    args: argparse.Namespace,
    label: str,
    total: int | Callable[[], int | None] | None = None,
    unit: str = "events",
) -> Iterator[Progress]:
    """A :class:`Progress` for a subcommand: quiet with ``--quiet`` (``args.quiet``) or
    when stderr is not a terminal."""
    with Progress(label, total, unit=unit, quiet=bool(getattr(args, "quiet", False))) as p:
        yield p


# --- totals -------------------------------------------------------------------------------


def count_lines(paths: Iterable[Path]) -> int:
    """Lines in the files (gzip ones decompressed, known by their magic bytes), counted in
    1 MiB chunks; a last line without a newline counts."""
    total = 0
    for path in paths:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
            last = b"\n"
            while chunk := handle.read(1 << 20):
                total += chunk.count(b"\n")
                last = chunk[-1:]
            total += last != b"\n"
    return total


def stream_lines(input_dir: Path) -> Callable[[], int | None]:
    """A deferred count of the records in a replay directory's stream files."""

    def count() -> int | None:
        from flows.sources import find_stream_files

        return count_lines(find_stream_files(Path(input_dir)).values())

    return count
