"""When to try a webhook delivery again: quick attempts with full jitter, then slow
retries from the retry queue with equal jitter.
"""

from __future__ import annotations

import random

from flows.settings import EndpointSettings


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based).

    >>> rng = random.Random(1)
    >>> all(0 <= backoff_delay(a, 0.5, 4.0, rng) <= min(4.0, 0.5 * 2 ** (a - 1))
    ...     for a in range(1, 10))
    True
    """
    return rng.uniform(0.0, min(cap, base * (2 ** (attempt - 1))))


def retry_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """The wait before slow retry number ``retry`` (1-based), after the quick attempts:
    exponential from ``base``, capped at ``cap``, with equal jitter (between half and all
    of it, so retries from one outage spread out but the schedule still spans its hours).

    >>> rng = random.Random(1)
    >>> all(0.5 * min(1800, 60 * 2 ** (r - 1)) <= retry_delay(r, 60, 1800, rng)
    ...     <= min(1800, 60 * 2 ** (r - 1)) for r in range(1, 30))
    True
    """
    nominal = min(cap, base * (2 ** min(retry - 1, 60)))
    return rng.uniform(0.5 * nominal, nominal)


def quick_phase_bound(ep: EndpointSettings) -> float:
    """Longer than the quick attempts can take (each times out, each backoff is the
    longest), plus a minute: a written-ahead delivery is not taken before that."""
    return ep.max_attempts * (ep.timeout_seconds + ep.backoff_max_seconds) + 60.0
