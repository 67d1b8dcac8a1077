"""Inline SVG charts of the report: lines, stacked bars, horizontal bars, a forest plot of
uplift intervals and a calibration curve, each with a title, a description, axis labels
and tooltips, so the page needs no script, font or image from anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

# --- SVG charts ---------------------------------------------------------------------------


@dataclass
class Series:
    """One named, coloured series of a chart (``None`` values are gaps)."""

    name: str
    color: str
    values: Sequence[float | None]
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


@dataclass(frozen=True, slots=True)
class _CategoryFrame:
    """The plot area of a chart over evenly spaced categories (days): one band per
    category, values from ``lo`` to ``hi`` bottom to top."""

    left: float
    right: float
    top: float
    bottom: float
    band: float
    lo: float
    hi: float

    @classmethod
    def of(
        cls, categories: int, lo: float, hi: float, x_title: str | None, width: float, height: float
    ) -> _CategoryFrame:
        ml, mr, mt, mb = 78, 16, 12, 46 if x_title else 28
        left, right = ml, width - mr
        return cls(left, right, mt, height - mb, (right - left) / max(categories, 1), lo, hi)

    def x(self, i: int) -> float:
        """The centre of category ``i``."""
        return self.left + self.band * (i + 0.5)

    def y(self, v: float) -> float:
        return self.bottom - (self.bottom - self.top) * (v - self.lo) / ((self.hi - self.lo) or 1)

    def axes(
        self,
        x_labels: list[str],
        ticks: list[float],
        tick_fmt: Callable[[float], str],
        x_title: str | None,
        y_title: str | None,
        height: float,
    ) -> list[str]:
        """Grid lines and tick labels, the category labels, and the axis titles."""
        left, right, top, bottom = self.left, self.right, self.top, self.bottom
        body = _y_axis(ticks, self.y, left, right, tick_fmt)
        body += _x_labels(x_labels, self.x, bottom + 16, left, right)
        body += _axis_titles(x_title, y_title, left, right, top, bottom, height)
        return body


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
    vals = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(min(0.0, *vals) if vals else 0.0, max(vals, default=0.0))
    lo = ticks[0]
    n = max(len(x_labels), 1)
    frame = _CategoryFrame.of(len(x_labels), ticks[0], ticks[-1], x_title, width, height)
    x, y = frame.x, frame.y
    body = frame.axes(x_labels, ticks, tick_fmt, x_title, y_title, height)
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
    totals = [sum((s.values[i] or 0.0) for s in series) for i in range(len(x_labels))]
    ticks = nice_ticks(0.0, max(totals, default=0.0))
    # The bars stand on zero, whatever the lowest tick.
    frame = _CategoryFrame.of(len(x_labels), 0.0, ticks[-1], x_title, width, height)
    y = frame.y
    bar = max(min(frame.band * 0.72, 48.0), 1.0)
    body = frame.axes(x_labels, ticks, tick_fmt, x_title, y_title, height)
    tips = x_tips or x_labels
    for i in range(len(x_labels)):
        acc = 0.0
        x0 = frame.x(i) - bar / 2
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
    curves: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
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
