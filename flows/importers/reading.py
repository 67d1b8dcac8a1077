"""Reading a CSV export: decoding, limits, one check per row, invoices by order id."""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from flows.importers.columns import CsvMapping, MappingError, time_zone
from flows.importers.families import sku_family_function
from flows.importers.limits import (
    FIRST_DAY,
    FLOAT_ID_RE,
    GZIP_MAGIC,
    LAST_DAY,
    MAX_ID_CHARS,
    MAX_LINES_PER_ORDER,
    MAX_QUANTITY,
    MAX_UNIT_PRICE,
    PRICE_STEP,
    UNDECODED,
)
from flows.importers.mapping_files import suggest

# --------------------------------------------------------------------------- reading rows


@dataclass(slots=True)
class Item:
    """One sku of an invoice, with repeated lines merged."""

    quantity: int
    value: Decimal
    family: str


@dataclass(slots=True)
class Invoice:
    """Lines sharing an order id: a purchase or a return request."""

    key: str
    occurred: datetime
    customer: str
    country: str
    items: dict[str, Item] = field(default_factory=dict)
    non_product: set[str] = field(default_factory=set)


def _open_text(path: Path, encoding: str) -> TextIO:
    """Open ``path`` as text, transparently decompressing gzip (detected by magic bytes)."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    # Undecodable bytes become lone surrogates, so the reader can name their line.
    if compressed:
        return io.TextIOWrapper(
            gzip.open(path, "rb"), encoding=encoding, errors="surrogateescape", newline=""
        )
    return path.open(encoding=encoding, errors="surrogateescape", newline="")


def _parse_int(text: str) -> int | None:
    """Parse a whole number such as ``6``, ``-12`` or ``6.0`` of at most MAX_QUANTITY in
    size; return None if it is not one.

    >>> _parse_int("6.0"), _parse_int("9" * 32), _parse_int("1e400"), _parse_int("x")
    (6, None, None, None)
    """
    text = text.strip()
    if len(text) > 32:  # no valid quantity is this long; Decimal would take it all in
        return None
    try:
        number = int(text)
    except ValueError:
        try:
            value = Decimal(text)
            if not value.is_finite() or value != value.to_integral_value():
                return None
            number = int(value)
        except (InvalidOperation, ValueError, OverflowError):
            return None
    return number if -MAX_QUANTITY <= number <= MAX_QUANTITY else None


def _parse_price(text: str) -> Decimal | None:
    """Parse a finite decimal price of at most MAX_UNIT_PRICE; return None if it is not one.

    >>> _parse_price("2.55"), _parse_price("1e400"), _parse_price("NaN")
    (Decimal('2.55'), None, None)
    """
    text = text.strip()
    if len(text) > 64:
        return None
    try:
        price = Decimal(text)
    except InvalidOperation:
        return None
    if not price.is_finite() or abs(price) > MAX_UNIT_PRICE:
        return None
    # Far below a cent it is noise, and its exponent would overflow sums and rounding.
    return price if price == 0 or abs(price) >= PRICE_STEP else Decimal(0)


def _customer_id(text: str) -> str:
    """Normalise a customer id (``17850.0`` as written by spreadsheets becomes ``17850``)."""
    text = text.strip()
    match = FLOAT_ID_RE.match(text)
    return match.group(1) if match else text


class _DateParser:
    """Parse local date strings into aware UTC datetimes, caching repeated values."""

    def __init__(self, fmt: str, zone: ZoneInfo) -> None:
        self._fmt = fmt
        self.time_zone = zone
        self._cache: dict[str, datetime | None] = {}

    def parse(self, text: str) -> datetime | None:
        """Return the UTC instant of ``text`` or None when it does not match the format."""
        try:
            return self._cache[text]
        except KeyError:
            pass
        try:
            local = datetime.strptime(text.strip(), self._fmt)
            if local.tzinfo is None:
                local = local.replace(tzinfo=self.time_zone)
            result: datetime | None = local.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted to UTC
            result = None
        self._cache[text] = result
        return result


def _column_indexes(mapping: CsvMapping, header: list[str], source: str) -> dict[str, int]:
    """Map each configured column to its index in ``header``, or explain which ones are missing."""
    positions = {name.strip(): index for index, name in enumerate(header)}
    named = mapping.columns.named()
    if mapping.refund_when.column is not None:
        named.append(("refund_when.column", mapping.refund_when.column))
    problems = [
        f"{key}={column!r}{suggest(column, positions)}"
        for key, column in named
        if column not in positions
    ]
    if problems:
        raise MappingError(
            f"mapping {mapping.name!r}: column(s) not found in the header of {source}: "
            f"{'; '.join(problems)}. Header columns: {', '.join(positions)}"
        )
    return {key: positions[column] for key, column in named}


class _Collector:
    """Validate rows one by one and group the kept lines into purchase and return invoices."""

    def __init__(self, mapping: CsvMapping, header: list[str], source: str) -> None:
        index = _column_indexes(mapping, header, source)
        self._mapping = mapping
        self._source = source
        self._order = index["columns.order_id"]
        self._sku = index["columns.sku"]
        self._quantity = index["columns.quantity"]
        self._date = index["columns.date"]
        self._price = index["columns.unit_price"]
        self._customer = index["columns.customer_id"]
        self._description = index.get("columns.description")
        self._country = index.get("columns.country")
        self._refund_column = index.get("refund_when.column")
        self._width = max(index.values()) + 1
        self._non_product = frozenset(sku.upper() for sku in mapping.non_product_skus)
        self._family = sku_family_function(mapping.sku_family)
        self._dates = _DateParser(mapping.date_format, time_zone(mapping.timezone))
        self.rows_read = 0
        self.rejected: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        self.orders: dict[str, Invoice] = {}
        self.refunds: dict[str, Invoice] = {}
        self.order_ids_seen: set[str] = set()

    def add(self, row: list[str], line: int = 0) -> None:
        """Take one data row, counting it as rejected with a reason if it fails a check."""
        self.rows_read += 1
        reason = self._add(row)
        if reason is not None:
            self.rejected[reason] += 1
            self.first_line.setdefault(reason, line)

    def _add(self, row: list[str]) -> str | None:
        """Add ``row`` to its invoice; return the rejection reason instead when it is invalid."""
        if len(row) < self._width:
            return "malformed_row"
        key = row[self._order].strip()
        if not key:
            return "missing_order_id"
        sku = row[self._sku].strip()
        if not sku:
            return "missing_sku"
        quantity = _parse_int(row[self._quantity])
        if quantity is None:
            return "bad_quantity"
        occurred = self._dates.parse(row[self._date])
        if occurred is None:
            self._check_first_date(row[self._date])
            return "bad_date"
        if not FIRST_DAY <= occurred <= LAST_DAY:
            return "date_out_of_range"
        if max(len(key), len(sku), len(row[self._customer].strip())) > MAX_ID_CHARS:
            return "id_too_long"
        if self._is_refund(row, quantity):
            return self._add_refund(row, key, sku, abs(quantity), occurred)
        return self._add_sale(row, key, sku, quantity, occurred)

    def _check_first_date(self, text: str) -> None:
        """Raise a :class:`MappingError` when the first data row's date does not parse."""
        if self.rows_read == 1:
            raise MappingError(
                f"mapping {self._mapping.name!r}: first data row of {self._source}: "
                f"{self._mapping.columns.date} value {text!r} does not match date_format "
                f"{self._mapping.date_format!r}; fix date_format in the mapping"
            )

    def _is_refund(self, row: list[str], quantity: int) -> bool:
        """Tell whether the row is a return line according to ``refund_when``."""
        rule = self._mapping.refund_when
        if rule.negative_quantity and quantity < 0:
            return True
        column = self._refund_column
        return column is not None and row[column].strip().startswith(rule.prefix or "")

    def _invoice(
        self, table: dict[str, Invoice], key: str, occurred: datetime, row: list[str]
    ) -> Invoice:
        """Return the invoice ``key`` from ``table``, creating or completing it from ``row``."""
        customer = _customer_id(row[self._customer])
        country = row[self._country].strip() if self._country is not None else ""
        invoice = table.get(key)
        if invoice is None:
            invoice = table[key] = Invoice(key, occurred, customer, country)
            return invoice
        invoice.occurred = min(invoice.occurred, occurred)
        invoice.customer = invoice.customer or customer
        invoice.country = invoice.country or country
        return invoice

    def _add_sale(
        self, row: list[str], key: str, sku: str, quantity: int, occurred: datetime
    ) -> str | None:
        """Add a sale line to its purchase invoice, or return why it is rejected."""
        self.order_ids_seen.add(key)
        if quantity <= 0:
            return "non_positive_quantity"
        if sku.upper() in self._non_product:
            return "non_product_code"
        price = _parse_price(row[self._price])
        if price is None:
            return "bad_price"
        if price <= 0:
            return "non_positive_price"
        invoice = self._invoice(self.orders, key, occurred, row)
        item = invoice.items.get(sku)
        if item is None and len(invoice.items) >= MAX_LINES_PER_ORDER:
            return "too_many_lines_in_order"
        if item is None:
            description = row[self._description] if self._description is not None else ""
            invoice.items[sku] = Item(quantity, quantity * price, self._family(sku, description))
        else:
            item.quantity += quantity
            item.value += quantity * price
        return None

    def _add_refund(
        self, row: list[str], key: str, sku: str, quantity: int, occurred: datetime
    ) -> str | None:
        """Add a return line to its return invoice, or return why it is rejected."""
        if quantity == 0:
            return "zero_quantity"
        invoice = self._invoice(self.refunds, key, occurred, row)
        if sku.upper() in self._non_product:
            invoice.non_product.add(sku)
            return None
        item = invoice.items.get(sku)
        if item is None:
            invoice.items[sku] = Item(quantity, Decimal(0), "")
        else:
            item.quantity += quantity
        return None


class ImportFileError(ValueError):
    """A file that cannot be read as the mapping says (empty, wrong encoding, a field
    beyond the CSV limit, not a CSV); the message names the file and the line."""


def _read_rows(path: Path, mapping: CsvMapping) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, row)`` for the header and then each non-blank row of the CSV file;
    raise ImportFileError, naming the line, for what cannot be read."""
    line = 0
    try:
        with _open_text(path, mapping.encoding) as handle:
            reader = csv.reader(handle, delimiter=mapping.delimiter)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                for column, value in enumerate(row):
                    if not value.isascii() and UNDECODED.search(value):
                        raise ImportFileError(
                            f"{path.name}: line {line}, column {column + 1}: not valid "
                            f"{mapping.encoding}; set encoding in the mapping "
                            "(e.g. latin-1 or cp1252)"
                        )
                yield line, row
    except csv.Error as exc:
        raise ImportFileError(
            f"{path.name}: line {reader.line_num}: not readable as CSV: {exc}"
        ) from None
    except (EOFError, OSError) as exc:  # a truncated or corrupt gzip file, a read error
        raise ImportFileError(f"{path.name}: after line {line}: cannot read: {exc}") from None


def collect_rows(
    path: Path, mapping: CsvMapping, progress: Callable[[int], None] | None = None
) -> _Collector:
    """Read the whole file into a collector (header checked against the mapping first)."""
    rows = _read_rows(path, mapping)
    first = next(rows, None)
    if first is None:
        raise ImportFileError(f"{path.name}: the file is empty (no header row)")
    collector = _Collector(mapping, first[1], path.name)
    for n, (line, row) in enumerate(rows, 1):
        collector.add(row, line)
        if progress is not None:
            progress(n)
    return collector


def split_purchases(collector: _Collector) -> tuple[list[Invoice], Counter[str]]:
    """Return the purchases that become orders and the count of skipped invoices by reason."""
    skipped: Counter[str] = Counter()
    skipped["no_valid_lines"] = len(collector.order_ids_seen - collector.orders.keys())
    kept: list[Invoice] = []
    for invoice in collector.orders.values():
        if invoice.customer:
            kept.append(invoice)
        else:
            skipped["guest_checkout"] += 1
    return kept, skipped
