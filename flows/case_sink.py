"""Case store sink: writes case views, decisions, interventions and outcomes per order.

Live mode builds the flow with ``FlowParts(emit_case_views=True)`` and attaches this sink,
so that ``salvage case ORDER_ID`` can show why a customer got (or did not get) an offer::

    streams = build_streams(parts)
    attach_case_store(streams, lambda: RedisCaseStore.from_settings(settings))

The sink takes tagged records ``(kind, record)`` with kind ``case``, ``decision``,
``intervention`` or ``outcome``, and hands each Bytewax batch to the store at once (the
Redis store writes it in one pipeline; other stores get one call per record).

>>> from state.cases import InMemoryCaseStore
>>> store = InMemoryCaseStore()
>>> write_case_records(store, [("case", {"order_id": "o1", "stage": "open"}),
...                            ("decision", {"order_id": "o1", "action": "none"})])
2
>>> store.get("o1")["decisions"]
[{'order_id': 'o1', 'action': 'none'}]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.dataflow import RECORD_OUTPUTS, TAG_OF_OUTPUT, FlowStreams
from flows.tagged import tagged_records
from state.cases import CaseStore

CaseRecord = tuple[str, dict[str, Any]]

#: The kinds of record the case store keeps: the case step's views, decisions,
#: interventions and outcomes (their tags in its output).
_STORED_KINDS = frozenset(TAG_OF_OUTPUT[name] for name in (*RECORD_OUTPUTS, "cases"))


def write_case_records(store: CaseStore, items: Iterable[CaseRecord]) -> int:
    """Write tagged records to ``store``: its ``write_batch`` if it has one, else one
    call per record. Raises ValueError on an unknown kind or a record without order id."""
    batch = getattr(store, "write_batch", None)
    if batch is not None:
        return int(batch(items))
    n = 0
    for kind, record in items:
        order_id = record.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise ValueError(f"{kind} record without an order_id")
        if kind == "case":
            store.put_view(order_id, record)
        elif kind == "decision":
            store.add_decision(order_id, record)
        elif kind == "intervention":
            store.add_intervention(order_id, record)
        elif kind == "outcome":
            store.put_outcome(order_id, record)
        else:
            raise ValueError(f"unknown case record kind {kind!r}")
        n += 1
    return n


class _CasePartition(StatelessSinkPartition[CaseRecord]):
    def __init__(self, store: CaseStore) -> None:
        self.store = store
        self.written = 0

    def write_batch(self, items: list[CaseRecord]) -> None:
        if items:
            self.written += write_case_records(self.store, items)


class CaseStoreSink(DynamicSink[CaseRecord]):
    """Writes tagged case records to a ``CaseStore``. ``store_factory`` is called on each
    worker (so clients are never pickled); it may return one store shared by the workers
    of a process. The sink does not close the store: whoever made it does."""

    def __init__(self, store_factory: Callable[[], CaseStore]) -> None:
        self.store_factory = store_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CasePartition:
        return _CasePartition(self.store_factory())


def case_records(streams: FlowStreams) -> Stream[CaseRecord]:
    """The flow's case views, decisions, interventions and outcomes as one tagged stream,
    taken from the case step's output in one step, so that each of its batches reaches
    the store as one batch (one pipeline to Redis, not one per kind of record).

    Needs ``FlowParts(emit_case_views=True)`` for the views; without it the stream holds
    the other three kinds only. Records merged into ``streams.records`` after the case
    step (approved reviews in live mode) are not in it: their caller adds them.
    """
    return tagged_records(streams, "case_store_records", _STORED_KINDS)


def attach_case_store(
    streams: FlowStreams, store_factory: Callable[[], CaseStore], step_id: str = "out_cases"
) -> None:
    """Send the flow's case records to a :class:`CaseStoreSink`."""
    op.output(step_id, case_records(streams), CaseStoreSink(store_factory))
