"""Report aggregates of a run's outputs: pure, no file access (:mod:`flows.report` reads the files).

One pass over ``outcomes`` records (daily leakage, recovery by segment, calibration pairs,
uplift rows), one over ``interventions`` (daily actions, the first action per order) and,
when a simulator ground truth is available, one over its rows (leakage under the policy,
blanket refund and no action, by order day and by segment; uplift realized from ground
truth). Only aggregates are kept, so the page stays small whatever the number of orders.

>>> agg = OutcomeAggregates()
>>> agg.add({"order_id": "o1", "outcome": "refunded", "resolved_at": "2026-06-02T10:00:00Z",
...          "refund_value": 40.0, "retained_value": 0.0, "at_risk": True})
>>> agg.daily["2026-06-02"].refund_leakage
40.0
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from flows.report.format import NO_RESOLUTION, NONE_LABEL, OTHER_LABEL, RECOVERED, UNRESOLVED
from operators.baselines import Choice, policy_choices, truth_outcome
from operators.evaluation import REFUNDED, calibration, log_loss, roc_auc
from operators.uplift import SEGMENTS, UpliftRow, rows_from_outcomes, uplift_by_action

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
    top, tail = ranked[: limit - 1], ranked[limit - 1 :]
    rest = make()
    for _, v in tail:
        rest.merge(v)
    top.append((f"{len(tail)} {OTHER_LABEL}", rest))
    return top


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
    bins: Sequence[Mapping[str, Any]]
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
    raw_validation = model.get("validation")
    validation: Mapping[str, Any] = raw_validation if isinstance(raw_validation, Mapping) else {}
    cal = model.get("calibration")
    if not isinstance(cal, Mapping):
        cal = validation.get("calibration")
    if not isinstance(cal, Mapping):
        return None
    bins = cal.get("bins")
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
