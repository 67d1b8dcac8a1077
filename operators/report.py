"""Report: aggregates of a run's outputs, rendered as one self-contained HTML page.

Two halves, both pure (no file access; :mod:`flows.report` reads the files):

- *aggregation*: one pass over ``outcomes`` records (daily leakage, recovery by segment,
  calibration pairs, uplift rows), one over ``interventions`` (daily actions, the first
  action per order) and, when a simulator ground truth is available, one over its rows
  (leakage under the policy, blanket refund and no action, by order day and by segment;
  uplift realized from ground truth). Only aggregates are kept, so the page stays small
  whatever the number of orders.
- *rendering*: inline SVG charts (lines, stacked bars, horizontal bars, a forest plot of
  uplift intervals, a calibration curve) with titles, descriptions, axis labels and
  legends, inside one HTML page with inline CSS. No scripts, fonts, images or styles are
  loaded from anywhere: a Content-Security-Policy forbids it.

>>> agg = OutcomeAggregates()
>>> agg.add({"order_id": "o1", "outcome": "refunded", "resolved_at": "2026-06-02T10:00:00Z",
...          "refund_value": 40.0, "retained_value": 0.0, "at_risk": True})
>>> agg.daily["2026-06-02"].refund_leakage
40.0
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any, TypeVar

from operators.baselines import ARM_ORDER, Choice, policy_choices, truth_outcome
from operators.evaluation import REFUNDED, calibration, log_loss, roc_auc
from operators.uplift import SEGMENTS, UpliftRow, rows_from_outcomes, uplift_by_action

#: Segment dimensions of outcome records and how the report names them.
SEGMENT_TITLES: dict[str, str] = {
    "sku_family": "SKU family",
    "courier_lane": "Courier lane",
    "campaign": "Campaign",
    "support_reason": "Support reason",
}
#: Outcomes that are not a resolution of a return risk (excluded from rates).
#: Outcomes without a resolution day of their own ("open": files written before censoring).
NO_RESOLUTION = frozenset({"open", "censored"})
#: Outcomes that say nothing about recovery (no resolution, or cancelled before shipping).
UNRESOLVED = NO_RESOLUTION | {"cancelled"}
RECOVERED = frozenset({"kept", "exchanged"})
NONE_LABEL = "(none)"
OTHER_LABEL = "more"  # the merged tail of a ranking: "5 more"

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}
MINUS = "\u2212"
DASH = "\u2013"  # placeholder for an unknown figure, and ranges
NBSP = "\u00a0"

# Colours: the three evaluated worlds, then a categorical palette for actions.
WORLD_COLORS = {"blanket_refund": "#d1495b", "no_action": "#9aa3b2", "policy": "#2b6cb0"}
WORLD_LABELS = {
    "blanket_refund": "Blanket refund",
    "no_action": "No action",
    "policy": "This policy",
}
ACTION_COLORS = {
    "proactive_reassurance": "#4e79a7",
    "delayed_shipment_intervention": "#f28e2b",
    "exchange_first_offer": "#59a14f",
    "product_guidance": "#b07aa1",
    "human_review": "#e15759",
}
PALETTE = ("#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#4e79a7", "#f28e2b")
OBSERVED_COLORS = {"leakage": "#d1495b", "retained": "#2f855a"}


# --- formatting ---------------------------------------------------------------------------


def money(x: float | None, currency: str | None, decimals: int = 0) -> str:
    """Amount with its currency: symbol first when there is one, else the code after.

    >>> money(45595.7, "EUR")
    '€45,596'
    >>> money(-12.5, "CHF", 2) == MINUS + "12.50" + NBSP + "CHF"
    True
    >>> money(None, "EUR") == DASH
    True
    """
    if x is None:
        return DASH
    sign = MINUS if x < 0 and round(abs(x), decimals) > 0 else ""
    body = f"{abs(x):,.{decimals}f}"
    symbol = CURRENCY_SYMBOLS.get(currency or "")
    if symbol:
        return f"{sign}{symbol}{body}"
    return f"{sign}{body}{NBSP}{currency}" if currency else f"{sign}{body}"


def money_compact(x: float, currency: str | None) -> str:
    """Short axis label for an amount: ``€12k``, ``€1.5M``.

    >>> money_compact(12000, "EUR"), money_compact(1500000, "EUR"), money_compact(250, "EUR")
    ('€12k', '€1.5M', '€250')
    """
    a = abs(x)
    if a >= 1e6:
        body = f"{a / 1e6:.1f}".removesuffix(".0") + "M"
    elif a >= 1e3:
        body = f"{a / 1e3:.1f}".removesuffix(".0") + "k"
    else:
        body = f"{a:.0f}"
    sign = MINUS if x < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency or "")
    if symbol:
        return f"{sign}{symbol}{body}"
    return f"{sign}{body}{NBSP}{currency}" if currency else f"{sign}{body}"


def pct(x: float | None, decimals: int = 1, signed: bool = False) -> str:
    """A share as a percentage with a proper minus sign.

    >>> pct(0.4677), pct(0.05, 0, signed=True)
    ('46.8\\xa0%', '+5\\xa0%')
    >>> pct(-0.3116, signed=True) == MINUS + "31.2" + NBSP + "%"
    True
    """
    if x is None:
        return DASH
    v = x * 100
    sign = (MINUS if v < 0 else "+") if signed and round(v, decimals) != 0 else ""
    if not signed and v < 0:
        sign = MINUS
    return f"{sign}{abs(v):,.{decimals}f}{NBSP}%"


def points(x: float | None, decimals: int = 1) -> str:
    """A difference of two rates in percentage points.

    >>> points(0.1372)
    '+13.7\\xa0pts'
    >>> points(-0.031) == MINUS + "3.1" + NBSP + "pts"
    True
    """
    if x is None:
        return DASH
    v = x * 100
    sign = MINUS if v < 0 else "+" if round(v, decimals) != 0 else ""
    return f"{sign}{abs(v):.{decimals}f}{NBSP}pts"


def count(n: int | float | None) -> str:
    """An integer with thousands separators (a dash when unknown)."""
    return DASH if n is None else f"{n:,.0f}"


def action_label(action: str) -> str:
    """``proactive_reassurance`` -> ``Proactive reassurance``.

    >>> action_label("delayed_shipment_intervention")
    'Delayed shipment intervention'
    """
    text = action.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def day_label(day: str, weekday: bool = True) -> str:
    """``2026-06-01`` -> ``Mon 1 Jun`` (the day itself if it is not a date).

    >>> day_label("2026-06-01"), day_label("2026-06-01", weekday=False), day_label("n/a")
    ('Mon 1 Jun', '1 Jun', 'n/a')
    """
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return day
    text = f"{d.day} {d.strftime('%b')}"
    return f"{d.strftime('%a')} {text}" if weekday else text


def action_colors(actions: Iterable[str]) -> dict[str, str]:
    """A stable colour per action: known actions keep theirs, others share a palette."""
    out: dict[str, str] = {}
    spare = iter(PALETTE * 4)
    for a in sorted(set(actions)):
        out[a] = ACTION_COLORS.get(a) or next(spare, "#888888")
    return out


# --- aggregation --------------------------------------------------------------------------


def day_of(ts: str | None) -> str | None:
    """The UTC day of an RFC 3339 timestamp.

    >>> day_of("2026-06-01T23:59:00Z"), day_of(None)
    ('2026-06-01', None)
    """
    return ts[:10] if ts else None


def day_range(days: Iterable[str]) -> list[str]:
    """Every day from the earliest to the latest of ``days``, gaps included.

    >>> day_range(["2026-06-03", "2026-06-01"])
    ['2026-06-01', '2026-06-02', '2026-06-03']
    """
    parsed = []
    for d in days:
        try:
            parsed.append(date.fromisoformat(d))
        except ValueError:
            continue
    if not parsed:
        return []
    lo, hi = min(parsed), max(parsed)
    return [(lo + timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


@dataclass(slots=True)
class DayTotals:
    """Observed money and counts of the cases resolved on one day."""

    day: str
    refund_leakage: float = 0.0
    retained_revenue: float = 0.0
    refunds: int = 0
    resolved: int = 0


@dataclass(slots=True)
class SegmentRecovery:
    """Observed recovery of one segment value (e.g. courier lane ``DE-NL``).

    ``recovery_rate`` is the share of its at-risk cases that resolved without a refund
    (kept or exchanged), among those that resolved (open and cancelled cases excluded).
    """

    value: str
    cases: int = 0
    at_risk: int = 0
    closed_at_risk: int = 0
    recovered: int = 0
    refund_leakage: float = 0.0
    retained_revenue: float = 0.0

    @property
    def recovery_rate(self) -> float | None:
        return self.recovered / self.closed_at_risk if self.closed_at_risk else None

    def merge(self, other: SegmentRecovery) -> None:
        self.cases += other.cases
        self.at_risk += other.at_risk
        self.closed_at_risk += other.closed_at_risk
        self.recovered += other.recovered
        self.refund_leakage += other.refund_leakage
        self.retained_revenue += other.retained_revenue


@dataclass(slots=True)
class Worlds:
    """Leakage and retained revenue of a set of orders in the three evaluated worlds."""

    orders: int = 0
    blanket_refund: float = 0.0
    no_action: float = 0.0
    policy: float = 0.0
    blanket_refund_retained: float = 0.0
    no_action_retained: float = 0.0
    policy_retained: float = 0.0

    def add(
        self, blanket: Mapping[str, Any], none: Mapping[str, Any], pol: Mapping[str, Any]
    ) -> None:
        """Count one order, given its outcomes in each world."""
        self.orders += 1
        self.blanket_refund += blanket["refund_value"]
        self.no_action += none["refund_value"]
        self.policy += pol["refund_value"]
        self.blanket_refund_retained += blanket["retained_value"]
        self.no_action_retained += none["retained_value"]
        self.policy_retained += pol["retained_value"]

    def merge(self, other: Worlds) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def leakage(self, world: str) -> float:
        """Refund leakage in ``world``: blanket_refund, no_action or policy."""
        return float(getattr(self, world))

    @property
    def saved_vs_no_action(self) -> float:
        return self.no_action - self.policy

    @property
    def saved_vs_blanket(self) -> float:
        return self.blanket_refund - self.policy


T = TypeVar("T", SegmentRecovery, Worlds)


def _segment_value(value: Any) -> str:
    return NONE_LABEL if value in (None, "") else str(value)


class OutcomeAggregates:
    """Everything the report needs from ``outcomes`` records, in one pass.

    Keeps per order only what the ground-truth pass needs later (arm, first action,
    outcome and segment values), never the records themselves.
    """

    def __init__(self) -> None:
        self.cases = 0
        self.daily: dict[str, DayTotals] = {}
        self.segments: dict[str, dict[str, SegmentRecovery]] = {d: {} for d in SEGMENTS}
        self.outcome_counts: Counter[str] = Counter()
        self.currencies: Counter[str] = Counter()
        self.refund_leakage = 0.0
        self.retained_revenue = 0.0
        self.labels: list[int] = []
        self.scores: list[float] = []
        self.uplift_rows: list[UpliftRow] = []
        self.orders: dict[str, tuple[str | None, str | None, str, tuple[str, ...]]] = {}

    def add(self, o: Mapping[str, Any]) -> None:
        """Fold one outcome record in."""
        self.cases += 1
        outcome = o.get("outcome") or "censored"
        refund = float(o.get("refund_value") or 0.0)
        at_risk = bool(o.get("at_risk"))
        # One definition everywhere: the value of every order that was not refunded.
        retained = float(o.get("retained_value") or 0.0)
        self.outcome_counts[outcome] += 1
        if o.get("currency"):
            self.currencies[o["currency"]] += 1
        self.refund_leakage += refund
        self.retained_revenue += retained
        day = day_of(o.get("resolved_at"))
        if day and outcome not in NO_RESOLUTION:
            t = self.daily.get(day) or self.daily.setdefault(day, DayTotals(day))
            t.refund_leakage += refund
            t.retained_revenue += retained
            t.resolved += 1
            t.refunds += outcome in REFUNDED
        values = tuple(_segment_value(o.get(d)) for d in SEGMENTS)
        for dim, value in zip(SEGMENTS, values, strict=True):
            s = self.segments[dim].get(value) or self.segments[dim].setdefault(
                value, SegmentRecovery(value)
            )
            s.cases += 1
            s.refund_leakage += refund
            s.retained_revenue += retained
            if at_risk:
                s.at_risk += 1
                if outcome not in UNRESOLVED:
                    s.closed_at_risk += 1
                    s.recovered += outcome in RECOVERED
        if outcome not in UNRESOLVED and o.get("predicted_return_propensity") is not None:
            self.labels.append(1 if outcome in REFUNDED else 0)
            self.scores.append(float(o["predicted_return_propensity"]))
        self.uplift_rows.extend(rows_from_outcomes([o]))
        actions = o.get("actions") or []
        first = actions[0] if actions else None
        if o.get("order_id"):
            self.orders[o["order_id"]] = (o.get("arm"), first, outcome, values)

    @property
    def currency(self) -> str | None:
        return self.currencies.most_common(1)[0][0] if self.currencies else None

    def daily_series(self) -> list[DayTotals]:
        """Observed totals for every day from the first to the last resolution."""
        return [self.daily.get(d) or DayTotals(d) for d in day_range(self.daily)]


class InterventionAggregates:
    """Interventions per day and action, and the first action emitted per order."""

    def __init__(self) -> None:
        self.daily: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_action: Counter[str] = Counter()
        self.automated = 0
        self.first_action: dict[str, str] = {}

    def add(self, iv: Mapping[str, Any]) -> None:
        action = iv.get("action") or "unknown"
        self.by_action[action] += 1
        self.automated += bool(iv.get("automated"))
        day = day_of(iv.get("decided_at"))
        if day:
            self.daily[day][action] += 1
        if iv.get("order_id"):
            self.first_action.setdefault(iv["order_id"], action)

    @property
    def total(self) -> int:
        return sum(self.by_action.values())


def first_decision_days(decisions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """order_id -> day of its first decision (the order day: orders are decided on arrival).

    >>> first_decision_days([{"order_id": "o1", "decided_at": "2026-06-02T08:00:00Z"},
    ...                      {"order_id": "o1", "decided_at": "2026-06-01T09:00:00Z"}])
    {'o1': '2026-06-01'}
    """
    days: dict[str, str] = {}
    for d in decisions:
        oid, day = d.get("order_id"), day_of(d.get("decided_at"))
        if oid and day and (oid not in days or day < days[oid]):
            days[oid] = day
    return days


class CounterfactualAggregates:
    """Leakage in the three worlds by order day and by segment, and realized uplift rows.

    ``orders`` comes from :class:`OutcomeAggregates`, ``chosen`` is the policy's first
    action per order (both holdout arms, :func:`operators.baselines.policy_choices`, the
    same rule as the summary's arms) and ``order_day`` the day of each order's first
    decision.
    """

    def __init__(
        self,
        orders: Mapping[str, tuple[str | None, str | None, str, tuple[str, ...]]],
        chosen: Mapping[str, Choice],
        order_day: Mapping[str, str],
    ) -> None:
        self._orders = orders
        self._chosen = chosen
        self._order_day = order_day
        self.total = Worlds()
        self.by_day: dict[str, Worlds] = defaultdict(Worlds)
        self.by_segment: dict[str, dict[str, Worlds]] = {d: defaultdict(Worlds) for d in SEGMENTS}
        self.uplift_rows: list[UpliftRow] = []

    def add(self, row: Mapping[str, Any]) -> None:
        """Fold one ground-truth row in."""
        oid = row["order_id"]
        outs = row["outcomes"]
        chosen = self._chosen.get(oid)
        blanket, none = outs.get("blanket_refund", outs["none"]), outs["none"]
        pol = truth_outcome(row, chosen.action, chosen.at) if chosen else none
        self.total.add(blanket, none, pol)
        day = self._order_day.get(oid)
        if day:
            self.by_day[day].add(blanket, none, pol)
        facts = self._orders.get(oid)
        if facts is not None:
            values = facts[3]
        else:
            values = tuple(_segment_value(row.get(d)) for d in SEGMENTS)
        for dim, value in zip(SEGMENTS, values, strict=True):
            self.by_segment[dim][value].add(blanket, none, pol)
        if facts is None or row.get("cancelled") or facts[2] == "cancelled":
            return
        arm, first, _, _ = facts
        if arm not in ("treatment", "control") or not first:
            return
        # The treated get the outcome of what was sent; the control arm got nothing.
        realized = (
            truth_outcome(row, first, chosen.at if chosen else None) if arm == "treatment" else none
        )
        self.uplift_rows.append(
            UpliftRow(
                arm,
                first,
                realized["outcome"] in REFUNDED,
                float(realized["refund_value"]),
                tuple(zip(SEGMENTS, values, strict=True)),
            )
        )

    def daily_series(self) -> list[tuple[str, Worlds]]:
        """Worlds per order day, every day from the first to the last."""
        return [(d, self.by_day.get(d) or Worlds()) for d in day_range(self.by_day)]


def top_values(
    items: Mapping[str, T], weight: Callable[[T], float], limit: int, make: Callable[[], T]
) -> list[tuple[str, T]]:
    """The ``limit - 1`` heaviest values and the rest merged (``"N more"``), if more remain.

    >>> rows = {k: Worlds(no_action=v) for k, v in zip("abcd", (5.0, 1.0, 3.0, 2.0))}
    >>> [(k, w.no_action) for k, w in top_values(rows, lambda w: w.no_action, 3, Worlds)]
    [('a', 5.0), ('c', 3.0), ('2 more', 3.0)]
    """
    ranked = sorted(items.items(), key=lambda kv: (-weight(kv[1]), kv[0]))
    if len(ranked) <= limit:
        return ranked
    head, tail = ranked[: limit - 1], ranked[limit - 1 :]
    rest = make()
    for _, v in tail:
        rest.merge(v)
    return [*head, (f"{len(tail)} {OTHER_LABEL}", rest)]


# --- the report model ---------------------------------------------------------------------


@dataclass
class UpliftView:
    """Uplift by action (``Uplift.to_dict()`` shaped) and where it was measured."""

    source: str
    by_action: dict[str, dict[str, Any]]


@dataclass
class CalibrationView:
    """Reliability bins of the return-propensity score, and its quality figures."""

    source: str
    bins: list[dict[str, Any]]
    ece: float | None = None
    roc_auc: float | None = None
    log_loss: float | None = None
    labelled: int | None = None


@dataclass
class ReportModel:
    """The aggregates a report is rendered from (no raw records)."""

    title: str
    currency: str | None
    summary: dict[str, Any]
    cases: int
    observed_daily: list[DayTotals]
    observed_leakage: float
    observed_retained: float
    outcome_counts: dict[str, int]
    interventions_daily: dict[str, dict[str, int]]
    interventions_by_action: dict[str, int]
    interventions_automated: int
    segments: dict[str, list[tuple[str, SegmentRecovery]]]
    uplift: UpliftView | None = None
    calibration: list[CalibrationView] = field(default_factory=list)
    counterfactual: Worlds | None = None
    counterfactual_daily: list[tuple[str, Worlds]] = field(default_factory=list)
    counterfactual_segments: dict[str, list[tuple[str, Worlds]]] = field(default_factory=dict)
    backtest: dict[str, Any] | None = None
    scenario: dict[str, Any] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)


#: How the report names the sources of an ``uplift`` block.
UPLIFT_SOURCES = {"ground_truth": "realized from ground truth", "observed": "observed"}


def _uplift_from_summary(block: Any) -> UpliftView | None:
    """Read an ``uplift`` block of a summary, tolerating the shapes it may take."""
    if not isinstance(block, Mapping):
        return None
    by_action = block.get("by_action", block)
    if not isinstance(by_action, Mapping):
        return None
    rows = {
        str(a): dict(u)
        for a, u in by_action.items()
        if isinstance(u, Mapping) and "refund_rate_reduction" in u
    }
    if not rows:
        return None
    source = str(block.get("source") or block.get("label") or "as computed by the run")
    return UpliftView(UPLIFT_SOURCES.get(source, source.replace("_", " ")), rows)


def _calibration_from_summary(summary: Mapping[str, Any]) -> CalibrationView | None:
    """The online model's reliability table, where the summary's ``models`` block has one
    (``models.return_propensity.calibration`` or its ``validation.calibration``)."""
    model = (summary.get("models") or {}).get("return_propensity")
    if not isinstance(model, Mapping):
        return None
    validation = model.get("validation") if isinstance(model.get("validation"), Mapping) else {}
    cal = model.get("calibration")
    if not isinstance(cal, Mapping):
        cal = validation.get("calibration")
    bins = cal.get("bins") if isinstance(cal, Mapping) else None
    if not isinstance(bins, list) or not bins:
        return None

    def pick(key: str) -> Any:
        return model.get(key) if model.get(key) is not None else validation.get(key)

    ece = cal.get("ece")
    return CalibrationView(
        "online model",
        [b for b in bins if isinstance(b, Mapping)],
        ece if ece is not None else pick("calibration_error"),
        pick("roc_auc"),
        pick("log_loss"),
        validation.get("examples") or model.get("examples"),
    )


def build_model(
    summary: Mapping[str, Any] | None,
    outcomes: Iterable[Mapping[str, Any]],
    interventions: Iterable[Mapping[str, Any]],
    *,
    ground_truth: Iterable[Mapping[str, Any]] | None = None,
    decisions: Iterable[Mapping[str, Any]] | None = None,
    backtest: Mapping[str, Any] | None = None,
    scenario: Mapping[str, Any] | None = None,
    title: str | None = None,
    source: str = "",
    segment_limit: int = 8,
) -> ReportModel:
    """Aggregate a run's records into a :class:`ReportModel`.

    ``decisions`` is only read with ``ground_truth`` (for the order day of each order).
    """
    summary = dict(summary or {})
    oa = OutcomeAggregates()
    for o in outcomes:
        oa.add(o)
    ia = InterventionAggregates()
    for iv in interventions:
        ia.add(iv)

    currency = oa.currency or (scenario or {}).get("currency")
    notes = []
    if len(oa.currencies) > 1:
        notes.append(
            f"Outcomes are in {len(oa.currencies)} currencies "
            f"({', '.join(sorted(oa.currencies))}); amounts are summed without conversion "
            f"and shown in {currency}."
        )

    segments = {
        dim: top_values(oa.segments[dim], lambda s: s.cases, segment_limit, _blank_segment)
        for dim in SEGMENTS
        if oa.segments[dim]
    }
    model = ReportModel(
        title=title or _default_title(backtest),
        currency=currency,
        summary=summary,
        cases=oa.cases or int(summary.get("cases") or 0),
        observed_daily=oa.daily_series(),
        observed_leakage=oa.refund_leakage,
        observed_retained=oa.retained_revenue,
        outcome_counts=dict(oa.outcome_counts),
        interventions_daily={d: dict(c) for d, c in sorted(ia.daily.items())},
        interventions_by_action=dict(ia.by_action)
        or dict(summary.get("interventions_by_action") or {}),
        interventions_automated=ia.automated
        if ia.total
        else int(summary.get("interventions_automated") or 0),
        segments=segments,
        backtest=dict(backtest) if backtest else None,
        scenario=dict(scenario) if scenario else None,
        source=source,
        notes=notes,
    )

    uplift_source = "observed"
    uplift_rows = oa.uplift_rows
    if ground_truth is not None:
        decided = list(decisions or [])
        ca = CounterfactualAggregates(
            oa.orders, policy_choices(decided), first_decision_days(decided)
        )
        for row in ground_truth:
            ca.add(row)
        if ca.total.orders:
            model.counterfactual = ca.total
            model.counterfactual_daily = ca.daily_series()
            model.counterfactual_segments = {
                dim: top_values(ca.by_segment[dim], lambda w: w.no_action, segment_limit, Worlds)
                for dim in SEGMENTS
                if ca.by_segment[dim]
            }
            uplift_rows = ca.uplift_rows
            uplift_source = "realized from ground truth"

    model.uplift = _uplift_from_summary(summary.get("uplift"))
    if model.uplift is None and uplift_rows:
        model.uplift = UpliftView(
            uplift_source,
            {a: u.to_dict() for a, u in uplift_by_action(uplift_rows).items()},
        )

    online = _calibration_from_summary(summary)
    if online is not None:
        model.calibration.append(online)
    if oa.labels:
        cal = calibration(oa.labels, oa.scores)
        model.calibration.append(
            CalibrationView(
                "first score",
                cal["bins"],
                cal["ece"],
                roc_auc(oa.labels, oa.scores),
                log_loss(oa.labels, oa.scores),
                len(oa.labels),
            )
        )
    return model


def _default_title(backtest: Mapping[str, Any] | None) -> str:
    names = [str(p.get("name")) for p in (backtest or {}).get("policies") or []
             if isinstance(p, Mapping) and p.get("name")]  # fmt: skip
    if len(names) > 1:
        return f"Backtest report: {' vs '.join(names)}"
    return "Return-recovery report"


def _blank_segment() -> SegmentRecovery:
    return SegmentRecovery(OTHER_LABEL)


# --- SVG charts ---------------------------------------------------------------------------


@dataclass
class Series:
    """One named, coloured series of a chart (``None`` values are gaps)."""

    name: str
    color: str
    values: list[float | None]
    fill: bool = False
    dashed: bool = False


@dataclass
class ForestRow:
    """One estimate with its interval in a forest plot."""

    label: str
    estimate: float
    low: float
    high: float
    note: str = ""
    tooltip: str = ""


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``n`` intervals).

    >>> nice_ticks(0, 87)
    [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    >>> nice_ticks(-0.29, 0.61)
    [-0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8]
    >>> nice_ticks(0, 0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
        lo = min(lo, 0.0)
        hi = lo + span
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag + 1e-12)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count_ = round((end - start) / step)
    return [round(start + i * step, 10) + 0.0 for i in range(count_ + 1)]


def _n(x: float) -> str:
    """A coordinate: one decimal, no trailing zero."""
    return f"{x:.1f}".removesuffix(".0")


def _text_width(text: str, size: float = 12.0) -> float:
    """Rough rendered width of ``text`` (no font metrics without a browser)."""
    return len(text) * size * 0.58


def _svg(cid: str, width: float, height: float, title: str, desc: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" id="{cid}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'width="{_n(width)}" height="{_n(height)}" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _tip(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _y_axis(
    ticks: list[float], y: Callable[[float], float], left: float, right: float, fmt
) -> list[str]:
    out = []
    for t in ticks:
        yy = _n(y(t))
        cls = "zero" if t == 0 else "grid"
        out.append(f'<line class="{cls}" x1="{_n(left)}" x2="{_n(right)}" y1="{yy}" y2="{yy}"/>')
        out.append(
            f'<text class="tick" x="{_n(left - 8)}" y="{yy}" dy="0.32em" '
            f'text-anchor="end">{escape(fmt(t))}</text>'
        )
    return out


def _x_labels(
    labels: list[str], x: Callable[[int], float], y: float, left: float, right: float
) -> list[str]:
    """Category labels under an axis, thinned so they never overlap, kept inside the plot."""
    if not labels:
        return []
    size = 11.0
    widest = max(_text_width(s, size) for s in labels) + 10
    every = max(1, math.ceil(widest / max((right - left) / len(labels), 1e-9)))
    out = []
    for i, s in enumerate(labels):
        if i % every:
            continue
        half = _text_width(s, size) / 2
        xx = min(max(x(i), left + half - 12), right - half + 8)
        out.append(
            f'<text class="tick" x="{_n(xx)}" y="{_n(y)}" text-anchor="middle">{escape(s)}</text>'
        )
    return out


def _axis_titles(
    x_title: str | None,
    y_title: str | None,
    left: float,
    right: float,
    top: float,
    bottom: float,
    height: float,
) -> list[str]:
    out = []
    if x_title:
        out.append(
            f'<text class="axis-title" x="{_n((left + right) / 2)}" y="{_n(height - 4)}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    if y_title:
        cy = (top + bottom) / 2
        out.append(
            f'<text class="axis-title" transform="translate(12 {_n(cy)}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_title)}</text>'
        )
    return out


def line_chart(
    cid: str,
    title: str,
    desc: str,
    x_labels: list[str],
    series: list[Series],
    *,
    value_fmt: Callable[[float], str],
    tick_fmt: Callable[[float], str],
    x_tips: list[str] | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    width: float = 1040,
    height: float = 290,
) -> str:
    """Lines (optionally filled down to zero) over evenly spaced categories such as days."""
    ml, mr, mt, mb = 78, 16, 12, 46 if x_title else 28
    left, right, top, bottom = ml, width - mr, mt, height - mb
    vals = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(min(0.0, *vals) if vals else 0.0, max(vals, default=0.0))
    lo, hi = ticks[0], ticks[-1]
    n = max(len(x_labels), 1)
    band = (right - left) / n

    def x(i: int) -> float:
        return left + band * (i + 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - lo) / ((hi - lo) or 1)

    body = _y_axis(ticks, y, left, right, tick_fmt)
    body += _x_labels(x_labels, x, bottom + 16, left, right)
    body += _axis_titles(x_title, y_title, left, right, top, bottom, height)
    tips = x_tips or x_labels
    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append((x(i), y(v)))
        for run in (r for r in runs if r):
            pts = " ".join(f"{_n(px)},{_n(py)}" for px, py in run)
            if s.fill:
                base = _n(y(max(lo, 0.0)))
                area = f"{_n(run[0][0])},{base} {pts} {_n(run[-1][0])},{base}"
                body.append(f'<polygon class="area" fill="{s.color}" points="{area}"/>')
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            body.append(
                f'<polyline class="line" stroke="{s.color}"{dash} points="{pts}"/>'
                if len(run) > 1
                else ""
            )
        r = 3.2 if n <= 60 else 2.0
        for i, v in enumerate(s.values):
            if v is None:
                continue
            body.append(
                f'<circle class="dot" cx="{_n(x(i))}" cy="{_n(y(v))}" r="{r}" fill="{s.color}">'
                f"{_tip(f'{tips[i]} · {s.name}: {value_fmt(v)}')}</circle>"
            )
    return _svg(cid, width, height, title, desc, body)


def stacked_bar_chart(
    cid: str,
    title: str,
    desc: str,
    x_labels: list[str],
    series: list[Series],
    *,
    value_fmt: Callable[[float], str],
    tick_fmt: Callable[[float], str],
    x_tips: list[str] | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    width: float = 1040,
    height: float = 260,
) -> str:
    """Vertical bars per category, stacked by series (all values >= 0)."""
    ml, mr, mt, mb = 78, 16, 12, 46 if x_title else 28
    left, right, top, bottom = ml, width - mr, mt, height - mb
    n = max(len(x_labels), 1)
    totals = [sum((s.values[i] or 0.0) for s in series) for i in range(len(x_labels))]
    ticks = nice_ticks(0.0, max(totals, default=0.0))
    hi = ticks[-1] or 1.0
    band = (right - left) / n
    bar = max(min(band * 0.72, 48.0), 1.0)

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / hi

    body = _y_axis(ticks, y, left, right, tick_fmt)
    body += _x_labels(x_labels, lambda i: left + band * (i + 0.5), bottom + 16, left, right)
    body += _axis_titles(x_title, y_title, left, right, top, bottom, height)
    tips = x_tips or x_labels
    for i in range(len(x_labels)):
        acc = 0.0
        x0 = left + band * (i + 0.5) - bar / 2
        for s in series:
            v = s.values[i] or 0.0
            if v <= 0:
                continue
            y1, y0 = y(acc + v), y(acc)
            acc += v
            body.append(
                f'<rect x="{_n(x0)}" y="{_n(y1)}" width="{_n(bar)}" '
                f'height="{_n(max(y0 - y1, 0.5))}" fill="{s.color}">'
                f"{_tip(f'{tips[i]} · {s.name}: {value_fmt(v)}')}</rect>"
            )
    return _svg(cid, width, height, title, desc, body)


def hbar_chart(
    cid: str,
    title: str,
    desc: str,
    categories: list[str],
    series: list[Series],
    *,
    value_fmt: Callable[[float], str],
    tick_fmt: Callable[[float], str],
    notes: list[str] | None = None,
    bar_colors: list[str] | None = None,
    x_title: str | None = None,
    width: float = 500,
    bar_height: float = 9.0,
) -> str:
    """Horizontal bars, grouped per category (one bar per series), with value labels.

    ``notes`` adds a text column at the right (one entry per category); ``bar_colors``
    colours the bars of a single-series chart individually.
    """
    label_w = min(max((_text_width(c, 12) for c in categories), default=40) + 14, 190)
    note_w = max((_text_width(t, 11) for t in notes or []), default=0) + (12 if notes else 0)
    value_w = 62
    left, right = label_w, width - note_w - value_w
    per = len(series)
    pitch = bar_height + (3 if per > 1 else 0)
    group = per * pitch - (pitch - bar_height)
    gap = 14 if per > 1 else 8
    value_cls = "value sm" if per > 1 and pitch < 13 else "value"
    top = 6
    bottom = top + len(categories) * (group + gap)
    height = bottom + (38 if x_title else 22)
    vals = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(min(0.0, *vals) if vals else 0.0, max(vals, default=0.0), 4)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (right - left) * (v - lo) / ((hi - lo) or 1)

    body: list[str] = []
    for t in ticks:
        xx = _n(x(t))
        cls = "zero" if t == 0 else "grid"
        body.append(f'<line class="{cls}" x1="{xx}" x2="{xx}" y1="{top}" y2="{_n(bottom)}"/>')
        body.append(
            f'<text class="tick" x="{xx}" y="{_n(bottom + 14)}" text-anchor="middle">'
            f"{escape(tick_fmt(t))}</text>"
        )
    if x_title:
        body.append(
            f'<text class="axis-title" x="{_n((left + right) / 2)}" y="{_n(height - 4)}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    for ci, cat in enumerate(categories):
        gy = top + ci * (group + gap) + gap / 2
        body.append(
            f'<text class="label" x="{_n(left - 8)}" y="{_n(gy + group / 2)}" dy="0.32em" '
            f'text-anchor="end">{escape(cat)}</text>'
        )
        if notes:
            body.append(
                f'<text class="note" x="{_n(width - 2)}" y="{_n(gy + group / 2)}" dy="0.32em" '
                f'text-anchor="end">{escape(notes[ci])}</text>'
            )
        for si, s in enumerate(series):
            v = s.values[ci]
            if v is None:
                continue
            by = gy + si * pitch
            x0, x1 = sorted((x(0.0 if lo <= 0 <= hi else lo), x(v)))
            color = bar_colors[ci] if bar_colors and per == 1 else s.color
            body.append(
                f'<rect x="{_n(x0)}" y="{_n(by)}" width="{_n(max(x1 - x0, 0.8))}" '
                f'height="{_n(bar_height)}" rx="1.5" fill="{color}">'
                f"{_tip(f'{cat} · {s.name}: {value_fmt(v)}')}</rect>"
            )
            body.append(
                f'<text class="{value_cls}" x="{_n(x1 + 4)}" y="{_n(by + bar_height / 2)}" '
                f'dy="0.32em">{escape(value_fmt(v))}</text>'
            )
    return _svg(cid, width, height, title, desc, body)


def forest_plot(
    cid: str,
    title: str,
    desc: str,
    rows: list[ForestRow],
    *,
    tick_fmt: Callable[[float], str],
    value_fmt: Callable[[float], str],
    value_unit: str = "",
    left_hint: str = "worse",
    right_hint: str = "better",
    x_title: str | None = None,
    width: float = 1040,
    row_height: float = 34,
) -> str:
    """Estimates with 95 % intervals on a shared axis, a reference line at zero.

    ``left_hint`` and ``right_hint`` say what each side of zero means.
    """
    label_w = min(max((_text_width(r.label, 12.5) for r in rows), default=40) + 16, 260)
    value_head, note_head = f"{value_unit} [95 % interval]".strip(), "treated / control"
    intervals = [f"{value_fmt(r.estimate)} [{value_fmt(r.low)}, {value_fmt(r.high)}]" for r in rows]
    head_w = 11 * 0.75  # upper case with letter spacing
    value_w = max(max((_text_width(t, 11) for t in intervals), default=0), len(value_head) * head_w)
    value_w += 28
    note_w = max(max((_text_width(r.note, 11) for r in rows), default=0), len(note_head) * head_w)
    note_w += 12
    left, right = label_w, width - value_w - note_w
    top = 26
    bottom = top + len(rows) * row_height
    height = bottom + (44 if x_title else 26)
    lows = [r.low for r in rows] + [0.0]
    highs = [r.high for r in rows] + [0.0]
    ticks = nice_ticks(min(lows), max(highs), 6)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (right - left) * (v - lo) / ((hi - lo) or 1)

    body = [
        f'<rect class="band" x="0" y="{_n(top + i * row_height)}" width="{_n(width)}" '
        f'height="{_n(row_height)}"/>'
        for i in range(0, len(rows), 2)
    ]
    body += [
        f'<text class="head" x="{_n(right + 20)}" y="14">{escape(value_head)}</text>',
        f'<text class="head" x="{_n(width - 2)}" y="14" text-anchor="end">{note_head}</text>',
        f'<text class="head" x="{_n(x(0) - 6)}" y="14" text-anchor="end">◂ {escape(left_hint)}'
        "</text>",
        f'<text class="head" x="{_n(x(0) + 6)}" y="14">{escape(right_hint)} ▸</text>',
    ]
    for t in ticks:
        xx = _n(x(t))
        cls = "zero" if t == 0 else "grid"
        body.append(f'<line class="{cls}" x1="{xx}" x2="{xx}" y1="{top}" y2="{_n(bottom)}"/>')
        body.append(
            f'<text class="tick" x="{xx}" y="{_n(bottom + 15)}" text-anchor="middle">'
            f"{escape(tick_fmt(t))}</text>"
        )
    if x_title:
        body.append(
            f'<text class="axis-title" x="{_n((left + right) / 2)}" y="{_n(height - 4)}" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    for i, r in enumerate(rows):
        cy = top + (i + 0.5) * row_height
        significant = r.low > 0 or r.high < 0
        color = ("#2f855a" if r.low > 0 else "#c53030") if significant else "#718096"
        body.append(
            f'<text class="label" x="{_n(left - 10)}" y="{_n(cy)}" dy="0.32em" '
            f'text-anchor="end">{escape(r.label)}</text>'
        )
        x0, x1, xe = x(r.low), x(r.high), x(r.estimate)
        tip = _tip(r.tooltip or f"{r.label}: {value_fmt(r.estimate)}")
        body.append(
            f'<g class="ci" stroke="{color}"><line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(cy)}" '
            f'y2="{_n(cy)}"/><line x1="{_n(x0)}" x2="{_n(x0)}" y1="{_n(cy - 6)}" '
            f'y2="{_n(cy + 6)}"/><line x1="{_n(x1)}" x2="{_n(x1)}" y1="{_n(cy - 6)}" '
            f'y2="{_n(cy + 6)}"/></g>'
        )
        body.append(
            f'<rect x="{_n(xe - 5.5)}" y="{_n(cy - 5.5)}" width="11" height="11" '
            f'fill="{color}">{tip}</rect>'
        )
        body.append(
            f'<text class="value" x="{_n(right + 20)}" y="{_n(cy)}" dy="0.32em">'
            f"{escape(intervals[i])}</text>"
        )
        body.append(
            f'<text class="note" x="{_n(width - 2)}" y="{_n(cy)}" dy="0.32em" '
            f'text-anchor="end">{escape(r.note)}</text>'
        )
    return _svg(cid, width, height, title, desc, body)


CALIBRATION_COLORS = ("#2b6cb0", "#dd6b20", "#38a169")


def calibration_chart(
    cid: str,
    title: str,
    desc: str,
    curves: list[tuple[str, list[Mapping[str, Any]]]],
    *,
    size: float = 400,
) -> str:
    """Reliability diagram: observed rate against mean predicted probability per bin for
    each named curve, the diagonal of perfect calibration, dots sized by the cases in the
    bin, and a histogram of the first curve's predictions along the bottom."""
    ml, mr, mt, mb = 58, 14, 12, 44
    width, height = size - mt - mb + ml + mr, size
    left, right, top, bottom = ml, width - mr, mt, height - mb

    def x(p: float) -> float:
        return left + (right - left) * p

    def y(p: float) -> float:
        return bottom - (bottom - top) * p

    body: list[str] = []
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        body.append(
            f'<line class="grid" x1="{_n(left)}" x2="{_n(right)}" y1="{_n(y(t))}" '
            f'y2="{_n(y(t))}"/><line class="grid" x1="{_n(x(t))}" x2="{_n(x(t))}" '
            f'y1="{_n(top)}" y2="{_n(bottom)}"/>'
        )
        body.append(
            f'<text class="tick" x="{_n(left - 8)}" y="{_n(y(t))}" dy="0.32em" '
            f'text-anchor="end">{t:.1f}</text><text class="tick" x="{_n(x(t))}" '
            f'y="{_n(bottom + 16)}" text-anchor="middle">{t:.1f}</text>'
        )
    body += _axis_titles(
        "mean predicted probability of a refund",
        "observed refund rate",
        left,
        right,
        top,
        bottom,
        height,
    )
    if curves:
        bins = curves[0][1]
        counts = [int(b.get("count") or 0) for b in bins]
        total, most = sum(counts) or 1, max(counts, default=1) or 1
        nbins = max(max((int(b.get("bin", 0)) for b in bins), default=9) + 1, 10)
        for b, c in zip(bins, counts, strict=True):
            i = int(b.get("bin", 0))
            h = (bottom - top) * 0.2 * c / most
            interval = f"[{i / nbins:.1f}, {(i + 1) / nbins:.1f})"
            body.append(
                f'<rect class="hist" x="{_n(x(i / nbins) + 1)}" y="{_n(bottom - h)}" '
                f'width="{_n((right - left) / nbins - 2)}" height="{_n(h)}">'
                f"{_tip(f'{curves[0][0]}: {c:,} cases ({c / total:.1%}) in {interval}')}</rect>"
            )
    body.append(
        f'<line class="diag" x1="{_n(x(0))}" y1="{_n(y(0))}" x2="{_n(x(1))}" y2="{_n(y(1))}"/>'
    )
    for k, (name, bins) in enumerate(curves):
        color = CALIBRATION_COLORS[k % len(CALIBRATION_COLORS)]
        pts = sorted(
            (float(b["mean_predicted"]), float(b["observed_rate"]), int(b.get("count") or 0))
            for b in bins
            if b.get("mean_predicted") is not None and b.get("observed_rate") is not None
        )
        most = max((c for _, _, c in pts), default=1) or 1
        if len(pts) > 1:
            line = " ".join(f"{_n(x(p))},{_n(y(r))}" for p, r, _ in pts)
            body.append(f'<polyline class="line" stroke="{color}" points="{line}"/>')
        for p, r, c in pts:
            rad = 2.5 + 6 * math.sqrt(c / most)
            tip = f"{name}: predicted {p:.3f}, observed {r:.3f} ({c:,} cases)"
            body.append(
                f'<circle class="dot cal" cx="{_n(x(p))}" cy="{_n(y(r))}" r="{_n(rad)}" '
                f'fill="{color}">{_tip(tip)}</circle>'
            )
    return _svg(cid, width, height, title, desc, body)


# --- the page -----------------------------------------------------------------------------

CSS = """
:root{--ink:#1a202c;--muted:#5a6577;--line:#e2e8f0;--bg:#f4f6f9;--card:#fff;--accent:#2b6cb0}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
"Liberation Sans","DejaVu Sans",sans-serif;-webkit-font-smoothing:antialiased}
.wrap{max-width:1120px;margin:0 auto;padding:0 28px}
header.top{background:#14213d;color:#fff;padding:26px 0 28px}
header.top .brand{font-size:12px;letter-spacing:.12em;text-transform:uppercase;color:#9fb3d1}
header.top h1{margin:4px 0 6px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.top .meta{color:#c3cfe2;font-size:13px}
.lead{font-size:21px;line-height:1.35;font-weight:600;margin:26px 0 8px;letter-spacing:-.005em}
.lead .cut{color:#2f855a}
.story{margin:0 0 20px;padding-left:20px;color:#2d3748;max-width:900px}
.story li{margin:3px 0}
.scenario{color:var(--muted);font-size:13px;max-width:900px;margin:-4px 0 16px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:0 0 8px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:13px 16px}
.kpi .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.kpi .v{font-size:25px;font-weight:650;margin:2px 0 0;font-variant-numeric:tabular-nums}
.kpi .s{font-size:12.5px;color:var(--muted)}
.kpi.good .v{color:#2f855a}
section.card{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:20px 24px 18px;margin:18px 0}
section.card>h2{font-size:17px;margin:0 0 2px;font-weight:650}
.sub{color:var(--muted);margin:0 0 12px;font-size:13px;max-width:900px}
h3{font-size:14px;margin:14px 0 2px;font-weight:600}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:10px 32px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;color:#2d3748;margin:4px 0 6px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px}
.legend i.ln{height:3px;border-radius:2px;width:16px}
figure{margin:0}
svg.chart{display:block;width:100%;height:auto;overflow:visible}
svg.chart text{font-family:inherit;fill:#2d3748}
svg.chart .tick{font-size:11px;fill:#718096}
svg.chart .label{font-size:12px}
svg.chart .value,svg.chart .note{font-size:11px;fill:#4a5568;font-variant-numeric:tabular-nums}
svg.chart .value.sm{font-size:9.5px;fill:#718096}
svg.chart .head{font-size:11px;fill:#718096;text-transform:uppercase;letter-spacing:.04em}
svg.chart .axis-title{font-size:11.5px;fill:#4a5568}
svg.chart .grid{stroke:#edf2f7;stroke-width:1}
svg.chart .zero{stroke:#a0aec0;stroke-width:1}
svg.chart .line{fill:none;stroke-width:2.2;stroke-linejoin:round;stroke-linecap:round}
svg.chart .area{opacity:.12}
svg.chart .dot{stroke:#fff;stroke-width:1}
svg.chart .dot.cal{opacity:.85}
svg.chart .ci line{stroke-width:2}
svg.chart .band{fill:#f7fafc}
svg.chart .diag{stroke:#a0aec0;stroke-dasharray:5 4;stroke-width:1.3}
svg.chart .hist{fill:#cbd5e0}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right}
td{white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{font-size:11.5px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
font-weight:600;border-bottom:1px solid #cbd5e0}
td.best{color:#2f855a;font-weight:650}
.muted{color:var(--muted)}
.tag{display:inline-block;font-size:11px;padding:1px 7px;border-radius:9px;background:#ebf4ff;
color:#2c5282;margin-left:6px;vertical-align:2px;font-weight:600;letter-spacing:.02em}
.tag.warn{background:#fffaf0;color:#9c4221}
.note{font-size:12.5px;color:var(--muted);margin:8px 0 0}
footer{color:var(--muted);font-size:12px;padding:8px 0 40px}
footer dl{display:grid;grid-template-columns:170px 1fr;gap:2px 12px;margin:8px 0}
footer dt{font-weight:600;color:#4a5568}
footer dd{margin:0}
@media (max-width:860px){.kpis{grid-template-columns:repeat(2,1fr)}
.grid2{grid-template-columns:1fr}}
@media print{body{background:#fff}section.card,.kpi{break-inside:avoid;border-color:#ccc}}
"""

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "script-src 'none'; base-uri 'none'; form-action 'none'"
)


def _legend(items: list[tuple[str, str]], line: bool = False) -> str:
    cls = ' class="ln"' if line else ""
    spans = "".join(
        f'<span><i{cls} style="background:{c}"></i>{escape(name)}</span>' for name, c in items
    )
    return f'<div class="legend">{spans}</div>'


def _card(sid: str, title: str, sub: str, body: str, tag: str = "") -> str:
    tag_html = f'<span class="tag">{escape(tag)}</span>' if tag else ""
    return (
        f'<section class="card" id="{sid}" aria-labelledby="{sid}-h">'
        f'<h2 id="{sid}-h">{escape(title)}{tag_html}</h2><p class="sub">{sub}</p>{body}</section>'
    )


def _kpi(label: str, value: str, sub: str = "", good: bool = False) -> str:
    cls = "kpi good" if good else "kpi"
    return (
        f'<div class="{cls}"><div class="k">{escape(label)}</div><div class="v">{escape(value)}'
        f'</div><div class="s">{escape(sub)}</div></div>'
    )


def _period(model: ReportModel) -> str:
    days = [d.day for d in model.observed_daily] + [d for d, _ in model.counterfactual_daily]
    days += list(model.interventions_daily)
    if not days:
        return ""
    lo, hi = min(days), max(days)
    try:
        a, b = date.fromisoformat(lo), date.fromisoformat(hi)
    except ValueError:
        return f"{lo} {DASH} {hi}"
    if a == b:
        return f"{a.day} {a:%b %Y}"
    return f"{a.day} {a:%b} {DASH} {b.day} {b:%b %Y}"


def backtest_figure(run: Mapping[str, Any], key: str) -> Any:
    """One figure of a backtest run (an entry of ``backtest.json`` ``policies``): from its
    ``figures`` block, else from its summary's ``backtest`` or ``ground_truth`` blocks.

    >>> backtest_figure({"summary": {"ground_truth": {"policy": {"refund_leakage": 9.5}}}},
    ...                 "refund_leakage")
    9.5
    """
    s = run.get("summary") or {}
    b = run.get("figures") or s.get("backtest") or {}
    if key == "model_roc_auc":
        model = b.get("model") or (s.get("models") or {}).get("return_propensity")
        return (model or {}).get("roc_auc")
    if b.get(key) is not None:
        return b[key]
    gt = s.get("ground_truth") or {}
    if key in ("refund_leakage", "retained_revenue"):
        return (gt.get("policy") or {}).get(key, (s.get("observed") or {}).get(key))
    if key == "vs_blanket_refund":
        return gt.get("leakage_cut_vs_blanket")
    if key == "vs_no_action":
        return gt.get("leakage_cut_vs_no_action")
    return gt.get(key)


def backtest_runs(backtest: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, run) of each policy of a backtest, in order."""
    runs = [p for p in (backtest or {}).get("policies") or [] if isinstance(p, Mapping)]
    return [(str(p.get("name") or f"policy {i + 1}"), p) for i, p in enumerate(runs)]


class _Page:
    """Renders a :class:`ReportModel` section by section."""

    def __init__(self, model: ReportModel) -> None:
        self.m = model
        self.cur = model.currency
        self.gt = model.summary.get("ground_truth") or {}

    def money(self, x: float | None, decimals: int = 0) -> str:
        return money(x, self.cur, decimals)

    def tick_money(self, x: float) -> str:
        return money_compact(x, self.cur)

    # --- top of the page ---------------------------------------------------------------

    def header(self) -> str:
        s, m = self.m.summary, self.m
        bits = []
        if s.get("policy_version"):
            bits.append(f"policy {s['policy_version']}")
        bits.append(f"{count(m.cases)} cases")
        if period := _period(m):
            bits.append(period)
        if m.currency:
            bits.append(f"amounts in {m.currency}")
        if m.scenario and m.scenario.get("scenario"):
            bits.append(f"scenario {m.scenario['scenario']}")
        return (
            '<header class="top"><div class="wrap"><div class="brand">Salvage</div>'
            f"<h1>{escape(m.title)}</h1>"
            f'<div class="meta">{escape(" · ".join(bits))}</div></div></header>'
        )

    def policy_world(self) -> tuple[float, float, float] | None:
        """(policy leakage, blanket leakage, no-action leakage), if ground truth is known."""
        gt = self.gt
        try:
            return (
                float(gt["policy"]["refund_leakage"]),
                float(gt["blanket_refund"]["refund_leakage"]),
                float(gt["no_action"]["refund_leakage"]),
            )
        except (KeyError, TypeError, ValueError):
            w = self.m.counterfactual
            return (w.policy, w.blanket_refund, w.no_action) if w else None

    def lead(self) -> str:
        arms = self.m.summary.get("decision_arms")
        share = (
            ((arms.get("arms") or {}).get("policy") or {}).get("captured_share")
            if isinstance(arms, Mapping)
            else None
        )
        if isinstance(share, int | float):
            return (
                f'<p class="lead">This policy captures <span class="cut">{escape(pct(share))}'
                f"</span> of the avoidable loss that an oracle would avoid "
                f"({escape(self.money(arms.get('avoidable_loss')))}: refunds plus contact and "
                "credit cost)</p>"
            )
        worlds = self.policy_world()
        if worlds:
            pol, blanket, _ = worlds
            cut = (pol - blanket) / blanket if blanket else 0.0
            return (
                f'<p class="lead">Refund leakage {escape(self.money(pol))} under this policy vs '
                f"{escape(self.money(blanket))} under blanket refund: "
                f'<span class="cut">{escape(pct(cut, signed=True))}</span></p>'
            )
        m = self.m
        return (
            f'<p class="lead">Observed refund leakage {escape(self.money(m.observed_leakage))} '
            f"across {count(m.cases)} cases; "
            f"{count(sum(m.interventions_by_action.values()))} interventions emitted</p>"
        )

    def story(self) -> str:
        items = []
        m, worlds = self.m, self.policy_world()
        leaks = [
            (name, float(v))
            for name, run in backtest_runs(m.backtest)
            if isinstance(v := backtest_figure(run, "refund_leakage"), int | float)
        ]
        if len(leaks) > 1:
            first_name, first = leaks[0]
            best_name, best = min(leaks, key=lambda kv: kv[1])
            if best_name == first_name:
                runner = min(leaks[1:], key=lambda kv: kv[1])
                line = (
                    f"Backtest of {len(leaks)} policies on the same input: {first_name} leaks "
                    f"least, {self.money(runner[1] - first)} less than {runner[0]}. "
                )
            else:
                line = (
                    f"Backtest of {len(leaks)} policies on the same input: {best_name} leaks "
                    f"{self.money(first - best)} less than {first_name} "
                    f"({pct((best - first) / first, signed=True) if first else DASH}). "
                )
            line += f"The figures below are those of {first_name}."
            items.append(escape(line))
        if worlds:
            pol, _, none = worlds
            cost = float(self.gt.get("contact_cost") or 0) + float(self.gt.get("credit_cost") or 0)
            line = (
                f"Against doing nothing, the policy kept {self.money(none - pol)} that would "
                f"have been refunded ({pct((pol - none) / none, signed=True) if none else DASH})"
            )
            if self.gt:
                share = self.gt.get("cost_share_of_revenue")
                line += f", for {self.money(cost)} in contacts and store credit"
                if share is not None:
                    line += f" ({pct(float(share), 2)} of revenue)"
            items.append(escape(line) + ".")
        lanes = m.counterfactual_segments.get("courier_lane")
        if lanes and m.counterfactual and m.counterfactual.saved_vs_no_action > 0:
            best = sorted(
                (kv for kv in lanes if not kv[0].endswith(f" {OTHER_LABEL}")),
                key=lambda kv: -kv[1].saved_vs_no_action,
            )[:2]
            total = m.counterfactual.saved_vs_no_action
            part = sum(w.saved_vs_no_action for _, w in best)
            share = sum(w.orders for _, w in best) / max(m.counterfactual.orders, 1)
            names = " and ".join(k for k, _ in best)
            items.append(
                escape(
                    f"{pct(part / total, 0)} of that came from courier lane"
                    f"{'s' if len(best) > 1 else ''} {names}, "
                    f"where {pct(share, 0)} of the orders shipped."
                )
            )
        if m.counterfactual_daily:
            peak_day, peak = max(m.counterfactual_daily, key=lambda kv: kv[1].no_action)
            items.append(
                escape(
                    f"Orders placed on {day_label(peak_day)} carried the most refund risk: "
                    f"{self.money(peak.no_action)} would have leaked without intervention, "
                    f"{self.money(peak.policy)} did under the policy."
                )
            )
        if m.interventions_by_action:
            top, n = max(m.interventions_by_action.items(), key=lambda kv: (kv[1], kv[0]))
            total = sum(m.interventions_by_action.values())
            auto = m.interventions_automated
            items.append(
                escape(
                    f"{count(total)} interventions, {pct(auto / total, 0)} of them automated; "
                    f"the most frequent was {action_label(top).lower()} ({count(n)})."
                )
            )
        if m.uplift:
            best_u = [
                (a, u)
                for a, u in m.uplift.by_action.items()
                if u.get("ci_low") is not None and u["ci_low"] > 0
            ]
            if best_u:
                a, u = max(best_u, key=lambda kv: kv[1]["refund_rate_reduction"])
                items.append(
                    escape(
                        f"Strongest measured effect ({m.uplift.source}): "
                        f"{action_label(a).lower()} cut the refund rate by "
                        f"{points(u['refund_rate_reduction']).lstrip('+')} against the holdout "
                        f"(95 % interval {points(u['ci_low'])} to {points(u['ci_high'])})."
                    )
                )
        if not worlds and m.segments.get("courier_lane"):
            lane, worst = max(m.segments["courier_lane"], key=lambda kv: kv[1].refund_leakage)
            items.append(
                escape(f"Courier lane {lane} leaked the most: {self.money(worst.refund_leakage)}.")
            )
        if not items:
            return ""
        return '<ul class="story">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def scenario_note(self) -> str:
        sc = self.m.scenario or {}
        desc = (sc.get("parameters") or {}).get("description") or sc.get("description")
        if not desc:
            return ""
        first = " ".join(str(desc).split("\n\n")[0].split())
        return f'<p class="scenario"><strong>Scenario.</strong> {escape(first)}</p>'

    def kpis(self) -> str:
        m, s, gt = self.m, self.m.summary, self.gt
        tiles = []
        worlds = self.policy_world()
        if worlds:
            pol, blanket, none = worlds
            tiles.append(
                _kpi("Refund leakage", self.money(pol), f"vs {self.money(none)} status quo")
            )
            # Against the status quo (every request handled as asked), not against a
            # blanket refund: that baseline refunds more than any merchant has to.
            tiles.append(
                _kpi(
                    "Leakage cut",
                    pct((pol - none) / none, signed=True) if none else DASH,
                    f"vs status quo; {pct((pol - blanket) / blanket, signed=True)} vs "
                    "refunding every request"
                    if blanket
                    else "vs status quo",
                    good=pol < none,
                )
            )
            retained = (gt.get("policy") or {}).get("retained_revenue")
            base = (gt.get("no_action") or {}).get("retained_revenue")
            if retained is None and m.counterfactual:
                retained = m.counterfactual.policy_retained
                base = m.counterfactual.no_action_retained
            gain = ""
            if retained is not None and base is not None:
                sign = "+" if retained >= base else ""
                gain = f"{sign}{self.money(retained - base)} vs no action"
            tiles.append(_kpi("Revenue retained", self.money(retained), gain))
            cost = float(gt.get("contact_cost") or 0) + float(gt.get("credit_cost") or 0)
            share = gt.get("cost_share_of_revenue")
            tiles.append(
                _kpi(
                    "Intervention cost",
                    self.money(cost) if gt else DASH,
                    f"{pct(float(share), 2)} of revenue" if share is not None else "",
                )
            )
        else:
            closed_risk = sum(r.closed_at_risk for _, r in m.segments.get("sku_family", []))
            recovered = sum(r.recovered for _, r in m.segments.get("sku_family", []))
            refunds = m.outcome_counts.get("refunded", 0) + m.outcome_counts.get("chargeback", 0)
            tiles.append(_kpi("Refund leakage", self.money(m.observed_leakage), "observed"))
            tiles.append(
                _kpi(
                    "Revenue retained",
                    self.money(m.observed_retained),
                    "orders not refunded, observed",
                )
            )
            tiles.append(_kpi("Refunds", count(refunds), "incl. chargebacks"))
            tiles.append(
                _kpi(
                    "Recovery rate",
                    pct(recovered / closed_risk) if closed_risk else DASH,
                    f"of {count(closed_risk)} resolved at-risk cases",
                )
            )
        total_iv = sum(m.interventions_by_action.values())
        tiles.append(
            _kpi(
                "Cases",
                count(m.cases),
                f"{count(m.outcome_counts.get('censored', 0) + m.outcome_counts.get('open', 0))}"
                " unresolved when the input ended (censored)",
            )
        )
        human = m.interventions_by_action.get("human_review", 0)
        tiles.append(
            _kpi(
                "Interventions",
                count(total_iv),
                f"{pct(m.interventions_automated / total_iv, 0)} automated · "
                f"{count(human)} to review"
                if total_iv
                else "",
            )
        )
        cal = m.calibration[0] if m.calibration else None
        auc = cal.roc_auc if cal else None
        if auc is None:
            auc = (s.get("first_score_quality") or {}).get("roc_auc")
        ece = cal.ece if cal else None
        tiles.append(
            _kpi(
                "Return model ROC AUC",
                f"{auc:.3f}" if auc is not None else DASH,
                f"calibration error {ece:.3f}" if ece is not None else "",
            )
        )
        dead = s.get("dead_letters")
        records = s.get("input_records")
        tiles.append(
            _kpi(
                "Dead letters",
                count(dead),
                f"{pct(dead / records, 2)} of {count(records)} input records"
                if dead is not None and records
                else "",
            )
        )
        return '<div class="kpis">' + "".join(tiles) + "</div>"

    # --- sections ------------------------------------------------------------------------

    def over_time(self) -> str:
        m = self.m
        parts = []
        if m.counterfactual_daily:
            days = [d for d, _ in m.counterfactual_daily]
            series = [
                Series(
                    WORLD_LABELS[k],
                    WORLD_COLORS[k],
                    [w.leakage(k) for _, w in m.counterfactual_daily],
                    fill=k == "policy",
                    dashed=k != "policy",
                )
                for k in ("blanket_refund", "no_action", "policy")
            ]
            parts.append(
                "<h3>Refund leakage by order day</h3>"
                + _legend([(s.name, s.color) for s in series], line=True)
                + "<figure>"
                + line_chart(
                    "chart-leakage-by-order-day",
                    "Refund leakage by order day under blanket refund, no action and the policy",
                    "Line chart: for the orders placed each day, the value refunded in each of "
                    "three worlds evaluated from ground truth.",
                    [day_label(d) for d in days],
                    series,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    y_title=f"refund leakage ({m.currency or 'value'})",
                    x_title="order day",
                )
                + "</figure>"
            )
        if m.observed_daily:
            days = [d.day for d in m.observed_daily]
            series = [
                Series(
                    "Refund leakage",
                    OBSERVED_COLORS["leakage"],
                    [d.refund_leakage for d in m.observed_daily],
                    fill=True,
                ),
                Series(
                    "Retained revenue (orders not refunded)",
                    OBSERVED_COLORS["retained"],
                    [d.retained_revenue for d in m.observed_daily],
                ),
            ]
            parts.append(
                "<h3>Observed in the streams, by resolution day</h3>"
                + _legend([(s.name, s.color) for s in series], line=True)
                + "<figure>"
                + line_chart(
                    "chart-observed-by-day",
                    "Observed refund leakage and retained revenue by resolution day",
                    "Line chart: the value refunded and the value of at-risk orders kept or "
                    "exchanged, by the day each case resolved, as recorded in the streams.",
                    [day_label(d, weekday=False) for d in days],
                    series,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    x_tips=[day_label(d) for d in days],
                    y_title=m.currency or "value",
                    x_title="resolution day",
                    height=250,
                )
                + "</figure>"
            )
        if not parts:
            return ""
        sub = (
            "Top: each order day's refunds in three worlds evaluated from the simulator's "
            "ground truth: refund everyone who asks (blanket refund), do nothing, or run "
            "this policy. Bottom: what the streams recorded as it happened."
            if m.counterfactual_daily
            else "What the streams recorded as it happened: refunds and the value of at-risk "
            "orders kept or exchanged, by the day each case resolved."
        )
        if m.observed_daily:
            sub += (
                " An order that is kept resolves when its recovery window closes, so kept "
                "value arrives weeks after the refunds."
            )
        if m.counterfactual_daily and m.observed_daily:
            sub += (
                " In a simulated replay the recorded streams are the no-intervention history, "
                "so the bottom chart shows no effect of the policy."
            )
        return _card(
            "over-time", "Leakage and retained revenue over time", escape(sub), "".join(parts)
        )

    def interventions(self) -> str:
        m = self.m
        by_arm = m.summary.get("decisions_by_action") or {}
        actions = sorted(
            (set(m.interventions_by_action) | set(by_arm)) - {"none"},
            key=lambda a: (-(m.interventions_by_action.get(a, 0)), a),
        )
        if not actions:
            return ""
        colors = action_colors(actions)
        emitted = [float(m.interventions_by_action.get(a, 0)) for a in actions]
        held = [float((by_arm.get(a) or {}).get("control", 0)) for a in actions]
        series = [Series("Emitted (treatment)", "#2b6cb0", emitted)]
        if any(held):
            series.append(Series("Held out (control)", "#a0aec0", held))
        left = (
            "<h3>By action</h3>"
            + _legend([(s.name, s.color) for s in series])
            + hbar_chart(
                "chart-interventions-by-action",
                "Interventions by action",
                "Horizontal bar chart: interventions emitted per action and, for comparison, "
                "decisions for the same action held out in the control arm.",
                [action_label(a) for a in actions],
                series,
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=11,
            )
        )
        right = ""
        if m.interventions_daily:
            days = day_range(m.interventions_daily)
            daily = [
                Series(
                    action_label(a),
                    colors[a],
                    [float(m.interventions_daily.get(d, {}).get(a, 0)) for d in days],
                )
                for a in actions
            ]
            right = (
                "<h3>Per day</h3>"
                + _legend([(s.name, s.color) for s in daily])
                + stacked_bar_chart(
                    "chart-interventions-by-day",
                    "Interventions emitted per day, by action",
                    "Stacked bar chart: interventions emitted each day, split by action.",
                    [day_label(d, weekday=False) for d in days],
                    daily,
                    value_fmt=count,
                    tick_fmt=count,
                    x_tips=[day_label(d) for d in days],
                    width=520,
                    height=250,
                )
            )
        sub = (
            "What the policy sent, and how often it held the same decision back: a share of "
            "orders is a control arm, decided and logged but never contacted, to measure uplift."
        )
        return _card(
            "interventions",
            "Interventions by action",
            escape(sub),
            f'<div class="grid2"><div>{left}</div><div>{right}</div></div>',
        )

    def segments(self) -> str:
        m = self.m
        panels = []
        use_truth = bool(m.counterfactual_segments)
        dims = [d for d in SEGMENTS if (m.counterfactual_segments or m.segments).get(d)]
        for dim in dims:
            name = SEGMENT_TITLES.get(dim, dim)
            cid = f"chart-segment-{dim.replace('_', '-')}"
            if use_truth:
                rows = m.counterfactual_segments[dim]
                keys = ("blanket_refund", "no_action", "policy")
                series = [
                    Series(WORLD_LABELS[k], WORLD_COLORS[k], [w.leakage(k) for _, w in rows])
                    for k in keys
                ]
                notes = [
                    f"saved {money_compact(w.saved_vs_no_action, self.cur)} "
                    f"({pct(-w.saved_vs_no_action / w.no_action, 0, signed=True)})"
                    if w.no_action
                    else DASH
                    for _, w in rows
                ]
                chart = hbar_chart(
                    cid,
                    f"Refund leakage by {name.lower()} in three worlds",
                    f"Grouped bar chart: refund leakage per {name.lower()} under blanket "
                    "refund, no action and the policy; right: value saved against no action.",
                    [k for k, _ in rows],
                    series,
                    value_fmt=self.tick_money,
                    tick_fmt=self.tick_money,
                    notes=notes,
                    width=520,
                    bar_height=9,
                )
            else:
                rows_o = m.segments[dim]
                series = [
                    Series(
                        "Refund leakage",
                        OBSERVED_COLORS["leakage"],
                        [r.refund_leakage for _, r in rows_o],
                    ),
                    Series(
                        "Retained revenue",
                        OBSERVED_COLORS["retained"],
                        [r.retained_revenue for _, r in rows_o],
                    ),
                ]
                notes = [
                    f"recovered {pct(r.recovery_rate, 0)} of {count(r.closed_at_risk)}"
                    if r.recovery_rate is not None
                    else "no resolved at-risk case"
                    for _, r in rows_o
                ]
                chart = hbar_chart(
                    cid,
                    f"Observed refund leakage and retained revenue by {name.lower()}",
                    f"Grouped bar chart: observed refund leakage and retained revenue per "
                    f"{name.lower()}; right: recovery rate of resolved at-risk cases.",
                    [k for k, _ in rows_o],
                    series,
                    value_fmt=self.tick_money,
                    tick_fmt=self.tick_money,
                    notes=notes,
                    width=520,
                    bar_height=10,
                )
            panels.append(f"<div><h3>{escape(name)}</h3>{chart}</div>")
        if not panels:
            return ""
        if use_truth:
            legend = _legend([(WORLD_LABELS[k], WORLD_COLORS[k]) for k in WORLD_COLORS])
            sub = (
                "Where the money leaks and where the policy recovers it: refund leakage per "
                "segment in each world, from ground truth. Right of each row: value the policy "
                "saved against doing nothing."
            )
        else:
            legend = _legend(
                [("Refund leakage", OBSERVED_COLORS["leakage"]),
                 ("Retained revenue (not refunded)", OBSERVED_COLORS["retained"])]
            )  # fmt: skip
            sub = (
                "Observed refund leakage and retained revenue per segment. Right of each row: "
                "recovery rate, the share of resolved at-risk cases kept or exchanged."
            )
        return _card(
            "segments",
            "Recovery by segment",
            escape(sub),
            legend + '<div class="grid2">' + "".join(panels) + "</div>",
        )

    def uplift(self) -> str:
        u = self.m.uplift
        if not u:
            return ""
        rows = []
        table = []
        for action, d in sorted(
            u.by_action.items(), key=lambda kv: -(kv[1].get("refund_rate_reduction") or -9)
        ):
            est, lo, hi = d.get("refund_rate_reduction"), d.get("ci_low"), d.get("ci_high")
            nt, nc = d.get("treated") or 0, d.get("control") or 0
            if est is not None and lo is not None and hi is not None:
                rows.append(
                    ForestRow(
                        action_label(action),
                        float(est),
                        float(lo),
                        float(hi),
                        f"{count(nt)} / {count(nc)}",
                        f"{action_label(action)}: refund rate {points(est)} "
                        f"[{points(lo)}, {points(hi)}], {nt:,} treated, {nc:,} control",
                    )
                )
            table.append(
                "<tr>"
                f"<td>{escape(action_label(action))}</td>"
                f"<td>{count(nt)}</td><td>{count(nc)}</td>"
                f"<td>{pct(d.get('treated_refund_rate'))}</td>"
                f"<td>{pct(d.get('control_refund_rate'))}</td>"
                f"<td>{points(est)}</td>"
                f"<td>{escape(self.money(d.get('value_saved_per_case'), 2))}</td>"
                f"<td>{escape(self.money(d.get('value_ci_low'), 2))} {DASH} "
                f"{escape(self.money(d.get('value_ci_high'), 2))}</td>"
                "</tr>"
            )
        chart = (
            forest_plot(
                "chart-uplift",
                "Uplift by action: reduction of the refund rate against the holdout",
                "Forest plot: for each action, the refund rate of the control arm minus that "
                "of the treated orders, in percentage points, with a 95 % interval.",
                rows,
                tick_fmt=lambda v: f"{v * 100:+.0f}".replace("-", MINUS),
                value_fmt=lambda v: f"{v * 100:+.1f}".replace("-", MINUS),
                value_unit="pts",
                left_hint="more refunds",
                right_hint="fewer refunds",
                x_title="refund-rate reduction, percentage points (control minus treated)",
            )
            if rows
            else '<p class="muted">No action has both treated and control cases yet.</p>'
        )
        thead = (
            "<thead><tr><th>Action</th><th>Treated</th><th>Control</th>"
            "<th>Refund rate treated</th><th>Refund rate control</th><th>Reduction</th>"
            "<th>Saved per case</th><th>95 % interval</th></tr></thead>"
        )
        sub = (
            "Each action against its own holdout: control-arm orders the policy chose the same "
            "action for but did not contact. Green: the interval excludes zero. "
        )
        if u.source == "observed":
            sub += (
                "Measured on the outcomes observed in the streams; in a simulated replay the "
                "streams are the no-intervention history, so observed uplift is close to zero "
                "by construction."
            )
        elif "ground truth" in u.source:
            sub += (
                "Realized from ground truth: treated orders take their outcome under the action "
                "sent, control orders their outcome with no action."
            )
        tag = "observed" if u.source == "observed" else u.source
        return _card(
            "uplift",
            "Uplift with 95 % intervals",
            escape(sub),
            f"{chart}<table>{thead}<tbody>{''.join(table)}</tbody></table>",
            tag=tag,
        )

    def arms(self) -> str:
        """Every arm on the same ground truth, and the policy's regret against the oracle
        over time (a learning policy should close the gap)."""
        block = self.m.summary.get("decision_arms")
        if not isinstance(block, Mapping) or not block.get("arms"):
            return ""
        labels = {
            "status_quo": "Status quo (every request handled as asked)",
            "blanket_refund": "Blanket refund (every request refunded in full)",
            "always_contact": "Always contact (reassure at the first risk signal)",
            "random_eligible": "Random eligible action",
            "static_rules": "Static rules (this policy, fixed heuristic scorer)",
            "policy": "This policy",
            "oracle": "Oracle (best action per order, in hindsight)",
        }
        rows = []
        for name in ARM_ORDER:
            arm = block["arms"].get(name)
            if not isinstance(arm, Mapping):
                continue
            share = arm.get("captured_share")
            cells = [
                pct(float(share)) if isinstance(share, int | float) else DASH,
                self.money(arm.get("refund_leakage")),
                self.money(arm.get("cost")),
                count(arm.get("contacted_orders")),
                count(arm.get("contacted_keepers")),
            ]
            strong = ' class="strong"' if name == "policy" else ""
            rows.append(
                f"<tr{strong}><td>{escape(labels[name])}</td>"
                + "".join(f"<td>{escape(c)}</td>" for c in cells)
                + "</tr>"
            )
        table = (
            "<table><thead><tr><th>Arm</th><th>Captured share</th><th>Refund leakage</th>"
            "<th>Contact + credit</th><th>Customers contacted</th>"
            "<th>of them would have kept it</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        chart = ""
        regret = [r for r in self.m.summary.get("regret_by_day") or [] if isinstance(r, Mapping)]
        if len(regret) > 1:
            days = [(date(1970, 1, 1) + timedelta(days=int(r["day"]))).isoformat() for r in regret]
            chart = _legend([("Cumulative regret against the oracle", "#d1495b")], line=True)
            chart += line_chart(
                "chart-regret",
                "The policy's cumulative regret against the oracle, by order day",
                "Refunds plus cost above what the oracle would have lost, summed over orders "
                "by the day they were placed; a flattening curve is the engine correcting "
                "itself.",
                [d[5:] for d in days],
                [Series("regret", "#d1495b", [float(r["cumulative_regret"]) for r in regret])],
                value_fmt=self.money,
                tick_fmt=self.tick_money,
                x_tips=days,
                y_title="cumulative regret",
            )
        sub = (
            "Every arm is scored by one rule on the same orders of the ground truth: refunds "
            "plus contact and credit cost. The captured share is the part of the oracle's "
            "avoidable loss an arm avoids (0 % = the status quo, 100 % = the oracle; below 0 "
            "an arm does harm, e.g. contacts that make keepers return). The policy's control "
            "orders count as if their logged decisions had been sent."
        )
        return _card(
            "arms",
            "Against baselines and an oracle",
            escape(sub),
            f"{table}<figure>{chart}</figure>" if chart else table,
        )

    def calibration(self) -> str:
        cals = self.m.calibration
        models = self.m.summary.get("models")
        if not cals and not isinstance(models, Mapping):
            return ""
        left = ""
        if any(c.bins for c in cals):
            curves = [(c.source, c.bins) for c in cals if c.bins]
            left = _legend(
                [(n, CALIBRATION_COLORS[i % 3]) for i, (n, _) in enumerate(curves)]
            ) + calibration_chart(
                "chart-calibration",
                "Calibration of the return-propensity score",
                "Reliability diagram: observed refund rate against the mean predicted "
                "probability in ten bins; the dashed diagonal is perfect calibration, dot size "
                "and grey bars show how many cases fall in each bin.",
                curves,
            )
        right = ""
        if cals:
            head = "".join(f"<th>{escape(c.source)}</th>" for c in cals)
            rows = [
                ("Labelled cases", [count(c.labelled) for c in cals]),
                ("ROC AUC", [_fmt3(c.roc_auc) for c in cals]),
                ("Log loss", [_fmt3(c.log_loss) for c in cals]),
                ("Expected calibration error", [_fmt3(c.ece) for c in cals]),
            ]
            body = "".join(
                f"<tr><td>{escape(k)}</td>{''.join(f'<td>{escape(v)}</td>' for v in vs)}</tr>"
                for k, vs in rows
            )
            right = f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"
        if isinstance(models, Mapping) and models:
            mrows = []
            for name, info in sorted(models.items()):
                if not isinstance(info, Mapping):
                    continue
                version = info.get("version")
                recovery = info.get("recovery_examples")
                facts = [f"version {version}" if version is not None else ""]
                if isinstance(recovery, Mapping) and recovery:
                    facts.append(
                        "recovery examples: "
                        + ", ".join(
                            f"{action_label(str(a)).lower()} {count(n)}"
                            for a, n in sorted(recovery.items())
                        )
                    )
                lag = info.get("learning_lag_seconds")
                if isinstance(lag, int | float):
                    facts.append(f"labels arrive {lag / 86400:.1f} days after the decision")
                text = "; ".join(f for f in facts if f)
                if text:
                    mrows.append(f"<li>{escape(action_label(str(name)))}: {escape(text)}.</li>")
            if mrows:
                right += f'<ul class="note">{"".join(mrows)}</ul>'
        sub = (
            "Does a predicted 30 % chance of a refund come true 30 % of the time? Points on "
            "the diagonal are well calibrated; below it the score over-predicts refunds, "
            "above it under-predicts them. The online model is scored before it learns from "
            "each label (progressive validation); the first score is the one each case got "
            "when it was first decided."
        )
        return _card(
            "calibration",
            "Model calibration",
            escape(sub),
            f'<div class="grid2"><figure>{left}</figure><div>{right}</div></div>',
        )

    def backtest(self) -> str:
        bt = self.m.backtest
        if not bt:
            return ""
        policies = [p for p in bt.get("policies") or [] if isinstance(p, Mapping)]
        if not policies:
            return ""
        names = [str(p.get("name") or f"policy {i + 1}") for i, p in enumerate(policies)]
        sums = [p.get("summary") or {} for p in policies]
        figs = [
            p.get("figures") or s.get("backtest") or {} for p, s in zip(policies, sums, strict=True)
        ]

        def figure(i: int, key: str) -> Any:
            return backtest_figure(policies[i], key)

        def as_cut(v: Any) -> float | None:
            if isinstance(v, Mapping):
                v = v.get("leakage_cut", v.get("refund_leakage_cut"))
            return float(v) if isinstance(v, int | float) else None

        metrics: list[tuple[str, str, Callable[[Any], str], int]] = [
            ("Refund leakage", "refund_leakage", self.money, -1),
            ("Leakage cut vs blanket refund", "vs_blanket_refund", lambda v: pct(v), 1),
            ("Leakage cut vs no action", "vs_no_action", lambda v: pct(v), 1),
            ("Retained revenue", "retained_revenue", self.money, 1),
            ("Contact cost", "contact_cost", self.money, -1),
            ("Credit cost", "credit_cost", self.money, -1),
            ("Cost share of revenue", "cost_share_of_revenue", lambda v: pct(v, 2), -1),
            ("Human review share of cases", "human_review_share", lambda v: pct(v), 0),
            ("Return model ROC AUC", "model_roc_auc", _fmt3, 1),
            ("Interventions", "interventions", count, 0),
        ]
        unknown = set(bt.get("unknown_without_ground_truth") or [])
        head = "".join(f"<th>{escape(n)}</th>" for n in names)
        versions = [str(p.get("version") or s.get("policy_version") or DASH)
                    for p, s in zip(policies, sums, strict=True)]  # fmt: skip
        body = [
            "<tr><td>Policy version</td>"
            + "".join(f'<td class="muted">{escape(v)}</td>' for v in versions)
            + "</tr>"
        ]
        for label, key, fmt, better in metrics:
            raw = [figure(i, key) for i in range(len(sums))]
            vals = [as_cut(v) if key.startswith("vs_") else v for v in raw]
            nums = [v for v in vals if isinstance(v, int | float)]
            best = (max(nums) if better > 0 else min(nums)) if nums and better else None
            cells = []
            for v in vals:
                if isinstance(v, int | float):
                    cls = (
                        ' class="best"' if best is not None and v == best and len(nums) > 1 else ""
                    )
                    cells.append(f"<td{cls}>{escape(fmt(v))}</td>")
                else:
                    why = "unknown without ground truth" if key in unknown else DASH
                    cells.append(f'<td class="muted">{escape(why)}</td>')
            body.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
        actions: set[str] = set()
        for f, s in zip(figs, sums, strict=True):
            actions |= set(f.get("actions_by_type") or {})
            actions |= set(s.get("interventions_by_action") or {})
        for a in sorted(actions - {"none"}):
            cells = []
            for f, s in zip(figs, sums, strict=True):
                n = (f.get("actions_by_type") or {}).get(a)
                if n is None:
                    n = (s.get("interventions_by_action") or {}).get(a, 0)
                cells.append(f"<td>{count(n)}</td>")
            label = NBSP * 4 + action_label(a)
            body.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
        table = (
            f"<table><thead><tr><th>Figure</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
        # Leakage of each policy next to the two baselines (shared by all policies).
        cats, vals, colors = [], [], []
        gt0 = next((s.get("ground_truth") for s in sums if s.get("ground_truth")), None) or {}
        for key in ("blanket_refund", "no_action"):
            v = (gt0.get(key) or {}).get("refund_leakage")
            if v is None:
                v = next((f.get(f"{key}_leakage") for f in figs if f.get(f"{key}_leakage")), None)
            if isinstance(v, int | float):
                cats.append(WORLD_LABELS[key])
                vals.append(float(v))
                colors.append(WORLD_COLORS[key])
        spare = iter(("#2b6cb0", "#59a14f", "#b07aa1", "#f28e2b", "#76b7b2", "#edc948") * 4)
        for i, n in enumerate(names):
            v = figure(i, "refund_leakage")
            if isinstance(v, int | float):
                cats.append(f"Policy {n}")
                vals.append(float(v))
                colors.append(next(spare))
        chart = ""
        if cats:
            chart = "<h3>Refund leakage</h3>" + hbar_chart(
                "chart-backtest",
                "Backtest: refund leakage per policy and baseline",
                "Horizontal bar chart: refund leakage under each backtested policy and under "
                "the blanket-refund and no-action baselines.",
                cats,
                [Series("Refund leakage", "#2b6cb0", list(vals))],
                bar_colors=colors,
                value_fmt=self.money,
                tick_fmt=self.tick_money,
                width=520,
                bar_height=16,
            )
        # What each policy saved against doing nothing, next to what it spent to do so.
        saved, spent, labels = [], [], []
        for i, n in enumerate(names):
            leak = figure(i, "refund_leakage")
            base = figs[i].get("no_action_leakage")
            if base is None:
                base = ((sums[i].get("ground_truth") or {}).get("no_action") or {}).get(
                    "refund_leakage"
                )
            costs = [figure(i, "contact_cost"), figure(i, "credit_cost")]
            if isinstance(leak, int | float) and isinstance(base, int | float):
                labels.append(f"Policy {n}")
                saved.append(float(base) - float(leak))
                spent.append(sum(float(c) for c in costs if isinstance(c, int | float)))
        if labels:
            net = [
                f"net {money_compact(a - b, self.cur)}" for a, b in zip(saved, spent, strict=True)
            ]
            chart += (
                "<h3>Saved against no action, and what it cost</h3>"
                + _legend([("Leakage avoided", "#2f855a"), ("Contact and credit cost", "#dd6b20")])
                + hbar_chart(
                    "chart-backtest-net",
                    "Backtest: leakage avoided against no action and intervention cost",
                    "Grouped bar chart: per policy, refund leakage avoided against doing "
                    "nothing, and the contact and credit cost spent; right: the difference.",
                    labels,
                    [
                        Series("Leakage avoided", "#2f855a", list(saved)),
                        Series("Contact and credit cost", "#dd6b20", list(spent)),
                    ],
                    notes=net,
                    value_fmt=self.money,
                    tick_fmt=self.tick_money,
                    width=520,
                    bar_height=14,
                )
            )
        sub = "The same input replayed under each policy. Best value per row in green. " + (
            "Leakage and costs are evaluated against ground truth."
            if bt.get("has_ground_truth")
            else "Without ground truth only observed figures are known."
        )
        return _card(
            "backtest",
            "Backtest: policies side by side",
            escape(sub),
            f'<div class="grid2"><div>{chart}</div><div>{table}</div></div>',
        )

    def data_quality(self) -> str:
        s, m = self.m.summary, self.m
        by = s.get("dead_letters_by_reason") or {}
        if by:
            rows = sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))
            left = "<h3>Dead letters by reason</h3>" + hbar_chart(
                "chart-dead-letters",
                "Dead letters by reason",
                "Horizontal bar chart: input records set aside, by reason.",
                [k.replace("_", " ") for k, _ in rows],
                [Series("Dead letters", "#718096", [float(v) for _, v in rows])],
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=14,
            )
        else:
            left = '<p class="muted">No input record was set aside.</p>'
        facts: list[tuple[str, str]] = []
        records, dead = s.get("input_records"), s.get("dead_letters")
        if records:
            facts.append(("Input records", count(records)))
        if dead is not None:
            share = f" ({pct(dead / records, 2)})" if records else ""
            facts.append(("Dead letters", count(dead) + share))
        facts.append(("Cases", count(m.cases)))
        order = ("kept", "exchanged", "refunded", "chargeback", "cancelled", "censored")
        kinds = sorted(m.outcome_counts, key=lambda k: (order.index(k) if k in order else 9, k))
        if kinds:
            colors = {"kept": "#2f855a", "exchanged": "#68d391", "refunded": "#d1495b"}
            colors |= {"chargeback": "#9b2c2c", "cancelled": "#a0aec0", "censored": "#cbd5e0"}
            left += "<h3>How the cases ended</h3>" + hbar_chart(
                "chart-outcomes",
                "Cases by outcome",
                "Horizontal bar chart: number of cases per outcome; open cases were still in "
                "their recovery window when the input ended.",
                kinds,
                [Series("Cases", "#718096", [float(m.outcome_counts[k]) for k in kinds])],
                bar_colors=[colors.get(k, "#718096") for k in kinds],
                value_fmt=count,
                tick_fmt=count,
                width=520,
                bar_height=14,
            )
        if s.get("seconds"):
            facts.append(("Replay time", f"{float(s['seconds']):,.1f} s"))
        if s.get("events_per_second"):
            facts.append(("Throughput", f"{count(s['events_per_second'])} events/s"))
        if s.get("truth_labels") is not None:
            facts.append(
                ("Models learned from", "ground truth" if s["truth_labels"] else "streams")
            )
        table = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in facts)
        sub = (
            "Input records set aside with a reason instead of being processed (invalid, late "
            "beyond the allowed lateness, or for a case already closed), and how the cases "
            "ended. Open cases were still inside their recovery window when the input ended."
        )
        return _card(
            "data-quality",
            "Data quality and run",
            escape(sub),
            f'<div class="grid2"><div>{left}</div><div><h3>Run</h3>'
            f"<table><tbody>{table}</tbody></table></div></div>",
        )

    def footer(self) -> str:
        s, m = self.m.summary, self.m
        defs = [
            ("Refund leakage", "value refunded, refunds and chargebacks."),
            (
                "Retained revenue",
                "value of orders kept or exchanged (observed: at-risk cases only).",
            ),
            ("Blanket refund", "every refund request refunded at once."),
            ("No action", "the same orders with no intervention."),
            ("Holdout", "control-arm orders: decided and logged, never contacted."),
        ]
        run = []
        if s.get("input_records"):
            run.append(f"{count(s['input_records'])} input records")
        if s.get("seconds"):
            run.append(f"replayed in {float(s['seconds']):.1f} s")
        if s.get("events_per_second"):
            run.append(f"{count(s['events_per_second'])} events/s")
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in m.notes)
        dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in defs)
        src = f"Generated by salvage report from {m.source}. " if m.source else ""
        return (
            f'<footer class="wrap">{notes}<dl>{dl}</dl><p>{escape(src)}'
            f"{escape(', '.join(run))}</p></footer>"
        )

    def render(self) -> str:
        sections = [
            self.arms(),
            self.backtest(),
            self.over_time(),
            self.interventions(),
            self.segments(),
            self.uplift(),
            self.calibration(),
            self.data_quality(),
        ]
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(self.m.title)} · Salvage</title>"
            f"<style>{CSS}</style></head><body>"
            + self.header()
            + '<main class="wrap">'
            + self.lead()
            + self.scenario_note()
            + self.story()
            + self.kpis()
            + "".join(sections)
            + "</main>"
            + self.footer()
            + "</body></html>\n"
        )


def _fmt3(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else DASH


def render_html(model: ReportModel) -> str:
    """The report page of ``model``: one self-contained HTML document."""
    return _Page(model).render()
