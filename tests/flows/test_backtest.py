"""Backtest against a ground truth written by hand.

Four orders, placed on 1 June 2026 (times are hours after midnight UTC):

=========  =====  ============================================  =====================
order      value  history (the world without Salvage)           default policy does
=========  =====  ============================================  =====================
late       80     48 h late, asks where it is at 75 h,          proactive_reassurance
                  refunded 80 at 100 h
fit        60     delivered, size_fit refund request at 60 h,   exchange_first_offer
                  refunded 45 at 90 h
calm       40     delivered on time, nothing else               nothing
control    50     delivered, size_fit return at 61 h, control   exchange_first_offer,
                  arm, refunded 35 at 95 h                      logged, not sent
=========  =====  ============================================  =====================

The conservative policy (P(refund) of at least 0.35) leaves `late` alone (0.19 when it
asks) and still exchanges `fit` (a refund request). The ground truth says what each order
would have done under each action; the expected figures are worked out from it by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli import main
from flows.jsonl import read_jsonl
from operators.actions import action_names
from operators.backtest import NEEDS_TRUTH
from operators.decision import CONTROL, TREATMENT, arm_of
from operators.policy import RecoveryPolicy
from tests.helpers import body, order_placed, support

REPO = Path(__file__).resolve().parents[2]
CONSERVATIVE = REPO / "operators" / "policies" / "conservative.yaml"
DEFAULT = RecoveryPolicy.default()


def first_id(prefix: str, arm: str) -> str:
    """The first id ``prefix-<i>`` in ``arm`` under the default policy's holdout."""
    for i in range(1000):
        oid = f"{prefix}-{i}"
        if arm_of(oid, DEFAULT.holdout_share, DEFAULT.holdout_salt) == arm:
            return oid
    raise AssertionError(f"no {arm} id for {prefix}")


LATE = first_id("bt-late", TREATMENT)
FIT = first_id("bt-fit", TREATMENT)
CALM = first_id("bt-calm", TREATMENT)
CTRL = first_id("bt-ctl", CONTROL)


def _outcome(kind: str, refund: float, retained: float) -> dict[str, Any]:
    return {"outcome": kind, "refund_value": refund, "retained_value": retained}


def truth_row(order_id: str, value: float, none: dict[str, Any], **by_action: Any) -> dict:
    """A ground-truth row: ``none`` for every action not named, blanket refund as given."""
    outcomes = {a: none for a in action_names()}
    outcomes.update(none=none, **by_action)
    return {"order_id": order_id, "order_value": value, "outcomes": outcomes}


GROUND_TRUTH = [
    truth_row(
        LATE, 80.0, _outcome("refunded", 80.0, 0.0),
        blanket_refund=_outcome("refunded", 80.0, 0.0),
        proactive_reassurance=_outcome("kept", 0.0, 80.0),
    ),
    truth_row(
        FIT, 60.0, _outcome("refunded", 45.0, 15.0),
        blanket_refund=_outcome("refunded", 60.0, 0.0),
        exchange_first_offer=_outcome("exchanged", 0.0, 60.0),
    ),
    truth_row(CALM, 40.0, _outcome("kept", 0.0, 40.0), blanket_refund=_outcome("kept", 0.0, 40.0)),
    truth_row(
        CTRL, 50.0, _outcome("refunded", 35.0, 15.0),
        blanket_refund=_outcome("refunded", 50.0, 0.0),
        exchange_first_offer=_outcome("exchanged", 0.0, 50.0),
    ),
]  # fmt: skip

STREAMS: dict[str, list[dict[str, Any]]] = {
    "orders": [
        order_placed(LATE, 0, total=80.0, cost=30.0, customer_id="c-late"),
        order_placed(FIT, 1, total=60.0, cost=20.0, customer_id="c-fit"),
        order_placed(CALM, 2, total=40.0, cost=15.0, customer_id="c-calm"),
        order_placed(CTRL, 3, total=50.0, cost=20.0, customer_id="c-ctl"),
    ],
    "delivery": [
        body("shipped", FIT, 5),
        body("shipped", CALM, 6),
        body("shipped", CTRL, 7),
        body("shipped", LATE, 10),
        body("delivered", FIT, 30),
        body("delivered", CALM, 30),
        body("delivered", CTRL, 31),
        body("delayed", LATE, 40, estimated_delivery_at="2026-06-05T00:00:00Z"),
    ],
    "support": [support("ticket_opened", LATE, 75, intent="where_is_my_order", sentiment=-0.6)],
    "refunds": [
        body("refund_requested", FIT, 60, reason="size_fit"),
        body("return_requested", CTRL, 61, reason="size_fit"),
        body("refund_issued", FIT, 90, amount=45.0),
        body("refund_issued", CTRL, 95, amount=35.0),
        body("refund_issued", LATE, 100, amount=80.0),
    ],
}


def write_input(directory: Path, *, with_truth: bool = True) -> Path:
    directory.mkdir(parents=True)
    for stream, records in STREAMS.items():
        (directory / f"{stream}.jsonl").write_bytes(
            b"".join(orjson.dumps(r) + b"\n" for r in records)
        )
    if with_truth:
        (directory / "ground_truth.jsonl").write_bytes(
            b"".join(orjson.dumps(r) + b"\n" for r in GROUND_TRUTH)
        )
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("backtest")
    data = write_input(base / "input")
    out = base / "out"
    # The figures below are worked out for the static rules (no exploration draw lands on
    # these orders); the learned policy samples its choices (tests/operators/test_bandit.py).
    args = ["backtest", str(data), "--out", str(out), "--against", str(CONSERVATIVE)]
    assert main([*args, "--no-learning"]) == 0
    return orjson.loads((out / "backtest.json").read_bytes())


def figures(report: dict[str, Any], name: str) -> dict[str, Any]:
    (run,) = [r for r in report["policies"] if r["name"] == name]
    return run["figures"]


def test_the_default_policy_does_what_the_table_says(report: dict[str, Any]) -> None:
    (run,) = [r for r in report["policies"] if r["name"] == "default"]
    out = Path(run["out_dir"])
    decisions = read_jsonl(out / "decisions.jsonl")
    acted = {(d["order_id"], d["arm"], d["action"]) for d in decisions if d["action"] != "none"}
    assert acted == {
        (LATE, TREATMENT, "proactive_reassurance"),
        (FIT, TREATMENT, "exchange_first_offer"),
        (CTRL, CONTROL, "exchange_first_offer"),
    }
    assert not any("exploration" in d["reasons"] for d in decisions)
    emitted = [(iv["order_id"], iv["action"]) for iv in read_jsonl(out / "interventions.jsonl")]
    assert sorted(emitted) == sorted(
        [(LATE, "proactive_reassurance"), (FIT, "exchange_first_offer")]
    )


def test_default_policy_figures_match_the_hand_built_truth(report: dict[str, Any]) -> None:
    f = figures(report, "default")
    assert report["has_ground_truth"] is True and report["unknown_without_ground_truth"] == []
    assert f["policy_version"] == DEFAULT.version and f["cases"] == 4
    # Policy world: late is kept (reassured), fit exchanged, calm kept, and the control
    # order, whose logged decision counts as if it had been sent (every arm is scored on
    # every order), exchanged too.
    assert f["refund_leakage"] == 0.0
    assert f["retained_revenue"] == 80.0 + 60.0 + 40.0 + 50.0  # 230
    # Blanket refund: 80 + 60 + 50 (calm never asks). Doing nothing: 80 + 45 + 35.
    assert f["blanket_refund_leakage"] == 190.0
    assert f["no_action_leakage"] == 160.0
    assert f["vs_blanket_refund"] == 1.0
    assert f["vs_no_action"] == 1.0
    # One reassurance (0.15) and one exchange (1.00), no credit, on 230 of revenue.
    assert f["actions_by_type"] == {"exchange_first_offer": 1, "proactive_reassurance": 1}
    assert (f["interventions"], f["human_review_cases"], f["human_review_share"]) == (2, 0, 0.0)
    assert (f["contact_cost"], f["credit_cost"], f["order_revenue"]) == (1.15, 0.0, 230.0)
    assert f["cost_share_of_revenue"] == round(1.15 / 230.0, 5)  # 0.005
    assert f["within_budget"] is True


def test_uplift_uses_the_realized_outcomes(report: dict[str, Any]) -> None:
    (run,) = [r for r in report["policies"] if r["name"] == "default"]
    uplift = run["summary"]["uplift"]
    assert uplift["source"] == "ground_truth"
    exchange = uplift["by_action"]["exchange_first_offer"]
    # fit (treated, exchanged: no refund) against control (no action: refunded).
    assert (exchange["treated"], exchange["control"]) == (1, 1)
    assert (exchange["treated_refund_rate"], exchange["control_refund_rate"]) == (0.0, 1.0)
    assert exchange["refund_rate_reduction"] == 1.0
    assert exchange["value_saved_per_case"] == 35.0 - 0.0
    reassure = uplift["by_action"]["proactive_reassurance"]
    assert (reassure["treated"], reassure["control"], reassure["refund_rate_reduction"]) == (
        1,
        0,
        None,
    )


def test_conservative_policy_figures_match_the_hand_built_truth(report: dict[str, Any]) -> None:
    f = figures(report, "conservative")
    conservative = RecoveryPolicy.load(CONSERVATIVE)
    assert f["policy_version"] == conservative.version
    (run,) = [r for r in report["policies"] if r["name"] == "conservative"]
    late = [
        d for d in read_jsonl(Path(run["out_dir"]) / "decisions.jsonl") if d["order_id"] == LATE
    ]
    assert {d["rule"] for d in late} == {"below_propensity_threshold"}
    assert max(d["scores"]["return_propensity"] for d in late) < conservative.min_return_propensity
    # So the late order refunds 80; fit is still exchanged; control still refunds 35.
    assert f["actions_by_type"] == {"exchange_first_offer": 1}
    assert f["refund_leakage"] == 80.0 + 35.0
    assert f["retained_revenue"] == 60.0 + 40.0 + 15.0
    assert (f["blanket_refund_leakage"], f["no_action_leakage"]) == (190.0, 160.0)
    assert f["vs_blanket_refund"] == round((190.0 - 115.0) / 190.0, 4)  # 0.3947
    assert f["vs_no_action"] == round((160.0 - 115.0) / 160.0, 4)  # 0.2812
    assert (f["contact_cost"], f["credit_cost"]) == (1.0, 0.0)


def test_the_table_shows_both_policies_side_by_side(tmp_path: Path, capsys) -> None:
    data = write_input(tmp_path / "input")
    args = ["backtest", str(data), "--out", str(tmp_path / "o"), "--against", str(CONSERVATIVE)]
    assert main([*args, "--no-learning"]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0].split()
    assert header == ["default", "conservative"]
    leakage = next(line for line in table.splitlines() if line.startswith("refund leakage"))
    assert leakage.split()[-2:] == ["0.00", "115.00"]
    assert "blanket refund leaks 190.00; doing nothing leaks 160.00" in table


def test_without_ground_truth_the_report_says_what_it_cannot_know(tmp_path: Path) -> None:
    data = write_input(tmp_path / "input", with_truth=False)
    out = tmp_path / "out"
    assert main(["backtest", str(data), "--out", str(out), "--no-learning"]) == 0
    report = orjson.loads((out / "backtest.json").read_bytes())
    assert report["has_ground_truth"] is False
    assert report["unknown_without_ground_truth"] == list(NEEDS_TRUTH)
    f = figures(report, "default")
    for key in ("refund_leakage", "retained_revenue", "vs_blanket_refund", "vs_no_action"):
        assert f.get(key) is None
    # What the outputs alone tell is still there.
    assert f["actions_by_type"] == {"exchange_first_offer": 1, "proactive_reassurance": 1}
    assert f["contact_cost"] == 1.15


def test_truth_labels_on_without_a_truth_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    data = write_input(tmp_path / "input", with_truth=False)
    code = main(["backtest", str(data), "--out", str(tmp_path / "o"), "--truth-labels", "on"])
    assert code == 2
    assert "ground_truth.jsonl does not exist" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_without_ground_truth_the_history_leakage_is_still_reported(tmp_path: Path) -> None:
    from operators.backtest import format_backtest, policy_figures

    summary = {"cases": 2, "observed": {"refund_leakage": 42.5}}
    figures = policy_figures(summary, RecoveryPolicy.default())
    assert figures["observed_refund_leakage"] == 42.5 and "refund_leakage" not in figures
    table = format_backtest(
        {"policies": [{"name": "default", "figures": figures}],
         "unknown_without_ground_truth": ["refund_leakage"]}
    )  # fmt: skip
    history = next(ln for ln in table.splitlines() if ln.startswith("history:"))
    assert history.split()[-1] == "42.50"
    leak = next(ln for ln in table.splitlines() if ln.startswith("refund leakage"))
    assert leak.split()[-1] == "unknown"


def test_off_policy_estimate_from_a_logged_period_without_ground_truth(
    tmp_path: Path, capsys
) -> None:
    """``backtest --against B --logged DIR``: a learned run's outputs are the log of a
    "live period"; the input without its ground truth is what a merchant has. Both
    estimates (doubly robust, and self-normalised) come with an interval around them."""
    from operators.simulation import simulate

    data = tmp_path / "input"
    simulate("steady-state", 1500, 3, data, world_seed=3)
    logged = tmp_path / "logged"
    assert main(["replay", str(data), "--out", str(logged), "-q"]) == 0
    (data / "ground_truth.jsonl").unlink()
    out = tmp_path / "out"
    learning = Path(__file__).parents[2] / "operators" / "policies" / "learning.yaml"
    args = ["backtest", str(data), "--out", str(out), "--against", str(learning)]
    assert main([*args, "--logged", str(logged), "--no-learning"]) == 0
    printed = capsys.readouterr().out
    block = orjson.loads((out / "backtest.json").read_bytes())["off_policy"]
    assert block["logged_orders"] == 1500
    (est,) = block["estimates"].values()
    assert est["ci_low"] < est["loss"] < est["ci_high"]
    sn = est["self_normalized"]
    assert sn["ci_low"] < sn["loss"] < sn["ci_high"]
    assert 0 < est["matched_orders"] < 1500
    assert "off-policy estimate from 1,500 logged orders" in printed
    assert "self-normalised: loss" in printed
    assert "assumptions: overlap" in printed


def test_off_policy_needs_the_logged_propensities(tmp_path: Path, capsys) -> None:
    data = write_input(tmp_path / "input", with_truth=False)
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "decisions.jsonl").write_bytes(orjson.dumps({"order_id": "x"}) + b"\n")
    (logged / "outcomes.jsonl").write_bytes(b"")
    args = ["backtest", str(data), "--out", str(tmp_path / "o"), "--against", str(CONSERVATIVE)]
    assert main([*args, "--logged", str(logged), "--no-learning"]) == 2
    assert "carry no propensity" in capsys.readouterr().err
