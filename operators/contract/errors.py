"""Contract errors and how a bad value is described in one (part of :mod:`operators.contract`)."""

from __future__ import annotations

from typing import Any

from operators.vocabulary import DeadLetterKind


class ContractError(ValueError):
    """A record that does not follow the contract; the message is the dead-letter reason
    and ``kind`` its category (what metrics count)."""

    def __init__(self, message: str, kind: DeadLetterKind = DeadLetterKind.INVALID_FIELD):
        super().__init__(message)
        self.kind = kind


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a bad value for a reason text: bounded, never raising,
    never recursing (a reason must not carry a megabyte string or a nested structure)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    return _kind(value)
