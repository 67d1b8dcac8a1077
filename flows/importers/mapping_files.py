"""Mappings written as YAML files, checked key by key with suggestions for typos."""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from flows.importers.columns import ColumnMap, CsvMapping, MappingError, RefundRule, SkuFamilyRule
from flows.importers.online_retail import BUILTIN_MAPPINGS

# --------------------------------------------------------------------------- mapping files

_REQUIRED_TOP_KEYS: Final = (
    "columns",
    "date_format",
    "timezone",
    "currency",
    "refund_when",
    "sku_family",
)
_TOP_KEYS: Final = frozenset(
    {"name", *_REQUIRED_TOP_KEYS, "lanes", "non_product_skus", "delimiter", "encoding"}
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


def suggest(word: str, options: Iterable[str]) -> str:
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
                f"unknown key {key!r} in {where}{suggest(str(key), allowed)}; "
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
