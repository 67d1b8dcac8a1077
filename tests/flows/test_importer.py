"""Tests for the CSV importer, run on a small hand-made Online Retail sample.

Expected values below were worked out by hand from ``tests/data/online_retail_sample.csv``.
"""

import dataclasses
import gzip
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.importers import (
    BUILTIN_MAPPINGS,
    ColumnMap,
    CsvMapping,
    ImportStats,
    MappingError,
    RefundRule,
    SkuFamilyRule,
    get_mapping,
    import_csv,
    load_mapping,
    sku_family_function,
)
from flows.importers.limits import MAX_LINES_PER_ORDER
from flows.jsonl import read_jsonl
from operators.contract import Event, decode

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "online_retail_sample.csv"
ONLINE_RETAIL = BUILTIN_MAPPINGS["online-retail"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportStats, Path]:
    """Import the sample once with the built-in mapping."""
    out = tmp_path_factory.mktemp("import")
    return import_csv(SAMPLE, out, ONLINE_RETAIL), out


@pytest.fixture(scope="module")
def orders(imported: tuple[ImportStats, Path]) -> dict[str, dict[str, Any]]:
    """The order_placed events by order id."""
    return {event["order_id"]: event for event in read_jsonl(imported[1] / "orders.jsonl")}


@pytest.fixture(scope="module")
def refunds(imported: tuple[ImportStats, Path]) -> list[dict[str, Any]]:
    """The refund_issued events in file order."""
    return read_jsonl(imported[1] / "refunds.jsonl")


def test_invoice_lines_are_grouped_into_one_order(orders: dict[str, dict[str, Any]]) -> None:
    """Repeated sku lines merge; the postage line is not an item."""
    assert list(orders) == ["500001", "500011", "500002", "500040", "500004"]
    order = orders["500001"]
    assert order["event_id"] == "op-500001"
    assert order["customer_id"] == "10001"
    assert order["currency"] == "GBP"
    assert order["lane"] == "United Kingdom"
    assert order["campaign"] is None
    assert order["items"] == [
        {"sku": "85123A", "sku_family": "candles", "quantity": 10, "unit_price": 2.55},
        {"sku": "22423", "sku_family": "kitchen", "quantity": 2, "unit_price": 12.75},
    ]


def test_order_totals(orders: dict[str, dict[str, Any]]) -> None:
    """Totals are sum(quantity x unit price) over kept lines (zero-price line left out)."""
    assert {order_id: event["total"] for order_id, event in orders.items()} == {
        "500001": 51.00,  # 10 x 2.55 + 2 x 12.75; POST skipped
        "500011": 34.65,  # 12 x 1.65 + 3 x 4.95; 0.00 line skipped
        "500002": 26.27,  # 12.75 + 8 x 1.69
        "500040": 54.50,  # 12 x 2.95 + 1 x 3.00 + 12 x 0.85 + 2 x 2.95
        "500004": 16.50,
    }


def test_merged_lines_with_different_prices_use_weighted_unit_price(
    orders: dict[str, dict[str, Any]],
) -> None:
    """22086 is bought as 12 x 2.95 and 1 x 3.00: one item at 38.40 / 13."""
    items = {item["sku"]: item for item in orders["500040"]["items"]}
    assert items["22086"] == {
        "sku": "22086",
        "sku_family": "christmas",
        "quantity": 13,
        "unit_price": 2.9538,
    }
    assert orders["500040"]["customer_id"] == "10003"  # written as 10003.0 in the file
    assert items["20983"]["sku_family"] == "stationery"
    assert items["22326"]["sku_family"] == "other"


def test_customer_history_uses_only_earlier_events(orders: dict[str, dict[str, Any]]) -> None:
    """Snapshots count only orders and refunds strictly before each invoice."""
    history = {order_id: event["customer"] for order_id, event in orders.items()}
    assert history["500001"] == {"orders_count": 0, "returns_count": 0, "lifetime_value": 0.0}
    # C500003 (February) is after 500002 (January) and must not leak into it.
    assert history["500002"] == {"orders_count": 1, "returns_count": 0, "lifetime_value": 51.0}
    # 51.00 + 26.27 - 35.70 - 12.75; C500005 at the same instant is not counted.
    assert history["500004"] == {"orders_count": 2, "returns_count": 2, "lifetime_value": 28.82}
    # C500010 was never matched, so customer 10002 has no refund before 500011.
    assert history["500011"] == {"orders_count": 0, "returns_count": 0, "lifetime_value": 0.0}


def test_cancellation_matches_newest_orders_first_across_two_orders(
    refunds: list[dict[str, Any]],
) -> None:
    """C500003 returns 3 x 22423 (1 from 500002, 2 from 500001) and 4 x 85123A (500001)."""
    assert refunds == [
        {
            "event_id": "rf-C500012-500011",
            "type": "refund_issued",
            "order_id": "500011",
            "occurred_at": "2010-12-05T10:00:00Z",
            "amount": 19.8,  # 12 of the 20 returned, at 1.65
            "skus": ["21731"],
            "reason": "other",
            "request_id": "C500012",
        },
        {
            "event_id": "rf-C500003-500001",
            "type": "refund_issued",
            "order_id": "500001",
            "occurred_at": "2011-02-01T12:00:00Z",
            "amount": 35.7,  # 2 x 12.75 + 4 x 2.55
            "skus": ["22423", "85123A"],
            "reason": "other",
            "request_id": "C500003",
        },
        {
            "event_id": "rf-C500003-500002",
            "type": "refund_issued",
            "order_id": "500002",
            "occurred_at": "2011-02-01T12:00:00Z",
            "amount": 12.75,
            "skus": ["22423"],
            "reason": "other",
            "request_id": "C500003",
        },
    ]


def test_report_counts_unmatched_and_rejected(imported: tuple[ImportStats, Path]) -> None:
    """The report file lists every count with its reason."""
    stats, out = imported
    report = orjson.loads((out / "import_report.json").read_bytes())
    assert report == {
        "source": "online_retail_sample.csv",
        "mapping": "online-retail",
        "rows_read": 24,
        "rows_rejected": {
            "non_positive_price": 1,
            "non_positive_quantity": 1,
            "non_product_code": 1,
        },
        "rows_rejected_first_line": {  # lines of the file, the header is line 1
            "non_positive_price": 9,
            "non_positive_quantity": 12,
            "non_product_code": 5,
        },
        "orders": 5,
        "orders_skipped": {"guest_checkout": 1, "no_valid_lines": 1},
        "refund_events": 3,
        "orders_with_refund": 3,
        "orders_with_refund_share": 0.6,
        "cancellation_invoices": 5,
        "cancellation_lines": 7,
        "unmatched_cancellations": {
            "no_customer": 1,  # C500021
            "no_earlier_purchase": 2,  # C500010 (before any purchase), C500005 (same instant)
            "non_product_code": 1,  # C500012 D
            "partially_matched": 1,  # C500012 21731: 8 of 20 left over
        },
        "unmatched_units": 17,  # 5 + 2 + 2 + 8
    }
    assert report == stats.to_report()
    assert stats.seconds > 0


def test_guest_checkout_is_skipped(orders: dict[str, dict[str, Any]]) -> None:
    """An invoice without a customer id does not become an order."""
    assert "500020" not in orders
    assert "500030" not in orders  # stock adjustment: every line rejected


def test_local_times_are_converted_to_utc(orders: dict[str, dict[str, Any]]) -> None:
    """Winter dates are GMT (+00:00), summer dates BST (+01:00)."""
    assert orders["500001"]["occurred_at"] == "2010-12-01T09:00:00Z"  # GMT
    assert orders["500011"]["occurred_at"] == "2010-12-03T11:00:00Z"  # earliest line wins
    assert orders["500040"]["occurred_at"] == "2011-06-01T07:00:00Z"  # BST 08:00
    assert orders["500004"]["occurred_at"] == "2011-07-15T13:30:00Z"  # BST 14:30


def test_output_is_deterministic_and_sorted(
    imported: tuple[ImportStats, Path], tmp_path: Path
) -> None:
    """A second run, from a gzip copy, gives byte-identical files sorted by time."""
    _, first = imported
    compressed = tmp_path / "sample.csv.gz"
    with SAMPLE.open("rb") as source, gzip.open(compressed, "wb") as target:
        shutil.copyfileobj(source, target)
    second = tmp_path / "again"
    import_csv(compressed, second, ONLINE_RETAIL)
    for name in ("orders.jsonl", "refunds.jsonl"):
        data = (first / name).read_bytes()
        assert data == (second / name).read_bytes()
        events = read_jsonl(first / name)
        keys = [(datetime.fromisoformat(e["occurred_at"]), e["event_id"]) for e in events]
        assert keys == sorted(keys)
        assert all(
            line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
            for line in data.splitlines()
        )
    report_first = orjson.loads((first / "import_report.json").read_bytes())
    report_second = orjson.loads((second / "import_report.json").read_bytes())
    assert report_first == {**report_second, "source": report_first["source"]}


def test_every_event_has_contract_fields(
    orders: dict[str, dict[str, Any]], refunds: list[dict[str, Any]]
) -> None:
    """Check the contract's required fields and value ranges on every event."""
    for event in [*orders.values(), *refunds]:
        assert isinstance(event["event_id"], str) and event["event_id"]
        assert event["type"] in {"order_placed", "refund_issued"}
        assert isinstance(event["order_id"], str) and event["order_id"]
        occurred = datetime.fromisoformat(event["occurred_at"])
        assert occurred.utcoffset() == timedelta(0)
        if event["type"] == "order_placed":
            assert isinstance(event["customer_id"], str) and event["customer_id"]
            assert event["currency"] == "GBP"
            assert event["total"] >= 0
            assert event["items"]
            for item in event["items"]:
                assert isinstance(item["sku"], str) and item["sku"]
                assert isinstance(item["sku_family"], str) and item["sku_family"]
                assert isinstance(item["quantity"], int) and item["quantity"] >= 1
                assert item["unit_price"] >= 0
        else:
            assert event["amount"] >= 0


def _mapping_with(**changes: Any) -> CsvMapping:
    """Return the built-in mapping with some fields replaced (validation runs again)."""
    return dataclasses.replace(ONLINE_RETAIL, **changes)


def test_unknown_column_is_reported_with_a_suggestion(tmp_path: Path) -> None:
    """A misspelt column name fails before anything is written."""
    columns = dataclasses.replace(ONLINE_RETAIL.columns, sku="StockCod")
    with pytest.raises(MappingError) as error:
        import_csv(SAMPLE, tmp_path / "out", _mapping_with(columns=columns))
    message = str(error.value)
    assert "columns.sku='StockCod'" in message
    assert "did you mean 'StockCode'" in message
    assert "online_retail_sample.csv" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%Y-%m-%d %H:%M:%Q", "not a valid strptime format"),
        ("YYYY-MM-DD HH:MM:SS", "not a pattern like 'YYYY-MM-DD'"),
        ("", "date_format must be a strptime format"),
    ],
)
def test_bad_date_format_is_rejected(fmt: str, expected: str) -> None:
    """Invalid formats are caught when the mapping is built."""
    with pytest.raises(MappingError, match="date_format") as error:
        _mapping_with(date_format=fmt)
    assert expected in str(error.value)


def test_date_format_not_matching_the_file_fails_on_the_first_row(tmp_path: Path) -> None:
    """A valid format that does not fit the data is a mapping error, not 24 rejected rows."""
    with pytest.raises(MappingError) as error:
        import_csv(SAMPLE, tmp_path, _mapping_with(date_format="%d/%m/%Y %H:%M"))
    message = str(error.value)
    assert "InvoiceDate value '2010-12-01 09:00:00'" in message
    assert "does not match date_format '%d/%m/%Y %H:%M'" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"timezone": "Europe/Londn"}, "timezone 'Europe/Londn' is not a known IANA zone"),
        ({"currency": "pounds"}, "currency must be a 3-letter ISO 4217 code"),
    ],
)
def test_other_mapping_fields_are_validated(changes: dict[str, Any], expected: str) -> None:
    """Timezone and currency are checked when the mapping is built."""
    with pytest.raises(MappingError, match=expected):
        _mapping_with(**changes)


def test_refund_rule_needs_a_condition() -> None:
    """Without a prefix or negative quantities, returns could never be recognised."""
    with pytest.raises(MappingError, match="refund_when must set column"):
        RefundRule()
    with pytest.raises(MappingError, match="must be given together"):
        RefundRule(column="InvoiceNo")


YAML_MAPPING = """\
name: shop
columns:
  order_id: InvoiceNo
  sku: StockCode
  description: Description
  quantity: Quantity
  date: InvoiceDate
  unit_price: UnitPrice
  customer_id: CustomerID
  country: Country
date_format: "%Y-%m-%d %H:%M:%S"
timezone: Europe/London
currency: GBP
refund_when: {column: InvoiceNo, prefix: "C"}
sku_family: {kind: prefix, length: 3}
lanes: {United Kingdom: uk, France: eu}
non_product_skus: [POST, D]
"""


def test_load_mapping_from_yaml(tmp_path: Path) -> None:
    """A YAML mapping gives the same orders, with its own families and lanes."""
    path = tmp_path / "shop.yaml"
    path.write_text(YAML_MAPPING, encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping == get_mapping(str(path))
    assert mapping.columns == ONLINE_RETAIL.columns
    assert mapping.sku_family == SkuFamilyRule(kind="prefix", length=3)
    stats = import_csv(SAMPLE, tmp_path / "out", mapping)
    assert (stats.orders, stats.refund_events) == (5, 3)
    orders = {e["order_id"]: e for e in read_jsonl(tmp_path / "out" / "orders.jsonl")}
    assert [item["sku_family"] for item in orders["500001"]["items"]] == ["851", "224"]
    assert orders["500001"]["lane"] == "uk"
    assert orders["500040"]["lane"] == "Germany"  # no lane configured: the country


def test_yaml_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    """Unknown keys and bad values point at what to change."""
    path = tmp_path / "bad.yaml"
    path.write_text(YAML_MAPPING.replace("timezone:", "timezon:"), encoding="utf-8")
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert str(path) in str(error.value)
    assert "unknown key 'timezon'" in str(error.value)
    assert "did you mean 'timezone'" in str(error.value)
    path.write_text(YAML_MAPPING.replace("kind: prefix, length: 3", "kind: prefix"), "utf-8")
    with pytest.raises(MappingError, match=r"sku_family\.length must be a whole number"):
        load_mapping(path)
    with pytest.raises(MappingError, match="unknown mapping 'nope'"):
        get_mapping("nope")


def test_sku_family_rules(tmp_path: Path) -> None:
    """Prefix, regex, lookup file and keyword rules."""
    regex = sku_family_function(SkuFamilyRule(kind="regex", pattern=r"^(?P<family>\d{2})"))
    assert regex("85123A", "") == "85"
    assert regex("POST", "") == "other"
    table = tmp_path / "families.csv"
    table.write_text("sku,family\n85123A,lights\n", encoding="utf-8")
    path = tmp_path / "lookup.yaml"
    path.write_text(
        YAML_MAPPING.replace("{kind: prefix, length: 3}", "{kind: lookup, path: families.csv}"),
        encoding="utf-8",
    )
    lookup = sku_family_function(load_mapping(path).sku_family)
    assert (lookup("85123A", ""), lookup("22423", "")) == ("lights", "other")
    keywords = sku_family_function(ONLINE_RETAIL.sku_family)
    assert keywords("", "CHRISTMAS T-LIGHT HOLDER") == "christmas"  # first family in the table
    assert keywords("", "WHITE HANGING HEART T-LIGHT HOLDER") == "candles"
    assert keywords("", "SET OF 3 COLOURED  FLYING DUCKS") == "other"


def test_negative_quantity_rule_and_columns_in_any_order(tmp_path: Path) -> None:
    """Returns can be recognised by a negative quantity alone."""
    csv_path = tmp_path / "shop.csv"
    csv_path.write_text(
        "when;order;customer;sku;qty;price\n"
        "01/03/2024 10:00;A1;c1;S1;2;5.00\n"
        "05/03/2024 10:00;R1;c1;S1;-1;5.00\n",
        encoding="utf-8",
    )
    mapping = CsvMapping(
        name="semicolon",
        columns=ColumnMap(
            order_id="order",
            sku="sku",
            quantity="qty",
            date="when",
            unit_price="price",
            customer_id="customer",
        ),
        date_format="%d/%m/%Y %H:%M",
        timezone="UTC",
        currency="EUR",
        refund_when=RefundRule(negative_quantity=True),
        sku_family=SkuFamilyRule(kind="prefix", length=1),
        delimiter=";",
    )
    stats = import_csv(csv_path, tmp_path / "out", mapping)
    assert (stats.orders, stats.refund_events) == (1, 1)
    (order,) = read_jsonl(tmp_path / "out" / "orders.jsonl")
    (refund,) = read_jsonl(tmp_path / "out" / "refunds.jsonl")
    assert (order["currency"], order["total"], order["lane"]) == ("EUR", 10.0, None)
    assert refund["event_id"] == "rf-R1-A1"
    assert refund["amount"] == 5.0


# --- hostile files ---------------------------------------------------------------------------

_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
_GOOD = "500001,85123A,WHITE HANGING HEART,6,2010-12-01 09:00:00,2.55,10001,United Kingdom\n"


def _row(**values: str) -> str:
    row = {
        "InvoiceNo": "500002", "StockCode": "X1", "Description": "d", "Quantity": "1",
        "InvoiceDate": "2010-12-01 10:00:00", "UnitPrice": "1.0", "CustomerID": "10002",
        "Country": "UK",
    }  # fmt: skip
    row.update(values)
    return ",".join(row.values()) + "\n"


# (name, file bytes, how it must end: an error naming a line, or a rejected row by reason)
HOSTILE_CSVS: list[tuple[str, bytes, str]] = [
    ("field_over_128k", (_HEADER + _GOOD + _row(Description='"' + "A" * 200_000 + '"')).encode(),
     "error:line 3"),
    ("invalid_utf8", (_HEADER + _GOOD).encode() + _row(Description="caf\udce9").encode(
        "utf-8", "surrogateescape"), "error:line 3"),
    ("price_1e400", (_HEADER + _GOOD + _row(UnitPrice="1e400")).encode(), "rejected:bad_price:3"),
    ("quantity_32_digits", (_HEADER + _GOOD + _row(Quantity="9" * 32)).encode(),
     "rejected:bad_quantity:3"),
    ("empty", b"", "error:empty"),
    ("blank_lines_only", b"\n\n\n", "error:empty"),
    ("price_nan", (_HEADER + _GOOD + _row(UnitPrice="NaN")).encode(), "rejected:bad_price:3"),
    ("price_inf", (_HEADER + _GOOD + _row(UnitPrice="-Infinity")).encode(),
     "rejected:bad_price:3"),
    ("quantity_1e400", (_HEADER + _GOOD + _row(Quantity="1e400")).encode(),
     "rejected:bad_quantity:3"),
    ("year_1", (_HEADER + _GOOD + _row(InvoiceDate="0001-01-01 00:00:00")).encode(),
     "rejected:date_out_of_range:3"),
    ("year_9999", (_HEADER + _GOOD + _row(InvoiceDate="9999-12-31 23:59:59")).encode(),
     "rejected:date_out_of_range:3"),
    ("customer_id_5000_chars", (_HEADER + _GOOD + _row(CustomerID="1" * 5000)).encode(),
     "rejected:id_too_long:3"),
    ("corrupt_gzip", b"\x1f\x8b" + b"garbage" * 100, "error:cannot read"),
    ("short_row", (_HEADER + _GOOD + "500014,X13\n").encode(), "rejected:malformed_row:3"),
    ("header_only", _HEADER.encode(), "ok"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "expect"), HOSTILE_CSVS, ids=[c[0] for c in HOSTILE_CSVS])
def test_hostile_csv_gets_a_clear_error_or_a_rejected_row_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, expect: str
) -> None:
    from flows.cli import main

    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    out_dir = tmp_path / "out"
    try:
        code = main(["import", str(path), "--out", str(out_dir)])
    except SystemExit as exc:  # usage errors exit 2 through argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if expect.startswith("error:"):
        assert code == 2, out
        assert expect.removeprefix("error:") in err and path.name in err, err
        return
    assert code == 0, err
    report = orjson.loads((out_dir / "import_report.json").read_bytes())
    if expect.startswith("rejected:"):
        _, reason, line = expect.split(":")
        assert report["rows_rejected"] == {reason: 1}
        assert report["rows_rejected_first_line"] == {reason: int(line)}
    for event in read_jsonl(out_dir / "orders.jsonl"):  # what is written replays cleanly
        assert isinstance(decode("orders", event), Event), event


def test_an_order_with_more_lines_than_the_contract_allows_is_cut_with_a_reason(
    tmp_path: Path,
) -> None:
    lines = [_row(StockCode=f"S{i}") for i in range(MAX_LINES_PER_ORDER + 5)]
    path = tmp_path / "wide.csv"
    path.write_text(_HEADER + "".join(lines))
    stats = import_csv(path, tmp_path / "out", get_mapping("online-retail"))
    assert stats.rows_rejected == {"too_many_lines_in_order": 5}
    (order,) = read_jsonl(tmp_path / "out" / "orders.jsonl")
    assert isinstance(decode("orders", order), Event)
