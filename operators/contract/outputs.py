"""The output contract: validators of the four output records (``interventions``,
``decisions``, ``outcomes``, ``dead_letter``) against contract v1, as ``docs/events.md``
describes them. Each returns the list of what is wrong (empty: valid).

>>> validate_outcome({"order_id": "o1"})[:2]
['missing outcome', 'missing resolved_at']
>>> sorted(VALIDATORS)
['dead_letter', 'decisions', 'interventions', 'outcomes']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from operators.actions import action_names, customer_facing_names
from operators.contract.schema import MAX_RAW_CHARS, STREAMS
from operators.contract.timestamps import parse_ts
from operators.vocabulary import Action, Arm, DecisionPoint, Outcome

NO_ACTION: str = Action.NONE.value

_SCORES_REQUIRED = (
    "recoverability",
    "customer_value",
    "product_margin",
    "return_propensity",
    "promise_sensitivity",
)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
POINTS: tuple[str, ...] = tuple(p.value for p in DecisionPoint)
ARMS: tuple[str, ...] = tuple(a.value for a in Arm)


def _is_num(v: Any) -> TypeGuard[float]:
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
    if r.get("action") == Action.HUMAN_REVIEW and r.get("automated") is not False:
        c.fail("human_review must not be automated")
    if r.get("action") == Action.HUMAN_REVIEW and r.get("review_expires_at") is None:
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


#: The validator of each output, by output name.
VALIDATORS: dict[str, Callable[[Any], list[str]]] = {
    "interventions": validate_intervention,
    "decisions": validate_decision,
    "outcomes": validate_outcome,
    "dead_letter": validate_dead_letter,
}


__all__ = [
    "ARMS",
    "OUTCOMES",
    "POINTS",
    "VALIDATORS",
    "validate_dead_letter",
    "validate_decision",
    "validate_intervention",
    "validate_outcome",
]
