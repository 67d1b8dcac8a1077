"""Which action to take: Thompson sampling over Bayesian logistic models of
P(refund within the label horizon | action, context), one for doing nothing and one per
action.

Each model is a logistic regression on one-hot *segment* features (decision point, courier
lane, SKU family, support intent, customer tier, campaign, and an intercept) with the
heuristic prior as a fixed offset::

    logit P(refund | none, x) = logit(prior_none(x))                   + sum_k w_none[k]
    logit P(refund | a,    x) = logit(prior_none(x) * (1 - r_a(x)))    + sum_k w_none[k]
                                                                       + sum_k w_a[k]

where ``prior_none`` and ``r_a`` are :class:`~operators.scoring.HeuristicScorer`'s
P(refund | no action) and P(recovered | a). An action shares the no-action weights (how
far the prior is off for the segment's refund level) and learns its own *effect* weights
on top, so in a comparison the level's uncertainty moves both sides alike. A no-action
outcome (of the holdout) teaches ``w_none``; an action's outcome teaches ``w_a`` and
``w_none`` together, as one logistic regression (:data:`JOINT_LEVEL`), so the prior's
error about a segment's refund level is not left in the action's effect. Every weight
has an independent Gaussian posterior (mean, precision) that starts at (0,
``prior_precision``) for ``w_none`` and (0, ``EFFECT_PRECISION_SCALE * prior_precision``)
for ``w_a``, and is updated online with the Laplace approximation of Chapelle & Li (2011),
"An Empirical Evaluation of Thompson Sampling", Algorithm 3, one outcome at a time. The
weights of one case are a few one-hot keys, so each part of a logit is a sum of
independent Gaussians: one normal draw samples it. With ``learning.covariance: full``
(:class:`Gaussian`) the weights share one Gaussian with a full covariance instead: the
keys of a case always occur together, and only the full covariance knows that their sum is
better known than each of them (the diagonal keeps about seven times its variance).

How fast data overrule the prior: an outcome at predicted rate ``p`` adds ``p (1 - p)`` to
the precision of every key it touches, so a key (e.g. ``lane=DE-NL``) has learned as much
from ``n`` outcomes as the prior says once ``n p (1 - p) = prior_precision``.
``prior_precision = prior_outcomes / 4`` makes that ``prior_outcomes`` outcomes at p = 0.5
for a segment's level (more at rarer rates: 1.6x at p = 0.2) and
``EFFECT_PRECISION_SCALE`` times as many for an action's effect in it.

>>> post = BanditLearner(prior_precision=2.0)
>>> keys = ("*", "lane=A")
>>> for i in range(400):  # 3 in 10 cases reassured in lane A still ask for a refund
...     post.update("proactive_reassurance", keys, 0.0, int(i % 10 < 3))
>>> snap = post.posterior()
>>> mu, var = snap.moments("proactive_reassurance", keys, 0.0)  # level + effect
>>> round(sigmoid(mu), 1), var < 0.05
(0.3, True)
>>> snap.moments("none", keys, 0.0)[0] < 0.0  # the shared level learned from them too
True
>>> BanditLearner(2.0).posterior().moments("none", keys, 0.0)  # no outcome yet: the prior
(0.0, 1.0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from operators.decision import unit_hash
from operators.logistic import Gaussian, logit, sigmoid

NONE = "none"

#: Thompson draws per decision: the choice is one of them (picked by the decision's seed),
#: so the logged propensity is exact given the draws, at a resolution of 1/DRAWS.
DRAWS = 32
#: An action's outcome also teaches the shared no-action (level) weights of its segment:
#: one logistic regression over level and effect weights. Without it the holdout alone
#: taught the level, and the action weights absorbed the prior's level error (measured on
#: the tuning worlds: effect weights near +2 logits where the true effect was about zero).
JOINT_LEVEL = True
#: Effect weights' prior precision, as a multiple of the level weights': an effect is a
#: contrast between arms and is learned more slowly than a segment's refund level (tuned
#: on world seeds 0-9 among 1, 4 and 8; ``docs/decisions.md``).
EFFECT_PRECISION_SCALE = 4.0
#: The guard: the learned choice replaces the static rules' only where it saves more in
#: at least this share of the posterior draws (31.68 of 32: all of them). On world seeds
#: 0-9 (misspecified) 0.6, 0.8 and 0.99 were within 0.3 points of each other in median
#: (0.6: worst world -2.5); the most cautious is kept (``benchmarks/tune_policy.py``).
GUARD_CONFIDENCE = 0.99
#: Forgetting (``learning.outcome_half_life_days``) is applied in steps of at least this
#: much event time (seconds); shorter ones add up until then.
FORGET_STEP = 3600.0


def _quantiles(n: int) -> tuple[float, ...]:
    unit = NormalDist()
    return tuple(unit.inv_cdf((k + 0.5) / n) for k in range(n))


def _orders(n: int, count: int = 1024) -> tuple[tuple[int, ...], ...]:
    rnd = random.Random(f"salvage-thompson-orders-{n}")  # fixed: the same in every process
    out = []
    for _ in range(count):
        order = list(range(n))
        rnd.shuffle(order)
        out.append(tuple(order))
    return tuple(out)


_QUANTILES = {n: _quantiles(n) for n in (8, 16, 32, 64)}
_ORDERS = {n: _orders(n) for n in (8, 16, 32, 64)}


def prior_offsets(
    p_none: float, recovery: dict[str, float], actions: Iterable[str]
) -> dict[str, float]:
    """The fixed offsets: logit of the heuristic P(refund | arm) for ``none`` and ``actions``.

    >>> o = prior_offsets(0.5, {"a": 0.5}, ["a"])
    >>> round(o["none"], 3), round(o["a"], 3)
    (0.0, -1.099)
    """
    out = {NONE: logit(p_none)}
    for a in actions:
        out[a] = logit(p_none * (1.0 - recovery.get(a, 0.0)))
    return out


@dataclass(frozen=True)
class BanditPosterior:
    """An immutable copy of the posteriors (what scorers read): per arm, per key, the
    weight's (mean, precision); keys never updated are at (0, ``prior_precision``).
    With ``gaussian`` (``learning.covariance: full``), one Gaussian over every weight."""

    prior_precision: float
    arms: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Prior precision of an action's effect weights (None: ``prior_precision``).
    effect_precision: float | None = None
    gaussian: Gaussian | None = None

    def precision_of(self, arm: str) -> float:
        """The prior precision of ``arm``'s weights."""
        if arm == NONE:
            return self.prior_precision
        if self.effect_precision is None:
            return self.prior_precision * EFFECT_PRECISION_SCALE
        return self.effect_precision

    def weights(self, arm: str, keys: Sequence[str]) -> tuple[float, float]:
        """Mean and variance of the sum of ``arm``'s weights over ``keys``."""
        if self.gaussian is not None:
            means, cov = self.gaussian.moments([(arm, keys)])
            return means[0], cov[0][0]
        weights = self.arms.get(arm)
        prior_var = 1.0 / self.precision_of(arm)
        if not weights:
            return 0.0, len(keys) * prior_var
        mu, var = 0.0, 0.0
        for k in keys:
            w = weights.get(k)
            if w is None:
                var += prior_var
            else:
                mu += w[0]
                var += 1.0 / w[1]
        return mu, var

    def joint(
        self, arms: Sequence[str], keys: Sequence[str]
    ) -> tuple[list[float], list[list[float]]] | None:
        """Means and covariance of each arm's weight sum over ``keys``, or None where the
        weights are independent (the diagonal posterior: :meth:`weights` says it all)."""
        if self.gaussian is None:
            return None
        return self.gaussian.moments([(a, keys) for a in arms])

    def moments(self, arm: str, keys: Sequence[str], offset: float) -> tuple[float, float]:
        """Mean and variance of the arm's logit for a case with these keys (an action's
        includes the no-action weights it shares)."""
        if arm != NONE and self.gaussian is not None:
            means, cov = self.gaussian.moments([(NONE, keys), (arm, keys)])
            return offset + means[0] + means[1], cov[0][0] + 2 * cov[0][1] + cov[1][1]
        mu, var = self.weights(NONE, keys)
        if arm != NONE:
            mu_a, var_a = self.weights(arm, keys)
            mu, var = mu + mu_a, var + var_a
        return offset + mu, var


class BanditLearner:
    """The mutable posteriors; only the learner step writes them.

    ``joint``: an action's outcome updates the shared no-action (level) weights and the
    action's effect weights together, as one logistic regression over both (the default);
    without it, only the effect weights, with the level's current means as an offset.
    ``effect_precision``: the prior precision of the effect weights (default: the level's).
    ``full``: one Gaussian with a full covariance over every weight (:class:`Gaussian`,
    policy ``learning.covariance: full``) instead of independent ones.
    """

    #: A class default, so that a learner pickled before the full covariance existed
    #: restores with none.
    gaussian: Gaussian | None = None
    #: Seconds of event time after which a learned outcome counts half (None: for ever;
    #: policy ``learning.outcome_half_life_days``); set by the caller, like the horizon.
    half_life: float | None = None
    #: Event time up to which the posterior has been forgotten (:meth:`forget_until`).
    forgotten_at: float = -math.inf

    def __init__(
        self,
        prior_precision: float = 12.5,
        effect_precision: float | None = None,
        joint: bool | None = None,
        full: bool = False,
    ) -> None:
        if prior_precision <= 0:
            raise ValueError("prior_precision must be > 0")
        if effect_precision is None:
            effect_precision = prior_precision * EFFECT_PRECISION_SCALE
        if effect_precision <= 0:
            raise ValueError("effect_precision must be > 0")
        self.prior_precision = prior_precision
        self.effect_precision = effect_precision
        self.joint = JOINT_LEVEL if joint is None else joint
        self.arms: dict[str, dict[str, tuple[float, float]]] = {}
        self.outcomes: dict[str, int] = {}
        self.gaussian = (
            Gaussian({NONE: 1.0 / prior_precision}, 1.0 / effect_precision) if full else None
        )

    def update(self, arm: str, keys: Sequence[str], offset: float, label: int) -> None:
        """Learn one outcome (1 = refunded within the horizon) of ``arm`` in a segment.

        One Newton step of the Laplace approximation on the current Gaussian: the mean moves
        along the prior covariance by ``(y - p) / (1 + p (1 - p) v)`` (``v``: the variance
        of the logit), and each touched key gains ``p (1 - p)`` precision. An action's
        outcome updates its effect weights and (``joint``) the shared no-action weights of
        its segment; otherwise the no-action weights' current means are an offset.
        """
        if self.gaussian is not None:
            self._update_full(self.gaussian, arm, keys, offset, label)
            self.outcomes[arm] = self.outcomes.get(arm, 0) + 1
            return
        z = offset
        v = 0.0
        current: list[tuple[dict[str, tuple[float, float]], str, float, float]] = []
        parts = [(arm, self.effect_precision if arm != NONE else self.prior_precision)]
        if arm != NONE:
            if self.joint:
                parts.append((NONE, self.prior_precision))
            else:
                level = self.arms.get(NONE, {})
                for k in keys:
                    w = level.get(k)
                    if w is not None:
                        z += w[0]
        for name, lam in parts:
            weights = self.arms.setdefault(name, {})
            for k in keys:
                m, q = weights.get(k, (0.0, lam))
                current.append((weights, k, m, q))
                z += m
                v += 1.0 / q
        p = sigmoid(z)
        h = p * (1.0 - p)
        step = (label - p) / (1.0 + h * v)
        for weights, k, m, q in current:
            weights[k] = (m + step / q, q + h)
        self.outcomes[arm] = self.outcomes.get(arm, 0) + 1

    def forget_until(self, t: float) -> None:
        """Fade what was learned by the event time since the last call (stabilised
        exponential forgetting, :meth:`Gaussian.forget`): with ``keep = 0.5 ** (elapsed /
        half_life)`` each weight's precision becomes ``keep * precision + (1 - keep) *
        prior precision`` and its information ``keep * precision * mean``. A shop that
        changes (a courier lane where reassurance stops working) is then learned from its
        recent outcomes, not outvoted by months of old ones. Called in event time only
        (the learner's releases), so a replay forgets exactly alike. Steps shorter than
        :data:`FORGET_STEP` wait and add up (forgetting composes: two steps are one by the
        product), so a live learner releasing every batch does not invert the covariance
        each time.

        >>> b = BanditLearner(prior_precision=4.0)
        >>> b.half_life = 10.0 * FORGET_STEP  # ten hours
        >>> for _ in range(50):
        ...     b.update("none", ("*",), 0.0, 1)
        >>> b.forget_until(0.0)  # the first call starts the clock
        >>> mean, precision = b.arms["none"]["*"]
        >>> b.forget_until(10.0 * FORGET_STEP)  # one half-life later
        >>> faded_mean, faded_precision = b.arms["none"]["*"]
        >>> faded_mean < mean, round(faded_precision - 4.0, 6) == round((precision - 4.0) / 2, 6)
        (True, True)
        """
        if self.half_life is None or not math.isfinite(t):
            return
        last = self.forgotten_at
        if not math.isfinite(last):
            self.forgotten_at = t  # the first call starts the clock
            return
        if t - last < FORGET_STEP:  # also an earlier or the same time: nothing to fade
            return
        keep = 0.5 ** ((t - last) / self.half_life)
        self.forgotten_at = t
        if self.gaussian is not None:
            self.gaussian.forget(keep)
            return
        for arm, weights in self.arms.items():
            lam0 = self.prior_precision if arm == NONE else self.effect_precision
            for k, (m, q) in weights.items():
                faded = keep * q + (1.0 - keep) * lam0
                weights[k] = (keep * q * m / faded, faded)

    def _update_full(
        self, g: Gaussian, arm: str, keys: Sequence[str], offset: float, label: int
    ) -> None:
        weights = [(arm, k) for k in keys]
        if arm != NONE:
            if self.joint:
                weights += [(NONE, k) for k in keys]
            else:
                offset += g.moments([(NONE, keys)])[0][0]
        g.update(weights, offset, label)

    def posterior(self) -> BanditPosterior:
        return BanditPosterior(
            self.prior_precision,
            {a: dict(w) for a, w in self.arms.items()},
            dict(self.outcomes),
            self.effect_precision,
            self.gaussian.copy() if self.gaussian is not None else None,
        )


def seed_of(order_id: str, trigger_event_id: str) -> int:
    """The decision's random seed: the same order and trigger always draw the same."""
    return int(unit_hash(f"thompson:{order_id}:{trigger_event_id}") * 2.0**53)


@dataclass(frozen=True, slots=True)
class Option:
    """An action that may be chosen, with what choosing it costs and would save."""

    action: str
    cost: float  # contact cost plus credit
    value: float  # money a prevented refund keeps (margin at risk + customer value)


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen action, the probability the policy chose it, and each option's share."""

    action: str
    propensity: float
    shares: dict[str, float]
    explored: bool
    mean_saving: float


def _draws(mu: float, sd: float, n: int, rng: random.Random) -> list[float]:
    """``n`` stratified draws from N(mu, sd²) in a random order (a Latin hypercube sample
    when several are paired): exact quantiles, cheaper and less noisy than ``n`` normal
    draws."""
    order = _ORDERS[n][int(rng.random() * len(_ORDERS[n]))]
    q = _QUANTILES[n]
    return [mu + sd * q[i] for i in order]


def _mixed(shares: dict[str, float], epsilon: float) -> dict[str, float]:
    n = len(shares)
    return {a: (1.0 - epsilon) * s + epsilon / n for a, s in shares.items()}


def static_choice(best: str, options: Sequence[str], epsilon: float, rng: random.Random) -> Choice:
    """The static rules' ``best`` with an epsilon of uniform exploration over ``options``.

    >>> c = static_choice("a", ["none", "a", "b"], 0.3, random.Random(1))
    >>> round(sum(c.shares.values()), 9), round(c.shares["a"], 3)
    (1.0, 0.8)
    """
    shares = _mixed({a: 1.0 if a == best else 0.0 for a in options}, epsilon)
    explored = len(options) > 1 and rng.random() < epsilon
    action = options[int(rng.random() * len(options))] if explored else best
    return Choice(action, shares[action], shares, explored, 0.0)


class _Sampled:
    """Each option's saving over the threshold in every draw, worked out when first read:
    the guarded choice reads two options' at most, and not at all when the means agree
    with its baseline (the draws themselves are taken up front, so the random stream is
    the same whatever is read)."""

    __slots__ = ("_base", "_done", "_effects", "_min_saving", "_p_base")

    def __init__(self, base: list[float], draws: int, min_saving: float) -> None:
        self._base = base
        self._p_base: list[float] | None = None
        self._effects: dict[str, tuple[list[float], Option]] = {}
        self._min_saving = min_saving
        self._done: dict[str, list[float]] = {NONE: [0.0] * draws}

    def add(self, option: Option, effect: list[float]) -> None:
        self._effects[option.action] = (effect, option)

    def __contains__(self, action: str) -> bool:
        return action in self._done or action in self._effects

    def __getitem__(self, action: str) -> list[float]:
        done = self._done.get(action)
        if done is not None:
            return done
        effect, o = self._effects[action]
        p_base = self._p_base
        if p_base is None:
            p_base = self._p_base = [sigmoid(z) for z in self._base]
        value, cost, min_saving = o.value, o.cost, self._min_saving
        done = self._done[action] = [
            (p - sigmoid(z + e)) * value - cost - min_saving
            for p, z, e in zip(p_base, self._base, effect, strict=True)
        ]
        return done


def _savings(
    posterior: BanditPosterior,
    keys: Sequence[str],
    offsets: dict[str, float],
    options: Sequence[Option],
    rng: random.Random,
    min_saving: float,
    draws: int,
) -> tuple[dict[str, float], _Sampled]:
    """Each option's saving over the threshold, ``(p_none - p_a) * value - cost -
    min_saving`` (``none``: 0), under the posterior means and in ``draws`` draws.

    An action's logit is the no-action logit (its offset, its segment weights) plus the
    action's offset difference and its own effect weights: the draws of the no-action part
    are shared, so what is uncertain about the refund level of a segment moves both sides
    of a comparison alike and only the effects decide.
    """
    joint = posterior.joint([NONE, *(o.action for o in options)], keys)
    if joint is not None:
        mu_n, mu_effects, base, effects = _correlated_draws(joint, offsets, options, rng, draws)
    else:
        mu_n, var_n = posterior.weights(NONE, keys)
        mu_n += offsets[NONE]
        base = _draws(mu_n, math.sqrt(var_n), draws, rng)
        mu_effects, effects = [], []
        for o in options:
            mu_e, var_e = posterior.weights(o.action, keys)
            mu_e += offsets[o.action] - offsets[NONE]
            mu_effects.append(mu_e)
            effects.append(_draws(mu_e, math.sqrt(var_e), draws, rng))
    p_none = sigmoid(mu_n)
    means: dict[str, float] = {NONE: 0.0}
    sampled = _Sampled(base, draws, min_saving)
    for o, mu_e, effect in zip(options, mu_effects, effects, strict=True):
        means[o.action] = (p_none - sigmoid(mu_n + mu_e)) * o.value - o.cost - min_saving
        sampled.add(o, effect)
    return means, sampled


def _correlated_draws(
    joint: tuple[list[float], list[list[float]]],
    offsets: dict[str, float],
    options: Sequence[Option],
    rng: random.Random,
    draws: int,
) -> tuple[float, list[float], list[float], list[list[float]]]:
    """The no-action logit's and each option's effect's mean and draws, for a posterior
    whose parts are correlated: the same stratified standard normals per part as the
    independent case, mixed by the Cholesky factor of their covariance."""
    mus, cov = joint
    mus = [mus[0] + offsets[NONE]] + [
        m + offsets[o.action] - offsets[NONE] for m, o in zip(mus[1:], options, strict=True)
    ]
    matrix = np.array(cov)
    try:
        factor = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:  # rounding made it a hair from definite
        factor = np.linalg.cholesky(matrix + 1e-9 * np.eye(len(mus)))
    normals = np.array([_draws(0.0, 1.0, draws, rng) for _ in mus])
    mixed: list[list[float]] = (factor @ normals + np.array(mus)[:, None]).tolist()
    return mus[0], mus[1:], mixed[0], mixed[1:]


def guarded_choice(
    posterior: BanditPosterior,
    keys: Sequence[str],
    offsets: dict[str, float],
    options: Sequence[Option],
    epsilon: float,
    rng: random.Random,
    min_saving: float = 0.0,
    baseline: str = NONE,
    confidence: float | None = None,
    draws: int = DRAWS,
) -> Choice:
    """The best option under the posterior means, but only where the posterior is sure:
    the learned choice replaces the ``baseline`` (the static rules' choice) only when it
    saves more than the baseline in at least ``confidence`` (default
    :data:`GUARD_CONFIDENCE`) of ``draws`` posterior draws.
    An epsilon of uniform exploration over ``none`` and ``options`` (exact propensities).

    This is safe policy improvement with a baseline (Laroche et al., 2019): without
    outcomes the choice *is* the static rules', and it changes segment by segment as the
    data become conclusive.

    >>> post = BanditPosterior(4.0)
    >>> opts = [Option("a", 1.0, 100.0)]
    >>> wide = guarded_choice(post, ("*",), {"none": 0.0, "a": -0.1}, opts, 0.1,
    ...                       random.Random(3), baseline="none")
    >>> wide.action, round(wide.shares["none"], 3)  # a small, uncertain gain: keep the baseline
    ('none', 0.95)
    """
    arms = [NONE, *(o.action for o in options)]
    means, sampled = _savings(posterior, keys, offsets, options, rng, min_saving, draws)
    best = max(arms, key=lambda a: means[a])
    keep = baseline if baseline in sampled else NONE
    if confidence is None:
        confidence = GUARD_CONFIDENCE
    if best != keep:
        wins = sum(v > w for v, w in zip(sampled[best], sampled[keep], strict=True))
        if wins < confidence * draws:
            best = keep
    choice = static_choice(best, arms, epsilon, rng)
    saving = means[choice.action] + (min_saving if choice.action != NONE else 0.0)
    return Choice(choice.action, choice.propensity, choice.shares, choice.explored, saving)


def thompson_choice(
    posterior: BanditPosterior,
    keys: Sequence[str],
    offsets: dict[str, float],
    options: Sequence[Option],
    epsilon: float,
    rng: random.Random,
    min_saving: float = 0.0,
    draws: int = DRAWS,
) -> Choice:
    """Thompson sampling over ``none`` and ``options`` with an epsilon floor.

    Each of ``draws`` draws samples P(refund | none) and P(refund | a) from the posteriors
    and picks the option with the largest sampled saving
    ``(p_none - p_a) * value - cost`` (``none``: 0). The decision is one of the draws,
    picked at random, so ``shares`` (each option's share of the draws, mixed with the
    epsilon floor) is the exact probability of each choice given the draws.

    >>> post = BanditPosterior(4.0)
    >>> opts = [Option("a", 1.0, 100.0)]
    >>> c = thompson_choice(post, ("*",), {"none": 0.0, "a": -1.0}, opts, 0.1, random.Random(3))
    >>> round(sum(c.shares.values()), 9), c.shares["none"] >= 0.05, c.shares["a"] >= 0.05
    (1.0, True, True)
    """
    arms = [NONE, *(o.action for o in options)]
    means, sampled = _savings(posterior, keys, offsets, options, rng, min_saving, draws)
    counts = dict.fromkeys(arms, 0)
    picks = []
    for k in range(draws):
        best, best_v = NONE, 0.0
        for o in options:
            v = sampled[o.action][k]
            if v > best_v:
                best, best_v = o.action, v
        counts[best] += 1
        picks.append(best)
    shares = _mixed({a: c / draws for a, c in counts.items()}, epsilon)
    explored = rng.random() < epsilon
    pick = rng.random()
    action = arms[int(pick * len(arms))] if explored else picks[int(pick * draws)]
    saving = means[action] + min_saving if action != NONE else 0.0
    return Choice(action, shares[action], shares, explored, saving)


__all__ = [
    "DRAWS",
    "BanditLearner",
    "BanditPosterior",
    "Choice",
    "Option",
    "guarded_choice",
    "logit",
    "prior_offsets",
    "seed_of",
    "sigmoid",
    "static_choice",
    "thompson_choice",
]
