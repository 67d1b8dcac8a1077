"""The Bytewax sink of the webhook dispatcher: one :class:`Dispatcher` per worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.connectors.webhooks.dispatcher import Dispatcher


class _DispatchPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self.dispatcher.submit_many(items)

    def close(self) -> None:
        self.dispatcher.close()


class DispatchSink(DynamicSink[dict[str, Any]]):
    """Bytewax sink that hands each intervention to a :class:`Dispatcher` (one per worker,
    built on the worker by ``make_dispatcher(worker_index)``)."""

    def __init__(self, make_dispatcher: Callable[[int], Dispatcher]) -> None:
        self.make_dispatcher = make_dispatcher

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DispatchPartition:
        return _DispatchPartition(self.make_dispatcher(worker_index))
