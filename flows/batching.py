"""The steps around the case step for a decider that works per batch
(``FlowParts.decides_per_batch``, ``operators.window.BatchDecider``): live mode's decision
memo reads a whole batch before the cases and writes a whole batch after them, one round
trip to Redis each instead of two per decision point (``operators.memo``).

Both steps are stateless, so each runs on the worker whose items it gets: ``settle`` sees
the outputs of the case step of its own worker, and the decisions that worker made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from operators.contract import Event
from operators.window import BatchDecider, Decider


def _batched(decider: Callable[[], Decider]) -> BatchDecider:
    d = decider()
    if not isinstance(d, BatchDecider):
        raise TypeError(f"decides_per_batch needs a BatchDecider, not {type(d).__name__}")
    return d


def settle_step(
    decider: Callable[[], Decider],
) -> Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]]:
    """The ``settle_decisions`` step: the decider's ``settle`` of each batch of outputs."""

    def settle(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return _batched(decider).settle(items)

    return settle


def prepare_step(
    decider: Callable[[], Decider],
) -> Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]]:
    """The ``prepare_decisions`` step: hands the decider the batch's events, passes the
    batch on unchanged."""

    def prepare(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        events = []
        for _key, value in items:
            if isinstance(value, tuple):  # (sender, item) with a gate
                value = value[1]
            if isinstance(value, Event):
                events.append(value)
        _batched(decider).prepare(events)
        return items

    return prepare
