"""Deterministic generator of delivery, support and refund event streams with ground truth.

See :func:`operators.simulation.engine.simulate`, :mod:`operators.simulation.scenarios` (the
history) and :mod:`operators.simulation.response` (the world: what each action would do).
"""

from operators.simulation.engine import (
    DEFAULT_WORLD_SEED,
    SimulationStats,
    simulate,
    stream_path,
)
from operators.simulation.model import STREAM_NAMES, ground_truth_arms
from operators.simulation.response import RISK_DRIVERS, World
from operators.simulation.scenarios import (
    SCENARIOS,
    ScenarioParams,
    describe_scenario,
    get_scenario,
    iter_scenario_names,
)

__all__ = [
    "DEFAULT_WORLD_SEED",
    "RISK_DRIVERS",
    "SCENARIOS",
    "STREAM_NAMES",
    "ScenarioParams",
    "SimulationStats",
    "World",
    "describe_scenario",
    "get_scenario",
    "ground_truth_arms",
    "iter_scenario_names",
    "simulate",
    "stream_path",
]
