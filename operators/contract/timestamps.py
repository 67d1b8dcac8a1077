"""RFC 3339 timestamps of the contract: parsed to epoch seconds, formatted back in UTC
(part of :mod:`operators.contract`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from operators.contract.errors import ContractError, _kind

_TS_CACHE: dict[str, float] = {}
#: Accepted range of timestamps (epoch seconds, exclusive): 1970-01-01 to 9998-12-31 UTC.
MIN_TS = 0.0
MAX_TS = 253370764800.0  # 9999-01-01T00:00:00Z


def parse_ts(value: Any, field: str = "occurred_at") -> float:
    """Parse an RFC 3339 timestamp with an offset into epoch seconds.

    >>> parse_ts("2026-06-03T16:05:00+02:00")
    1780495500.0
    """
    if not isinstance(value, str):
        raise ContractError(f"{field} must be an RFC 3339 string, got {_kind(value)}")
    cached = _TS_CACHE.get(value)
    if cached is not None:
        return cached
    if len(value) < 19 or value[10] not in "Tt ":
        raise ContractError(f"{field} is not an RFC 3339 timestamp: {value[:40]!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{field} is not an RFC 3339 timestamp: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise ContractError(f"{field} has no UTC offset: {value[:40]!r}")
    ts = dt.timestamp()
    # Outside this range the time cannot be formatted back (outputs add up to 45 days), and
    # 0.0 is the "no event yet" value of a case: reject rather than fail later.
    if not MIN_TS < ts < MAX_TS:
        raise ContractError(f"{field} is out of range (1970-01-01 to 9998-12-31): {value[:40]!r}")
    if len(_TS_CACHE) > 200_000:  # feeds repeat timestamps a lot; keep the memo bounded
        _TS_CACHE.clear()
    _TS_CACHE[value] = ts
    return ts


def _format_ts_safe(ts: float) -> str:
    try:
        return format_ts(ts)
    except (ValueError, OverflowError, OSError, TypeError):
        return format_ts(0.0)  # a dead letter must be writable whatever its clock said


def format_ts(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC (``Z``), second precision unless sub-second.

    >>> format_ts(1780495500.0)
    '2026-06-03T14:05:00Z'
    >>> format_ts(1780495500.25)
    '2026-06-03T14:05:00.250000Z'
    """
    # Every output record formats times. Whole seconds (nearly all event times) are the
    # cached text of their hour and that of the second within it: what isoformat gives, in a
    # fraction of its time. Fractions, and times before 1970, take the datetime path;
    # isoformat writes what "%Y-%m-%dT%H:%M:%S[.%f]" would for the years parse_ts accepts.
    if (ts.__class__ is float or ts.__class__ is int) and MIN_TS <= ts < MAX_TS:  # not NaN
        sec = int(ts)
        if sec == ts:
            hour, second = divmod(sec, 3_600)
            prefix = _HOURS.get(hour)
            if prefix is None:
                prefix = _hour_of(hour)
            return prefix + _IN_HOUR[second]
    return datetime.fromtimestamp(ts, UTC).isoformat()[:-6] + "Z"


#: "YYYY-MM-DDTHH:" per hour since the epoch, for format_ts (bounded: a year of hours),
#: and "MM:SSZ" for each second of an hour.
_HOURS: dict[int, str] = {}
_IN_HOUR = tuple(f"{s // 60:02d}:{s % 60:02d}Z" for s in range(3_600))


def _hour_of(hour: int) -> str:
    if len(_HOURS) >= 10_000:
        _HOURS.clear()
    prefix = _HOURS[hour] = datetime.fromtimestamp(hour * 3_600, UTC).isoformat()[:14]
    return prefix
