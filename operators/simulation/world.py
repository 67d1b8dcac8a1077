"""Static parts of a simulated world: catalogue, customers and order placement times."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from operators.simulation.clock import DAY, HOUR
from operators.simulation.scenarios import FamilySpec, ScenarioParams

_HABIT_SIGMA = 1.0


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    """Normalised cumulative weights for :func:`pick_index`."""
    total = float(sum(weights))
    return [w / total for w in accumulate(weights)]


def pick_index(cum: list[float], u: float) -> int:
    """Index drawn from normalised cumulative weights with a uniform ``u``."""
    return min(bisect_right(cum, u), len(cum) - 1)


@dataclass(frozen=True, slots=True)
class Sku:
    """One catalogue entry with its list price and unit cost."""

    sku: str
    family: int
    price: float
    cost: float


@dataclass(slots=True)
class Catalog:
    """The brand's SKUs grouped by family, plus per-family return reason tables."""

    families: tuple[FamilySpec, ...]
    skus: list[list[Sku]]
    family_cum: list[float]
    reason_names: list[list[str]]
    reason_cum: list[list[float]]

    @classmethod
    def build(cls, params: ScenarioParams) -> Catalog:
        """Draw the catalogue from the scenario's fixed catalogue seed."""
        rng = np.random.default_rng(params.catalog_seed)
        skus: list[list[Sku]] = []
        for index, fam in enumerate(params.families):
            prices = np.exp(rng.normal(np.log(fam.price_median), fam.price_sigma, fam.skus))
            # Retail price points (..., 34.90, 39.00) rather than raw floats.
            prices = np.maximum(6.0, np.round(prices * 10.0) / 10.0 - 0.1)
            margins = rng.uniform(fam.margin_low, fam.margin_high, fam.skus)
            skus.append(
                [
                    Sku(f"{fam.code}-{j + 1:03d}", index, round(p, 2), round(p * (1 - m), 2))
                    for j, (p, m) in enumerate(zip(prices.tolist(), margins.tolist(), strict=True))
                ]
            )
        return cls(
            families=params.families,
            skus=skus,
            family_cum=cumulative([fam.weight for fam in params.families]),
            reason_names=[[name for name, _ in fam.reasons] for fam in params.families],
            reason_cum=[cumulative([w for _, w in fam.reasons]) for fam in params.families],
        )


@dataclass(slots=True)
class CustomerPool:
    """Customers with a pre-scenario history and a latent return propensity.

    ``multiplier`` scales every return hazard of the customer and also shaped the visible
    history (``prior_returns``), which is what makes history a useful but noisy signal.
    """

    size: int
    prior_orders: list[int]
    prior_returns: list[int]
    prior_value: list[float]
    multiplier: list[float]
    temper: list[float]
    abusive: list[bool]
    loyal_size: int

    @classmethod
    def build(cls, params: ScenarioParams, orders: int, rng: np.random.Generator) -> CustomerPool:
        """Draw ``customer_pool_ratio * orders`` customers."""
        size = max(20, round(orders * params.customer_pool_ratio))
        loyal_size = max(1, round(size * params.loyal_share))
        is_loyal = np.arange(size) < loyal_size
        abusive = rng.random(size) < params.abusive_share
        new = (rng.random(size) < params.new_customer_share) & ~is_loyal & ~abusive
        prior = 1 + rng.poisson(np.where(is_loyal, 7.0, 3.5))
        prior = np.where(new, 0, prior)
        prior = np.where(abusive, np.maximum(prior, 3), prior)
        # Mean-one lognormal: a few heavy returners, many customers who almost never return.
        sigma = _HABIT_SIGMA
        multiplier = np.exp(rng.normal(-sigma * sigma / 2, sigma, size))
        return_share = np.clip(0.1 * multiplier, 0.0, 0.8)
        return_share = np.where(abusive, rng.uniform(0.45, 0.85, size), return_share)
        returns = rng.binomial(prior, return_share)
        value = np.round(prior * np.exp(rng.normal(np.log(72.0), 0.35, size)), 2)
        temper = rng.normal(0.0, 0.35, size)
        return cls(
            size=size,
            prior_orders=prior.tolist(),
            prior_returns=returns.tolist(),
            prior_value=value.tolist(),
            multiplier=multiplier.tolist(),
            temper=temper.tolist(),
            abusive=abusive.tolist(),
            loyal_size=loyal_size,
        )


def placement_times(
    params: ScenarioParams, start: int, orders: int, rng: np.random.Generator
) -> list[int]:
    """Sorted order placement times following the scenario's day and hour curves."""
    day_w = np.asarray(params.day_weights[: params.days], dtype=float)
    hour_w = np.asarray(params.hour_weights, dtype=float)
    days = rng.choice(len(day_w), size=orders, p=day_w / day_w.sum())
    hours = rng.choice(24, size=orders, p=hour_w / hour_w.sum())
    seconds = rng.integers(0, HOUR, size=orders)
    times = start + days.astype(np.int64) * DAY + hours.astype(np.int64) * HOUR + seconds
    times.sort()
    placed: list[int] = times.tolist()
    return placed
