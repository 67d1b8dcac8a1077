"""The case step's output as tagged records, for sinks that take several kinds at once.

The case step emits ``(order key, (tag, item))`` pairs of every kind in one stream
(``FlowStreams.tagged``). A sink that writes several kinds (live mode's Kafka sink, the case
store) takes them from there through one filter, so each batch of the case step reaches it
as one batch; records that join after the case step (approved reviews, dead letters) are
tagged and merged in by :func:`tag_records`.

>>> keep = _keeping(frozenset({"decision"}))
>>> keep(("o1", ("decision", {"order_id": "o1"}))), keep(("o1", ("pending", None)))
(('decision', {'order_id': 'o1'}), None)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.dataflow import FlowStreams

Tagged = tuple[str, dict[str, Any]]


def _keeping(kinds: frozenset[str]) -> Callable[[tuple[str, tuple[str, Any]]], Tagged | None]:
    def keep(kv: tuple[str, tuple[str, Any]]) -> Tagged | None:
        item = kv[1]
        return item if item[0] in kinds else None

    return keep


def tagged_records(streams: FlowStreams, step_id: str, kinds: frozenset[str]) -> Stream[Tagged]:
    """The case step's records of ``kinds``, as ``(kind, record)``, in one step."""
    return op.filter_map(step_id, streams.tagged, _keeping(kinds))


def tag_records(step_id: str, records: Stream[dict[str, Any]], kind: str) -> Stream[Tagged]:
    """Each record of ``records`` as ``(kind, record)``."""

    def tag(record: dict[str, Any]) -> Tagged:
        return (kind, record)

    return op.map(step_id, records, tag)
