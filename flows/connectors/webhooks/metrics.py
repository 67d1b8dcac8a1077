"""The dispatcher's Prometheus metrics (labels: endpoint name and result or outcome only,
never an intervention or customer id)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows.connectors.webhooks.http import AttemptResult


@dataclass
class DispatchMetrics:
    """Prometheus metrics of the dispatcher (labels: endpoint name and result only)."""

    deliveries: Any = None
    attempts: Any = None
    seconds: Any = None
    in_flight: Any = None

    @classmethod
    def create(cls) -> DispatchMetrics:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        def get(name: str, make: Callable[[], Any]) -> Any:
            # Re-use collectors when the flow is built twice in one process (tests).
            existing = REGISTRY._names_to_collectors.get(name)
            return existing if existing is not None else make()

        return cls(
            deliveries=get(
                "salvage_webhook_deliveries_total",
                lambda: Counter(
                    "salvage_webhook_deliveries",
                    "Webhook deliveries by how they ended",
                    ["endpoint", "result"],
                ),
            ),
            attempts=get(
                "salvage_webhook_attempts_total",
                lambda: Counter(
                    "salvage_webhook_attempts",
                    "Webhook HTTP attempts by outcome (2xx, 4xx, 5xx, timeout, error)",
                    ["endpoint", "outcome"],
                ),
            ),
            seconds=get(
                "salvage_webhook_delivery_seconds",
                lambda: Histogram(
                    "salvage_webhook_delivery_seconds",
                    "Time from claim to the end of a delivery, retries included",
                    ["endpoint"],
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                ),
            ),
            in_flight=get(
                "salvage_webhook_in_flight",
                lambda: Gauge(
                    "salvage_webhook_in_flight", "Webhook deliveries in flight", ["endpoint"]
                ),
            ),
        )


def attempt_outcome(result: AttemptResult) -> str:
    """The ``outcome`` label of one HTTP attempt: ``2xx`` .. ``5xx``, ``timeout`` or ``error``.

    >>> [attempt_outcome(AttemptResult(s, e)) for s, e in ((503, "HTTP 503"), (None, "timeout"))]
    ['5xx', 'timeout']
    """
    if result.status is None:
        return "timeout" if result.error and result.error.startswith("timeout") else "error"
    return f"{result.status // 100}xx"


__all__ = ["DispatchMetrics", "attempt_outcome"]
