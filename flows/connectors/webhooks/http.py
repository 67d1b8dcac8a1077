"""One webhook HTTP attempt with the standard library: no redirects, no exceptions."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

USER_AGENT = "salvage-webhooks/1"
RETRYABLE_4XX = frozenset({408, 425, 429})


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would re-send the signature and the endpoint's
    headers (``Authorization`` included) to whatever host the ``Location`` names, and count
    that host's 200 as delivered. A 3xx is a failed, final attempt instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> AttemptResult:
    """One HTTP POST with the standard library; never raises for network trouble, never
    follows a redirect."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return AttemptResult(response.status)
    except urllib.error.HTTPError as exc:
        retry_after = None
        value = exc.headers.get("Retry-After") if exc.headers else None
        if value and value.strip().isdigit():
            retry_after = float(value.strip())
        exc.close()
        if 300 <= exc.code < 400:
            return AttemptResult(exc.code, f"HTTP {exc.code}: redirects are not followed")
        return AttemptResult(exc.code, f"HTTP {exc.code}", retry_after)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return AttemptResult(None, f"timeout after {timeout:g} s")
        return AttemptResult(None, f"connection error: {reason}")
    except TimeoutError:
        return AttemptResult(None, f"timeout after {timeout:g} s")
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        return AttemptResult(None, f"connection error: {type(exc).__name__}")
