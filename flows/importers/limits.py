"""What an import writes and the bounds of one row's values."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

ORDERS_FILE: Final = "orders.jsonl"
REFUNDS_FILE: Final = "refunds.jsonl"
REPORT_FILE: Final = "import_report.json"

#: Bounds of one row's values: beyond them a value is a typo or an attack, and money sums
#: and the JSON written out would overflow. Such rows are rejected with their reason.
MAX_QUANTITY: Final = 1_000_000
MAX_UNIT_PRICE: Final = Decimal(1_000_000_000)
MAX_ID_CHARS: Final = 256  # the event contract's bound on identifiers
MAX_LINES_PER_ORDER: Final = 1000  # the event contract's bound on items per order
#: Event times the contract accepts (it rejects 1970-01-01 itself and year 9999).
FIRST_DAY: Final = datetime(1970, 1, 2, tzinfo=UTC)
LAST_DAY: Final = datetime(9998, 12, 1, tzinfo=UTC)

UNDECODED: Final = re.compile("[\udc80-\udcff]")
CENT: Final = Decimal("0.01")
PRICE_STEP: Final = Decimal("0.0001")
GZIP_MAGIC: Final = b"\x1f\x8b"
WORD_RE: Final = re.compile(r"[A-Z0-9]+")
FLOAT_ID_RE: Final = re.compile(r"^(\d+)\.0+$")
CURRENCY_RE: Final = re.compile(r"^[A-Z]{3}$")
