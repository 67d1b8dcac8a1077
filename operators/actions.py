"""The action registry: everything Salvage knows about an intervention action, in one place.

Adding an action means adding its ``ActionDefinition`` here (and its member to
``operators.vocabulary.Action``), then giving it a cost and eligibility in the policy YAML.
Everything else reads the registry:

- ``operators.policy`` accepts an action only if it is registered, and takes its defaults
  (``cooldown_hours``, ``credit_share``, ``customer_facing``, the message) from here;
- ``operators.scoring.HeuristicScorer`` scores P(recovered | action) from ``recovery_prior``
  (the cold-start prior the bandit starts from); an unregistered action raises
  :class:`UnknownActionError` instead of silently scoring 0;
- ``operators.models`` keeps one online recovery model per registered action;
- the simulator's world (``operators.simulation.response``) draws each registered action's
  effect, shaped only by its ``world`` prior (what the action talks about, what a saved
  order ends as). That is a prior of
  the *world*; nothing in the policy or the scorer reads it, so the simulator stays
  independent of the decision layer it is used to evaluate.

>>> definition("exchange_first_offer").world.subject
'item'
>>> action_names()[0], len(action_names())
('proactive_reassurance', 5)
>>> definition("teleport")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
operators.actions.UnknownActionError: 'teleport' is not a registered action; register it in ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from operators.vocabulary import Action, Outcome

#: What an action talks about, for the simulator's world prior: a parcel, the item, a doubt
#: about the product, or ``any`` (a person looking at the case: neither on nor off subject).
WorldSubject = Literal["parcel", "item", "doubt", "any"]


@dataclass(frozen=True, slots=True)
class RecoveryPrior:
    """The heuristic P(recovered | action) before any model has learned: a logistic in the
    case features, ``sigmoid(intercept + sum(weights[f] * features[f]) - 2.5 * abuse)``."""

    weights: Mapping[str, float]
    intercept: float = -1.0


@dataclass(frozen=True, slots=True)
class WorldPrior:
    """How the simulator's worlds treat the action (``docs/simulation.md``): what it talks
    about (on average an action on the case's subject helps more), what a saved order ends
    as, and whether the customer can decline it (then the refund comes later, and a few
    escalate to a chargeback). Only the simulator reads it."""

    subject: WorldSubject
    saved_outcome: Outcome = Outcome.KEPT
    declinable: bool = False


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """The customer message an action sends unless the policy file says otherwise.

    ``credit_template`` is appended only when the intervention carries a credit offer, so a
    customer whose credit cap is used up never reads "added  to your account"."""

    template: str
    channel: str = "email"
    credit_template: str | None = None


@dataclass(frozen=True, slots=True)
class ActionDefinition:
    """One intervention action and its defaults; the policy file may override the
    eligibility defaults and the message, never the prior or the world subject."""

    name: str
    recovery_prior: RecoveryPrior
    world: WorldPrior
    customer_facing: bool = True
    cooldown_hours: float = 72.0
    credit_share: float = 0.0
    message: MessageTemplate | None = None
    description: str = ""
    #: Optional tags for readers (docs, reports); no decision reads them.
    tags: tuple[str, ...] = field(default=())


class UnknownActionError(KeyError):
    """An action name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


_DEFINITIONS: tuple[ActionDefinition, ...] = (
    ActionDefinition(
        Action.PROACTIVE_REASSURANCE,
        RecoveryPrior(
            {
                "slip_over_48h": 1.2,
                "intent_where_is_my_order": 1.0,
                "intent_delivery_problem": 0.6,
                "delivered": -1.5,
            }
        ),
        world=WorldPrior("parcel"),
        message=MessageTemplate(
            "Your {sku_family} order {order_id} is on its way and now expected by "
            "{estimated_delivery}. We are watching it for you and will write again if "
            "anything changes."
        ),
        description="a message that the late parcel is on its way and watched",
    ),
    ActionDefinition(
        Action.EXCHANGE_FIRST_OFFER,
        RecoveryPrior(
            {
                "reason_size_fit": 2.0,
                "intent_size_fit": 1.6,
                "exchange_preferred": 1.0,
                "reason_damaged": 0.8,
            }
        ),
        world=WorldPrior("item", saved_outcome=Outcome.EXCHANGED, declinable=True),
        message=MessageTemplate(
            "Before you send order {order_id} back: we can exchange it for another size or "
            "shade, shipped free today."
        ),
        description="offer an exchange before the refund",
    ),
    ActionDefinition(
        Action.PRODUCT_GUIDANCE,
        RecoveryPrior(
            {
                "reason_not_as_described": 1.4,
                "intent_product_question": 1.6,
                "intent_not_as_described": 1.2,
            }
        ),
        world=WorldPrior("doubt"),
        message=MessageTemplate(
            "A few tips for your {sku_family} from order {order_id}: how to use it, what to "
            "expect in the first days, and how to reach our experts."
        ),
        description="advice on using the product",
    ),
    ActionDefinition(
        Action.DELAYED_SHIPMENT_INTERVENTION,
        RecoveryPrior(
            {"slip_over_48h": 1.4, "delivery_problems": 0.8, "lost": 1.0, "delivered": -2.0}
        ),
        world=WorldPrior("parcel"),
        message=MessageTemplate(
            "We are sorry that order {order_id} is late. We have escalated it with the "
            "courier (expected by {estimated_delivery}).",
            credit_template="We have added {credit} to your account.",
        ),
        description="escalate with the courier, with goodwill credit",
    ),
    ActionDefinition(
        Action.HUMAN_REVIEW,
        RecoveryPrior({"has_request": 0.5}),
        world=WorldPrior("any"),
        customer_facing=False,
        description="a person decides (the automation boundary)",
    ),
)

#: Registration order is the order of every per-action loop (the simulator's draws follow
#: it, so reordering changes every simulated world).
_REGISTRY: dict[str, ActionDefinition] = {str(d.name): d for d in _DEFINITIONS}
REGISTRY: Mapping[str, ActionDefinition] = MappingProxyType(_REGISTRY)
#: Changes whenever the registry does: readers that cache what they derive from it (the
#: heuristic scorer's priors) rebuild when it moved.
_GENERATION = [0]


def generation() -> int:
    """A number that changes whenever an action is registered or unregistered."""
    return _GENERATION[0]


def action_names() -> tuple[str, ...]:
    """Every registered intervention action (never ``none``), in registration order."""
    return tuple(_REGISTRY)


def customer_facing_names() -> tuple[str, ...]:
    """The registered actions that reach the customer."""
    return tuple(n for n, d in _REGISTRY.items() if d.customer_facing)


def definition(name: str) -> ActionDefinition:
    """The definition of a registered action; :class:`UnknownActionError` otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownActionError(
            f"{name!r} is not a registered action; register it in operators/actions.py "
            f"(known: {', '.join(_REGISTRY)})"
        ) from None


def register(action: ActionDefinition) -> None:
    """Add an action to the registry (at the end of the order)."""
    if action.name in _REGISTRY or action.name == Action.NONE:
        raise ValueError(f"action {action.name!r} is already registered")
    _REGISTRY[str(action.name)] = action
    _GENERATION[0] += 1


def unregister(name: str) -> None:
    """Remove an action added with :func:`register`; the built-in actions stay."""
    if any(d.name == name for d in _DEFINITIONS):
        raise ValueError(f"{name!r} is a built-in action")
    _REGISTRY.pop(name, None)
    _GENERATION[0] += 1


@contextmanager
def registered(action: ActionDefinition) -> Iterator[ActionDefinition]:
    """Register ``action`` for the duration of a ``with`` block (tests, experiments)."""
    register(action)
    try:
        yield action
    finally:
        unregister(action.name)


__all__ = [
    "REGISTRY",
    "ActionDefinition",
    "MessageTemplate",
    "RecoveryPrior",
    "UnknownActionError",
    "WorldPrior",
    "action_names",
    "customer_facing_names",
    "definition",
    "generation",
    "register",
    "registered",
    "unregister",
]
