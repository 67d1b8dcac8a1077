"""The headers of a signed webhook request.

The signature scheme itself (HMAC-SHA256 over ``"<t>.<raw body>"``, checked with a replay
tolerance) is :mod:`operators.signature`: reviewers' decisions that come back on Kafka are
signed with it too, so it belongs to the domain's contract, not to this connector. This
module puts it on HTTP: which header carries the signature, the idempotency key, the event
type and the contract version.

>>> h = signed_headers("k", b"{}", timestamp=100, intervention_id="iv-1", attempt=2)
>>> h[SIGNATURE_HEADER][:6], h[IDEMPOTENCY_HEADER], h["X-Salvage-Attempt"]
('t=100,', 'iv-1', '2')
"""

from __future__ import annotations

from collections.abc import Mapping

from flows.connectors.webhooks.http import USER_AGENT
from operators.contract import CONTRACT_VERSION
from operators.signature import sign

SIGNATURE_HEADER = "X-Salvage-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Salvage-Event"
CONTRACT_VERSION_HEADER = "X-Salvage-Contract-Version"
ATTEMPT_HEADER = "X-Salvage-Attempt"


def signed_headers(
    secret: str,
    body: bytes,
    *,
    timestamp: int,
    intervention_id: str,
    attempt: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of one delivery attempt of ``body``: the endpoint's own ``extra``
    headers first, so they can never replace the signature or the idempotency key."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **(extra or {}),
        SIGNATURE_HEADER: sign(secret, body, timestamp),
        IDEMPOTENCY_HEADER: intervention_id,
        EVENT_HEADER: "intervention",
        CONTRACT_VERSION_HEADER: CONTRACT_VERSION,
        ATTEMPT_HEADER: str(attempt),
    }
