"""Return-propensity quality at the moment of decision, per decision point, not pooled.

Pooling every decision point flatters a model: points after a refund request are almost
all positive and easy. So quality is reported at each order's *first* decision point and
at the first decision of each kind of point (order placed, first delivery problem, first
support contact, request), on the label the model is trained for: a refund issued within
the label horizon after the decision. Cases censored before their horizon passed are left
out, and so are cancelled orders.

With the decisions of a ``--no-learning`` run over the same input, the heuristic prior's
figures are computed on exactly the same examples (joined on order and trigger event), so
a reader sees what learning adds.

>>> decisions = [{"order_id": "a", "trigger_event_id": "e1", "point": "order",
...               "decided_at": "2026-06-01T00:00:00Z", "scores": {"return_propensity": 0.9}},
...              {"order_id": "b", "trigger_event_id": "e2", "point": "order",
...               "decided_at": "2026-06-01T00:00:00Z", "scores": {"return_propensity": 0.1}}]
>>> outcomes = [{"order_id": "a", "outcome": "refunded", "resolved_at": "2026-06-03T00:00:00Z"},
...             {"order_id": "b", "outcome": "kept", "resolved_at": "2026-07-01T00:00:00Z"}]
>>> q = quality_at_decision(decisions, outcomes, horizon_days=10)
>>> q["first"]["learned"]["roc_auc"], q["first"]["learned"]["examples"]
(1.0, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from operators.case import DAY
from operators.contract import parse_ts
from operators.evaluation import calibration, log_loss, roc_auc
from operators.vocabulary import DecisionPoint, Outcome

_NO_LABEL = frozenset({Outcome.CANCELLED, Outcome.CENSORED, "open"})


def _figures(pairs: list[tuple[int, float]]) -> dict[str, Any]:
    ys = [y for y, _ in pairs]
    ps = [p for _, p in pairs]
    auc, loss = roc_auc(ys, ps), log_loss(ys, ps)
    return {
        "examples": len(ys),
        "base_rate": round(sum(ys) / len(ys), 4) if ys else None,
        "mean_predicted": round(sum(ps) / len(ps), 4) if ps else None,
        "roc_auc": round(auc, 4) if auc is not None else None,
        "log_loss": round(loss, 4) if loss is not None else None,
        "calibration_error": calibration(ys, ps)["ece"] if ys else None,
    }


def _labels(
    outcomes: Iterable[Mapping[str, Any]],
) -> dict[str, tuple[bool, float | None, float | None]]:
    """order_id -> (refunded?, resolved at, censored at)."""
    out: dict[str, tuple[bool, float | None, float | None]] = {}
    for o in outcomes:
        kind = o["outcome"]
        resolved = parse_ts(o["resolved_at"]) if o.get("resolved_at") else None
        if kind in (Outcome.CENSORED, "open"):
            out[o["order_id"]] = (False, None, resolved)
        elif kind != Outcome.CANCELLED:
            out[o["order_id"]] = (kind in (Outcome.REFUNDED, Outcome.CHARGEBACK), resolved, None)
    return out


def _label(
    facts: tuple[bool, float | None, float | None] | None, decided: float, horizon: float
) -> int | None:
    """1 if a refund was issued within ``horizon`` of ``decided``, 0 if not, None if the
    case was censored before the horizon passed (or never seen)."""
    if facts is None:
        return None
    refunded, resolved, censored = facts
    due = decided + horizon
    if censored is not None:
        return 0 if censored >= due else None
    if refunded and resolved is not None:
        return 1 if resolved <= due else 0
    return 0


def _points(decisions: Iterable[Mapping[str, Any]]) -> dict[str, dict[tuple[str, str], Any]]:
    """Per kind ("first" and each decision point): (order, trigger) -> decision."""
    out: dict[str, dict[tuple[str, str], Any]] = {"first": {}}
    seen: set[tuple[str, str]] = set()
    for d in decisions:
        oid = d["order_id"]
        key = (oid, d.get("trigger_event_id") or "")
        if (oid, "") not in seen:
            seen.add((oid, ""))
            out["first"][key] = d
        point = d.get("point") or DecisionPoint.OTHER
        if (oid, point) not in seen:
            seen.add((oid, point))
            out.setdefault(str(point), {})[key] = d
    return out


def quality_at_decision(
    decisions: Iterable[Mapping[str, Any]],
    outcomes: Iterable[Mapping[str, Any]],
    *,
    horizon_days: float,
    heuristic_decisions: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Figures per kind of decision point for the run's scores (``learned``) and, given
    a ``--no-learning`` run's decisions, the heuristic prior's on the same examples."""
    labels = _labels(outcomes)
    horizon = horizon_days * DAY
    prior: dict[tuple[str, str], float] = {}
    if heuristic_decisions is not None:
        for d in heuristic_decisions:
            key = (d["order_id"], d.get("trigger_event_id") or "")
            prior.setdefault(key, float(d["scores"]["return_propensity"]))
    out: dict[str, Any] = {"label": f"refund issued within {horizon_days:g} days of the decision"}
    for kind, points in _points(decisions).items():
        learned: list[tuple[int, float]] = []
        paired: list[tuple[int, float]] = []
        for key, d in points.items():
            y = _label(labels.get(key[0]), parse_ts(d["decided_at"]), horizon)
            if y is None:
                continue
            learned.append((y, float(d["scores"]["return_propensity"])))
            if key in prior:
                paired.append((y, prior[key]))
        block = {"learned": _figures(learned)}
        if heuristic_decisions is not None:
            block["heuristic"] = _figures(paired)
        out[kind] = block
    return out


def format_quality(q: Mapping[str, Any]) -> list[str]:
    """The quality block as table lines."""
    lines = [
        f"return propensity at the moment of decision ({q['label']})",
        f"  {'point':<10}{'model':<11}{'examples':>9}{'base rate':>11}{'mean pred':>11}"
        f"{'ROC AUC':>9}{'log loss':>10}{'calib. err':>12}",
    ]
    for kind in ("first", *(p.value for p in DecisionPoint)):
        block = q.get(kind)
        if not block:
            continue
        for model in ("learned", "heuristic"):
            f = block.get(model)
            if not f or not f["examples"]:
                continue

            def num(x: float | None) -> str:
                return "n/a" if x is None else f"{x:.3f}"

            lines.append(
                f"  {kind:<10}{model:<11}{f['examples']:>9,}{num(f['base_rate']):>11}"
                f"{num(f['mean_predicted']):>11}{num(f['roc_auc']):>9}{num(f['log_loss']):>10}"
                f"{num(f['calibration_error']):>12}"
            )
    return lines
