"""Holdout uplift: what each action achieves against the control arm, with intervals.

For an action ``a``, the treated group is the treatment-arm orders whose first action was
``a``; the control group is the control-arm orders for which the policy chose ``a`` but
did not emit it (control decisions are logged, never sent). Both groups were selected by
the same rule, so their difference estimates the effect of ``a`` on the cases it is used
on. Uplift is reported as the reduction of the refund rate (control - treated) with a
Wald interval for a difference of proportions, and the refund value saved per case with a
Welch interval.

>>> rows = [UpliftRow("treatment", "exchange_first_offer", False, 0.0)] * 80 + [
...     UpliftRow("treatment", "exchange_first_offer", True, 50.0)] * 20 + [
...     UpliftRow("control", "exchange_first_offer", True, 50.0)] * 60 + [
...     UpliftRow("control", "exchange_first_offer", False, 0.0)] * 40
>>> u = uplift_by_action(rows)["exchange_first_offer"]
>>> u.refund_rate_reduction, u.ci_low < 0.4 < u.ci_high
(0.4, True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from operators.vocabulary import Outcome

Z95 = 1.959963984540054
SEGMENTS = ("sku_family", "courier_lane", "campaign", "support_reason")


@dataclass(frozen=True, slots=True)
class UpliftRow:
    """One decided order: its arm, first action, and whether it ended in a refund."""

    arm: str
    action: str
    refunded: bool
    refund_value: float
    segments: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Uplift:
    """Uplift of one action (optionally within one segment), with a 95 % interval."""

    treated: int
    control: int
    treated_refund_rate: float | None
    control_refund_rate: float | None
    refund_rate_reduction: float | None
    ci_low: float | None
    ci_high: float | None
    value_saved_per_case: float | None
    value_ci_low: float | None
    value_ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _mean_var(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return mean, var


def estimate(treated: list[UpliftRow], control: list[UpliftRow]) -> Uplift:
    """Refund-rate reduction and value saved per case, control minus treated."""
    nt, nc = len(treated), len(control)
    if nt == 0 or nc == 0:
        pt = sum(r.refunded for r in treated) / nt if nt else None
        pc = sum(r.refunded for r in control) / nc if nc else None
        return Uplift(nt, nc, pt, pc, None, None, None, None, None, None)
    pt = sum(r.refunded for r in treated) / nt
    pc = sum(r.refunded for r in control) / nc
    diff = pc - pt
    se = math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    mt, vt = _mean_var([r.refund_value for r in treated])
    mc, vc = _mean_var([r.refund_value for r in control])
    saved = mc - mt
    se_v = math.sqrt(vt / nt + vc / nc)
    return Uplift(
        nt, nc, round(pt, 6), round(pc, 6), round(diff, 6),
        round(diff - Z95 * se, 6), round(diff + Z95 * se, 6),
        round(saved, 4), round(saved - Z95 * se_v, 4), round(saved + Z95 * se_v, 4),
    )  # fmt: skip


def uplift_by_action(rows: Iterable[UpliftRow]) -> dict[str, Uplift]:
    """Uplift per action over all segments."""
    groups: dict[str, dict[str, list[UpliftRow]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[r.action][r.arm].append(r)
    return {a: estimate(g["treatment"], g["control"]) for a, g in sorted(groups.items())}


def uplift_by_segment(rows: Iterable[UpliftRow], min_cases: int = 1) -> dict[str, Any]:
    """Uplift per segment dimension, value and action: ``{dim: {value: {action: Uplift}}}``.

    Segments with fewer than ``min_cases`` orders in either arm are left out.
    """
    groups: dict[tuple[str, str, str], dict[str, list[UpliftRow]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        for dim, value in r.segments:
            groups[(dim, value, r.action)][r.arm].append(r)
    out: dict[str, Any] = {}
    for (dim, value, action), g in sorted(groups.items()):
        if len(g["treatment"]) < min_cases or len(g["control"]) < min_cases:
            continue
        out.setdefault(dim, {}).setdefault(value, {})[action] = estimate(
            g["treatment"], g["control"]
        )
    return out


def rows_from_outcomes(outcomes: Iterable[Mapping[str, Any]]) -> list[UpliftRow]:
    """Uplift rows from ``outcomes`` records (decided, closed orders with an action)."""
    rows = []
    for o in outcomes:
        if (
            o["outcome"] in (Outcome.CENSORED, Outcome.CANCELLED)
            or not o.get("actions")
            or not o.get("arm")
        ):
            continue
        rows.append(
            UpliftRow(
                o["arm"],
                o["actions"][0],
                o["outcome"] in (Outcome.REFUNDED, Outcome.CHARGEBACK),
                float(o.get("refund_value") or 0.0),
                tuple((d, str(o.get(d) or "none")) for d in SEGMENTS),
            )
        )
    return rows
