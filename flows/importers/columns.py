"""The column mapping of a CSV export: which column holds what, how returns, dates and
SKU families are read. Checked when built, so a wrong mapping fails before any row.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.importers.limits import CURRENCY_RE

FamilyKind = Literal["prefix", "regex", "lookup", "keywords"]
FamilySource = Literal["sku", "description"]


class MappingError(ValueError):
    """A CSV mapping is invalid or does not fit the file; the message says what to change."""


# --------------------------------------------------------------------------- mapping types


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Names of the CSV columns that hold each field (description and country are optional)."""

    order_id: str
    sku: str
    quantity: str
    date: str
    unit_price: str
    customer_id: str
    description: str | None = None
    country: str | None = None

    def __post_init__(self) -> None:
        for key, value in self._fields():
            if not isinstance(value, str) or not value.strip():
                raise MappingError(f"columns.{key} must be a non-empty column name, got {value!r}")
        for key in ("description", "country"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise MappingError(
                    f"columns.{key} must be a column name or left out, got {value!r}"
                )

    def _fields(self) -> list[tuple[str, str]]:
        """Return the required (field, column) pairs."""
        keys = ("order_id", "sku", "quantity", "date", "unit_price", "customer_id")
        return [(key, getattr(self, key)) for key in keys]

    def named(self) -> list[tuple[str, str]]:
        """Return every configured ``(mapping key, column name)`` pair."""
        pairs = [(f"columns.{key}", value) for key, value in self._fields()]
        pairs += [
            (f"columns.{key}", value)
            for key in ("description", "country")
            if (value := getattr(self, key)) is not None
        ]
        return pairs


@dataclass(frozen=True, slots=True)
class RefundRule:
    """How a return/refund row is recognised: an id prefix in a column and/or a negative quantity.

    A row is a return line when any configured condition holds.
    """

    column: str | None = None
    prefix: str | None = None
    negative_quantity: bool = False

    def __post_init__(self) -> None:
        if (self.column is None) != (self.prefix is None):
            raise MappingError(
                "refund_when.column and refund_when.prefix must be given together "
                "(e.g. column: InvoiceNo, prefix: 'C')"
            )
        if self.prefix is not None and (not isinstance(self.prefix, str) or not self.prefix):
            raise MappingError(
                f"refund_when.prefix must be a non-empty string, got {self.prefix!r}"
            )
        if not isinstance(self.negative_quantity, bool):
            raise MappingError(
                "refund_when.negative_quantity must be true or false, "
                f"got {self.negative_quantity!r}"
            )
        if self.column is None and not self.negative_quantity:
            raise MappingError(
                "refund_when must set column + prefix and/or negative_quantity: true, "
                "otherwise returns cannot be recognised"
            )


@dataclass(frozen=True, slots=True)
class SkuFamilyRule:
    """How ``sku_family`` is derived from a line's sku or description; see the module docstring."""

    kind: FamilyKind
    source: FamilySource = "sku"
    length: int | None = None
    pattern: str | None = None
    table: tuple[tuple[str, str], ...] = ()
    keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()
    default: str = "other"

    def __post_init__(self) -> None:
        if self.kind not in get_args(FamilyKind):
            raise MappingError(
                f"sku_family.kind must be one of {', '.join(get_args(FamilyKind))}, "
                f"got {self.kind!r}"
            )
        if self.source not in get_args(FamilySource):
            raise MappingError(
                f"sku_family.source must be 'sku' or 'description', got {self.source!r}"
            )
        if not isinstance(self.default, str) or not self.default:
            raise MappingError(
                f"sku_family.default must be a non-empty string, got {self.default!r}"
            )
        _validate_family_kind(self)


def _validate_family_kind(rule: SkuFamilyRule) -> None:
    """Check that the settings the rule's kind needs are present and well-formed."""
    if rule.kind == "prefix":
        if isinstance(rule.length, bool) or not isinstance(rule.length, int) or rule.length < 1:
            raise MappingError(
                f"sku_family.length must be a whole number >= 1 for kind 'prefix', "
                f"got {rule.length!r}"
            )
    elif rule.kind == "regex":
        if not isinstance(rule.pattern, str) or not rule.pattern:
            raise MappingError("sku_family.pattern is required for kind 'regex'")
        try:
            re.compile(rule.pattern)
        except re.error as exc:
            raise MappingError(
                f"sku_family.pattern {rule.pattern!r} is not a valid regex: {exc}"
            ) from None
    elif rule.kind == "lookup":
        if not rule.table:
            raise MappingError("sku_family needs a non-empty table (or path) for kind 'lookup'")
    elif not rule.keywords or any(not words for _, words in rule.keywords):
        raise MappingError(
            "sku_family.keywords must map each family to a non-empty list of words "
            "for kind 'keywords'"
        )


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """Everything needed to read one kind of CSV export; validated on construction."""

    name: str
    columns: ColumnMap
    date_format: str
    timezone: str
    currency: str
    refund_when: RefundRule
    sku_family: SkuFamilyRule
    lanes: tuple[tuple[str, str], ...] = ()
    non_product_skus: frozenset[str] = frozenset()
    delimiter: str = ","
    encoding: str = "utf-8-sig"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise MappingError(f"name must be a non-empty string, got {self.name!r}")
        _validate_date_format(self.date_format)
        time_zone(self.timezone)
        if not isinstance(self.currency, str) or not CURRENCY_RE.match(self.currency):
            raise MappingError(
                f"currency must be a 3-letter ISO 4217 code such as 'GBP', got {self.currency!r}"
            )
        if self.sku_family.source == "description" and self.columns.description is None:
            raise MappingError(
                "sku_family.source is 'description' but columns.description is not set"
            )
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            raise MappingError(f"delimiter must be a single character, got {self.delimiter!r}")
        try:
            codecs.lookup(self.encoding)
        except (LookupError, TypeError):
            raise MappingError(f"encoding {self.encoding!r} is not a known text encoding") from None


def time_zone(name: object) -> ZoneInfo:
    """Return the IANA zone called ``name`` or raise a :class:`MappingError`."""
    if not isinstance(name, str) or not name:
        raise MappingError(
            f"timezone must be an IANA zone name such as 'Europe/London', got {name!r}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f"timezone {name!r} is not a known IANA zone; "
            "use a name such as 'Europe/London' or 'UTC'"
        ) from None


def _validate_date_format(fmt: object) -> None:
    """Check that ``fmt`` is a strptime format that keeps at least the year, month and day."""
    example = "'%Y-%m-%d %H:%M:%S'"
    if not isinstance(fmt, str) or not fmt:
        raise MappingError(f"date_format must be a strptime format such as {example}, got {fmt!r}")
    probe = datetime(2011, 6, 30, 13, 45, 30)
    try:
        parsed = datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        raise MappingError(
            f"date_format {fmt!r} is not a valid strptime format ({exc}); "
            f"use %-directives such as {example}"
        ) from None
    if parsed.date() != probe.date():
        raise MappingError(
            f"date_format {fmt!r} does not read back the year, month and day; "
            f"use strptime %-directives such as {example}, not a pattern like 'YYYY-MM-DD'"
        )
