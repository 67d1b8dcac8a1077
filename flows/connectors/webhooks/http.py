"""One webhook HTTP attempt with the standard library: no redirects, no exceptions.

Each delivery thread keeps one open connection per endpoint host (HTTP/1.1 keep-alive),
so a webhook costs a request, not a TCP connect and a TLS handshake; one idle for
``IDLE_SECONDS`` is not reused. A connection that
fails, times out or is left with an unread body is closed; one the server closed while
idle is reopened once for the same attempt (nothing was received on it, and the receiver
deduplicates by ``Idempotency-Key`` anyway). Redirects are never followed: a 3xx is a
failed, final attempt (the signature and the endpoint's headers, ``Authorization``
included, must not go to whatever host a ``Location`` names, nor its 200 count as
delivered).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "salvage-webhooks/1"
RETRYABLE_4XX = frozenset({408, 425, 429})
#: The most of a response body read; a longer one is not drained, its connection closed.
MAX_BODY = 65536
#: A connection idle this long is closed before it is used again: receivers and load
#: balancers close idle keep-alive connections after 60 s or more, and one closed (or
#: silently dropped) by the other end mid-request would cost an attempt.
IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class AttemptResult:
    """One HTTP attempt: the status (None if no response) and an error description."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status is None:
            return True  # timeout or connection error
        return self.status >= 500 or self.status in RETRYABLE_4XX


#: Connections of this thread by (scheme, host, port).
_LOCAL = threading.local()
_TLS: list[ssl.SSLContext] = []
#: What a server's close of an idle keep-alive connection looks like on the next request.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _tls() -> ssl.SSLContext:
    if not _TLS:
        _TLS.append(ssl.create_default_context())  # verifies the certificate and host
    return _TLS[0]


def _connection(
    scheme: str, host: str, port: int | None, timeout: float
) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to the host (made if there is none), and whether it was
    used before."""
    pool: dict[tuple[str, str, int | None], http.client.HTTPConnection]
    pool = _LOCAL.__dict__.setdefault("connections", {})
    used: dict[tuple[str, str, int | None], float] = _LOCAL.__dict__.setdefault("used", {})
    key = (scheme, host, port)
    conn = pool.get(key)
    now = time.monotonic()
    if conn is not None and conn.sock is not None and now - used.get(key, now) > IDLE_SECONDS:
        conn.close()  # reconnected by the request
    used[key] = now
    reused = conn is not None and conn.sock is not None
    if conn is None:
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        pool[key] = conn
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    return conn, reused


def _exchange(
    conn: http.client.HTTPConnection, target: str, body: bytes, headers: Mapping[str, str]
) -> AttemptResult:
    conn.request("POST", target, body=body, headers=dict(headers))
    response = conn.getresponse()
    response.read(MAX_BODY)
    if not response.isclosed():
        conn.close()  # a longer body is not read: the connection cannot be reused
    code = response.status
    if 200 <= code < 300:
        return AttemptResult(code)
    if 300 <= code < 400:
        return AttemptResult(code, f"HTTP {code}: redirects are not followed")
    value = response.getheader("Retry-After")
    retry_after = float(value.strip()) if value and value.strip().isdigit() else None
    return AttemptResult(code, f"HTTP {code}", retry_after)


def _describe(exc: BaseException) -> str:
    """``Connection refused``, or the exception's class where the OS gave no text."""
    text = getattr(exc, "strerror", None)
    return text if isinstance(text, str) and text else type(exc).__name__


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> AttemptResult:
    """One HTTP POST on this thread's connection to the host; never raises for network
    trouble, never follows a redirect."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return AttemptResult(None, f"connection error: not an http(s) URL: {parts.scheme}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        port = parts.port
    except ValueError:
        return AttemptResult(None, "connection error: bad port")
    conn, reused = _connection(parts.scheme, parts.hostname, port, timeout)
    for fresh_try in (False, True):
        try:
            return _exchange(conn, target, body, headers)
        except _STALE as exc:
            conn.close()
            if reused and not fresh_try:
                continue  # closed by the server while idle: once more, on a new connection
            return AttemptResult(None, f"connection error: {_describe(exc)}")
        except TimeoutError:
            conn.close()
            return AttemptResult(None, f"timeout after {timeout:g} s")
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            return AttemptResult(None, f"connection error: {_describe(exc)}")
    raise AssertionError("unreachable")  # pragma: no cover
