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
``online-retail`` mapping the keyword table of :mod:`flows.importers.online_retail` is applied
to the product description;
words are compared upper-case with hyphens removed (so ``T-LIGHT`` is ``TLIGHT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson

from flows.importers.columns import ColumnMap, CsvMapping, MappingError, RefundRule, SkuFamilyRule
from flows.importers.events import Ledger, events_jsonl
from flows.importers.families import sku_family_function
from flows.importers.limits import ORDERS_FILE, REFUNDS_FILE, REPORT_FILE
from flows.importers.mapping_files import get_mapping, load_mapping, mapping_from_dict
from flows.importers.online_retail import BUILTIN_MAPPINGS, ONLINE_RETAIL_FAMILY_KEYWORDS
from flows.importers.reading import ImportFileError, collect_rows, split_purchases
from flows.importers.stats import ImportStats

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
    collector = collect_rows(path, mapping, progress)
    purchases, skipped = split_purchases(collector)
    ledger = Ledger(mapping)
    ledger.run(purchases, collector.refunds.values())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ORDERS_FILE).write_bytes(events_jsonl(ledger.orders))
    (out_dir / REFUNDS_FILE).write_bytes(events_jsonl(ledger.refunds))
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
