"""Deterministic generator of delivery, support and refund event streams with ground truth.

See :func:`operators.simulation.engine.simulate` and :mod:`operators.simulation.scenarios`.
"""

from operators.simulation.engine import SimulationStats, simulate, stream_path
from operators.simulation.model import ACTIONS, RISK_DRIVERS, STREAM_NAMES
from operators.simulation.scenarios import (
    SCENARIOS,
    ScenarioParams,
    describe_scenario,
    get_scenario,
    iter_scenario_names,
)

__all__ = [
    "ACTIONS",
    "RISK_DRIVERS",
    "SCENARIOS",
    "STREAM_NAMES",
    "ScenarioParams",
    "SimulationStats",
    "describe_scenario",
    "get_scenario",
    "iter_scenario_names",
    "simulate",
    "stream_path",
]
