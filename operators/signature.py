"""Signatures: how Salvage signs the webhooks it sends and the review decisions it reads,
and how receivers check them.

Every webhook request carries::

    X-Salvage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The timestamp is part of the signed text, so a captured request cannot be replayed later
than ``tolerance_seconds`` after it was signed, and the body cannot be changed without the
secret. A receiver must compute the HMAC over the *raw* request body (the exact bytes, not
re-serialised JSON) and compare in constant time; :func:`verify` does both. During a
secret rotation a header may carry several ``v1=`` entries; any one matching is enough.

>>> header = sign("s3cret", b'{"a":1}', timestamp=1700000000)
>>> header
't=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940'
>>> verify("s3cret", b'{"a":1}', header, now=1700000100)
True
>>> verify("s3cret", b'{"a":2}', header, now=1700000100)   # body changed
False
>>> verify("other", b'{"a":1}', header, now=1700000100)    # wrong secret
False
>>> verify("s3cret", b'{"a":1}', header, now=1700000400)   # too old: a replay
False
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
#: A signature timestamp has at most this many digits (unix seconds until the year 33658).
MAX_TIMESTAMP_DIGITS = 12


class SignatureError(ValueError):
    """A signature header that cannot be parsed; the message says why."""


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def signature(secret: str | bytes, body: bytes | str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``.

    >>> len(signature("k", b"{}", 1))
    64
    """
    key = _as_bytes(secret)
    message = str(int(timestamp)).encode() + b"." + _as_bytes(body)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes | str, timestamp: int | None = None) -> str:
    """The ``X-Salvage-Signature`` header value for ``body`` signed at ``timestamp``
    (default: now).

    >>> sign("k", b"{}", 10).startswith("t=10,v1=")
    True
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    if not _as_bytes(secret):
        raise ValueError("the webhook secret must not be empty")
    return f"t={ts},{SCHEME}={signature(secret, body, ts)}"


def parse_header(header: str) -> tuple[int, list[str]]:
    """``(timestamp, [v1 signatures])`` of a signature header; raises SignatureError.

    >>> parse_header("t=5,v1=ab,v1=cd")
    (5, ['ab', 'cd'])
    >>> parse_header("v1=ab")
    Traceback (most recent call last):
    ...
    operators.signature.SignatureError: signature header has no t= timestamp
    """
    timestamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"signature header part {part.strip()[:20]!r} is not key=value")
        if key == "t":
            # Bounded digits: a 400-digit timestamp would overflow the float arithmetic
            # of the age check.
            if not (value.isascii() and value.isdigit()) or len(value) > MAX_TIMESTAMP_DIGITS:
                raise SignatureError("signature header timestamp is not an integer") from None
            timestamp = int(value)
        elif key == SCHEME:
            sigs.append(value)
        # Unknown schemes are ignored so that a newer sender stays verifiable.
    if timestamp is None:
        raise SignatureError("signature header has no t= timestamp")
    if not sigs:
        raise SignatureError(f"signature header has no {SCHEME}= signature")
    return timestamp, sigs


def verify(
    secret: str | bytes,
    body: bytes | str,
    header: str | None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of the raw ``body`` under ``secret``, signed
    no more than ``tolerance_seconds`` from ``now`` (default: the current time).

    Never raises: a header that cannot be parsed, a tolerance that is not a finite number
    >= 0 (``nan`` would accept any age) or any other odd input is simply not valid.

    >>> verify("k", b"{}", None)
    False
    >>> verify("k", b"{}", "garbage")
    False
    >>> verify("k", b"{}", sign("k", b"{}", 0), tolerance_seconds=float("nan"), now=10**9)
    False
    """
    try:
        return _verify(secret, body, header, tolerance_seconds, now)
    except Exception:  # a receiver's check must answer, whatever it is handed
        return False


def valid_tolerance(tolerance_seconds: float) -> bool:
    """Whether a tolerance is usable: a finite number >= 0."""
    try:
        return math.isfinite(tolerance_seconds) and tolerance_seconds >= 0
    except TypeError:
        return False


def _verify(
    secret: str | bytes,
    body: bytes | str,
    # verify() answers for whatever it is handed, so the header is checked here, not trusted
    header: object,
    tolerance_seconds: float,
    now: float | None,
) -> bool:
    if not header or not isinstance(header, str) or not valid_tolerance(tolerance_seconds):
        return False
    try:
        timestamp, sigs = parse_header(header)
    except SignatureError:
        return False
    current = time.time() if now is None else now
    if not math.isfinite(current) or abs(current - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, body, timestamp)
    # hmac.compare_digest refuses non-ASCII text with an error; such a value cannot match.
    sigs = [c for c in sigs if c.isascii()]
    # Compare against every candidate so the time taken does not depend on which matched.
    ok = False
    for candidate in sigs:
        ok |= hmac.compare_digest(expected, candidate)
    return ok


def explain(
    secret: str | bytes,
    body: bytes | str,
    header: str | None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Why a signature is invalid (``"ok"`` if it is valid), for command-line checks.

    >>> explain("k", b"{}", sign("k", b"{}", 100), now=1000)
    'timestamp is 900 s away from now (tolerance 300 s)'
    """
    if not header:
        return "no signature header"
    if not valid_tolerance(tolerance_seconds):
        return f"tolerance must be a finite number >= 0, got {tolerance_seconds!r}"
    try:
        timestamp, _ = parse_header(header)
    except SignatureError as exc:
        return str(exc)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return (
            f"timestamp is {abs(current - timestamp):.0f} s away from now "
            f"(tolerance {tolerance_seconds:g} s)"
        )
    if not verify(secret, body, header, tolerance_seconds, now):
        return "signature does not match the body and secret"
    return "ok"
