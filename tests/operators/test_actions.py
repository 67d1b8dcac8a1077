"""The action registry: an action registered there is complete everywhere it must be.

The test registers a throwaway action (restored after) and follows it through every place
that enumerates actions: the policy parser and its defaults, the heuristic scorer's prior,
the online learner, the engine's choice and the customer message it renders, the simulator's
world and ground truth, and the baselines' oracle; and on the flows/ side, the settings'
webhook routes, the metrics' action labels and the report's action colours. If any of them
kept its own list of actions, the throwaway would be missing there and this test would fail.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from flows.observability.metrics import SalvageMetrics
from flows.report.format import action_colors
from flows.settings import SettingsError, build_settings
from operators.actions import (
    ActionDefinition,
    MessageTemplate,
    RecoveryPrior,
    UnknownActionError,
    WorldPrior,
    action_names,
    customer_facing_names,
    definition,
    registered,
)
from operators.baselines import ActionCosts, oracle_choices
from operators.engine import DecisionEngine
from operators.learner import Learner
from operators.policy import PolicyError, RecoveryPolicy
from operators.scoring import HeuristicScorer
from operators.simulation import World, ground_truth_arms, simulate
from operators.simulation.scenarios import get_scenario
from operators.vocabulary import Action
from state.context import InMemoryContextStore
from tests.helpers import order_placed, support
from tests.operators.test_engine import Orders, interventions, last_decision

THROWAWAY = ActionDefinition(
    "loyalty_call",
    RecoveryPrior({"intent_product_question": 3.0}, intercept=0.5),
    world=WorldPrior("doubt"),
    cooldown_hours=24.0,
    message=MessageTemplate("We will call you about your {sku_family} order {order_id}.", "phone"),
)

POLICY = """
version: "throwaway-1"
holdout: {share: 0.0}
ranking: {min_return_propensity: 0.0, min_expected_saving: 0.0, exploration: 0.0}
actions:
  loyalty_call:
    cost: 0.0
    eligible: [{name: asked, intents: [product_question]}]
"""


@pytest.fixture
def throwaway() -> Iterator[ActionDefinition]:
    before = action_names()
    with registered(THROWAWAY) as action:
        yield action
    assert action_names() == before  # restored for every other test


def test_the_registry_and_the_vocabulary_name_the_same_actions() -> None:
    assert set(action_names()) == {a.value for a in Action.interventions()}
    assert Action.HUMAN_REVIEW not in customer_facing_names()
    for name in action_names():
        d = definition(name)
        assert d.recovery_prior.weights, name  # a prior the scorer can use
        assert d.customer_facing == (d.message is not None), name  # a facing action speaks


def test_an_unregistered_action_fails_loudly() -> None:
    with pytest.raises(UnknownActionError, match=r"register it in operators/actions\.py"):
        definition("loyalty_call")
    with pytest.raises(PolicyError, match="unknown action"):
        RecoveryPolicy.from_text(POLICY, "p.yaml")


def test_a_throwaway_action_is_complete_everywhere(
    throwaway: ActionDefinition, tmp_path: Path
) -> None:
    name = throwaway.name
    assert name in action_names() and name in customer_facing_names()

    # The policy accepts it and takes the registry's defaults for what the file leaves out.
    policy = RecoveryPolicy.from_text(POLICY, "p.yaml")
    spec = policy.actions[name]
    assert spec.cooldown_hours == 24.0 and spec.customer_facing and spec.channel == "phone"
    assert throwaway.message is not None
    assert spec.message_template == throwaway.message.template

    # The heuristic scorer scores it from its registry prior (never a silent 0).
    _, recover = HeuristicScorer().score({"intent_product_question": 1.0})
    assert recover[name] == pytest.approx(1.0 / (1.0 + math.exp(-3.5)))

    # The online learner keeps a recovery model for it.
    learner = Learner()
    assert name in learner.recovery and learner.recovery_examples[name] == 0

    # The engine chooses it where it is eligible and renders its message from the registry.
    orders = Orders(DecisionEngine(policy, HeuristicScorer(), context=InMemoryContextStore()))
    orders.feed(order_placed("o-1", sku_family="makeup"))
    out = orders.feed(support("customer_message", "o-1", 30, intent="product_question"))
    assert last_decision(out)["action"] == name
    (iv,) = interventions(out)
    assert iv["message"]["channel"] == "phone"
    assert iv["message"]["text"] == "We will call you about your makeup order o-1."

    # The simulator's world draws an effect for it and its ground truth has its outcome.
    world = World.draw(3, get_scenario("steady-state"))
    assert name in world.base and name in world.late_factor and name in world.backfire
    lane, family = (next(iter(world.offsets[name][dim])) for dim in ("courier_lane", "sku_family"))
    assert 0.0 <= world.save_probability(name, "changed_mind", lane, family, None, "new") < 1.0
    assert name in ground_truth_arms()
    simulate("steady-state", 200, 1, tmp_path)
    truth = [json.loads(line) for line in (tmp_path / "ground_truth.jsonl").open()]
    assert all(name in row["outcomes"] and name in row["outcomes_late"] for row in truth)
    scenario = json.loads((tmp_path / "scenario.json").read_text())
    assert name in scenario["actions"]

    # The baselines' oracle may pick it when it is the cheapest way to save an order.
    costs = ActionCosts({name: 0.0}, {}, 15.0)
    row = {
        "order_value": 50.0,
        "outcomes": {
            "none": {"outcome": "refunded", "refund_value": 50.0, "retained_value": 0.0},
            name: {"outcome": "kept", "refund_value": 0.0, "retained_value": 50.0},
        },
    }
    assert oracle_choices({"o-1": row}, costs)["o-1"].action == name


def test_flows_accept_a_registered_action_without_changes(throwaway: ActionDefinition) -> None:
    name = throwaway.name
    # Settings: a webhook route may name it (an unregistered name is refused).
    raw = {
        "webhooks": {
            "endpoints": {
                "calls": {"url": "https://calls.example/in", "secret_env": "CALLS_SECRET"}
            }
        }
    }
    raw["webhooks"]["routes"] = {name: "calls"}
    endpoint = build_settings(raw).webhooks.endpoint_for(name)
    assert endpoint is not None and endpoint.url == "https://calls.example/in"
    raw["webhooks"]["routes"] = {"teleport": "calls"}
    with pytest.raises(SettingsError, match=f"unknown action; expected one of .*{name}"):
        build_settings(raw)

    # Metrics: its interventions are counted under its own action label.
    metrics = SalvageMetrics(CollectorRegistry())
    record = {"order_id": "o-1", "action": name, "arm": "treatment", "automated": True}
    metrics.observer().on_output("interventions", record)
    labels = {"action": name, "arm": "treatment", "automated": "true"}
    assert metrics.registry.get_sample_value("salvage_interventions_total", labels) == 1.0

    # Report: it gets a colour of its own, and the built-in actions keep theirs.
    colors = action_colors(action_names())
    built_in = action_colors(action_names()[:-1])  # the throwaway is registered last
    assert {a: colors[a] for a in built_in} == built_in
    assert name in colors and len(set(colors.values())) == len(colors)


def test_the_heuristic_scorer_follows_the_registry_as_it_changes() -> None:
    # The scorer caches the registered priors: scored before, during and after a
    # registration, it scores exactly the actions registered at the time.
    scorer = HeuristicScorer()
    features = {"intent_product_question": 1.0}
    before = scorer.recovery(features)
    with registered(THROWAWAY):
        during = scorer.recovery(features)
    after = scorer.recovery(features)
    assert THROWAWAY.name not in before and THROWAWAY.name in during
    assert list(during) == [*before, THROWAWAY.name]
    assert after == before and list(after) == list(before)
