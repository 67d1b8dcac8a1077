"""Import a shop's CSV export (plain or gzip) as Salvage contract events.

``import_csv`` reads an order-line export, described by a :class:`CsvMapping`, and writes three
files into an output directory:

* ``orders.jsonl``: one ``order_placed`` event per purchase invoice;
* ``refunds.jsonl``: ``refund_issued`` events, one per return request and matched original order;
* ``import_report.json``: counts of rows read, orders, refund events, rejected rows and unmatched
  return lines, each with its reason.

Both JSONL files hold one object per line with sorted keys, ordered by ``occurred_at`` (ties broken
by ``event_id``), so the same input always gives byte-identical output.

Rules, in the order they are applied:

1. Every data row is checked on its own; the first failing check rejects it and is counted under
   ``rows_rejected`` (``malformed_row``, ``missing_order_id``, ``missing_sku``, ``bad_quantity``,
   ``bad_date``, ``non_positive_quantity``, ``non_product_code``, ``bad_price``,
   ``non_positive_price``, ``zero_quantity``). If the very first data row has a date that does not
   match ``date_format``, the mapping is wrong and :class:`MappingError` is raised instead.
2. A row is a return line when ``refund_when`` says so (order id starts with a prefix and/or the
   quantity is negative); its quantity is taken as an absolute value. Any other row is a sale line.
3. Sale lines are grouped by order id into invoices. Lines with the same sku are merged: quantities
   add up and ``unit_price`` is the quantity-weighted average price (rounded to 4 decimals).
   ``total`` is the sum of quantity x unit price over the kept lines (rounded to cents). An invoice
   is dated by its earliest line. Invoices without a customer id are skipped
   (``orders_skipped.guest_checkout``) because their returns could never be matched; invoices
   whose lines were all rejected are skipped as ``no_valid_lines``.
4. Local times are read in the mapping's IANA ``timezone`` and written as UTC (``...Z``). An
   ambiguous local time (the repeated hour when clocks go back) is read as the first occurrence.
5. Events are replayed in time order. Each ``order_placed`` carries ``customer`` =
   ``{orders_count, returns_count, lifetime_value}`` built only from that customer's events
   strictly before the invoice time: ``orders_count`` counts earlier ``order_placed`` events,
   ``returns_count`` earlier ``refund_issued`` events, and ``lifetime_value`` is earlier order
   totals minus earlier refund amounts.
6. Each return line (per return invoice and sku) is matched to the same customer's purchases made
   strictly before the return, newest first, using up each purchase's not-yet-refunded quantity
   until the returned quantity is covered. One ``refund_issued`` event is written per return
   invoice and matched order, with ``amount`` = matched quantity x the original unit price.
   Return lines that cannot be (fully) matched are counted in ``unmatched_cancellations`` as
   ``no_customer``, ``non_product_code``, ``no_earlier_purchase`` or ``partially_matched``.

``sku_family`` is derived by one of four rules: ``prefix`` (first N characters), ``regex`` (named
group ``family``, else group 1, else the whole match), ``lookup`` (a sku -> family table, inline or
from a two-column CSV file with ``sku`` and ``family`` headers) or ``keywords`` (the first family,
in table order, that has a keyword among the words of the text). For the built-in
``online-retail`` mapping the keyword table below is applied to the product description;
words are compared upper-case with hyphens removed (so ``T-LIGHT`` is ``TLIGHT``).
"""

import codecs
import csv
import difflib
import gzip
import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path
from typing import Any, Final, Literal, TextIO, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml

__all__ = [
    "BUILTIN_MAPPINGS",
    "ONLINE_RETAIL_FAMILY_KEYWORDS",
    "ColumnMap",
    "CsvMapping",
    "ImportFileError",
    "ImportStats",
    "MappingError",
    "RefundRule",
    "SkuFamilyRule",
    "get_mapping",
    "import_csv",
    "load_mapping",
    "mapping_from_dict",
    "sku_family_function",
]

FamilyKind = Literal["prefix", "regex", "lookup", "keywords"]
FamilySource = Literal["sku", "description"]

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
_FIRST_DAY: Final = datetime(1970, 1, 2, tzinfo=UTC)
_LAST_DAY: Final = datetime(9998, 12, 1, tzinfo=UTC)

_UNDECODED: Final = re.compile("[\udc80-\udcff]")
_CENT: Final = Decimal("0.01")
_PRICE_STEP: Final = Decimal("0.0001")
_GZIP_MAGIC: Final = b"\x1f\x8b"
_WORD_RE: Final = re.compile(r"[A-Z0-9]+")
_FLOAT_ID_RE: Final = re.compile(r"^(\d+)\.0+$")
_CURRENCY_RE: Final = re.compile(r"^[A-Z]{3}$")


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
        _zone(self.timezone)
        if not isinstance(self.currency, str) or not _CURRENCY_RE.match(self.currency):
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


def _zone(name: object) -> ZoneInfo:
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


# --------------------------------------------------------------------------- built-in mapping

ONLINE_RETAIL_FAMILY_KEYWORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = tuple(
    (family, tuple(words.split()))
    for family, words in (
        (
            "christmas",
            "CHRISTMAS XMAS SANTA ADVENT REINDEER SNOWFLAKE NATIVITY BAUBLE BAUBLES SNOWMAN",
        ),
        ("candles", "CANDLE CANDLES TLIGHT TLIGHTS NIGHTLIGHT INCENSE"),
        ("bags", "BAG BAGS HANDBAG SHOPPER TOTE PURSE BACKPACK RUCKSACK"),
        (
            "kitchen",
            "MUG MUGS CUP CUPS TEACUP SAUCER CAKE CAKESTAND TEA TEAPOT COFFEE BOWL BOWLS"
            " PLATE PLATES CUTLERY SPOON SPOONS JAR JARS TRAY TRAYS LUNCH BAKING"
            " KITCHEN APRON NAPKIN NAPKINS TOWEL TOWELS EGG GLASS GLASSES JUG BISCUIT"
            " COOKIE SUGAR DISH TIN TINS CASES PANTRY CHOPSTICKS",
        ),
        (
            "stationery",
            "CARD CARDS NOTEBOOK NOTEBOOKS PENCIL PENCILS PEN PENS PAPER WRAP GIFTWRAP"
            " STICKER STICKERS ENVELOPE ENVELOPES JOURNAL DIARY CALENDAR NOTEPAD"
            " ERASER RUBBER BOOK TAPE RIBBONS TISSUES",
        ),
        (
            "decor",
            "HEART HEARTS HOLDER FRAME MIRROR SIGN CLOCK CUSHION LANTERN DECORATION"
            " DECORATIONS ORNAMENT VASE DOORMAT WREATH GARLAND HANGING BUNTING LIGHT LIGHTS"
            " LAMP DOORSTOP HOOK HOOKS DRAWER KNOB TILE PLAQUE CHANDELIER STAND BIRDCAGE"
            " BASKET TRINKET",
        ),
    )
)
"""Keyword table of the ``online-retail`` mapping; the first family (in this order) wins."""

ONLINE_RETAIL_NON_PRODUCT_SKUS: Final = frozenset(
    {
        "POST",  # postage
        "DOT",  # dotcom postage
        "C2",  # carriage
        "M",  # manual adjustment
        "D",  # discount
        "S",  # samples
        "B",  # adjust bad debt
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",  # charity commission
        "PADS",  # cushion-pad filler at 0.001
    }
)
"""Stock codes of the Online Retail export that are fees or adjustments, not goods."""

BUILTIN_MAPPINGS: Final[Mapping[str, CsvMapping]] = {
    "online-retail": CsvMapping(
        name="online-retail",
        columns=ColumnMap(
            order_id="InvoiceNo",
            sku="StockCode",
            description="Description",
            quantity="Quantity",
            date="InvoiceDate",
            unit_price="UnitPrice",
            customer_id="CustomerID",
            country="Country",
        ),
        date_format="%Y-%m-%d %H:%M:%S",
        timezone="Europe/London",
        currency="GBP",
        refund_when=RefundRule(column="InvoiceNo", prefix="C"),
        sku_family=SkuFamilyRule(
            kind="keywords", source="description", keywords=ONLINE_RETAIL_FAMILY_KEYWORDS
        ),
        non_product_skus=ONLINE_RETAIL_NON_PRODUCT_SKUS,
    ),
}
"""Mappings shipped with Salvage, by name (``online-retail``: the UCI Online Retail export)."""


# --------------------------------------------------------------------------- mapping files

_TOP_KEYS: Final = frozenset(
    {
        "name",
        "columns",
        "date_format",
        "timezone",
        "currency",
        "refund_when",
        "sku_family",
        "lanes",
        "non_product_skus",
        "delimiter",
        "encoding",
    }
)
_REQUIRED_TOP_KEYS: Final = (
    "columns",
    "date_format",
    "timezone",
    "currency",
    "refund_when",
    "sku_family",
)
_COLUMN_KEYS: Final = frozenset(
    {
        "order_id",
        "sku",
        "description",
        "quantity",
        "date",
        "unit_price",
        "customer_id",
        "country",
    }
)
_REFUND_KEYS: Final = frozenset({"column", "prefix", "negative_quantity"})
_FAMILY_KEYS: Final = frozenset(
    {"kind", "source", "length", "pattern", "table", "path", "keywords", "default"}
)


def _suggest(word: str, options: Iterable[str]) -> str:
    """Return a "did you mean" hint for ``word`` among ``options`` (or an empty string)."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section(where: str, value: object, allowed: frozenset[str]) -> dict[str, Any]:
    """Check that ``value`` is a YAML mapping whose keys are all in ``allowed``."""
    if not isinstance(value, Mapping):
        raise MappingError(f"{where} must be a mapping of keys to values, got {value!r}")
    for key in value:
        if key not in allowed:
            raise MappingError(
                f"unknown key {key!r} in {where}{_suggest(str(key), allowed)}; "
                f"allowed keys: {', '.join(sorted(allowed))}"
            )
    return dict(value)


def _text(where: str, value: object) -> str:
    """Return ``value`` if it is a non-empty string, else raise a :class:`MappingError`."""
    if not isinstance(value, str) or not value:
        raise MappingError(f"{where} must be a non-empty string (quote it in YAML), got {value!r}")
    return value


def _text_pairs(where: str, value: object) -> tuple[tuple[str, str], ...]:
    """Read a YAML mapping of strings to strings as a tuple of pairs, keeping its order."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise MappingError(f"{where} must be a mapping of text to text, got {value!r}")
    return tuple(
        (_text(f"{where} key", key), _text(f"{where}[{key!r}]", item))
        for key, item in value.items()
    )


def _read_lookup_file(path: Path) -> tuple[tuple[str, str], ...]:
    """Read a ``sku,family`` CSV file into a lookup table."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"sku", "family"} <= set(reader.fieldnames):
                raise MappingError(
                    f"sku_family.path {str(path)!r} must be a CSV file with 'sku' and 'family' "
                    f"header columns, found {reader.fieldnames!r}"
                )
            return tuple(
                (row["sku"].strip(), row["family"].strip())
                for row in reader
                if row["sku"] and row["family"]
            )
    except OSError as exc:
        raise MappingError(f"sku_family.path: cannot read {str(path)!r}: {exc.strerror}") from None


def _family_rule(value: object, base_dir: Path | None) -> SkuFamilyRule:
    """Build the ``sku_family`` rule from its YAML section."""
    data = _section("sku_family", value, _FAMILY_KEYS)
    if "kind" not in data:
        raise MappingError("sku_family.kind is required: one of prefix, regex, lookup, keywords")
    table = _text_pairs("sku_family.table", data.get("table"))
    if "path" in data:
        lookup = Path(_text("sku_family.path", data["path"]))
        if not lookup.is_absolute() and base_dir is not None:
            lookup = base_dir / lookup
        table += _read_lookup_file(lookup)
    keywords: list[tuple[str, tuple[str, ...]]] = []
    raw_keywords = data.get("keywords") or {}
    if not isinstance(raw_keywords, Mapping):
        raise MappingError("sku_family.keywords must map each family to a list of words")
    for family, words in raw_keywords.items():
        where = f"sku_family.keywords[{family!r}]"
        if not isinstance(words, list):
            raise MappingError(f"{where} must be a list of words, got {words!r}")
        keywords.append((_text(f"{where} family", family), tuple(_text(where, w) for w in words)))
    return SkuFamilyRule(
        kind=data["kind"],
        source=data.get("source", "sku"),
        length=data.get("length"),
        pattern=data.get("pattern"),
        table=table,
        keywords=tuple(keywords),
        default=data.get("default", "other"),
    )


def _column_map(value: object) -> ColumnMap:
    """Build the column names from the ``columns`` YAML section."""
    data = _section("columns", value, _COLUMN_KEYS)
    missing = [key for key in sorted(_COLUMN_KEYS - {"description", "country"}) if key not in data]
    if missing:
        raise MappingError(f"columns is missing required key(s): {', '.join(missing)}")
    return ColumnMap(**data)


def mapping_from_dict(data: object, *, base_dir: Path | None = None) -> CsvMapping:
    """Build and validate a :class:`CsvMapping` from parsed YAML/JSON data.

    ``base_dir`` resolves a relative ``sku_family.path`` lookup file.
    """
    top = _section("the mapping", data, _TOP_KEYS)
    missing = [key for key in _REQUIRED_TOP_KEYS if key not in top]
    if missing:
        raise MappingError(f"mapping is missing required key(s): {', '.join(missing)}")
    refund = _section("refund_when", top["refund_when"], _REFUND_KEYS)
    skus = top.get("non_product_skus") or []
    if not isinstance(skus, list):
        raise MappingError(f"non_product_skus must be a list of stock codes, got {skus!r}")
    return CsvMapping(
        name=top.get("name", "custom"),
        columns=_column_map(top["columns"]),
        date_format=top["date_format"],
        timezone=top["timezone"],
        currency=top["currency"],
        refund_when=RefundRule(**refund),
        sku_family=_family_rule(top["sku_family"], base_dir),
        lanes=_text_pairs("lanes", top.get("lanes")),
        non_product_skus=frozenset(_text("non_product_skus item", sku) for sku in skus),
        delimiter=top.get("delimiter", ","),
        encoding=top.get("encoding", "utf-8-sig"),
    )


def load_mapping(path: Path) -> CsvMapping:
    """Load a user mapping from a YAML file with the same fields as :class:`CsvMapping`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from None
    try:
        return mapping_from_dict(data, base_dir=path.parent)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None
    except TypeError as exc:  # unexpected argument shapes from YAML
        raise MappingError(f"{path}: {exc}") from None


def get_mapping(spec: str) -> CsvMapping:
    """Return the built-in mapping named ``spec`` or load ``spec`` as a YAML mapping file."""
    if spec in BUILTIN_MAPPINGS:
        return BUILTIN_MAPPINGS[spec]
    path = Path(spec)
    if path.suffix.lower() in {".yaml", ".yml"} or path.exists():
        return load_mapping(path)
    raise MappingError(
        f"unknown mapping {spec!r}: use one of {', '.join(sorted(BUILTIN_MAPPINGS))} "
        "or the path of a YAML mapping file"
    )


# --------------------------------------------------------------------------- sku families


def _words(text: str) -> list[str]:
    """Split ``text`` into upper-case words, dropping hyphens first (``T-LIGHT`` -> ``TLIGHT``)."""
    return _WORD_RE.findall(text.upper().replace("-", ""))


def _keyword_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the highest-priority family whose keyword occurs in a text."""
    rank: dict[str, int] = {}
    families: list[str] = []
    for position, (family, words) in enumerate(rule.keywords):
        families.append(family)
        for word in words:
            for token in _words(word):
                rank.setdefault(token, position)

    def classify(text: str) -> str:
        best = min((rank[w] for w in _words(text) if w in rank), default=None)
        return rule.default if best is None else families[best]

    return classify


def _regex_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the ``family`` group, group 1 or the whole regex match."""
    compiled = re.compile(rule.pattern or "")

    def classify(text: str) -> str:
        match = compiled.search(text)
        if match is None:
            return rule.default
        if "family" in compiled.groupindex:
            found = match.group("family")
        else:
            found = match.group(1) if compiled.groups else match.group(0)
        return found or rule.default

    return classify


def _prefix_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function giving the first ``rule.length`` characters of a text."""
    length = rule.length or 1

    def classify(text: str) -> str:
        return text[:length] or rule.default

    return classify


def _lookup_classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return a function looking a text up in the rule's table."""
    table = dict(rule.table)

    def classify(text: str) -> str:
        return table.get(text, rule.default)

    return classify


_CLASSIFIERS: Final[dict[str, Callable[[SkuFamilyRule], Callable[[str], str]]]] = {
    "prefix": _prefix_classifier,
    "regex": _regex_classifier,
    "lookup": _lookup_classifier,
    "keywords": _keyword_classifier,
}


def _classifier(rule: SkuFamilyRule) -> Callable[[str], str]:
    """Return the text -> family function for the rule's kind."""
    return _CLASSIFIERS[rule.kind](rule)


def sku_family_function(rule: SkuFamilyRule) -> Callable[[str, str], str]:
    """Return ``family(sku, description)`` for ``rule``; results are cached per input."""
    classify = _classifier(rule)
    use_description = rule.source == "description"
    cache: dict[str, str] = {}

    def family(sku: str, description: str) -> str:
        text = description if use_description else sku
        found = cache.get(text)
        if found is None:
            found = cache[text] = classify(text.strip())
        return found

    return family


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


# --------------------------------------------------------------------------- reading rows


@dataclass(slots=True)
class _Item:
    """One sku of an invoice, with repeated lines merged."""

    quantity: int
    value: Decimal
    family: str


@dataclass(slots=True)
class _Invoice:
    """Lines sharing an order id: a purchase or a return request."""

    key: str
    occurred: datetime
    customer: str
    country: str
    items: dict[str, _Item] = field(default_factory=dict)
    non_product: set[str] = field(default_factory=set)


def _open_text(path: Path, encoding: str) -> TextIO:
    """Open ``path`` as text, transparently decompressing gzip (detected by magic bytes)."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
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
    return price if price == 0 or abs(price) >= _PRICE_STEP else Decimal(0)


def _customer_id(text: str) -> str:
    """Normalise a customer id (``17850.0`` as written by spreadsheets becomes ``17850``)."""
    text = text.strip()
    match = _FLOAT_ID_RE.match(text)
    return match.group(1) if match else text


class _DateParser:
    """Parse local date strings into aware UTC datetimes, caching repeated values."""

    def __init__(self, fmt: str, zone: ZoneInfo) -> None:
        self._fmt = fmt
        self._zone = zone
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
                local = local.replace(tzinfo=self._zone)
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
        f"{key}={column!r}{_suggest(column, positions)}"
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
        self._dates = _DateParser(mapping.date_format, _zone(mapping.timezone))
        self.rows_read = 0
        self.rejected: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        self.orders: dict[str, _Invoice] = {}
        self.refunds: dict[str, _Invoice] = {}
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
        if not _FIRST_DAY <= occurred <= _LAST_DAY:
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
        self, table: dict[str, _Invoice], key: str, occurred: datetime, row: list[str]
    ) -> _Invoice:
        """Return the invoice ``key`` from ``table``, creating or completing it from ``row``."""
        customer = _customer_id(row[self._customer])
        country = row[self._country].strip() if self._country is not None else ""
        invoice = table.get(key)
        if invoice is None:
            invoice = table[key] = _Invoice(key, occurred, customer, country)
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
            invoice.items[sku] = _Item(quantity, quantity * price, self._family(sku, description))
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
            invoice.items[sku] = _Item(quantity, Decimal(0), "")
        else:
            item.quantity += quantity
        return None


# --------------------------------------------------------------------------- replay


@dataclass(slots=True)
class _Purchase:
    """An emitted order of a customer, with the quantity per sku not yet refunded."""

    order_id: str
    remaining: dict[str, int]
    unit_price: dict[str, Decimal]


@dataclass(slots=True)
class _Customer:
    """A customer's running history as seen by events already replayed."""

    orders_count: int = 0
    returns_count: int = 0
    lifetime_value: Decimal = Decimal(0)
    purchases: list[_Purchase] = field(default_factory=list)


def _utc_text(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a ``Z`` suffix."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _money(value: Decimal) -> float:
    """Round an amount to cents (half up) for output."""
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _unit_price(item: _Item) -> Decimal:
    """Return the quantity-weighted unit price of a merged item, to 4 decimals."""
    return (item.value / item.quantity).quantize(_PRICE_STEP, rounding=ROUND_HALF_UP)


Event = tuple[datetime, dict[str, Any]]


class _Ledger:
    """Replay purchases and returns in time order, emitting events and matching returns."""

    def __init__(self, mapping: CsvMapping) -> None:
        self._currency = mapping.currency
        self._lanes = dict(mapping.lanes)
        self._customers: defaultdict[str, _Customer] = defaultdict(_Customer)
        self.orders: list[Event] = []
        self.refunds: list[Event] = []
        self.unmatched: Counter[str] = Counter()
        self.unmatched_units = 0
        self.refunded_orders: set[str] = set()

    def run(self, purchases: Iterable[_Invoice], returns: Iterable[_Invoice]) -> None:
        """Replay all invoices; invoices at the same instant never see each other."""
        timeline = [(inv.occurred, 0, inv.key, inv) for inv in purchases]
        timeline += [(inv.occurred, 1, inv.key, inv) for inv in returns]
        timeline.sort(key=lambda entry: entry[:3])
        for _, batch in groupby(timeline, key=lambda entry: entry[0]):
            entries = list(batch)
            placed = [inv for _, kind, _, inv in entries if kind == 0]
            returned = [inv for _, kind, _, inv in entries if kind == 1]
            self.orders.extend((inv.occurred, self._order_event(inv)) for inv in placed)
            effects = [self._match_return(inv) for inv in returned]
            for inv in placed:
                self._commit_order(inv)
            for customer, count, amount in effects:
                customer.returns_count += count
                customer.lifetime_value -= amount

    def _order_event(self, invoice: _Invoice) -> dict[str, Any]:
        """Build the ``order_placed`` event, with the customer's history before it."""
        history = self._customers[invoice.customer]
        items = [
            {
                "sku": sku,
                "sku_family": item.family,
                "quantity": item.quantity,
                "unit_price": float(_unit_price(item)),
            }
            for sku, item in invoice.items.items()
        ]
        return {
            "event_id": f"op-{invoice.key}",
            "type": "order_placed",
            "order_id": invoice.key,
            "occurred_at": _utc_text(invoice.occurred),
            "customer_id": invoice.customer,
            "currency": self._currency,
            "total": _money(sum((item.value for item in invoice.items.values()), Decimal(0))),
            "items": items,
            "lane": self._lanes.get(invoice.country, invoice.country) or None,
            "campaign": None,
            "customer": {
                "orders_count": history.orders_count,
                "returns_count": history.returns_count,
                "lifetime_value": _money(history.lifetime_value),
            },
        }

    def _commit_order(self, invoice: _Invoice) -> None:
        """Add an emitted order to its customer's history."""
        history = self._customers[invoice.customer]
        history.orders_count += 1
        history.lifetime_value += sum((item.value for item in invoice.items.values()), Decimal(0))
        history.purchases.append(
            _Purchase(
                order_id=invoice.key,
                remaining={sku: item.quantity for sku, item in invoice.items.items()},
                unit_price={sku: _unit_price(item) for sku, item in invoice.items.items()},
            )
        )

    def _match_return(self, invoice: _Invoice) -> tuple[_Customer, int, Decimal]:
        """Match a return invoice to earlier purchases and emit its refund events.

        Returns the customer with the number of events and the refunded amount, to be applied
        once every invoice at this instant has been handled.
        """
        lines = len(invoice.items) + len(invoice.non_product)
        if not invoice.customer:
            self.unmatched["no_customer"] += lines
            self.unmatched_units += sum(item.quantity for item in invoice.items.values())
            return _Customer(), 0, Decimal(0)
        self.unmatched["non_product_code"] += len(invoice.non_product)
        customer = self._customers[invoice.customer]
        taken: dict[str, dict[str, int]] = {}
        for sku, item in invoice.items.items():
            self._take(customer, sku, item.quantity, taken)
        total = Decimal(0)
        prices = {p.order_id: p.unit_price for p in customer.purchases if p.order_id in taken}
        for order_id, skus in taken.items():
            amount = sum((qty * prices[order_id][sku] for sku, qty in skus.items()), Decimal(0))
            total += amount
            self.refunded_orders.add(order_id)
            self.refunds.append(
                (
                    invoice.occurred,
                    {
                        "event_id": f"rf-{invoice.key}-{order_id}",
                        "type": "refund_issued",
                        "order_id": order_id,
                        "occurred_at": _utc_text(invoice.occurred),
                        "amount": _money(amount),
                        "skus": sorted(skus),
                        "reason": "other",
                        "request_id": invoice.key,
                    },
                )
            )
        return customer, len(taken), total

    def _take(
        self, customer: _Customer, sku: str, quantity: int, taken: dict[str, dict[str, int]]
    ) -> None:
        """Use up ``quantity`` of ``sku`` from the newest earlier purchases that still hold it."""
        needed = quantity
        for purchase in reversed(customer.purchases):
            available = purchase.remaining.get(sku, 0)
            if available <= 0:
                continue
            used = min(available, needed)
            purchase.remaining[sku] = available - used
            per_order = taken.setdefault(purchase.order_id, {})
            per_order[sku] = per_order.get(sku, 0) + used
            needed -= used
            if needed == 0:
                return
        if needed == quantity:
            self.unmatched["no_earlier_purchase"] += 1
        else:
            self.unmatched["partially_matched"] += 1
        self.unmatched_units += needed


# --------------------------------------------------------------------------- writing


def _jsonl(events: list[Event]) -> bytes:
    """Serialise events sorted by time then event id, one sorted-key JSON object per line."""
    ordered = sorted(events, key=lambda event: (event[0], event[1]["event_id"]))
    return b"".join(orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n" for _, body in ordered)


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
                    if not value.isascii() and _UNDECODED.search(value):
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


def _collect(
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


def _split_purchases(collector: _Collector) -> tuple[list[_Invoice], Counter[str]]:
    """Return the purchases that become orders and the count of skipped invoices by reason."""
    skipped: Counter[str] = Counter()
    skipped["no_valid_lines"] = len(collector.order_ids_seen - collector.orders.keys())
    kept: list[_Invoice] = []
    for invoice in collector.orders.values():
        if invoice.customer:
            kept.append(invoice)
        else:
            skipped["guest_checkout"] += 1
    return kept, skipped


def import_csv(
    path: Path,
    out_dir: Path,
    mapping: CsvMapping,
    progress: Callable[[int], None] | None = None,
) -> ImportStats:
    """Convert a CSV export into ``orders.jsonl``, ``refunds.jsonl`` and ``import_report.json``.
    ``progress(n)`` is told the number of data rows read so far (a progress display).

    Raises :class:`MappingError` when the mapping does not fit the file (unknown column, a date
    format that does not read the first row) and :class:`ImportFileError` for a file that
    cannot be read (empty, wrong encoding, a field beyond the CSV limit), naming the line.
    Rows with values out of bounds are rejected and counted by reason, with the first
    line of each reason in the report.
    """
    started = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    collector = _collect(path, mapping, progress)
    purchases, skipped = _split_purchases(collector)
    ledger = _Ledger(mapping)
    ledger.run(purchases, collector.refunds.values())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ORDERS_FILE).write_bytes(_jsonl(ledger.orders))
    (out_dir / REFUNDS_FILE).write_bytes(_jsonl(ledger.refunds))
    stats = ImportStats(
        source=path.name,
        mapping=mapping.name,
        rows_read=collector.rows_read,
        orders=len(ledger.orders),
        refund_events=len(ledger.refunds),
        orders_with_refund=len(ledger.refunded_orders),
        cancellation_invoices=len(collector.refunds),
        cancellation_lines=sum(
            len(inv.items) + len(inv.non_product) for inv in collector.refunds.values()
        ),
        unmatched_units=ledger.unmatched_units,
        rows_rejected=dict(collector.rejected),
        rows_rejected_first_line=dict(collector.first_line),
        orders_skipped={reason: n for reason, n in skipped.items() if n},
        unmatched_cancellations={reason: n for reason, n in ledger.unmatched.items() if n},
    )
    report = orjson.dumps(stats.to_report(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    (out_dir / REPORT_FILE).write_bytes(report + b"\n")
    return replace(stats, seconds=time.perf_counter() - started)
