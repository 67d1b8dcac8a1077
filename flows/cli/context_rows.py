"""Rows of a context export (CSV or JSONL) read, checked and loaded into the live Redis
state by ``salvage context load``: customer stats and SKU-family / courier-lane base rates
(fields in ``docs/state.md``). A bad row is reported with its line number and skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from operators.contract import ContractError, parse_ts
from state.context import DecayedRate
from state.redis_store import DELAY, REFUND, RedisContextStore

DEFAULT_RATE_WEIGHT = 50.0
MAX_REPORTED_REJECTS = 20
_BATCH = 1000

# --- parsing the export -------------------------------------------------------------------

#: Customer fields: accepted names (first found wins) -> CustomerStats field.
CUSTOMER_FIELDS: dict[str, tuple[str, ...]] = {
    "orders": ("orders_count", "orders"),
    "refunds": ("refunds_count", "refunds", "returns_count"),
    "exchanges": ("exchanges_count", "exchanges"),
    "chargebacks": ("chargebacks", "chargebacks_count"),
    "refund_value": ("refund_value",),
    "spend": ("lifetime_value", "spend"),
    "first_seen": ("first_seen",),
}
_INT_FIELDS = frozenset({"orders", "refunds", "exchanges", "chargebacks"})
KNOWN_FIELDS = frozenset(
    {"kind", "customer_id", "sku_family", "courier_lane", "refund_rate", "delay_rate"}
    | {"weight", "as_of"}
    | {name for names in CUSTOMER_FIELDS.values() for name in names}
)
KINDS = ("customer", "family", "lane")


class RowError(ValueError):
    """Why one row of the export cannot be loaded."""


@dataclass
class ParsedRow:
    """One valid row: a customer's stats or one entity's base rates."""

    kind: str
    name: str
    stats: dict[str, float] = field(default_factory=dict)
    rates: dict[str, DecayedRate] = field(default_factory=dict)


def _present(row: dict[str, Any], name: str) -> Any:
    value = row.get(name)
    if isinstance(value, str):
        value = value.strip()
        return value if value else None
    return value


def _number(row: dict[str, Any], name: str) -> float | None:
    value = _present(row, name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"{name} must be a number, got a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RowError(f"{name} must be a number, got {str(value)[:20]!r}") from None
    if not math.isfinite(x):
        raise RowError(f"{name} must be a finite number, got {str(value)[:20]!r}")
    return x


def _count(row: dict[str, Any], name: str) -> int | None:
    x = _number(row, name)
    if x is None:
        return None
    if x < 0 or x != int(x):
        raise RowError(f"{name} must be an integer >= 0, got {str(_present(row, name))[:20]!r}")
    return int(x)


def row_timestamp(row: dict[str, Any], name: str) -> float | None:
    value = _present(row, name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError(f"{name} must be a timestamp, got a boolean")
    try:
        ts = float(value)
    except (TypeError, ValueError):
        try:
            return parse_ts(value, name)
        except ContractError as exc:
            raise RowError(f"{exc} (or epoch seconds)") from None
    if not math.isfinite(ts):
        raise RowError(f"{name} must be a finite number, got {str(value)[:20]!r}")
    return ts


def _name(row: dict[str, Any], field_name: str) -> str:
    value = _present(row, field_name)
    if value is None:
        raise RowError(f"missing {field_name}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RowError(f"{field_name} must be a string")
    return str(value)


def parse_row(row: dict[str, Any], default_as_of: float) -> ParsedRow:
    """Validate one export row (a CSV record or a JSON object); raises RowError.

    >>> parse_row({"customer_id": "c1", "orders_count": "4", "returns_count": "1"}, 0.0).stats
    {'orders': 4, 'refunds': 1}
    >>> parse_row({"kind": "family", "sku_family": "shoes", "refund_rate": 0.2,
    ...            "weight": 10, "as_of": 100}, 0.0).rates
    {'refund': DecayedRate(hits=2.0, total=10.0, at=100.0)}
    >>> parse_row({"customer_id": "c1", "orders_count": "-1"}, 0.0)
    Traceback (most recent call last):
    ...
    flows.cli.context_rows.RowError: orders_count must be an integer >= 0, got '-1'
    """
    if not isinstance(row, dict):
        raise RowError("row must be a JSON object")
    kind = str(_present(row, "kind") or "customer").lower()
    if kind not in KINDS:
        raise RowError(f"kind must be one of {', '.join(KINDS)}, got {kind[:20]!r}")
    if kind == "customer":
        name = _name(row, "customer_id")
        stats: dict[str, float] = {}
        for target, names in CUSTOMER_FIELDS.items():
            for source in names:
                if _present(row, source) is None:
                    continue
                if target == "first_seen":
                    stats[target] = row_timestamp(row, source)  # type: ignore[assignment]
                elif target in _INT_FIELDS:
                    stats[target] = _count(row, source)  # type: ignore[assignment]
                else:
                    x = _number(row, source)
                    if x is not None and x < 0:
                        raise RowError(f"{source} must be >= 0, got {x:g}")
                    stats[target] = x  # type: ignore[assignment]
                break
        if not stats:
            raise RowError("no customer stats (e.g. orders_count, returns_count, lifetime_value)")
        orders = stats.get("orders")
        if orders is not None:
            for part in ("refunds", "exchanges", "chargebacks"):
                if stats.get(part, 0) > orders:
                    raise RowError(f"{part} ({stats[part]:g}) exceeds orders ({orders:g})")
        return ParsedRow(kind, name, stats=stats)

    name = _name(row, "sku_family" if kind == "family" else "courier_lane")
    weight = _number(row, "weight")
    if weight is None:
        weight = DEFAULT_RATE_WEIGHT
    if weight <= 0:
        raise RowError(f"weight must be > 0, got {weight:g}")
    as_of = row_timestamp(row, "as_of")
    at = default_as_of if as_of is None else as_of
    groups = {REFUND: "refund_rate"}
    if kind == "lane":
        groups[DELAY] = "delay_rate"
    rates: dict[str, DecayedRate] = {}
    for group, column in groups.items():
        rate = _number(row, column)
        if rate is None:
            continue
        if not 0.0 <= rate <= 1.0:
            raise RowError(f"{column} must be in [0, 1], got {rate:g}")
        rates[group] = DecayedRate(rate * weight, weight, at)
    if not rates:
        raise RowError(f"missing {' or '.join(groups.values())}")
    return ParsedRow(kind, name, rates=rates)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def detect_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from the file name (``.csv``, ``.jsonl``, ``.ndjson``, + ``.gz``).

    >>> detect_format(Path("customers.csv.gz")), detect_format(Path("x.ndjson"))
    ('csv', 'jsonl')
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    if last == ".csv":
        return "csv"
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path.name}; pass --format csv or jsonl")


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line, row, error)`` per record; ``error`` is set when the line cannot be read."""
    with _open_text(path) as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return
            header = [h.strip() for h in reader.fieldnames]
            reader.fieldnames = header
            for row in reader:
                if None in row:
                    yield reader.line_num, None, "more cells than header columns"
                    continue
                if not any((v or "").strip() for v in row.values()):
                    continue
                yield reader.line_num, row, None
        else:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield line_no, None, f"not valid JSON: {exc}"
                    continue
                if not isinstance(obj, dict):
                    yield line_no, None, "row must be a JSON object"
                    continue
                yield line_no, obj, None


@dataclass
class LoadReport:
    """What ``context load`` did."""

    customers: int = 0
    families: int = 0
    lanes: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    unknown_fields: set[str] = field(default_factory=set)

    @property
    def loaded(self) -> int:
        return self.customers + self.families + self.lanes


def load_context(
    path: Path, fmt: str, store: RedisContextStore, *, add: bool = False, as_of: float
) -> LoadReport:
    """Validate and load an export into ``store``, ``_BATCH`` rows per pipeline."""
    report = LoadReport()
    customers: list[tuple[str, dict[str, float]]] = []
    rates: list[tuple[str, str, str, DecayedRate]] = []

    def flush() -> None:
        if customers:
            store.seed_customers(customers, add=add)
            customers.clear()
        if rates:
            store.seed_rates(rates)
            rates.clear()

    for line, row, error in read_rows(path, fmt):
        if row is None:
            report.rejected.append((line, error or "unreadable"))
            continue
        report.unknown_fields.update(k for k in row if k not in KNOWN_FIELDS)
        try:
            parsed = parse_row(row, as_of)
        except RowError as exc:
            report.rejected.append((line, str(exc)))
            continue
        if parsed.kind == "customer":
            customers.append((parsed.name, parsed.stats))
            report.customers += 1
        else:
            rates.extend((parsed.kind, parsed.name, g, r) for g, r in parsed.rates.items())
            if parsed.kind == "family":
                report.families += 1
            else:
                report.lanes += 1
        if len(customers) + len(rates) >= _BATCH:
            flush()
    flush()
    return report


# --- showing a case -----------------------------------------------------------------------
