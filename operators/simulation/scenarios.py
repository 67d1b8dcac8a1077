"""Scenario parameters for the event simulator.

A scenario is a frozen, JSON-serialisable description of one "world": the brand's catalogue,
its courier lanes, the calendar of order placement and the behavioural knobs that decide how
often customers get anxious, ask for refunds or abuse the return policy. Each scenario is built
by a factory whose docstring tells its story; ``SCENARIOS`` maps the public name to the built
parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from operators.contract import REFUND_REASON_ORDER

__all__ = [
    "SCENARIOS",
    "BacklogSpec",
    "CampaignSpec",
    "FamilySpec",
    "LaneSpec",
    "ScenarioParams",
    "describe_scenario",
    "get_scenario",
    "iter_scenario_names",
]

RETURN_REASONS: tuple[str, ...] = REFUND_REASON_ORDER


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """A SKU family: price band, margin band and how (and why) its items come back."""

    name: str
    code: str
    weight: float
    price_median: float
    price_sigma: float
    margin_low: float
    margin_high: float
    return_rate: float
    reasons: tuple[tuple[str, float], ...]
    skus: int = 24


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """A courier lane (``courier:lane``) and its normal-weather reliability."""

    courier: str
    lane: str
    weight: float
    transit_days: int
    delay_prob: float
    delay_mean_days: float
    exception_rate: float
    failed_attempt_rate: float
    lost_rate: float

    @property
    def key(self) -> str:
        """The ``courier:lane`` name used in ground truth and reports."""
        return f"{self.courier}:{self.lane}"


@dataclass(frozen=True, slots=True)
class BacklogSpec:
    """A carrier backlog hitting some lanes, with an intensity per day of order placement."""

    lanes: tuple[str, ...]
    delay_prob: float
    slip_mean_days: float
    intensity_by_day: tuple[float, ...]
    extra_exception_rate: float = 0.06
    extra_lost_rate: float = 0.012


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A marketing source; impulse-driven campaigns bring customers who return more."""

    name: str | None
    weight: float
    return_multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """Everything that defines a simulated world apart from the seed and the order count."""

    name: str
    description: str
    start: str
    days: int
    currency: str
    order_prefix: str
    catalog_seed: int
    day_weights: tuple[float, ...]
    hour_weights: tuple[float, ...]
    families: tuple[FamilySpec, ...]
    lanes: tuple[LaneSpec, ...]
    campaigns: tuple[CampaignSpec, ...]
    backlog: BacklogSpec | None = None
    # Customers: a pool smaller than the order count gives repeat buyers.
    customer_pool_ratio: float = 0.5
    loyal_share: float = 0.2
    loyal_order_share: float = 0.35
    new_customer_share: float = 0.35
    abusive_share: float = 0.04
    abusive_claim_rate: float = 0.55
    return_rate_scale: float = 1.0
    history_omit_rate: float = 0.12
    # Behaviour.
    cancel_rate: float = 0.015
    late_intent_bias: float = -2.5
    wismo_base_rate: float = 0.03
    noise_ticket_rate: float = 0.07
    chargeback_rate: float = 0.04
    # Transport noise injected into the files (the streams stay valid).
    optional_omit_rate: float = 0.06
    duplicate_rate: float = 0.007
    out_of_order_rate: float = 0.005
    early_signal_rate: float = 0.0005

    def lane(self, key: str) -> LaneSpec:
        """Return the lane called ``courier:lane``."""
        for spec in self.lanes:
            if spec.key == key:
                return spec
        raise KeyError(key)


# Shared catalogue of a premium beauty brand. Loungewear is the apparel-like family whose
# returns are dominated by size/fit; the beauty families are dominated by shade/texture
# mismatch, damage and second thoughts.
_BEAUTY_FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        "skincare",
        "SKN",
        0.30,
        42.0,
        0.45,
        0.62,
        0.75,
        0.045,
        (
            ("not_as_described", 0.36),
            ("changed_mind", 0.24),
            ("damaged", 0.2),
            ("wrong_item", 0.08),
            ("other", 0.12),
        ),
        skus=36,
    ),
    FamilySpec(
        "fragrance",
        "FRG",
        0.15,
        78.0,
        0.35,
        0.60,
        0.72,
        0.04,
        (
            ("changed_mind", 0.4),
            ("damaged", 0.25),
            ("not_as_described", 0.2),
            ("wrong_item", 0.08),
            ("other", 0.07),
        ),
        skus=18,
    ),
    FamilySpec(
        "makeup",
        "MKP",
        0.22,
        27.0,
        0.35,
        0.65,
        0.75,
        0.06,
        (
            ("not_as_described", 0.45),
            ("changed_mind", 0.25),
            ("damaged", 0.15),
            ("wrong_item", 0.08),
            ("other", 0.07),
        ),
        skus=48,
    ),
    FamilySpec(
        "haircare",
        "HAR",
        0.12,
        29.0,
        0.35,
        0.55,
        0.70,
        0.035,
        (
            ("not_as_described", 0.3),
            ("changed_mind", 0.3),
            ("damaged", 0.25),
            ("wrong_item", 0.08),
            ("other", 0.07),
        ),
        skus=20,
    ),
    FamilySpec(
        "tools",
        "TLS",
        0.08,
        95.0,
        0.60,
        0.50,
        0.60,
        0.08,
        (
            ("damaged", 0.35),
            ("not_as_described", 0.3),
            ("changed_mind", 0.2),
            ("wrong_item", 0.08),
            ("other", 0.07),
        ),
        skus=12,
    ),
    FamilySpec(
        "loungewear",
        "LNG",
        0.09,
        68.0,
        0.30,
        0.50,
        0.65,
        0.22,
        (
            ("size_fit", 0.55),
            ("changed_mind", 0.15),
            ("not_as_described", 0.15),
            ("damaged", 0.08),
            ("wrong_item", 0.07),
        ),
        skus=16,
    ),
    FamilySpec(
        "accessories",
        "ACC",
        0.04,
        32.0,
        0.40,
        0.55,
        0.70,
        0.07,
        (
            ("changed_mind", 0.35),
            ("not_as_described", 0.3),
            ("damaged", 0.2),
            ("wrong_item", 0.1),
            ("other", 0.05),
        ),
        skus=14,
    ),
)

# European lanes; the numbers are the quiet-week behaviour of each courier.
_EU_LANES: tuple[LaneSpec, ...] = (
    LaneSpec("dhl", "DE-NL", 0.15, 2, 0.05, 1.0, 0.010, 0.020, 0.002),
    LaneSpec("ups", "FR-ES", 0.13, 3, 0.06, 1.2, 0.012, 0.025, 0.003),
    LaneSpec("dhl", "DE-DE", 0.18, 1, 0.04, 0.8, 0.008, 0.020, 0.002),
    LaneSpec("dpd", "DE-AT", 0.10, 2, 0.05, 1.0, 0.010, 0.025, 0.003),
    LaneSpec("colissimo", "FR-FR", 0.14, 2, 0.05, 0.9, 0.010, 0.030, 0.003),
    LaneSpec("postnl", "NL-BE", 0.10, 1, 0.04, 0.8, 0.008, 0.020, 0.002),
    LaneSpec("gls", "DE-PL", 0.08, 3, 0.07, 1.3, 0.015, 0.030, 0.004),
    LaneSpec("ups", "FR-IT", 0.12, 3, 0.06, 1.1, 0.012, 0.025, 0.003),
)

# European evening shopping curve (UTC hours).
_HOUR_WEIGHTS: tuple[float, ...] = (
    1.2,
    0.8,
    0.5,
    0.4,
    0.4,
    0.6,
    1.2,
    2.4,
    3.6,
    5.4,
    5.0,
    4.6,
    4.6,
    4.8,
    4.6,
    4.4,
    4.6,
    5.0,
    5.8,
    6.6,
    7.0,
    6.2,
    4.2,
    2.2,
)


def _launch_week_backlog() -> ScenarioParams:
    """Launch week of a premium beauty brand, with a courier backlog on two lanes.

    The brand launches a new skincare and fragrance line on Monday 2026-06-01 with a launch
    e-mail, an influencer push and paid social. Order volume peaks on launch day and decays
    over the week. DHL's DE-NL and UPS's FR-ES hubs cannot absorb the surge: parcels on those
    lanes slip by several days (worst mid-week), carriers emit ``delayed`` events with revised
    ETAs, some parcels hit ``capacity_backlog`` exceptions, failed attempts or go missing.
    Anxious customers open "where is my order" tickets with negative sentiment and many ask
    for a refund for late delivery; most of them would keep the order if reassured or
    compensated in time. Loungewear buyers return for size/fit, shade mismatches drive makeup
    returns, and a few percent of customers are serial refunders who claim after delivery was
    confirmed and sometimes open chargebacks.
    """
    return ScenarioParams(
        name="launch-week-backlog",
        description="",
        start="2026-06-01T00:00:00Z",
        days=7,
        currency="EUR",
        order_prefix="LWB",
        catalog_seed=20260601,
        day_weights=(0.24, 0.18, 0.14, 0.12, 0.11, 0.11, 0.10),
        hour_weights=_HOUR_WEIGHTS,
        families=_BEAUTY_FAMILIES,
        lanes=_EU_LANES,
        campaigns=(
            CampaignSpec("launch-email", 0.22, 0.7),
            CampaignSpec("influencer-x", 0.15, 1.8),
            CampaignSpec("paid-social", 0.18, 1.25),
            CampaignSpec(None, 0.45, 1.0),
        ),
        backlog=BacklogSpec(
            lanes=("dhl:DE-NL", "ups:FR-ES"),
            delay_prob=0.78,
            slip_mean_days=3.6,
            intensity_by_day=(0.55, 0.85, 1.0, 1.0, 1.0, 0.85, 0.7),
        ),
        customer_pool_ratio=0.55,
        abusive_share=0.04,
    )


def _steady_state() -> ScenarioParams:
    """Four ordinary weeks of the same beauty brand in early spring.

    Volume follows the normal weekly rhythm with a light weekend lift; one paid-social
    campaign and a newsletter run in the background. Couriers are mostly on time: delays are
    rare and concentrated on the GLS DE-PL and UPS FR-IT lanes, so "where is my order"
    tickets are occasional. Return and refund requests sit in the usual 5-12 % band for
    beauty, led by loungewear size/fit returns and makeup shade mismatches, and a small group
    of serial refunders keeps probing the policy.
    """
    lanes = tuple(
        replace(lane, delay_prob=0.16, delay_mean_days=1.6)
        if lane.key in ("gls:DE-PL", "ups:FR-IT")
        else replace(lane, delay_prob=lane.delay_prob * 0.5)
        for lane in _EU_LANES
    )
    return ScenarioParams(
        name="steady-state",
        description="",
        start="2026-03-02T00:00:00Z",
        days=28,
        currency="EUR",
        order_prefix="STD",
        catalog_seed=20260601,
        day_weights=(1.0, 0.95, 0.95, 1.0, 1.05, 1.15, 1.1) * 4,
        hour_weights=_HOUR_WEIGHTS,
        families=_BEAUTY_FAMILIES,
        lanes=lanes,
        campaigns=(
            CampaignSpec("paid-social", 0.12, 1.15),
            CampaignSpec("spring-newsletter", 0.08, 0.9),
            CampaignSpec(None, 0.80, 1.0),
        ),
        customer_pool_ratio=0.45,
        abusive_share=0.03,
        abusive_claim_rate=0.4,
        return_rate_scale=0.75,
    )


def _steady_season() -> ScenarioParams:
    """Sixteen ordinary weeks of the same beauty brand, March to June.

    The steady-state shop run four times as long: the same weekly rhythm, lanes, campaigns
    and customers, with every week alike. Refund outcomes are known two weeks or more after
    a decision, so a learner that waits for them acts in the last weeks of a four-week
    scenario only; here it has three months to act on what it learned. Use it to measure
    how decisions change as outcomes accumulate (`benchmarks/decision_worlds.py --scenario
    steady-season`), at the same orders per day as ``steady-state`` with four times the
    orders.
    """
    four_weeks = _steady_state()
    return replace(
        four_weeks,
        name="steady-season",
        days=4 * four_weeks.days,
        order_prefix="SSN",
        day_weights=four_weeks.day_weights * 4,
    )


def _build(factory: Callable[[], ScenarioParams]) -> ScenarioParams:
    """Build a scenario and attach its factory's docstring as the description."""
    params = factory()
    return replace(params, description=inspect.cleandoc(factory.__doc__ or ""))


SCENARIOS: dict[str, ScenarioParams] = {
    params.name: params
    for params in map(_build, (_launch_week_backlog, _steady_state, _steady_season))
}


def iter_scenario_names() -> Iterator[str]:
    """Yield the names of the shipped scenarios in a stable order."""
    yield from SCENARIOS


def get_scenario(name: str) -> ScenarioParams:
    """Return the parameters of scenario ``name`` or raise a helpful ``KeyError``."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise KeyError(f"unknown scenario {name!r}; known: {known}") from None


def describe_scenario(name: str) -> str:
    """Return the story of scenario ``name``."""
    return get_scenario(name).description
