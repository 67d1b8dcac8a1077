"""Shared test helpers: event builders, a recording decider and output-record validators.

Builders return plain JSON-ready dicts (the wire format); ``event()`` decodes one into an
:class:`~operators.contract.Event` and fails the test if it does not decode. Times are
given as hours after ``BASE`` (2026-06-01T00:00:00Z) so tests read as timelines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from operators.actions import action_names, customer_facing_names
from operators.case import OrderCase
from operators.contract import (
    MAX_RAW_CHARS,
    STREAM_TYPES,
    STREAMS,
    DeadLetter,
    Event,
    decode,
    parse_ts,
)
from operators.decision import NO_ACTION

BASE = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = 3600.0
DAY = 24 * HOUR

#: Stream of each event type.
STREAM_OF: dict[str, str] = {t: s for s, types in STREAM_TYPES.items() for t in types}


def at(hours: float) -> str:
    """RFC 3339 time ``hours`` after BASE."""
    return (BASE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(hours: float) -> float:
    """Epoch seconds ``hours`` after BASE."""
    return (BASE + timedelta(hours=hours)).timestamp()


def body(type_: str, order_id: str, hours: float, *, event_id: str | None = None, **fields: Any):
    """A wire-format event of any type; ``event_id`` defaults to a stable derived id."""
    record: dict[str, Any] = {
        "event_id": event_id or f"{order_id}:{type_}:{hours:g}",
        "type": type_,
        "order_id": order_id,
        "occurred_at": at(hours),
    }
    record.update(fields)
    return record


def order_placed(
    order_id: str,
    hours: float = 0.0,
    *,
    total: float = 80.0,
    cost: float | None = 30.0,
    sku_family: str = "skincare",
    promised_in_hours: float | None = 48.0,
    customer_id: str = "c-1",
    **fields: Any,
) -> dict[str, Any]:
    """A valid ``order_placed`` with one item worth ``total``."""
    item: dict[str, Any] = {
        "sku": f"{sku_family[:3].upper()}-001",
        "sku_family": sku_family,
        "quantity": 1,
        "unit_price": total,
    }
    if cost is not None:
        item["unit_cost"] = cost
    extra: dict[str, Any] = {
        "customer_id": customer_id,
        "currency": "EUR",
        "total": total,
        "items": [item],
    }
    if promised_in_hours is not None:
        extra["promised_delivery_at"] = at(hours + promised_in_hours)
    extra.update(fields)
    return body("order_placed", order_id, hours, **extra)


def support(type_: str, order_id: str, hours: float, **fields: Any) -> dict[str, Any]:
    """A support event with a ticket id."""
    fields.setdefault("ticket_id", f"t-{order_id}")
    return body(type_, order_id, hours, **fields)


def event(record: dict[str, Any], stream: str | None = None) -> Event:
    """Decode a wire-format record; fail loudly if it is not a valid event."""
    result = decode(stream or STREAM_OF[record["type"]], record, received_at=0.0)
    if isinstance(result, DeadLetter):
        raise AssertionError(f"test event did not decode: {result.reason}")
    return result


def events(*records: dict[str, Any]) -> list[Event]:
    return [event(r) for r in records]


def item(record: dict[str, Any], received_hours: float = 0.0) -> tuple[str, Any, float]:
    """A dataflow input item ``(stream, payload, received_at)``."""
    return (STREAM_OF[record["type"]], record, epoch(received_hours))


class RecordingDecider:
    """A ``Decider`` that records every call and emits one small decision per call."""

    def __init__(self) -> None:
        self.decided: list[tuple[str, str]] = []  # (order_id, trigger event_id)
        self.closed: list[dict[str, Any]] = []

    def decide(self, case: OrderCase, trigger: Event) -> list[tuple[str, dict[str, Any]]]:
        self.decided.append((case.order_id, trigger.event_id))
        case.arm = case.arm or "treatment"
        return [("decision", {"order_id": case.order_id, "trigger_event_id": trigger.event_id})]

    def on_close(
        self, case: OrderCase, outcome: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        self.closed.append(outcome)
        return []


# --- output-record validators ------------------------------------------------------------

_SCORES_REQUIRED = (
    "recoverability",
    "customer_value",
    "product_margin",
    "return_propensity",
    "promise_sensitivity",
)
OUTCOMES = ("refunded", "exchanged", "kept", "cancelled", "chargeback", "censored")
POINTS = ("order", "delay", "ticket", "request", "other")
ARMS = ("treatment", "control")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Checker:
    def __init__(self, record: Any) -> None:
        self.r = record if isinstance(record, dict) else {}
        self.errors: list[str] = [] if isinstance(record, dict) else ["record is not an object"]

    def fail(self, msg: str) -> None:
        self.errors.append(msg)

    def has(self, key: str) -> bool:
        if key not in self.r:
            self.fail(f"missing {key}")
            return False
        return True

    def str_(self, key: str, *, null: bool = False, choices: tuple[str, ...] = ()) -> None:
        if not self.has(key):
            return
        v = self.r[key]
        if v is None and null:
            return
        if not isinstance(v, str) or not v:
            self.fail(f"{key} must be a non-empty string, got {v!r}")
        elif choices and v not in choices:
            self.fail(f"{key}={v!r} is not one of {choices}")

    def ts(self, key: str, *, null: bool = False) -> None:
        if not self.has(key):
            return
        v = self.r[key]
        if v is None and null:
            return
        try:
            parse_ts(v, key)
        except ValueError as exc:
            self.fail(str(exc))

    def num(
        self, key: str, *, null: bool = False, lo: float | None = None, hi: float | None = None
    ) -> None:
        if not self.has(key):
            return
        v = self.r[key]
        if v is None and null:
            return
        if not _is_num(v):
            self.fail(f"{key} must be a number, got {v!r}")
        elif (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(f"{key}={v} outside [{lo}, {hi}]")

    def bool_(self, key: str) -> None:
        if self.has(key) and not isinstance(self.r[key], bool):
            self.fail(f"{key} must be a boolean, got {self.r[key]!r}")

    def str_list(self, key: str) -> None:
        if not self.has(key):
            return
        v = self.r[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.fail(f"{key} must be a list of strings, got {v!r}")

    def scores(self) -> None:
        if not self.has("scores"):
            return
        s = self.r["scores"]
        if not isinstance(s, dict):
            self.fail("scores must be an object")
            return
        for key in (*_SCORES_REQUIRED, "abuse_risk"):
            v = s.get(key)
            if not _is_num(v) or not 0.0 <= v <= 1.0:
                self.fail(f"scores.{key} must be a number in [0, 1], got {v!r}")


def _decision_common(c: _Checker) -> None:
    c.str_("order_id")
    c.ts("decided_at")
    c.str_("rule")
    c.str_list("reasons")
    c.scores()
    # Additional fields (emitted by operators/engine.py, not required by the contract).
    c.str_("trigger_event_id")
    c.bool_("automated")
    c.str_("proposed_action", null=True, choices=action_names())
    c.num("value_at_risk", lo=0.0)
    c.num("expected_saving")
    c.str_("policy_version")
    c.str_("model_version")
    for key in ("sku_family", "courier_lane", "campaign"):
        c.str_(key, null=True)


def validate_intervention(record: Any) -> list[str]:
    """Errors of an ``interventions`` record against contract v1 (empty if valid)."""
    c = _Checker(record)
    _decision_common(c)
    c.str_("intervention_id")
    c.str_("customer_id")
    c.str_("action", choices=action_names())
    c.str_("currency")
    c.ts("review_expires_at", null=True)
    r = c.r
    if r.get("action") == "human_review" and r.get("automated") is not False:
        c.fail("human_review must not be automated")
    if r.get("action") == "human_review" and r.get("review_expires_at") is None:
        c.fail("human_review needs review_expires_at")
    if c.has("offer") and r["offer"] is not None:
        offer = r["offer"]
        if not isinstance(offer, dict):
            c.fail("offer must be an object or null")
        else:
            oc = _Checker(offer)
            oc.str_("type")
            oc.num("amount", lo=0.0)
            oc.str_("currency")
            c.errors += [f"offer.{e}" for e in oc.errors]
    if c.has("message") and r["message"] is not None:
        msg = r["message"]
        if not isinstance(msg, dict):
            c.fail("message must be an object or null")
        else:
            mc = _Checker(msg)
            mc.str_("channel")
            mc.str_("template")
            mc.str_("text")
            mc.ts("send_after", null=True)
            c.errors += [f"message.{e}" for e in mc.errors]
    return c.errors


def validate_decision(record: Any) -> list[str]:
    """Errors of a ``decisions`` record against contract v1 (empty if valid)."""
    c = _Checker(record)
    _decision_common(c)
    c.str_("arm", choices=ARMS)
    c.str_("action", choices=(*action_names(), NO_ACTION))
    c.str_("support_reason", null=True)
    # What off-policy evaluation needs: the decision point, the eligible actions (never
    # human review), the probability of the choice, and the bandit's segment.
    c.str_("point", choices=POINTS)
    c.str_list("eligible")
    eligible = c.r.get("eligible")
    if isinstance(eligible, list):
        if eligible != sorted(eligible) or not set(eligible) <= set(customer_facing_names()):
            c.fail(f"eligible={eligible!r} is not a sorted list of automatable actions")
        action = c.r.get("action")
        if c.r.get("automated") and action not in (*eligible, NO_ACTION):
            c.fail(f"automated action {action!r} is not eligible")
    c.num("propensity", lo=0.0, hi=1.0)
    if c.r.get("propensity") == 0:
        c.fail("a chosen action has propensity 0")
    c.str_("segment", null=True)
    probabilities = c.r.get("probabilities")
    if probabilities is not None:
        if not isinstance(probabilities, dict) or not probabilities:
            c.fail(f"probabilities={probabilities!r} is not a non-empty object")
        elif abs(sum(probabilities.values()) - 1.0) > 1e-4:
            c.fail(f"probabilities sum to {sum(probabilities.values())}, not 1")
        elif abs(probabilities.get(c.r.get("action"), -1.0) - c.r.get("propensity", -2.0)) > 1e-6:
            c.fail("the chosen action's probability is not its propensity")
    return c.errors


def validate_outcome(record: Any) -> list[str]:
    """Errors of an ``outcomes`` record against contract v1 (empty if valid)."""
    c = _Checker(record)
    c.str_("order_id")
    c.str_("outcome", choices=OUTCOMES)
    c.ts("resolved_at")  # a censored case: the end of input
    c.num("refund_value", lo=0.0)
    c.num("retained_value", lo=0.0)
    # Null only for a case whose order_placed never arrived, or that was never decided.
    c.str_("currency", null=True)
    c.str_("arm", null=True, choices=ARMS)
    c.str_list("actions")
    c.num("predicted_return_propensity", null=True, lo=0.0, hi=1.0)
    for key in ("sku_family", "courier_lane", "campaign", "support_reason"):
        c.str_(key, null=True)
    # Additional fields.
    c.str_("customer_id", null=True)
    c.num("order_value", lo=0.0)
    c.bool_("at_risk")
    return c.errors


def validate_dead_letter(record: Any) -> list[str]:
    """Errors of a ``dead_letter`` record against contract v1 (empty if valid)."""
    c = _Checker(record)
    c.str_("stream", choices=STREAMS)
    c.str_("reason")
    c.ts("received_at")
    if c.has("raw"):
        raw = c.r["raw"]
        if not isinstance(raw, str):
            c.fail("raw must be a string")
        elif len(raw) > MAX_RAW_CHARS + 1:  # + the ellipsis that marks a cut
            c.fail(f"raw is {len(raw)} characters, above the bound {MAX_RAW_CHARS}")
    c.str_("event_id", null=True)
    c.str_("order_id", null=True)
    return c.errors


VALIDATORS = {
    "interventions": validate_intervention,
    "decisions": validate_decision,
    "outcomes": validate_outcome,
    "dead_letter": validate_dead_letter,
}
