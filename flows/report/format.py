"""How the report writes figures, days and action names, and the colours it uses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from operators.actions import action_names

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
#: The registered actions' colours, in registration order (``operators.actions``); actions
#: registered beyond these, and names a run has that are not registered, take a spare one.
ACTION_COLORS = ("#4e79a7", "#59a14f", "#b07aa1", "#f28e2b", "#e15759")
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
    """A stable colour per action: the first registered actions keep theirs, others share
    a palette.

    >>> action_colors(["human_review", "teleport", "proactive_reassurance"])
    {'human_review': '#e15759', 'proactive_reassurance': '#4e79a7', 'teleport': '#76b7b2'}
    """
    own = dict(zip(action_names(), ACTION_COLORS, strict=False))
    out: dict[str, str] = {}
    spare = iter(PALETTE * 4)
    for a in sorted(set(actions)):
        out[a] = own.get(a) or next(spare, "#888888")
    return out
