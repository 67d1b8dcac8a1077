"""Secrets out of what a person sees: URLs with their credentials masked.

One function for every URL Salvage prints or logs (Redis, Kafka, webhook endpoints), so
there is one behaviour to check. It lives below ``flows`` and ``state`` because both show
URLs: the settings and the CLI, and the Redis connection errors.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "****"


def mask_url(url: str, keep_path: bool = True) -> str:
    """``url`` with its password, a lone user info (a token: ``https://TOKEN@host``) and
    every query value replaced by ``****``; unless ``keep_path``, its path too (webhook
    URLs often carry their token there). A fragment is dropped. Text that cannot be taken
    apart as a URL with a scheme is shown as ``****`` whole.

    >>> mask_url("rediss://user:hunter2@cache:6380/0")
    'rediss://user:****@cache:6380/0'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it
    if not parts.scheme:
        return MASK  # not a URL at all: free text may hold anything
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port:
        netloc += f":{port}"
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc}"
    elif parts.username:
        netloc = f"{MASK}@{netloc}"
    path = parts.path
    if not keep_path and path not in ("", "/"):
        path = "/" + MASK
    query = "&".join(f"{pair.partition('=')[0]}={MASK}" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, path, query, ""))
