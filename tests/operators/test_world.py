"""Tests of the drawn world: outcomes follow the drawn effects, seeds reproduce, twists bite.

Expected probabilities are recomputed here from ``world.json`` with the formula written in
``docs/simulation.md`` (not with the simulator's own functions), and realized outcomes are
compared with them within binomial intervals over many orders.
"""

from __future__ import annotations

import ast
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from operators.actions import action_names, customer_facing_names
from operators.contract import parse_ts
from operators.simulation import World, simulate
from operators.simulation.response import (
    DRIFT_ACTION,
    DRIFT_FROM_SHARE,
    TWIST_PROBABILITY,
    Facts,
    Latents,
)
from operators.simulation.scenarios import get_scenario

REFUNDS = {"refunded", "chargeback"}
PRODUCT_DRIVERS = {"size_fit", "damaged", "wrong_item", "not_as_described", "changed_mind", "other"}


@dataclass
class Sim:
    out: Path
    truth: list[dict[str, Any]]
    world: dict[str, Any]


def _run(out: Path, scenario: str, orders: int, seed: int, world_seed: int, **kw: Any) -> Sim:
    simulate(scenario, orders, seed, out, world_seed=world_seed, **kw)
    truth = [orjson.loads(x) for x in (out / "ground_truth.jsonl").read_bytes().splitlines()]
    return Sim(out, truth, orjson.loads((out / "world.json").read_bytes()))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    return _run(tmp_path_factory.mktemp("plain"), "launch-week-backlog", 8000, 3, 100)


@pytest.fixture(scope="module")
def twisted(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    out = tmp_path_factory.mktemp("twisted")
    return _run(out, "steady-state", 8000, 3, 5, misspecified=True)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def expected_save(world: dict[str, Any], row: dict[str, Any], action: str) -> float:
    """P(save) of ``row`` under ``action``, from world.json and the documented formula."""
    for t in world["twists"]:
        if t.get("action") != action:
            continue
        if t["kind"] == "useless_in_lane" and t["courier_lane"] == row["courier_lane"]:
            return 0.0
        if t["kind"] == "backfire_in_family" and t["sku_family"] == row["sku_family"]:
            return 0.0
    base = world["base_save_probability"][action][row["risk_driver"]]
    if base == 0.0:
        return 0.0
    off = world["segment_logit_offsets"][action]
    logit = (
        math.log(base / (1 - base))
        + off["courier_lane"][row["courier_lane"]]
        + off["sku_family"][row["sku_family"]]
        + off["support_intent"][row["support_intent"] or "none"]
        + off["customer_tier"][row["customer_tier"]]
    )
    return _sigmoid(logit)


def expected_backfire(world: dict[str, Any], row: dict[str, Any], action: str) -> float:
    for t in world["twists"]:
        if (
            t["kind"] == "backfire_in_family"
            and t["action"] == action
            and t["sku_family"] == row["sku_family"]
        ):
            return t["keeper_return_probability"]
    return world["backfire_on_keepers"].get(action, {}).get(row["sku_family"], 0.0)


def _saved(outcome: dict[str, Any]) -> bool:
    return outcome["outcome"] in ("kept", "exchanged") and outcome["refund_value"] == 0.0


def _within(observed: float, probs: list[float], z: float = 4.0) -> bool:
    """``observed`` successes agree with independent Bernoulli ``probs`` (z sigmas)."""
    mean = sum(probs)
    sd = math.sqrt(sum(p * (1 - p) for p in probs))
    return abs(observed - mean) <= z * sd + 1.0


def _refunding(sim: Sim) -> list[dict[str, Any]]:
    return [r for r in sim.truth if r["at_risk"] and r["outcomes"]["none"]["outcome"] in REFUNDS]


def _keepers(sim: Sim) -> list[dict[str, Any]]:
    return [r for r in sim.truth if not r["at_risk"] and not r["cancelled"]]


# ----------------------------------------------------------------------------- drawing
def test_same_seed_same_world_other_seed_differs() -> None:
    params = get_scenario("launch-week-backlog")
    a, b, c = World.draw(7, params), World.draw(7, params), World.draw(8, params)
    assert a == b and a.to_dict() == b.to_dict()
    assert a != c and a.base != c.base
    assert World.from_dict(orjson.loads(orjson.dumps(a.to_dict()))) == a


def test_misspecified_is_the_plain_world_with_all_twists_forced_on() -> None:
    params = get_scenario("steady-state")
    for seed in range(20):
        plain, twisted = World.draw(seed, params), World.draw(seed, params, misspecified=True)
        assert twisted.base == plain.base and twisted.offsets == plain.offsets
        assert Counter(t["kind"] for t in twisted.twists) == Counter(list(TWIST_PROBABILITY))
        assert all(t in twisted.twists for t in plain.twists)


def test_plain_draws_have_twists_at_the_documented_rates() -> None:
    params = get_scenario("steady-state")
    n = 400
    seen: Counter[str] = Counter()
    for seed in range(n):
        seen.update(t["kind"] for t in World.draw(seed, params).twists)
    for kind, p in TWIST_PROBABILITY.items():
        assert abs(seen[kind] - n * p) <= 4 * math.sqrt(n * p * (1 - p)), kind


def test_worlds_hold_zero_and_backfiring_effects() -> None:
    params = get_scenario("launch-week-backlog")
    worlds = [World.draw(seed, params) for seed in range(10)]
    zero_cells = sum(p == 0.0 for w in worlds for row in w.base.values() for p in row.values())
    assert zero_cells > 0
    for w in worlds:
        assert all(w.backfire_probability("human_review", f.name) == 0.0 for f in params.families)
        assert all(
            w.backfire_probability(a, f.name) > 0
            for a in customer_facing_names()
            for f in params.families
        )
        assert all(0.0 < w.late_factor[a] < 1.0 for a in action_names())


def test_world_json_describes_the_world(plain: Sim, twisted: Sim) -> None:
    params = get_scenario("steady-state")
    assert World.from_dict(twisted.world) == World.draw(5, params, misspecified=True)
    assert twisted.world["world_seed"] == 5 and twisted.world["misspecified"] is True
    assert {r["world_seed"] for r in twisted.truth} == {5}
    assert plain.world["world_seed"] == 100
    assert "prior" in plain.world and plain.world["prior"]["surge_return_multiplier"] == 3.0


def test_history_does_not_depend_on_the_world_without_a_campaign_twist(tmp_path: Path) -> None:
    params = get_scenario("steady-state")
    seeds = [s for s in range(50) if not World.draw(s, params).twists][:2]
    surge = next(
        s
        for s in range(50)
        if any(t["kind"] == "campaign_surge" for t in World.draw(s, params).twists)
    )
    runs = {s: tmp_path / f"w{s}" for s in [*seeds, surge]}
    for s, out in runs.items():
        simulate("steady-state", 600, 9, out, world_seed=s)
    a, b, c = (runs[s] for s in [*seeds, surge])
    for stream in ("orders", "delivery", "support", "refunds"):
        assert (a / f"{stream}.jsonl").read_bytes() == (b / f"{stream}.jsonl").read_bytes()
    assert (a / "ground_truth.jsonl").read_bytes() != (b / "ground_truth.jsonl").read_bytes()
    assert (a / "orders.jsonl").read_bytes() != (c / "orders.jsonl").read_bytes()


# ------------------------------------------------------------------------------ saving
@pytest.mark.parametrize("which", ["plain", "twisted"])
@pytest.mark.parametrize("action", action_names())
def test_save_rates_follow_the_drawn_effects(
    which: str, action: str, request: pytest.FixtureRequest
) -> None:
    sim: Sim = request.getfixturevalue(which)
    rows = _refunding(sim)
    probs = [expected_save(sim.world, r, action) for r in rows]
    saved = sum(_saved(r["outcomes"][action]) for r in rows)
    assert len(rows) > 300
    assert _within(saved, probs), (saved, sum(probs))
    late = [p * sim.world["late_factor"][action] for p in probs]
    saved_late = sum(_saved(r["outcomes_late"][action]) for r in rows)
    assert _within(saved_late, late), (saved_late, sum(late))
    for r, p in zip(rows, probs, strict=True):
        if p == 0.0:
            assert not _saved(r["outcomes"][action])


def test_save_rates_follow_the_drawn_effects_per_segment(plain: Sim) -> None:
    # The lane offsets matter: per lane the realized rate tracks that lane's expectation.
    rows = _refunding(plain)
    for action in action_names():
        by_lane: dict[str, tuple[list[float], int]] = {}
        for r in rows:
            probs, saved = by_lane.get(r["courier_lane"], ([], 0))
            probs.append(expected_save(plain.world, r, action))
            by_lane[r["courier_lane"]] = (probs, saved + _saved(r["outcomes"][action]))
        for lane, (probs, saved) in by_lane.items():
            assert _within(saved, probs), (action, lane, saved, sum(probs))


def test_late_never_saves_where_early_does_not(plain: Sim, twisted: Sim) -> None:
    for sim in (plain, twisted):
        late_saves = 0
        for r in sim.truth:
            for a in action_names():
                if _saved(r["outcomes_late"][a]) and r["outcomes_late"][a] != r["outcomes"]["none"]:
                    assert _saved(r["outcomes"][a])
                    late_saves += 1
            if r["request_at"] is None:
                assert r["outcomes_late"] == {a: r["outcomes"][a] for a in action_names()}
        assert late_saves > 0


def test_nothing_to_save_when_the_customer_keeps_without_help(plain: Sim) -> None:
    settled = [
        r for r in plain.truth if r["at_risk"] and r["outcomes"]["none"]["outcome"] not in REFUNDS
    ]
    assert settled  # withdrawn requests and exchanges
    for r in settled:
        assert all(r["outcomes"][a] == r["outcomes"]["none"] for a in action_names())


def test_zero_effect_cells_yield_exactly_the_none_outcome() -> None:
    params = get_scenario("launch-week-backlog")
    doc = World.draw(11, params).to_dict()
    for action in action_names():
        doc["base_save_probability"][action]["late_delivery"] = 0.0
    doc["declined_exchange"]["probability"] = 0.0  # no declined offer either
    world = World.from_dict(doc)
    none = {"outcome": "refunded", "refund_value": 80.0, "retained_value": 0.0}
    facts = Facts("late_delivery", none, 80.0, 80.0, "dhl:DE-NL", "skincare", None, "new")
    for i in range(500):
        u = (i + 0.5) / 500
        outcomes, late = world.respond(facts, Latents(u, u, u, u))
        assert all(outcomes[a] == none for a in action_names())
        assert all(late[a] == none for a in action_names())


# ---------------------------------------------------------------------------- keepers
@pytest.mark.parametrize("which", ["plain", "twisted"])
def test_keepers_triggered_returns_match_the_drawn_backfire(
    which: str, request: pytest.FixtureRequest
) -> None:
    sim: Sim = request.getfixturevalue(which)
    keepers = _keepers(sim)
    for action in action_names():
        probs = [expected_backfire(sim.world, r, action) for r in keepers]
        triggered = [r for r in keepers if r["outcomes"][action] != r["outcomes"]["none"]]
        assert _within(len(triggered), probs), (action, len(triggered), sum(probs))
        for r in triggered:
            refund = r["outcomes"][action]["refund_value"]
            assert r["outcomes"][action]["outcome"] == "refunded" and 0 < refund <= r["order_value"]
            assert r["outcomes"][action]["retained_value"] == pytest.approx(
                r["order_value"] - refund
            )
        if action == "human_review":
            assert not triggered  # not customer-facing
    for r in keepers:
        assert r["outcomes"]["blanket_refund"] == r["outcomes"]["none"]


def test_the_backfire_twist_bites_in_its_family(twisted: Sim) -> None:
    (twist,) = [t for t in twisted.world["twists"] if t["kind"] == "backfire_in_family"]
    action, family = twist["action"], twist["sku_family"]
    keepers = [r for r in _keepers(twisted) if r["sku_family"] == family]
    triggered = sum(r["outcomes"][action]["outcome"] == "refunded" for r in keepers)
    rate = twist["keeper_return_probability"]
    assert 0.10 <= rate <= 0.30
    assert _within(triggered, [rate] * len(keepers))
    risky = [r for r in _refunding(twisted) if r["sku_family"] == family]
    assert risky and not any(_saved(r["outcomes"][action]) for r in risky)


def test_the_useless_twist_saves_nobody_in_its_lane(twisted: Sim) -> None:
    (twist,) = [t for t in twisted.world["twists"] if t["kind"] == "useless_in_lane"]
    action, lane = twist["action"], twist["courier_lane"]
    rows = [r for r in _refunding(twisted) if r["courier_lane"] == lane]
    assert rows
    assert not any(
        _saved(r["outcomes"][action]) or _saved(r["outcomes_late"][action]) for r in rows
    )


def test_a_credit_paid_to_a_keeper_is_pure_cost(plain: Sim) -> None:
    # The truth keeps the whole order value: evaluation adds the credit as a cost.
    credit = "delayed_shipment_intervention"
    kept = [r for r in _keepers(plain) if r["outcomes"][credit] == r["outcomes"]["none"]]
    assert kept
    for r in kept:
        assert r["outcomes"][credit] == {
            "outcome": "kept",
            "refund_value": 0.0,
            "retained_value": r["order_value"],
        }


# ---------------------------------------------------------------------------- exchange
def test_declined_exchange_offers_delay_the_refund(plain: Sim, twisted: Sim) -> None:
    for sim in (plain, twisted):
        declined = sim.world["declined_exchange"]
        failed = [
            r
            for r in _refunding(sim)
            if r["outcomes"]["none"]["outcome"] == "refunded"
            and not _saved(r["outcomes"]["exchange_first_offer"])
        ]
        delayed = [r["outcomes"]["exchange_first_offer"] for r in failed]
        delayed = [o for o in delayed if "delay_days" in o]
        assert _within(len(delayed), [declined["probability"]] * len(failed))
        mean = declined["mean_delay_days"]
        assert all(0.5 * mean - 0.05 <= o["delay_days"] <= 1.5 * mean + 0.05 for o in delayed)
        escalated = sum(o["outcome"] == "chargeback" for o in delayed)
        assert _within(escalated, [declined["chargeback_probability"]] * len(delayed))
        for r in sim.truth:
            for a in action_names():
                if a != "exchange_first_offer":
                    assert "delay_days" not in r["outcomes"][a]


# ---------------------------------------------------------------------------- campaign
def test_the_campaign_twist_roughly_triples_that_campaigns_returns(twisted: Sim) -> None:
    (twist,) = [t for t in twisted.world["twists"] if t["kind"] == "campaign_surge"]

    def product_return_rate(campaign: str | None) -> float:
        rows = [r for r in twisted.truth if r["campaign"] == campaign and not r["cancelled"]]
        assert len(rows) > 400
        return sum(r["risk_driver"] in PRODUCT_DRIVERS for r in rows) / len(rows)

    share = sum(r["campaign"] == twist["campaign"] for r in twisted.truth) / len(twisted.truth)
    assert abs(share - twist["share"]) < 0.03
    ratio = product_return_rate(twist["campaign"]) / product_return_rate(None)
    assert 2.2 <= ratio <= 3.8, ratio


# ---------------------------------------------------------------------------- contract
TRUTH_KEYS = {
    "order_id": str,
    "customer_id": str,
    "currency": str,
    "order_value": float,
    "margin": float,
    "sku_family": str,
    "courier_lane": str,
    "campaign": (str, type(None)),
    "customer_tier": str,
    "support_intent": (str, type(None)),
    "abusive": bool,
    "at_risk": bool,
    "risk_driver": (str, type(None)),
    "request_at": (str, type(None)),
    "slip_days": (float, int, type(None)),
    "cancelled": bool,
    "world_seed": int,
    "outcomes": dict,
    "outcomes_late": dict,
}
OUTCOME_KINDS = {"kept", "exchanged", "refunded", "chargeback", "cancelled"}
FIVE = {
    "proactive_reassurance",
    "exchange_first_offer",
    "product_guidance",
    "delayed_shipment_intervention",
    "human_review",
}


def truth_errors(row: dict[str, Any]) -> list[str]:
    """Why ``row`` breaks the ground-truth contract of docs/events.md (empty: it holds)."""
    errors = [k for k, t in TRUTH_KEYS.items() if k not in row or not isinstance(row[k], t)]
    if errors:
        return errors
    if row["customer_tier"] not in {"new", "regular", "loyal"}:
        errors.append("customer_tier")
    if set(row["outcomes"]) != FIVE | {"none", "blanket_refund"}:
        errors.append("outcomes keys")
    if set(row["outcomes_late"]) != FIVE:
        errors.append("outcomes_late keys")
    if row["at_risk"] != (row["request_at"] is not None) or row["at_risk"] != (
        row["risk_driver"] is not None
    ):
        errors.append("at_risk / request_at / risk_driver")
    for name, o in [*row["outcomes"].items(), *row["outcomes_late"].items()]:
        if set(o) - {"delay_days"} != {"outcome", "refund_value", "retained_value"}:
            errors.append(f"{name} keys")
        elif o["outcome"] not in OUTCOME_KINDS:
            errors.append(f"{name} outcome")
        elif not (0 <= o["refund_value"] <= row["order_value"] + 1e-9):
            errors.append(f"{name} refund_value")
        elif not (0 <= o["retained_value"] <= row["order_value"] + 1e-9):
            errors.append(f"{name} retained_value")
        elif "delay_days" in o and not (isinstance(o["delay_days"], float) and o["delay_days"] > 0):
            errors.append(f"{name} delay_days")
    return errors


def test_every_truth_row_follows_the_documented_contract(plain: Sim, twisted: Sim) -> None:
    for sim in (plain, twisted):
        bad = [(r["order_id"], e) for r in sim.truth if (e := truth_errors(r))]
        assert not bad, bad[:3]
    assert truth_errors({"order_id": "x"})  # the validator can fail


# ------------------------------------------------------------------------- independence
DECISION_LAYER = (
    "operators.policy",
    "operators.engine",
    "operators.scoring",
    "operators.models",
    "operators.decision",
    "operators.bandit",
    "operators.uplift",
    "operators.evaluation",
    "operators.case",
    "flows",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_simulation_imports_nothing_from_the_decision_layer() -> None:
    package = Path(__file__).resolve().parents[2] / "operators" / "simulation"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 6
    for module in modules:
        leaks = {
            name
            for name in _imports(module)
            if any(name == layer or name.startswith(layer + ".") for layer in DECISION_LAYER)
        }
        assert not leaks, (module.name, leaks)
        # Within the project the simulation uses only itself, the contract, the vocabulary
        # and the action registry (for each action's world prior).
        project = {n for n in _imports(module) if n.startswith("operators.")}
        allowed = (
            "operators.simulation",
            "operators.contract",
            "operators.vocabulary",
            "operators.actions",
        )
        assert all(n.startswith(allowed) for n in project), (module.name, project)


def test_the_action_registry_keeps_the_world_prior_apart_from_the_policy() -> None:
    """The registry is shared by the simulator and the decision layer: it must import no
    decision code, and only the simulator may read an action's ``world`` prior (a policy
    tuned on what the world is known to do would grade itself)."""
    root = Path(__file__).resolve().parents[2]
    project = {n for n in _imports(root / "operators" / "actions.py") if n.startswith("operators")}
    assert project <= {"operators.vocabulary", "operators.vocabulary.Action",
                       "operators.vocabulary.Outcome"}, project  # fmt: skip
    readers = set()
    for path in [*root.glob("operators/**/*.py"), *root.glob("flows/**/*.py")]:
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Attribute) and n.attr == "world" for n in ast.walk(tree)):
            readers.add(path.relative_to(root).as_posix())
    outside = {p for p in readers if not p.startswith("operators/simulation/")}
    assert outside <= {"operators/actions.py"}, outside


# ---------------------------------------------------------------------------------- CLI
def test_simulate_cli_takes_the_world_seed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from flows.cli import main

    base = ["simulate", "steady-state", "--orders", "300", "--seed", "4"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--world-seed", "6", "--misspecified"]) == 0
    printed = capsys.readouterr().out
    assert "world 100" in printed and "world 6" in printed and "flash-sale" in printed
    a = orjson.loads((tmp_path / "a" / "world.json").read_bytes())
    b = orjson.loads((tmp_path / "b" / "world.json").read_bytes())
    assert (a["world_seed"], a["misspecified"]) == (100, False)
    assert (b["world_seed"], b["misspecified"]) == (6, True)
    scenario = orjson.loads((tmp_path / "b" / "scenario.json").read_bytes())
    assert scenario["world_seed"] == 6 and scenario["files"]["world"] == "world.json"
    assert main([*base, "--out", str(tmp_path / "c"), "--world-seed", "6", "--drift"]) == 0
    assert "proactive_reassurance stops working in lane" in capsys.readouterr().out
    c = orjson.loads((tmp_path / "c" / "world.json").read_bytes())
    assert [t["kind"] for t in c["twists"]][-1] == "stops_working_in_lane"


# ------------------------------------------------------------------------------- drift
def test_a_drifting_world_is_the_same_world_plus_the_drift_twist() -> None:
    params = get_scenario("steady-season")
    for seed in range(10):
        for misspecified in (False, True):
            still = World.draw(seed, params, misspecified=misspecified)
            drifting = World.draw(seed, params, misspecified=misspecified, drift=True)
            assert drifting.base == still.base and drifting.offsets == still.offsets
            assert drifting.twists[:-1] == still.twists
            twist = drifting.twists[-1]
            assert twist["kind"] == "stops_working_in_lane" and twist["action"] == DRIFT_ACTION
            assert twist["courier_lane"] in {lane.key for lane in params.lanes}
            assert twist["from_day"] == round(params.days * DRIFT_FROM_SHARE)
            assert World.from_dict(orjson.loads(orjson.dumps(drifting.to_dict()))) == drifting


def test_the_drifting_action_stops_saving_in_its_lane_from_the_day_on_and_nowhere_else(
    tmp_path: Path,
) -> None:
    """Orders placed before the change respond as in the world without drift; in the
    twisted lane, orders placed from the change on are never saved by the action, and
    every other lane and action is untouched."""
    seed = 2
    still = _run(tmp_path / "still", "steady-state", 6000, 4, seed)
    drifting = _run(tmp_path / "drift", "steady-state", 6000, 4, seed, drift=True)
    twist = drifting.world["twists"][-1]
    placed = {
        e["order_id"]: e["occurred_at"]
        for e in map(orjson.loads, (drifting.out / "orders.jsonl").read_bytes().splitlines())
        if e["type"] == "order_placed"
    }
    change = twist["from_ts"]
    lost = 0
    for a, b in zip(still.truth, drifting.truth, strict=True):
        assert a["order_id"] == b["order_id"]
        after = parse_ts(placed[a["order_id"]]) >= change
        if after and a["courier_lane"] == twist["courier_lane"] and b["at_risk"]:
            assert not _saved(b["outcomes"][DRIFT_ACTION]) or not _refunding_row(b)
            lost += _saved(a["outcomes"][DRIFT_ACTION]) and _refunding_row(a)
            others = {k: v for k, v in b["outcomes"].items() if k != DRIFT_ACTION}
            assert others == {k: v for k, v in a["outcomes"].items() if k != DRIFT_ACTION}
        else:
            assert a["outcomes"] == b["outcomes"] and a["outcomes_late"] == b["outcomes_late"]
    assert lost > 0  # the twist bit: orders the action saved before are lost after


def _refunding_row(row: dict[str, Any]) -> bool:
    return bool(row["at_risk"]) and row["outcomes"]["none"]["outcome"] in REFUNDS
