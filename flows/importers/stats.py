"""What an import counted: rows read, orders, refunds, rejected rows by reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class ImportStats:
    """What an import did; ``to_report()`` is what goes into ``import_report.json``."""

    source: str
    mapping: str
    rows_read: int
    orders: int
    refund_events: int
    orders_with_refund: int
    cancellation_invoices: int
    cancellation_lines: int
    unmatched_units: int
    rows_rejected: dict[str, int] = field(default_factory=dict)
    #: The line of the file where each rejection reason was first seen, to look it up.
    rows_rejected_first_line: dict[str, int] = field(default_factory=dict)
    orders_skipped: dict[str, int] = field(default_factory=dict)
    unmatched_cancellations: dict[str, int] = field(default_factory=dict)
    seconds: float = field(default=0.0, compare=False)

    @property
    def refund_share(self) -> float:
        """Share of emitted orders that get at least one refund event."""
        return self.orders_with_refund / self.orders if self.orders else 0.0

    def to_report(self) -> dict[str, Any]:
        """Return the deterministic report (no timings, no absolute paths)."""
        return {
            "source": self.source,
            "mapping": self.mapping,
            "rows_read": self.rows_read,
            "rows_rejected": dict(sorted(self.rows_rejected.items())),
            "rows_rejected_first_line": dict(sorted(self.rows_rejected_first_line.items())),
            "orders": self.orders,
            "orders_skipped": dict(sorted(self.orders_skipped.items())),
            "refund_events": self.refund_events,
            "orders_with_refund": self.orders_with_refund,
            "orders_with_refund_share": round(self.refund_share, 4),
            "cancellation_invoices": self.cancellation_invoices,
            "cancellation_lines": self.cancellation_lines,
            "unmatched_cancellations": dict(sorted(self.unmatched_cancellations.items())),
            "unmatched_units": self.unmatched_units,
        }
