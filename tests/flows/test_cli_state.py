"""``salvage context load`` and ``salvage case``: row validation (unit) and the commands
run as subprocesses against a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli.context_rows import RowError, detect_format, parse_row
from flows.cli.state import format_case
from operators.case import DAY
from state.context import DecayedRate
from state.redis_conn import connect
from state.redis_store import RedisCaseStore, RedisContextStore, RedisDispatchLedger

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_780_000_000.0


def salvage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the subcommands through ``python -m flows.cli`` in a subprocess (no inherited
    Redis settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SALVAGE_REDIS")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- rows (no server) -----------------------------------------------------------------------


def test_customer_rows_map_export_names_to_stats() -> None:
    row = parse_row(
        {"customer_id": "c1", "orders_count": "12", "refunds_count": "2", "returns_count": "5",
         "exchanges_count": "1", "chargebacks": "0", "lifetime_value": "1520.5",
         "refund_value": "80", "first_seen": "2025-01-02T00:00:00Z", "email": "x@y"},
        0.0,
    )  # fmt: skip
    assert row.kind == "customer" and row.name == "c1"
    assert row.stats == {
        "orders": 12,
        "refunds": 2,  # refunds_count wins over returns_count
        "exchanges": 1,
        "chargebacks": 0,
        "refund_value": 80.0,
        "spend": 1520.5,
        "first_seen": 1735776000.0,
    }


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"orders_count": "1"}, "missing customer_id"),
        ({"customer_id": "c1"}, "no customer stats"),
        ({"customer_id": "c1", "orders_count": "1.5"}, "orders_count must be an integer >= 0"),
        ({"customer_id": "c1", "lifetime_value": "lots"}, "lifetime_value must be a number"),
        ({"customer_id": "c1", "lifetime_value": -3}, "lifetime_value must be >= 0"),
        ({"customer_id": "c1", "orders_count": 2, "returns_count": 3}, "refunds (3) exceeds"),
        ({"customer_id": "c1", "orders_count": True}, "must be a number, got a boolean"),
        ({"customer_id": "c1", "first_seen": "yesterday"}, "first_seen is not an RFC 3339"),
        ({"kind": "warehouse", "customer_id": "c1"}, "kind must be one of"),
        ({"kind": "family", "refund_rate": 0.1}, "missing sku_family"),
        ({"kind": "family", "sku_family": "s", "refund_rate": 1.5}, "refund_rate must be in"),
        ({"kind": "family", "sku_family": "s"}, "missing refund_rate"),
        ({"kind": "lane", "courier_lane": "l", "weight": 10}, "missing refund_rate or delay"),
        ({"kind": "lane", "courier_lane": "l", "delay_rate": 0.2, "weight": 0}, "weight must"),
    ],
)
def test_bad_rows_say_what_is_wrong(row: dict[str, Any], message: str) -> None:
    with pytest.raises(RowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_row(row, 0.0)


def test_rate_rows_become_decayed_rates_at_their_time() -> None:
    lane = parse_row(
        {"kind": "lane", "courier_lane": "dhl:DE-NL", "refund_rate": "0.1", "delay_rate": "0.25",
         "weight": "40", "as_of": "2026-05-01T00:00:00Z"},
        T0,
    )  # fmt: skip
    at = 1777593600.0
    assert lane.rates == {
        "refund": DecayedRate(4.0, 40.0, at),
        "delay": DecayedRate(10.0, 40.0, at),
    }
    family = parse_row({"kind": "family", "sku_family": "shoes", "refund_rate": 0.3}, T0)
    assert family.rates == {"refund": DecayedRate(15.0, 50.0, T0)}  # default weight, load time


def test_format_detection() -> None:
    assert detect_format(Path("a/customers.CSV")) == "csv"
    assert detect_format(Path("export.jsonl.gz")) == "jsonl"
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("export.parquet"))


def test_case_layout_shows_decisions_interventions_and_outcome() -> None:
    case = {
        "view": {"order_id": "o1", "customer_id": "c1", "stage": "resolved",
                 "as_of": "2026-06-04T18:00:00Z", "order_value": 120.0, "currency": "EUR",
                 "sku_family": "shoes", "courier_lane": "dhl:DE-NL", "arm": "treatment",
                 "signals": {"slip_hours": 30.0, "delays": 1, "last_intent": "where_is_my_order",
                             "last_sentiment": -0.6, "request": "refund_requested",
                             "request_reason": "late_delivery"},
                 "timeline": [["2026-06-01T00:00:00Z", "order_placed"],
                              ["2026-06-02T16:00:00Z", "delayed"]]},
        "decisions": [{"decided_at": "2026-06-02T16:00:00Z", "action": "proactive_reassurance",
                       "automated": True, "arm": "treatment", "rule": "proactive_reassurance.late",
                       "reasons": ["P(refund)=0.41", "margin at risk 80.00"],
                       "scores": {"return_propensity": 0.41, "abuse_risk": 0.02},
                       "expected_saving": 4.1, "value_at_risk": 49.2, "policy_version": "3"}],
        "interventions": [{"intervention_id": "iv-1", "decided_at": "2026-06-02T16:00:00Z",
                           "action": "proactive_reassurance",
                           "offer": {"type": "store_credit", "amount": 8, "currency": "EUR"},
                           "message": {"channel": "email", "text": "Sorry for the wait"}}],
        "outcome": {"outcome": "refunded", "resolved_at": "2026-06-04T18:00:00Z",
                    "refund_value": 120.0, "retained_value": 0.0, "order_value": 120.0,
                    "currency": "EUR", "predicted_return_propensity": 0.41},
    }  # fmt: skip
    text = format_case("o1", case, {"iv-1": "delivered"})
    lines = text.splitlines()
    assert lines[0] == "order o1   stage resolved   as of 2026-06-04T18:00:00Z"
    assert "request refund_requested (late_delivery)" in text
    assert "  2026-06-02T16:00:00Z  delayed" in lines
    assert "      rule     proactive_reassurance.late" in lines
    assert "      reasons  P(refund)=0.41; margin at risk 80.00" in lines
    assert "      scores   return_propensity 0.41  abuse_risk 0.02" in lines
    assert "iv-1  dispatch: delivered" in text
    assert "      offer    store credit 8.00 EUR" in lines
    assert "  refunded at 2026-06-04T18:00:00Z   refund 120.00" in text
    assert "dispatch: not dispatched" in format_case("o1", case)


# --- context load (subprocess, real server) -----------------------------------------------------


CSV_EXPORT = """customer_id,orders_count,returns_count,lifetime_value,chargebacks,email
c1,10,2,900.50,0,a@example.com
c2,3,0,120,,
c3,-1,0,10,0,
,4,1,50,0,
c4,4,1,abc,0,
c5,4,1,50,0,
"""


@pytest.mark.services
def test_context_load_csv_loads_good_rows_and_reports_bad_ones(
    redis_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "customers.csv"
    export.write_text(CSV_EXPORT)
    run = salvage("context", "load", str(export), "--redis-url", redis_url)
    assert run.returncode == 1, run.stderr
    assert "loaded 3 customers" in run.stdout
    assert "rejected 3 rows" in run.stderr
    assert "line 4: orders_count must be an integer >= 0, got '-1'" in run.stderr
    assert "line 5: missing customer_id" in run.stderr
    assert "line 6: lifetime_value must be a number, got 'abc'" in run.stderr
    assert "ignored unknown fields: email" in run.stderr
    assert "a@example.com" not in run.stdout + run.stderr

    store = RedisContextStore(connect(redis_url))
    c1 = store.customer("c1")
    assert c1 is not None
    assert (c1.orders, c1.refunds, c1.chargebacks, c1.spend) == (10, 2, 0, 900.5)
    assert store.customer("c3") is None and store.customer("c4") is None
    assert store.customer("c5").refunds == 1

    # Loading again replaces (idempotent); --add adds to what is stored.
    assert salvage("context", "load", str(export), "--redis-url", redis_url).returncode == 1
    store.invalidate()
    assert store.customer("c1").orders == 10
    assert salvage("context", "load", str(export), "--add", "--redis-url", redis_url).returncode
    store.invalidate()
    assert (store.customer("c1").orders, store.customer("c1").spend) == (20, 1801.0)


@pytest.mark.services
def test_context_load_jsonl_seeds_family_and_lane_rates(redis_url: str, tmp_path: Path) -> None:
    rows = [
        {"customer_id": "c1", "orders_count": 2, "refunds_count": 1},
        {"kind": "family", "sku_family": "shoes", "refund_rate": 0.3, "weight": 80,
         "as_of": "2026-05-28T00:00:00Z"},
        {"kind": "lane", "courier_lane": "dhl:DE-NL", "refund_rate": 0.05, "delay_rate": 0.4,
         "weight": 20},
    ]  # fmt: skip
    export = tmp_path / "context.jsonl"
    export.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n{not json\n")
    run = salvage(
        "context", "load", str(export), "--as-of", "2026-05-20T00:00:00Z", "--redis-url", redis_url
    )
    assert run.returncode == 1
    assert "loaded 1 customers, 1 SKU families and 1 courier lanes" in run.stdout
    assert "line 4: not valid JSON" in run.stderr

    store = RedisContextStore(connect(redis_url))
    shoes_at = 1779926400.0  # its own as_of
    lane_at = 1779235200.0  # --as-of
    half_life = store.half_life
    for now in (shoes_at, shoes_at + 7 * DAY):
        expected = DecayedRate(24.0, 80.0, shoes_at).rate(now, half_life, 0.08, 20.0)
        assert store.family_rate("shoes", now) == pytest.approx(expected, rel=1e-12)
    assert store.lane_delay_rate("dhl:DE-NL", lane_at) == pytest.approx((8 + 2) / 40)
    assert store.lane_refund_rate("dhl:DE-NL", lane_at) == pytest.approx((1 + 1.6) / 40)

    # The decayed seed then folds in observed outcomes like any other.
    store.record_outcome(
        {"outcome": "refunded", "sku_family": "shoes", "resolved_at_ts": shoes_at + DAY}
    )
    store.flush()
    assert store.family_rate("shoes", shoes_at + DAY) > expected


@pytest.mark.services
def test_context_load_rejects_unreadable_input(redis_url: str, tmp_path: Path) -> None:
    missing = salvage("context", "load", str(tmp_path / "nope.csv"), "--redis-url", redis_url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    odd = tmp_path / "export.xlsx"
    odd.write_text("x")
    unknown = salvage("context", "load", str(odd), "--redis-url", redis_url)
    assert unknown.returncode == 2 and "--format" in unknown.stderr


# --- case (subprocess, real server) -------------------------------------------------------------


@pytest.mark.services
def test_case_command_prints_the_case_and_its_json(redis_url: str) -> None:
    client = connect(redis_url)
    store = RedisCaseStore(client)
    decision = {"order_id": "o-77", "decided_at": "2026-06-02T16:00:00Z",
                "trigger_event_id": "e-2", "action": "exchange_first_offer", "automated": True,
                "arm": "treatment", "rule": "exchange_first_offer.size_fit",
                "reasons": ["P(refund)=0.62", "P(recovered|exchange_first_offer)=0.35"],
                "scores": {"return_propensity": 0.62, "recoverability": 0.35}}  # fmt: skip
    intervention = {
        "order_id": "o-77",
        "intervention_id": "iv-77",
        "action": "exchange_first_offer",
        "decided_at": "2026-06-02T16:00:00Z",
    }
    store.write_batch(
        [
            ("case", {"order_id": "o-77", "stage": "at_risk", "as_of": "2026-06-02T16:00:00Z",
                      "timeline": [["2026-06-01T00:00:00Z", "order_placed"]]}),
            ("decision", decision),
            ("intervention", intervention),
        ]
    )  # fmt: skip
    RedisDispatchLedger(client).claim("iv-77", 3600)

    # The real entry point, with the URL from the environment.
    shown = salvage("case", "o-77", env={"SALVAGE_REDIS_URL": redis_url})
    assert shown.returncode == 0, shown.stderr
    assert "order o-77   stage at_risk" in shown.stdout
    assert "rule     exchange_first_offer.size_fit" in shown.stdout
    assert "P(recovered|exchange_first_offer)=0.35" in shown.stdout
    assert "iv-77  dispatch: claimed" in shown.stdout

    raw = salvage("case", "o-77", "--json", "--redis-url", redis_url)
    assert raw.returncode == 0
    record = orjson.loads(raw.stdout)
    assert record["decisions"] == [decision]
    assert record["interventions"] == [intervention]
    assert record["dispatch"] == {"iv-77": "claimed"}

    unknown = salvage("case", "o-404", "--redis-url", redis_url)
    assert unknown.returncode == 1
    assert "no case for order 'o-404'" in unknown.stderr


@pytest.mark.services
def test_cli_masks_the_password_and_uses_it(
    redis_auth_server: tuple[str, str], tmp_path: Path
) -> None:
    url, password = redis_auth_server
    wrong = url.replace("redis://", "redis://:not-the-password@")
    denied = salvage("case", "o1", "--redis-url", wrong)
    assert denied.returncode == 1
    assert "redis://:****@127.0.0.1" in denied.stderr
    assert "not-the-password" not in denied.stdout + denied.stderr

    export = tmp_path / "c.csv"
    export.write_text("customer_id,orders_count\nc1,3\n")
    ok = salvage("context", "load", str(export), env={"SALVAGE_REDIS_URL": url,
                 "SALVAGE_REDIS_PASSWORD": password})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert password not in ok.stdout + ok.stderr
    with_password = url.replace("redis://", f"redis://:{password}@")
    shown = salvage("case", "o1", "--redis-url", with_password)
    assert shown.returncode == 1 and "no case" in shown.stderr
    assert password not in shown.stdout + shown.stderr
    assert RedisContextStore(connect(with_password)).customer("c1").orders == 3


def test_the_redis_url_falls_back_to_the_live_settings_file(tmp_path, monkeypatch) -> None:
    from flows.cli.state import _redis_url

    config = tmp_path / "salvage.yaml"
    config.write_text("redis:\n  url: redis://127.0.0.1:16390/2\n")
    monkeypatch.delenv("SALVAGE_REDIS_URL", raising=False)
    monkeypatch.setenv("SALVAGE_CONFIG", str(config))
    assert _redis_url(None) == "redis://127.0.0.1:16390/2"
    assert _redis_url("redis://h:1/0") == "redis://h:1/0"  # the flag wins
    monkeypatch.setenv("SALVAGE_REDIS_URL", "redis://e:2/0")
    assert _redis_url(None) == "redis://e:2/0"  # then the variable
    monkeypatch.delenv("SALVAGE_CONFIG")
    monkeypatch.delenv("SALVAGE_REDIS_URL")
    assert _redis_url(None) == "redis://127.0.0.1:6379/0"
