"""Label values of the metrics: bounded, normalised, never personal data.

No label ever carries an order id, a customer id or any other personal data; free-text
values are normalised and checked by :func:`label_text`, and every open-ended label is
bounded by :class:`BoundedLabel`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from operators.uplift import SEGMENTS
from operators.vocabulary import DeadLetterKind

#: Business segment dimensions (the record fields they come from; same as operators.uplift).
DIMENSIONS: tuple[str, ...] = SEGMENTS
#: Label value for a value that did not make the top N of its label.
OTHER = "other"
#: Label value for a missing (None or empty) value.
MISSING = "none"
#: Longest label value kept; longer values are cut.
MAX_LABEL_CHARS = 64
#: Free text that looks like an e-mail address or a phone number: never a label value
#: (``campaign`` is typed by people, and "promo-for-jane@example.com" happens).
_PERSONAL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+|\+?\d(?:[\s().\-/]*\d){6,}")
_SPACES = re.compile(r"\s+")


def label_text(value: str) -> str | None:
    """A free-text value as a label value: Unicode-normalised (NFKC), control characters
    dropped, whitespace collapsed, cut to MAX_LABEL_CHARS; None if it looks like an e-mail
    address or a phone number.

    >>> label_text("  Summer  Sale\t2026 "), label_text("promo-for-jane1@example.com")
    ('Summer Sale 2026', None)
    >>> label_text("call +49 170 1234567"), label_text("DE-NL")
    (None, 'DE-NL')
    """
    text = unicodedata.normalize("NFKC", value[: 4 * MAX_LABEL_CHARS])
    if _PERSONAL.search(text):
        return None
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in " \t\n")
    return _SPACES.sub(" ", text).strip()[:MAX_LABEL_CHARS]


#: Outcomes of the ``outcomes`` output (operators.case); anything else is ``other``.
OUTCOMES = frozenset({"refunded", "chargeback", "exchanged", "kept", "cancelled", "censored"})
#: Outcomes that count as a refund avoided when the case was at risk.
RECOVERED_OUTCOMES = frozenset({"kept", "exchanged"})
#: Outcomes of settled cases (recovery figures and uplift leave out open and cancelled ones).
SETTLED_OUTCOMES = frozenset({"refunded", "chargeback", "kept", "exchanged"})

#: Dead-letter classes of input records (``salvage_dead_letters_total{reason}``): the
#: ``kind`` each dead letter carries (operators.vocabulary.DeadLetterKind).
DEAD_LETTER_REASONS: tuple[str, ...] = tuple(
    str(k)
    for k in DeadLetterKind
    if k not in (DeadLetterKind.DISPATCH_FAILED, DeadLetterKind.REVIEW_REJECTED)
)
#: How a human review is settled (operators.review ``review`` records); else ``other``.
REVIEW_STATUSES = frozenset({"approved", "rejected", "expired", "closed", "ignored"})
#: How a webhook delivery ends (flows.connectors.webhooks.DeliveryResult.status); else ``other``.
WEBHOOK_RESULTS = frozenset(
    {
        "delivered",
        "dead_letter",
        "skipped_duplicate",
        "unrouted",
        "abandoned",
        "blocked",
        "retrying",
        "queued",
    }
)
# --- bounded labels -----------------------------------------------------------------------


class BoundedLabel:
    """Maps the raw values of one label onto at most ``limit`` values plus ``other``.

    How it behaves (deterministic: the same sequence of values gives the same mapping):

    - ``None`` and ``""`` become ``none``, which is a value like any other; other values
      are turned into strings and cut to MAX_LABEL_CHARS characters.
    - A value is *admitted* once it has been seen ``admit_after`` times, as long as fewer
      than ``limit`` values are admitted. Admission is permanent, so the series of a label
      never churn: at most ``limit + 1`` values (the admitted ones and ``other``) ever
      appear. With ``admit_after=1`` the first ``limit`` distinct values win.
    - Until a value is admitted, and for every value once the label is full, the value
      maps to ``other``.
    - Counts of values not yet admitted are kept for at most ``4 * limit`` values; when
      that table is full, every count is halved and counts that reach zero are dropped
      (rare values make room, frequent ones keep their lead). Memory stays bounded
      whatever the input.

    Frequent values are seen early and often, so the admitted set is, in practice, the top
    ``limit`` values by volume, without the series churn a periodic re-ranking causes.

    >>> family = BoundedLabel(limit=2)
    >>> [family(v) for v in ["skincare", None, "makeup", "skincare"]]
    ['skincare', 'none', 'other', 'skincare']
    >>> lane = BoundedLabel(limit=1, admit_after=2)
    >>> [lane(v) for v in ["DE-FR", "DE-NL", "DE-NL", "DE-FR", "DE-NL"]]
    ['other', 'other', 'DE-NL', 'other', 'DE-NL']
    """

    __slots__ = ("_candidates", "_known", "_texts", "admit_after", "limit", "max_candidates")

    def __init__(self, limit: int, admit_after: int = 1) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if admit_after < 1:
            raise ValueError(f"admit_after must be >= 1, got {admit_after}")
        self.limit = limit
        self.admit_after = admit_after
        self.max_candidates = 4 * limit
        self._known: dict[Any, str] = {}  # raw value -> label, for admitted values only
        self._texts: dict[str, None] = {}  # admitted labels, in order of admission
        self._candidates: dict[str, int] = {}

    def __call__(self, value: Any) -> str:
        """The label value for ``value``."""
        try:
            got = self._known.get(value)
        except TypeError:  # unhashable: a list or an object where a name belongs
            return OTHER
        if got is not None:
            return got
        return self._slow(value)

    @property
    def admitted(self) -> list[str]:
        """The admitted values, in order of admission."""
        return list(self._texts)

    def _slow(self, value: Any) -> str:
        if value is None or value == "":
            text = MISSING
        elif isinstance(value, str):
            normal = label_text(value)
            if normal is None:
                return OTHER  # personal data is never a label, not even a candidate
            text = normal or MISSING
        elif isinstance(value, (int, float, bool)):
            text = str(value)
        else:
            return OTHER  # a list or an object where a name belongs: never a label
        if text in self._texts:
            if text == value or not value:  # cache only what cannot grow without bound
                self._known[value] = text
            return text
        if len(self._texts) >= self.limit or text == OTHER:
            return OTHER
        if self.admit_after > 1:
            seen = self._candidates.get(text, 0) + 1
            if seen < self.admit_after:
                if seen == 1 and len(self._candidates) >= self.max_candidates:
                    self._candidates = {v: c // 2 for v, c in self._candidates.items() if c > 1}
                self._candidates[text] = seen
                return OTHER
            self._candidates.pop(text, None)
        self._texts[text] = None
        if text == value or not value:
            self._known[value] = text
        return text


def endpoint_label(endpoint: str) -> str:
    """A webhook endpoint as a label value: a name passes through; a URL keeps only its
    scheme, host and port, because webhook URLs often carry secrets in the user info, the
    path or the query.

    >>> endpoint_label("https://user:secret@hooks.example.com:8443/T0/B1/XyZ?token=abc")
    'https://hooks.example.com:8443'
    >>> endpoint_label("crm")
    'crm'
    """
    if "://" not in endpoint:
        return endpoint
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or "unknown"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "invalid_url"
    return f"{parts.scheme}://{host}{port}"


def attempt_outcome(outcome: str | int | None) -> str:
    """The label of one webhook HTTP attempt: a status class, ``timeout`` or ``error``.

    >>> [attempt_outcome(x) for x in (204, "503", "http_4xx", "5xx", "timeout", None, "?")]
    ['2xx', '5xx', '4xx', '5xx', 'timeout', 'error', 'other']
    """
    if outcome is None:
        return "error"
    text = str(outcome).removeprefix("http_")
    if text.isdigit() and len(text) == 3 and text[0] in "12345":
        return f"{text[0]}xx"
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        return text
    if text in ("timeout", "error"):
        return text
    return OTHER
