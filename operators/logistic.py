"""Online Bayesian logistic regression: the logistic link, and one Gaussian posterior over
many weights with their full covariance, updated one outcome at a time (the Laplace
approximation along the covariance: Chapelle & Li, 2011, Algorithm 3, with the rank-one
Sherman-Morrison update of the covariance instead of one precision per weight).

``operators.bandit`` keeps the models of P(refund | action, segment) on it with
``learning.covariance: full``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def logit(p: float) -> float:
    p = min(max(p, 1e-4), 1.0 - 1e-4)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z < -35.0:
        return 0.0
    if z > 35.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, from its Cholesky factor and a
    forward substitution written out in numpy. LAPACK's general inverse (``getri`` via
    ``np.linalg.inv``) needs more stack than a Bytewax worker thread has and crashes the
    process there; the Cholesky factorisation and matrix products do not.

    >>> m = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> bool(np.allclose(spd_inverse(m) @ m, np.eye(2)))
    True
    >>> singular = np.array([[1.0, 1.0], [1.0, 1.0 - 1e-17]])  # rounding made it so
    >>> bool(np.isfinite(spd_inverse(singular)).all())
    True
    """
    n = len(a)
    sym = (a + a.T) / 2.0
    try:
        factor = np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        # Rounding in many rank-one updates can leave a vanishing eigenvalue a hair below
        # zero: a jitter far below any weight's variance makes it positive again.
        factor = np.linalg.cholesky(sym + np.eye(n) * (1e-10 * float(np.mean(np.diag(sym)))))
    inverse_factor = np.zeros((n, n))
    for i in range(n):
        row = -(factor[i, :i] @ inverse_factor[:i])
        row[i] += 1.0
        inverse_factor[i] = row / factor[i, i]
    out = inverse_factor.T @ inverse_factor
    return (out + out.T) / 2.0  # symmetric to the last bit


class Gaussian:
    """One Gaussian posterior over every weight ``(arm, key)``: mean vector and full
    covariance, grown as keys appear (a new weight is independent of the others, at its
    arm's prior variance: ``prior_var[arm]``, else ``default_var``). An outcome is one
    Newton step of the Laplace approximation along the covariance: the same step as the
    diagonal version, with the rank-one Sherman-Morrison update of the covariance instead
    of a per-weight precision.

    >>> g = Gaussian({"none": 1.0}, default_var=0.25)
    >>> for i in range(200):
    ...     g.update([("none", "*"), ("none", "l=A")], 0.0, int(i % 10 < 3))
    >>> mu, cov = g.moments([("none", ("*", "l=A"))])
    >>> round(float(sigmoid(mu[0])), 2), cov[0][0] < 0.05
    (0.3, True)
    """

    __slots__ = ("cov", "default_var", "index", "mean", "n", "prior_var")

    def __init__(self, prior_var: dict[str, float], default_var: float) -> None:
        self.prior_var = dict(prior_var)
        self.default_var = default_var
        self.index: dict[tuple[str, str], int] = {}
        self.n = 0
        self.mean = np.zeros(16)
        self.cov = np.zeros((16, 16))

    def var_of(self, arm: str) -> float:
        """The prior variance of each of ``arm``'s weights."""
        return self.prior_var.get(arm, self.default_var)

    def _slot(self, arm: str, key: str) -> int:
        i = self.index.get((arm, key))
        if i is not None:
            return i
        i = self.n
        if i == len(self.mean):  # grow by doubling: a copy per doubling, not per key
            size = 2 * i
            mean, cov = np.zeros(size), np.zeros((size, size))
            mean[:i], cov[:i, :i] = self.mean, self.cov
            self.mean, self.cov = mean, cov
        self.cov[i, i] = self.var_of(arm)
        self.index[(arm, key)] = i
        self.n = i + 1
        return i

    def update(self, weights: Sequence[tuple[str, str]], offset: float, label: int) -> None:
        """Learn one outcome of a case whose logit is ``offset`` plus ``weights``."""
        idx = [self._slot(a, k) for a, k in weights]
        n = self.n
        cov, mean = self.cov[:n, :n], self.mean[:n]
        u = cov[:, idx].sum(axis=1)  # covariance times the case's one-hot vector
        v = float(u[idx].sum())
        p = sigmoid(offset + float(mean[idx].sum()))
        h = p * (1.0 - p)
        mean += ((label - p) / (1.0 + h * v)) * u
        s = math.sqrt(h / (1.0 + h * v)) * u  # scaled once: the update stays symmetric
        cov -= np.outer(s, s)

    def forget(self, keep: float) -> None:
        """Stabilised exponential forgetting (Kulhavy & Zarrop, 1993): every outcome
        learned so far counts ``keep`` times as much as before, the prior in full. In
        information form, with the prior's precision ``L0`` (diagonal) and mean 0::

            precision' = keep * precision + (1 - keep) * L0
            precision' @ mean' = keep * precision @ mean

        so a weight no outcome ever touched stays at its prior, and what was learned
        fades towards it. ``keep`` = 1 changes nothing; forgetting twice equals forgetting
        once by the product.

        >>> g = Gaussian({"none": 1.0}, default_var=1.0)
        >>> for _ in range(100):
        ...     g.update([("none", "*")], 0.0, 1)
        >>> before = g.moments([("none", ("*",))])
        >>> g.forget(0.5)
        >>> after = g.moments([("none", ("*",))])
        >>> 0.0 < after[0][0] < before[0][0], after[1][0][0] > before[1][0][0]
        (True, True)
        """
        n = self.n
        if n == 0 or keep >= 1.0:
            return
        cov, mean = self.cov[:n, :n], self.mean[:n]
        precision = spd_inverse(cov)
        information = keep * (precision @ mean)
        prior_precision = np.array([1.0 / self.var_of(arm) for arm, _ in self.index])
        precision *= keep
        precision[np.diag_indices(n)] += (1.0 - keep) * prior_precision
        forgotten = spd_inverse(precision)
        self.cov[:n, :n] = forgotten
        self.mean[:n] = forgotten @ information

    def moments(
        self, parts: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[list[float], list[list[float]]]:
        """Means and covariance of the sums ``sum_k w[arm, k]``, one per ``(arm, keys)``."""
        rows: list[list[int]] = []
        extra: list[float] = []
        index = self.index
        for arm, keys in parts:
            known = [index[(arm, k)] for k in keys if (arm, k) in index]
            rows.append(known)
            extra.append((len(keys) - len(known)) * self.var_of(arm))
        flat = [i for r in rows for i in r]
        means = [float(self.mean[r].sum()) for r in rows]
        sub = self.cov[np.ix_(flat, flat)]
        pick = np.zeros((len(rows), len(flat)))
        j = 0
        for c, r in enumerate(rows):
            pick[c, j : j + len(r)] = 1.0
            j += len(r)
        cov = pick @ sub @ pick.T
        for c, e in enumerate(extra):
            cov[c, c] += e
        return means, cov.tolist()

    def copy(self) -> Gaussian:
        g = Gaussian.__new__(Gaussian)
        g.__setstate__(self.__getstate__())  # the arrays are copied there, once
        return g

    def __getstate__(self) -> dict[str, Any]:
        # Views of the used part: pickling writes only those values.
        n = self.n
        return {
            "prior_var": self.prior_var, "default_var": self.default_var,
            "index": self.index, "n": n, "mean": self.mean[:n], "cov": self.cov[:n, :n],
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.prior_var, self.index = dict(state["prior_var"]), dict(state["index"])
        self.default_var, self.n = state["default_var"], state["n"]
        size = max(16, len(state["mean"]))
        self.mean, self.cov = np.zeros(size), np.zeros((size, size))
        self.mean[: self.n], self.cov[: self.n, : self.n] = state["mean"], state["cov"]


__all__ = ["Gaussian", "logit", "sigmoid"]
