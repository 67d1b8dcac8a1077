"""A ``World``: how customers respond to each action, drawn from a documented prior.

The event generator (:mod:`operators.simulation.model`) decides what happens when nobody
intervenes. A ``World`` decides what each of the five actions would have changed: the chance
that the action saves an at-risk order, per action and segment, how much less it saves once
the customer has already asked for their money, how often contacting a customer who would
have kept the item triggers a return, and what a declined exchange offer does.

Every number is drawn from the prior below with the world seed, and written to
``world.json`` so a reader can see what each world was. The prior is written from what the
actions are, never from the decision layer: it imports nothing from the policy, the
scorers, the models or the engine. Its only structure is what each action talks about (a
parcel, an item, a doubt about the product, or a person looking): on average an action on
the case's subject helps more, and a world's noise overturns that often.
``docs/simulation.md`` lists every distribution and number.

>>> from operators.simulation.scenarios import get_scenario
>>> params = get_scenario("steady-state")
>>> world = World.draw(3, params)
>>> world == World.draw(3, params), world == World.draw(4, params)
(True, False)
>>> World.from_dict(world.to_dict()) == world
True
>>> p = world.save_probability("product_guidance", "size_fit", "dhl:DE-NL", "makeup", None, "new")
>>> 0.0 <= p < 1.0
True
>>> world.backfire_probability("human_review", "makeup")  # not customer-facing
0.0
>>> sorted(t["kind"] for t in World.draw(3, params, misspecified=True).twists)
['backfire_in_family', 'campaign_surge', 'useless_in_lane']
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from operators.actions import action_names, customer_facing_names, definition
from operators.contract import INTENTS
from operators.simulation.clock import DAY, parse_timestamp
from operators.simulation.scenarios import CampaignSpec, ScenarioParams
from operators.vocabulary import Outcome

# The interventions a world responds to are the registered actions, in registration order
# (draws follow it); only customer-facing ones can trigger a return from a keeper. The
# registry's ``world`` prior is the only thing this module reads about an action.
#: Why an order is at risk (the ground truth's ``risk_driver``).
RISK_DRIVERS: tuple[str, ...] = (
    "late_delivery",
    "undeliverable",
    "size_fit",
    "damaged",
    "wrong_item",
    "not_as_described",
    "changed_mind",
    "other",
    "abuse",
)
#: Customer tiers, from the number of orders placed before this one: none, 1-7, 8 or more.
TIERS: tuple[str, ...] = ("new", "regular", "loyal")
LOYAL_FROM_ORDERS = 8
#: Support intents of the order's first ticket; ``none``: the order had no ticket.
INTENT_KEYS: tuple[str, ...] = (*sorted(INTENTS), "none")
#: The segment dimensions of the logit offsets, in draw order.
DIMENSIONS: tuple[str, ...] = ("courier_lane", "sku_family", "support_intent", "customer_tier")

# --- the prior (docs/simulation.md explains each number) -----------------------------------
BASE_SAVE_MEAN = 0.30  # centre of the base save probability, before any effect
ACTION_SD = 0.5  # logit sd of an action's main effect (some actions work better overall)
DRIVER_SD = 0.5  # logit sd of a driver's main effect (some cases are easier to save)
CELL_SD = 0.9  # logit sd of the action x driver interaction
ZERO_SHARE_BETA = (2.0, 8.0)  # share of action x driver cells with exactly zero effect
#: What a risk driver is about; what each action talks about is its registry ``world``
#: prior (a message about a parcel, an exchange, product advice, a person looking).
DRIVER_SUBJECT: dict[str, str] = {
    "late_delivery": "parcel",
    "undeliverable": "parcel",
    "size_fit": "item",
    "damaged": "item",
    "wrong_item": "item",
    "not_as_described": "doubt",
    "changed_mind": "doubt",
    "other": "doubt",
    "abuse": "abuse",
}
ON_SUBJECT_SHIFT = 0.6  # logit shift when an action talks about what the case is about
OFF_SUBJECT_SHIFT = -1.0  # ... and when it talks about something else (a person: neither)
SEGMENT_SD: dict[str, float] = {
    "courier_lane": 0.6,
    "sku_family": 0.5,
    "support_intent": 0.4,
    "customer_tier": 0.3,
}
LATE_FACTOR_BETA = (3.0, 3.0)  # share of the save probability left once a request is in
LATE_FACTOR_RANGE = (0.05, 0.95)
BACKFIRE_BETA = (1.5, 98.5)  # keepers' triggered-return probability (mean 1.5 %)
DECLINE_BETA = (3.0, 5.0)  # a failed exchange offer is declined and delays the refund
DELAY_MEAN_DAYS = (1.5, 5.0)  # uniform range of the world's mean delay; per order x0.5-1.5
ESCALATION_RANGE = (0.01, 0.04)  # a declined offer ends in a chargeback instead
TWIST_PROBABILITY: dict[str, float] = {
    "useless_in_lane": 0.25,
    "backfire_in_family": 0.25,
    "campaign_surge": 0.20,
}
TWIST_BACKFIRE_RANGE = (0.10, 0.30)  # keepers' triggered returns in the backfiring family
SURGE_SHARE_RANGE = (0.08, 0.15)  # share of orders the new campaign brings
SURGE_MULTIPLIER = 3.0  # its return hazard against an order without a campaign
SURGE_CAMPAIGN = "flash-sale"
#: The drift twist (``drift=True``, never part of the prior's random draws): from a day in
#: the middle of the history on, this action stops saving anyone in one courier lane, the
#: lane drawn with the world seed. It is the change a merchant needs the engine to notice
#: ("reassurance stopped working on this lane"), applied to orders placed from that day.
DRIFT_ACTION = "proactive_reassurance"
DRIFT_FROM_SHARE = 0.5  # the share of the scenario's days before the change

_DIGITS = 4


def subject_shift(action: str, driver: str) -> float:
    """The prior's only structure: an action talking about what the case is about helps
    more on average; a person (human review) is neither on nor off subject. The cell noise
    (sd :data:`CELL_SD`) overturns this in many worlds.

    >>> subject_shift("exchange_first_offer", "size_fit"), subject_shift("human_review", "abuse")
    (0.6, 0.0)
    """
    subject = definition(action).world.subject
    if subject == "any":
        return 0.0
    return ON_SUBJECT_SHIFT if subject == DRIVER_SUBJECT[driver] else OFF_SUBJECT_SHIFT


def customer_tier(orders_count: int) -> str:
    """The customer's tier from the number of orders placed before this one.

    >>> [customer_tier(n) for n in (0, 1, 7, 8, 12)]
    ['new', 'regular', 'regular', 'loyal', 'loyal']
    """
    if orders_count <= 0:
        return "new"
    return "regular" if orders_count < LOYAL_FROM_ORDERS else "loyal"


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _r(x: float) -> float:
    """Round a drawn number so ``world.json`` holds exactly the numbers the world uses."""
    return round(x, _DIGITS)


def _outcome(outcome: str, refund: float, retained: float) -> dict[str, Any]:
    return {"outcome": outcome, "refund_value": refund, "retained_value": retained}


@dataclass(slots=True)
class Facts:
    """What a world needs to know about an order to say how it responds.

    ``none`` is the order's outcome in the no-action world; ``family_value`` the value of its
    main SKU family's items (what a triggered return refunds); ``intent`` the intent of its
    first support ticket (None without one).
    """

    driver: str | None
    none: dict[str, Any]
    total: float
    family_value: float
    lane: str
    family: str
    intent: str | None
    tier: str
    cancelled: bool = False
    placed_at: float = 0.0  # epoch seconds: a drift twist applies from a day on


@dataclass(slots=True)
class Latents:
    """An order's uniform draws; one ``save`` draw nests all actions' outcomes.

    ``save`` decides saves (action ``a`` saves when ``save < p_a``; late when
    ``save < p_a * late_factor_a``) and triggered returns; ``decline``, ``delay`` and
    ``escalate`` play out a declined exchange offer.
    """

    save: float
    decline: float
    delay: float
    escalate: float

    @classmethod
    def draw(cls, rng: random.Random) -> Latents:
        """Four uniforms, always four, so one order's draws never shift another's."""
        rnd = rng.random
        return cls(rnd(), rnd(), rnd(), rnd())


@dataclass(slots=True)
class World:
    """Effect sizes of every action per segment, plus the world's twists.

    Build one with :meth:`draw` (or :meth:`from_dict` for a ``world.json``). All fields are
    plain numbers keyed by name, so ``to_dict`` is the whole world.
    """

    world_seed: int
    misspecified: bool
    zero_share: float
    base: dict[str, dict[str, float]]  # action -> driver -> base save probability (0: none)
    offsets: dict[str, dict[str, dict[str, float]]]  # action -> dimension -> value -> logit
    late_factor: dict[str, float]  # action -> share of the save probability left when late
    backfire: dict[str, dict[str, float]]  # customer-facing action -> family -> probability
    decline_probability: float
    mean_delay_days: float
    escalation_probability: float
    twists: list[dict[str, Any]] = field(default_factory=list)
    _base_logit: dict[tuple[str, str], float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _useless: frozenset[tuple[str, str]] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )
    _backfiring: dict[tuple[str, str], float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: (action, lane) -> epoch seconds from which the action saves nobody there (drift).
    _stopped: dict[tuple[str, str], float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _keeper_max: dict[str, float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: The actions this world has effects for (those registered when it was drawn).
    _actions: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    #: ``none``, every action, ``blanket_refund``: the keys of an order's outcomes.
    _all: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._actions = tuple(self.base)
        self._all = ("none", *self._actions, "blanket_refund")
        self._base_logit = {
            (a, d): _logit(p) for a, row in self.base.items() for d, p in row.items() if p > 0
        }
        self._useless = frozenset(
            (t["action"], t["courier_lane"]) for t in self.twists if t["kind"] == "useless_in_lane"
        )
        self._backfiring = {
            (t["action"], t["sku_family"]): t["keeper_return_probability"]
            for t in self.twists
            if t["kind"] == "backfire_in_family"
        }
        self._stopped = {
            (t["action"], t["courier_lane"]): float(t["from_ts"])
            for t in self.twists
            if t["kind"] == "stops_working_in_lane"
        }
        # Most keepers draw above every action's backfire chance: one comparison settles them.
        families = {f for row in self.backfire.values() for f in row}
        families |= {f for _, f in self._backfiring}
        self._keeper_max = {
            f: max(self.backfire_probability(a, f) for a in self._actions) for f in families
        }

    # ------------------------------------------------------------------ drawing
    @classmethod
    def draw(
        cls,
        world_seed: int,
        params: ScenarioParams,
        *,
        misspecified: bool = False,
        drift: bool = False,
    ) -> World:
        """Draw a world for the lanes and families of ``params``.

        Every number is drawn in the same order whatever ``misspecified`` and ``drift``
        say, so a misspecified world is the plain world of the same seed with all three
        twists forced on (a plain draw has each twist with :data:`TWIST_PROBABILITY`), and
        a drifting world is the same world plus the drift twist (:data:`DRIFT_ACTION` stops
        working in one lane from :data:`DRIFT_FROM_SHARE` of the history on).
        """
        rng = random.Random(world_seed)
        gauss, uniform = rng.gauss, rng.uniform
        lanes = [lane.key for lane in params.lanes]
        families = [fam.name for fam in params.families]
        values = {
            "courier_lane": lanes,
            "sku_family": families,
            "support_intent": list(INTENT_KEYS),
            "customer_tier": list(TIERS),
        }
        zero_share = _r(rng.betavariate(*ZERO_SHARE_BETA))
        actions, customer_facing = action_names(), customer_facing_names()
        action_effect = {a: gauss(0.0, ACTION_SD) for a in actions}
        driver_effect = {d: gauss(0.0, DRIVER_SD) for d in RISK_DRIVERS}
        centre = _logit(BASE_SAVE_MEAN)
        base: dict[str, dict[str, float]] = {}
        for a in actions:
            base[a] = {}
            for d in RISK_DRIVERS:
                logit = centre + action_effect[a] + driver_effect[d] + gauss(0.0, CELL_SD)
                logit += subject_shift(a, d)
                zero = rng.random() < zero_share
                base[a][d] = 0.0 if zero else min(max(_r(_sigmoid(logit)), 0.0001), 0.9999)
        offsets = {
            a: {
                dim: {v: _r(gauss(0.0, SEGMENT_SD[dim])) for v in values[dim]} for dim in DIMENSIONS
            }
            for a in actions
        }
        low, high = LATE_FACTOR_RANGE
        late = {a: _r(min(max(rng.betavariate(*LATE_FACTOR_BETA), low), high)) for a in actions}
        backfire = {
            a: {f: _r(rng.betavariate(*BACKFIRE_BETA)) for f in families} for a in customer_facing
        }
        decline = _r(rng.betavariate(*DECLINE_BETA))
        delay = _r(uniform(*DELAY_MEAN_DAYS))
        escalation = _r(uniform(*ESCALATION_RANGE))

        candidates: list[dict[str, Any]] = [
            {
                "kind": "useless_in_lane",
                "action": rng.choice(actions),
                "courier_lane": rng.choice(lanes),
            },
            {
                "kind": "backfire_in_family",
                "action": rng.choice(customer_facing),
                "sku_family": rng.choice(families),
                "keeper_return_probability": _r(uniform(*TWIST_BACKFIRE_RANGE)),
            },
            {
                "kind": "campaign_surge",
                "campaign": SURGE_CAMPAIGN,
                "share": _r(uniform(*SURGE_SHARE_RANGE)),
                "return_multiplier": SURGE_MULTIPLIER,
            },
        ]
        chance = [rng.random() for _ in candidates]
        twists = [
            t
            for t, u in zip(candidates, chance, strict=True)
            if misspecified or u < TWIST_PROBABILITY[t["kind"]]
        ]
        # Drawn last, always: a drifting world is the same world plus this twist.
        drift_lane = rng.choice(lanes)
        if drift:
            day = round(params.days * DRIFT_FROM_SHARE)
            twists.append(
                {
                    "kind": "stops_working_in_lane",
                    "action": DRIFT_ACTION,
                    "courier_lane": drift_lane,
                    "from_day": day,
                    "from_ts": parse_timestamp(params.start) + day * DAY,
                }
            )
        return cls(
            world_seed=world_seed,
            misspecified=misspecified,
            zero_share=zero_share,
            base=base,
            offsets=offsets,
            late_factor=late,
            backfire=backfire,
            decline_probability=decline,
            mean_delay_days=delay,
            escalation_probability=escalation,
            twists=twists,
        )

    # ------------------------------------------------------------------ effects
    def save_probability(
        self,
        action: str,
        driver: str,
        lane: str,
        family: str,
        intent: str | None,
        tier: str,
        placed_at: float = 0.0,
    ) -> float:
        """P(``action`` saves an at-risk order of this segment, placed at ``placed_at``),
        taken before the request."""
        if (action, lane) in self._useless or (action, family) in self._backfiring:
            return 0.0
        stopped = self._stopped.get((action, lane))
        if stopped is not None and placed_at >= stopped:
            return 0.0
        logit = self._base_logit.get((action, driver))
        if logit is None:
            return 0.0  # a zero-effect cell
        off = self.offsets[action]
        logit += (
            off["courier_lane"].get(lane, 0.0)
            + off["sku_family"].get(family, 0.0)
            + off["support_intent"].get(intent or "none", 0.0)
            + off["customer_tier"].get(tier, 0.0)
        )
        return _sigmoid(logit)

    def backfire_probability(self, action: str, family: str) -> float:
        """P(contacting a keeper with ``action`` triggers a return of the main family)."""
        twisted = self._backfiring.get((action, family))
        if twisted is not None:
            return twisted
        return self.backfire.get(action, {}).get(family, 0.0)

    def scenario(self, params: ScenarioParams) -> ScenarioParams:
        """``params`` with this world's twists that change the history (a new campaign)."""
        for t in self.twists:
            if t["kind"] != "campaign_surge":
                continue
            share = t["share"]
            total = sum(c.weight for c in params.campaigns)
            scaled = tuple(
                replace(c, weight=c.weight * (1 - share) / total) for c in params.campaigns
            )
            surge = CampaignSpec(t["campaign"], share, t["return_multiplier"])
            params = replace(params, campaigns=(*scaled, surge))
        return params

    # ----------------------------------------------------------------- outcomes
    def respond(
        self, facts: Facts, latents: Latents
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """``(outcomes, outcomes_late)`` of one order (shapes as in ``docs/events.md``).

        ``outcomes`` covers ``none``, the five actions and ``blanket_refund``;
        ``outcomes_late`` the five actions taken at or after the customer's request.
        """
        none = facts.none
        total = facts.total
        if facts.cancelled:
            return dict.fromkeys(self._all, none), dict.fromkeys(self._actions, none)
        if facts.driver is None:
            return self._keeper(facts, latents)
        # Blanket refund: the request is refunded in full, at once, without inspection.
        outcomes = {"none": none, "blanket_refund": _outcome(Outcome.REFUNDED.value, total, 0.0)}
        late: dict[str, dict[str, Any]] = {}
        if none["outcome"] not in (Outcome.REFUNDED, Outcome.CHARGEBACK):
            # Withdrawn or exchanged without help: there is nothing left to save.
            for a in self._actions:
                outcomes[a] = late[a] = none
            return outcomes, late
        u = latents.save
        for a in self._actions:
            p = self.save_probability(
                a, facts.driver, facts.lane, facts.family, facts.intent, facts.tier,
                facts.placed_at,
            )  # fmt: skip
            saved = _outcome(definition(a).world.saved_outcome.value, 0.0, total)
            outcomes[a] = saved if u < p else self._failed(a, facts, latents)
            late[a] = saved if u < p * self.late_factor[a] else self._failed(a, facts, latents)
        return outcomes, late

    def _keeper(
        self, facts: Facts, latents: Latents
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """A customer who keeps the order unless a contact makes them think twice."""
        none = facts.none
        if latents.save >= self._keeper_max.get(facts.family, 0.0):
            return dict.fromkeys(self._all, none), dict.fromkeys(self._actions, none)
        outcomes = {"none": none, "blanket_refund": none}
        for a in self._actions:
            if latents.save < self.backfire_probability(a, facts.family):
                refund = facts.family_value
                outcomes[a] = _outcome(
                    Outcome.REFUNDED.value, refund, round(facts.total - refund, 2)
                )
            else:
                outcomes[a] = none  # kept; a credit paid here is pure cost to the merchant
        return outcomes, {a: outcomes[a] for a in self._actions}

    def _failed(self, action: str, facts: Facts, latents: Latents) -> dict[str, Any]:
        """The outcome when ``action`` does not save a refunding order."""
        none = facts.none
        if (
            not definition(action).world.declinable
            or none["outcome"] != Outcome.REFUNDED
            or latents.decline >= self.decline_probability
        ):
            return none
        # The customer declined the exchange: the refund comes later, and a few escalate.
        delay = round(self.mean_delay_days * (0.5 + latents.delay), 1)
        if latents.escalate < self.escalation_probability:
            return {**_outcome(Outcome.CHARGEBACK.value, facts.total, 0.0), "delay_days": delay}
        return {**none, "delay_days": delay}

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The whole world as plain JSON (``world.json``)."""
        return {
            "world_seed": self.world_seed,
            "misspecified": self.misspecified,
            "prior": prior_summary(),
            "zero_effect_share": self.zero_share,
            "base_save_probability": self.base,
            "segment_logit_offsets": self.offsets,
            "late_factor": self.late_factor,
            "backfire_on_keepers": self.backfire,
            "declined_exchange": {
                "probability": self.decline_probability,
                "mean_delay_days": self.mean_delay_days,
                "chargeback_probability": self.escalation_probability,
            },
            "zero_effect_cells": [
                f"{a}|{d}" for a in self.base for d, p in self.base[a].items() if p == 0.0
            ],
            "twists": self.twists,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> World:
        """Rebuild a world from :meth:`to_dict` output."""
        declined = doc["declined_exchange"]
        return cls(
            world_seed=doc["world_seed"],
            misspecified=doc["misspecified"],
            zero_share=doc["zero_effect_share"],
            base=doc["base_save_probability"],
            offsets=doc["segment_logit_offsets"],
            late_factor=doc["late_factor"],
            backfire=doc["backfire_on_keepers"],
            decline_probability=declined["probability"],
            mean_delay_days=declined["mean_delay_days"],
            escalation_probability=declined["chargeback_probability"],
            twists=list(doc["twists"]),
        )

    def describe(self) -> str:
        """One line per twist, for the CLI (``no twists`` when there are none).

        >>> from operators.simulation.scenarios import get_scenario
        >>> World.draw(1, get_scenario("steady-state"), misspecified=True).describe().count("\\n")
        2
        """
        if not self.twists:
            return "no twists"
        lines = []
        for t in self.twists:
            if t["kind"] == "useless_in_lane":
                lines.append(f"{t['action']} has no effect in lane {t['courier_lane']}")
            elif t["kind"] == "stops_working_in_lane":
                lines.append(
                    f"{t['action']} stops working in lane {t['courier_lane']} from day "
                    f"{t['from_day']} (orders placed from then on)"
                )
            elif t["kind"] == "backfire_in_family":
                lines.append(
                    f"{t['action']} backfires in {t['sku_family']} "
                    f"({t['keeper_return_probability']:.0%} of contacted keepers return)"
                )
            else:
                lines.append(
                    f"new campaign {t['campaign']} ({t['share']:.0%} of orders) returns "
                    f"{t['return_multiplier']:g}x as often"
                )
        return "\n".join(lines)


def prior_summary() -> dict[str, Any]:
    """The prior's distributions and numbers, as written into ``world.json``."""
    return {
        "base_save_probability": (
            f"sigmoid(logit({BASE_SAVE_MEAN}) + action N(0, {ACTION_SD}) + driver "
            f"N(0, {DRIVER_SD}) + cell N(0, {CELL_SD}) + subject shift ({ON_SUBJECT_SHIFT} on, "
            f"{OFF_SUBJECT_SHIFT} off subject)); zero with the world's zero share"
        ),
        "zero_effect_share": f"Beta{ZERO_SHARE_BETA}",
        "segment_logit_offsets_sd": SEGMENT_SD,
        "late_factor": f"Beta{LATE_FACTOR_BETA} clipped to {LATE_FACTOR_RANGE}",
        "backfire_on_keepers": f"Beta{BACKFIRE_BETA} per customer-facing action x family",
        "declined_exchange": {
            "probability": f"Beta{DECLINE_BETA}",
            "mean_delay_days": f"Uniform{DELAY_MEAN_DAYS}",
            "chargeback_probability": f"Uniform{ESCALATION_RANGE}",
        },
        "twist_probability": TWIST_PROBABILITY,
        "twist_backfire_keeper_return_probability": f"Uniform{TWIST_BACKFIRE_RANGE}",
        "surge_share": f"Uniform{SURGE_SHARE_RANGE}",
        "surge_return_multiplier": SURGE_MULTIPLIER,
        "drift": f"{DRIFT_ACTION} saves nobody in one lane from {DRIFT_FROM_SHARE:.0%} of "
        "the history on (only with drift)",
    }


__all__ = [
    "DIMENSIONS",
    "INTENT_KEYS",
    "RISK_DRIVERS",
    "TIERS",
    "Facts",
    "Latents",
    "World",
    "customer_tier",
    "prior_summary",
]
