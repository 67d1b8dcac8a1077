"""Baselines and the headline: the share of the oracle's avoidable loss a policy captures.

Every arm is scored on the same ground truth (``ground_truth.jsonl``, see
``docs/events.md``) by one rule: an order's *loss* is the value refunded under the arm's
first action for that order, plus what the arm's actions cost (contact cost and store
credit). The arms a merchant recognises:

- ``status_quo``: no proactive action; every request is handled as asked (the truth's
  ``none`` outcome: requested items refunded, exchanges exchanged, withdrawals withdrawn).
- ``blanket_refund``: every refund or return request refunded in full, without inspection.
- ``always_contact``: reassure every order at its first risk signal (a delivery problem, a
  support contact or a request).
- ``random_eligible``: at an order's first decision point with an eligible action, one of
  them at random (seeded per order).
- ``static_rules``: the policy with the fixed heuristic scorer (``--no-learning``).
- ``policy``: the run being evaluated.
- ``oracle``: per order, the action with the lowest loss according to the truth, taken
  before any request: an upper bound no real policy reaches.

The headline is the *captured share*: ``(loss(status quo) - loss(arm)) / (loss(status quo)
- loss(oracle))``. It is negative when an arm does harm.

Timing counts: an action first taken at or after the customer's request uses the truth's
``outcomes_late`` (it recovers less). The policy and the static rules are evaluated on the
decisions of *both* holdout arms (control decisions are logged, never sent), as if applied
to every order, so that every arm covers the same orders.

>>> truth = {"o1": {"order_id": "o1", "order_value": 100.0, "request_at": None,
...     "outcomes": {"none": {"outcome": "refunded", "refund_value": 100.0,
...                           "retained_value": 0.0},
...                  "proactive_reassurance": {"outcome": "kept", "refund_value": 0.0,
...                                            "retained_value": 100.0}}}}
>>> costs = ActionCosts({"proactive_reassurance": 0.5}, {}, 15.0)
>>> sq = evaluate_arm("status_quo", truth, {}, costs)
>>> orc = evaluate_arm("oracle", truth, oracle_choices(truth, costs), costs)
>>> orc.loss, captured_share(sq, orc, orc)
(0.5, 1.0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from operators.actions import action_names, definition
from operators.contract import parse_ts
from operators.decision import unit_hash
from operators.vocabulary import Action, DecisionPoint, Outcome

REFUND_KINDS = frozenset({Outcome.REFUNDED, Outcome.CHARGEBACK})
#: The arms in the order every table lists them, with their short names.
ARM_LABELS: dict[str, str] = {
    "status_quo": "status quo",
    "blanket_refund": "blanket refund",
    "always_contact": "always contact",
    "random_eligible": "random eligible",
    "static_rules": "static rules",
    "policy": "this policy",
    "oracle": "oracle",
}
ARM_ORDER = tuple(ARM_LABELS)


@dataclass(frozen=True, slots=True)
class ActionCosts:
    """What one use of each action costs: its contact cost, plus store credit for actions
    that give it (a share of the order value, capped per order).

    >>> ActionCosts({"a": 2.5}, {"a": 0.1}, 15.0).of("a", 300.0)
    17.5
    """

    contact: Mapping[str, float]
    credit_share: Mapping[str, float]
    max_credit_per_order: float

    @classmethod
    def from_policy(cls, policy: Any) -> ActionCosts:
        return cls(
            {name: spec.cost for name, spec in policy.actions.items()},
            {name: spec.credit_share for name, spec in policy.actions.items()},
            policy.max_credit_per_order,
        )

    def credit(self, action: str, order_value: float) -> float:
        share = self.credit_share.get(action, 0.0)
        if share <= 0:
            return 0.0
        return round(min(share * order_value, self.max_credit_per_order), 2)

    def of(self, action: str, order_value: float) -> float:
        if action == Action.NONE:
            return 0.0
        return self.contact.get(action, 0.0) + self.credit(action, order_value)


@dataclass(frozen=True, slots=True)
class Choice:
    """An arm's first action for one order, when it was taken (None: before anything),
    and every action the arm took for the order (for its cost)."""

    action: str
    at: float | None = None
    actions: tuple[str, ...] = ()


def truth_for(row: Mapping[str, Any], action: str, at: float | None) -> Mapping[str, Any] | None:
    """The truth's outcome of an order whose first action is ``action``, taken at ``at``:
    ``outcomes_late[action]`` when it came at or after the customer's first request
    (``request_at``), else ``outcomes[action]``; None where the truth does not say.

    >>> row = {"request_at": "2026-06-02T00:00:00Z",
    ...        "outcomes": {"none": {"outcome": "refunded"}, "a": {"outcome": "kept"}},
    ...        "outcomes_late": {"a": {"outcome": "refunded"}}}
    >>> truth_for(row, "a", parse_ts("2026-06-01T00:00:00Z"))["outcome"]
    'kept'
    >>> truth_for(row, "a", parse_ts("2026-06-03T00:00:00Z"))["outcome"]
    'refunded'
    >>> truth_for(row, "b", None) is None
    True
    """
    outcomes = row.get("outcomes") or {}
    if action != Action.NONE:
        request_at = row.get("request_at")
        late = row.get("outcomes_late")
        if late and request_at and at is not None and at >= parse_ts(request_at):
            found: Mapping[str, Any] | None = late.get(action)
            if found is not None:
                return found
    chosen: Mapping[str, Any] | None = outcomes.get(action)
    return chosen


def truth_outcome(row: Mapping[str, Any], action: str, at: float | None) -> Mapping[str, Any]:
    """:func:`truth_for`, with the ``none`` outcome where the truth does not know the
    action (an arm is scored on every order)."""
    return truth_for(row, action, at) or row["outcomes"]["none"]


def spending(choice: Choice, order_value: float, costs: ActionCosts) -> tuple[float, float]:
    """Contact cost and store credit of an arm's actions for one order (credit is granted
    once per order at most, as the policy's per-order cap says)."""
    taken = choice.actions or ((choice.action,) if choice.action != Action.NONE else ())
    contact = sum(costs.contact.get(a, 0.0) for a in taken)
    credit = max((costs.credit(a, order_value) for a in taken), default=0.0)
    return contact, credit


@dataclass
class ArmResult:
    """Money and contacts of one arm over a set of orders."""

    name: str
    orders: int = 0
    refund_leakage: float = 0.0
    retained_revenue: float = 0.0
    contact_cost: float = 0.0
    credit_cost: float = 0.0
    refunded_orders: int = 0
    acted_orders: int = 0
    contacted_orders: int = 0
    #: Customers contacted who would have kept the order anyway (no refund under ``none``).
    contacted_keepers: int = 0
    #: Keepers whom the arm's contact turned into a refund (backfire).
    triggered_refunds: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    @property
    def cost(self) -> float:
        return self.contact_cost + self.credit_cost

    @property
    def loss(self) -> float:
        """Refund leakage plus contact and credit cost."""
        return round(self.refund_leakage + self.cost, 2)

    def to_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["cost"] = round(self.cost, 2)
        out["loss"] = self.loss
        out["actions"] = dict(sorted(self.actions.items()))
        return out


def evaluate_arm(
    name: str,
    truth: Mapping[str, Mapping[str, Any]],
    choices: Mapping[str, Choice],
    costs: ActionCosts,
) -> ArmResult:
    """Score an arm's choices on every order of the truth (orders without a choice take
    ``none``)."""
    arm = ArmResult(name)
    none = Choice(Action.NONE)
    for oid, row in truth.items():
        choice = choices.get(oid, none)
        value = float(row.get("order_value") or 0.0)
        o = truth_outcome(row, choice.action, choice.at)
        refunded = o["outcome"] in REFUND_KINDS
        arm.orders += 1
        arm.refund_leakage += float(o["refund_value"])
        arm.retained_revenue += float(o["retained_value"])
        arm.refunded_orders += refunded
        taken = choice.actions or ((choice.action,) if choice.action != Action.NONE else ())
        if not taken:
            continue
        arm.acted_orders += 1
        arm.actions[choice.action] = arm.actions.get(choice.action, 0) + 1
        contact, credit = spending(choice, value, costs)
        arm.contact_cost += contact
        arm.credit_cost += credit
        if any(definition(a).customer_facing for a in taken):
            arm.contacted_orders += 1
            if row["outcomes"]["none"]["outcome"] not in REFUND_KINDS:
                arm.contacted_keepers += 1
                arm.triggered_refunds += refunded
    return arm


def captured_share(status_quo: ArmResult, arm: ArmResult, oracle: ArmResult) -> float | None:
    """Share of the oracle's avoidable loss that ``arm`` avoids (None if the oracle can
    avoid nothing)."""
    avoidable = status_quo.loss - oracle.loss
    if avoidable <= 0:
        return None
    return round((status_quo.loss - arm.loss) / avoidable, 4)


# --- the arms' choices ----------------------------------------------------------------------


def oracle_choices(truth: Mapping[str, Mapping[str, Any]], costs: ActionCosts) -> dict[str, Choice]:
    """Per order, the action with the lowest refund-plus-cost loss in the truth, taken
    early (before any request). Ties keep the cheaper, earlier-listed option (``none``
    first), so the oracle never pays for nothing."""
    out: dict[str, Choice] = {}
    for oid, row in truth.items():
        value = float(row.get("order_value") or 0.0)
        best, best_loss = Action.NONE.value, float(row["outcomes"]["none"]["refund_value"])
        registered = action_names()
        for action, o in row["outcomes"].items():
            if action not in registered:
                continue  # "none" and the blanket-refund practice are not actions
            loss = float(o["refund_value"]) + costs.of(action, value)
            if loss < best_loss - 1e-9:
                best, best_loss = action, loss
        if best != Action.NONE:
            out[oid] = Choice(best, None)
    return out


def blanket_refund_outcomes(truth: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The truth rows with ``none`` replaced by the blanket-refund practice, for
    :func:`evaluate_arm` (orders without a request are unchanged)."""
    out: dict[str, Mapping[str, Any]] = {}
    for oid, row in truth.items():
        blanket = row["outcomes"].get("blanket_refund", row["outcomes"]["none"])
        out[oid] = {**row, "outcomes": {**row["outcomes"], "none": blanket}}
    return out


def _decision_point(d: Mapping[str, Any]) -> str:
    return d.get("point") or DecisionPoint.OTHER


def policy_choices(decisions: Iterable[Mapping[str, Any]]) -> dict[str, Choice]:
    """First action per order, from a run's decisions of both arms, and all its actions."""
    first: dict[str, tuple[str, float]] = {}
    taken: dict[str, list[str]] = defaultdict(list)
    for d in decisions:
        action = d["action"]
        if action == Action.NONE:
            continue
        oid = d["order_id"]
        taken[oid].append(action)
        if oid not in first:
            first[oid] = (action, parse_ts(d["decided_at"]))
    return {oid: Choice(a, t, tuple(taken[oid])) for oid, (a, t) in first.items()}


def always_contact_choices(decisions: Iterable[Mapping[str, Any]]) -> dict[str, Choice]:
    """Reassurance for every order at its first risk signal (any decision point after the
    order was placed)."""
    out: dict[str, Choice] = {}
    for d in decisions:
        oid = d["order_id"]
        if oid in out or _decision_point(d) == DecisionPoint.ORDER:
            continue
        out[oid] = Choice(Action.PROACTIVE_REASSURANCE.value, parse_ts(d["decided_at"]))
    return out


def random_eligible_choices(
    decisions: Iterable[Mapping[str, Any]], seed: str = "random-eligible"
) -> dict[str, Choice]:
    """At each order's first decision point with an eligible action, one of the eligible
    actions, drawn uniformly from a hash of the order id (the same in every run)."""
    out: dict[str, Choice] = {}
    for d in decisions:
        oid = d["order_id"]
        eligible = d.get("eligible") or []
        if oid in out or not eligible:
            continue
        pick = eligible[int(unit_hash(f"{seed}:{oid}") * len(eligible))]
        out[oid] = Choice(pick, parse_ts(d["decided_at"]))
    return out


def compare_arms(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    decisions: Sequence[Mapping[str, Any]],
    static_decisions: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every arm on the same truth, with each arm's captured share of the oracle's
    avoidable loss. ``decisions`` are the evaluated run's; ``static_decisions`` those of
    a ``--no-learning`` run over the same input (omitted: no static-rules arm)."""
    arms: dict[str, ArmResult] = {
        "status_quo": evaluate_arm("status_quo", truth, {}, costs),
        "blanket_refund": evaluate_arm("blanket_refund", blanket_refund_outcomes(truth), {}, costs),
        "always_contact": evaluate_arm(
            "always_contact", truth, always_contact_choices(decisions), costs
        ),
        "random_eligible": evaluate_arm(
            "random_eligible", truth, random_eligible_choices(decisions), costs
        ),
    }
    if static_decisions is not None:
        arms["static_rules"] = evaluate_arm(
            "static_rules", truth, policy_choices(static_decisions), costs
        )
    arms["policy"] = evaluate_arm("policy", truth, policy_choices(decisions), costs)
    arms["oracle"] = evaluate_arm("oracle", truth, oracle_choices(truth, costs), costs)
    sq, oracle = arms["status_quo"], arms["oracle"]
    return {
        "definition": "captured share = (loss(status quo) - loss(arm)) / (loss(status quo) - "
        "loss(oracle)); loss = refunded value + contact cost + credit",
        "avoidable_loss": round(sq.loss - oracle.loss, 2),
        "arms": {
            name: {**arm.to_dict(), "captured_share": captured_share(sq, arm, oracle)}
            for name, arm in arms.items()
        },
    }


def percent(x: float | None) -> str:
    """A share as a percentage for tables ("n/a" when unknown).

    >>> percent(0.1234), percent(None)
    ('12.3%', 'n/a')
    """
    return "n/a" if x is None else f"{x:.1%}"


def format_arms(block: Mapping[str, Any]) -> list[str]:
    """The arms as table lines (for the demo, replay and backtest printouts)."""
    lines = [
        f"  {'':<18}{'captured':>10}{'refund leakage':>16}{'cost':>12}{'contacted':>11}"
        f"{'of them keepers':>17}",
    ]
    for name in ARM_ORDER:
        arm = block["arms"].get(name)
        if arm is None:
            continue
        cell = percent(arm["captured_share"])
        lines.append(
            f"  {ARM_LABELS[name]:<18}{cell:>10}{arm['refund_leakage']:>16,.2f}"
            f"{arm['cost']:>12,.2f}{arm['contacted_orders']:>11,}{arm['contacted_keepers']:>17,}"
        )
    return lines


def regret_by_day(
    truth: Mapping[str, Mapping[str, Any]],
    costs: ActionCosts,
    decisions: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Per day of order placement: the policy's loss above the oracle's (regret), the
    avoidable loss, and the captured share; a learning policy's share should rise."""
    placed: dict[str, float] = {}
    for d in decisions:
        placed.setdefault(d["order_id"], parse_ts(d["decided_at"]))
    chosen = policy_choices(decisions)
    oracle = oracle_choices(truth, costs)
    days: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    none = Choice(Action.NONE)
    for oid, row in truth.items():
        t = placed.get(oid)
        if t is None:
            continue
        value = float(row.get("order_value") or 0.0)

        def loss(c: Choice, row: Mapping[str, Any] = row, value: float = value) -> float:
            refund = float(truth_outcome(row, c.action, c.at)["refund_value"])
            return refund + sum(spending(c, value, costs))

        sq, pol, orc = loss(none), loss(chosen.get(oid, none)), loss(oracle.get(oid, none))
        cell = days[int(t // 86400)]
        cell[0] += pol - orc
        cell[1] += sq - orc
        cell[2] += sq - pol
    out = []
    cumulative = 0.0
    for day in sorted(days):
        regret, avoidable, saved = days[day]
        cumulative += regret
        out.append(
            {
                "day": day,
                "regret": round(regret, 2),
                "cumulative_regret": round(cumulative, 2),
                "avoidable_loss": round(avoidable, 2),
                "captured_share": round(saved / avoidable, 4) if avoidable > 0 else None,
            }
        )
    return out
