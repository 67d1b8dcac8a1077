"""Fast RFC 3339 formatting for integer epoch seconds.

Millions of timestamps are formatted per run, so ``datetime`` is too slow; instead the date
part and the time-of-day part come from two precomputed tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

DAY = 86_400
HOUR = 3_600
MINUTE = 60


def parse_timestamp(text: str) -> int:
    """Parse an RFC 3339 timestamp (``Z`` or offset) to integer epoch seconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def format_timestamp(ts: int) -> str:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (slow path, any range)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TimestampFormatter:
    """Formats epoch seconds inside a known day range using lookup tables."""

    __slots__ = ("_dates", "_first_day", "_times")

    def __init__(self, first_ts: int, last_ts: int) -> None:
        self._first_day = first_ts // DAY
        days = last_ts // DAY - self._first_day + 1
        self._dates = [format_timestamp((self._first_day + d) * DAY)[:11] for d in range(days)]
        self._times = [f"{s // HOUR:02d}:{s // MINUTE % 60:02d}:{s % 60:02d}Z" for s in range(DAY)]

    def __call__(self, ts: int) -> str:
        """Return the RFC 3339 form of ``ts``."""
        day = ts // DAY - self._first_day
        if 0 <= day < len(self._dates):
            return self._dates[day] + self._times[ts % DAY]
        return format_timestamp(ts)
