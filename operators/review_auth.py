"""Review decisions are signed, and a reviewer's customer text is checked before it is sent
(part of :mod:`operators.review`): the shared secret, the signature's age, the length of
the text and the hosts it may link to.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from operators.contract import ContractError
from operators.signature import explain, sign, verify

#: Default bound of a reviewer's customer text: a few short paragraphs, well under an
#: SMS-sized chat message times four; configurable as ``review.max_message_chars``.
DEFAULT_MAX_MESSAGE_CHARS = 500
DEFAULT_SIGNATURE_MAX_AGE_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class ReviewAuth:
    """Who may decide reviews, and what a reviewer may write to a customer.

    ``secret``: the review secret (from the environment; None: every decision is refused).
    ``reviewers``: the reviewer ids allowed to decide. ``link_hosts``: hosts a reviewer's
    text may link to (their subdomains too); any other link is refused.
    ``max_message_chars``: the bound of a reviewer's text. ``max_age_seconds``: how long
    after signing a decision is still accepted (a backlog read after an outage is fine;
    a decision captured and replayed weeks later is not).
    """

    secret: str | None
    reviewers: frozenset[str] = frozenset()
    link_hosts: frozenset[str] = frozenset()
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    max_age_seconds: float = DEFAULT_SIGNATURE_MAX_AGE_SECONDS

    @classmethod
    def create(
        cls,
        secret: str | None,
        reviewers: Iterable[str],
        link_hosts: Iterable[str] = (),
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        max_age_seconds: float = DEFAULT_SIGNATURE_MAX_AGE_SECONDS,
    ) -> ReviewAuth:
        hosts = frozenset(h.strip().lower().rstrip(".") for h in link_hosts if h.strip())
        return cls(secret or None, frozenset(reviewers), hosts, max_message_chars, max_age_seconds)


def sign_decision(secret: str, decision: dict[str, Any], timestamp: int | None = None) -> bytes:
    """The signed envelope of a review decision, as produced to the review-decisions topic::

        {"body": "<the decision as JSON text>", "signature": "t=<unix s>,v1=<hex>"}

    The signature is the webhook scheme (:func:`operators.signature.sign`): HMAC-SHA256
    under the review secret over ``"<t>.<body>"``, the body being the exact UTF-8 bytes of
    the ``body`` string.

    >>> envelope = orjson.loads(sign_decision("k", {"review_id": "r"}, timestamp=100))
    >>> envelope["body"], envelope["signature"][:8]
    ('{"review_id":"r"}', 't=100,v1')
    >>> from operators.review import parse_decision
    >>> parse_decision(sign_decision("k", {}, 100), 100.0, ReviewAuth.create("x", [])).reason
    'review signature refused: signature does not match the body and secret'
    """
    body = orjson.dumps(decision).decode()
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return orjson.dumps({"body": body, "signature": sign(secret, body, ts)})


#: A link with a scheme (``https://host/...``); the host is group 2.
_SCHEME_LINK = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*)://([^\s/?#<>\"'\\]*)")
#: Schemes that are links without ``//``.
_BARE_SCHEME = re.compile(r"(?i)\b(mailto|javascript|vbscript|data|file|tel|sms):")
#: Anything that reads as a host name, in any script (``shop.example``, ``www.x.co``,
#: the domain of an e-mail address); non-ASCII hosts never match an allowed ASCII host.
_HOST = re.compile(r"(?<![\w.-])((?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,})(?![\w-])")


def _host_allowed(host: str, allowed: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in allowed)


def check_message_text(text: str, auth: ReviewAuth) -> str | None:
    """Why a reviewer's customer text is refused, or None. The reason names the broken
    rule and the offending host, never the text.

    >>> auth = ReviewAuth.create("k", ["a"], ["shop.example"], max_message_chars=60)
    >>> check_message_text("See https://help.shop.example/returns", auth) is None
    True
    >>> check_message_text("Claim it at evil.example/login", auth)
    'edits.message_text links to evil.example, which is not on review.link_hosts'
    >>> check_message_text("Log in: http://shop.example@evil.example", auth)
    'edits.message_text links to evil.example, which is not on review.link_hosts'
    >>> check_message_text("x" * 61, auth)
    'edits.message_text is longer than 60 characters'
    """
    if len(text) > auth.max_message_chars:
        return f"edits.message_text is longer than {auth.max_message_chars} characters"
    for ch in text:
        category = unicodedata.category(ch)
        if (category == "Cc" and ch not in "\n\t") or category == "Cf":
            return "edits.message_text holds control or invisible characters"
    bare = _BARE_SCHEME.search(text)
    if bare is not None:
        return f"edits.message_text holds a {bare.group(1).lower()}: link"
    hosts: list[str] = []
    for m in _SCHEME_LINK.finditer(text):
        if m.group(1).lower() not in ("http", "https"):
            return f"edits.message_text holds a {m.group(1).lower()[:20]}:// link"
        authority = m.group(2)
        # The host is after any user info and before any port.
        hosts.append(authority.rpartition("@")[2].partition(":")[0])
    hosts.extend(m.group(1) for m in _HOST.finditer(text))
    for host in hosts:
        if not host or not _host_allowed(host, auth.link_hosts):
            shown = host[:60] or "(empty host)"
            return f"edits.message_text links to {shown}, which is not on review.link_hosts"
    return None


def _open_envelope(obj: Any, auth: ReviewAuth, received_at: float) -> bytes:
    """The signed body of an envelope; raises ContractError saying why it is refused."""
    if auth.secret is None:
        raise ContractError(
            "review decisions are refused: no review secret is set (review.secret_env)"
        )
    if not isinstance(obj, dict) or set(obj) != {"body", "signature"}:
        raise ContractError('unsigned review decision: expected {"body": ..., "signature": ...}')
    body, header = obj["body"], obj["signature"]
    if not isinstance(body, str) or not isinstance(header, str):
        raise ContractError("unsigned review decision: body and signature must be strings")
    raw = body.encode()
    if not verify(auth.secret, raw, header, auth.max_age_seconds, now=received_at):
        why = explain(auth.secret, raw, header, auth.max_age_seconds, now=received_at)
        raise ContractError(f"review signature refused: {why}")
    return raw
