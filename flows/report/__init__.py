"""The HTML report of a run directory: read its outputs, aggregate, render, write.

``write_report(out_dir)`` is what ``salvage report``, ``replay --report``, ``backtest
--report`` and the demo call. It reads what a replay or a backtest wrote into
``out_dir`` (``summary.json``, ``outcomes.jsonl``, ``interventions.jsonl``, optionally
``backtest.json``), streams the JSONL files so memory stays bounded by the number of
orders, and writes ``out_dir/report.html``: one file, no external resources.

With a simulator ground truth (passed explicitly, or found through the ``input_dir``
recorded in ``summary.json`` or the ``input`` of ``backtest.json``) the report adds
leakage under the policy, blanket refund and no action by order day and by segment,
and uplift realized from ground truth.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from flows.jsonl import iter_jsonl
from flows.report.aggregate import ReportModel, build_model
from flows.report.page import render_html

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
GROUND_TRUTH_FILE = "ground_truth.jsonl"


class ReportError(ValueError):
    """An input file of the report is not what a Salvage run writes; names the file.
    (A JSONL line that is not a JSON object raises :class:`flows.jsonl.JsonlError`.)"""


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _ground_truth_in(directory: Any) -> Path | None:
    if not directory:
        return None
    for name in (GROUND_TRUTH_FILE, GROUND_TRUTH_FILE + ".gz"):
        p = Path(str(directory)) / name
        if p.exists():
            return p
    return None


def find_ground_truth(
    summary: Mapping[str, Any] | None, backtest: Mapping[str, Any] | None
) -> Path | None:
    """The ground-truth file of the run's input, if the outputs say where the input was."""
    summary = summary or {}
    for key in ("ground_truth_path", "ground_truth_file"):
        if summary.get(key) and Path(str(summary[key])).exists():
            return Path(str(summary[key]))
    for candidate in (
        summary.get("input_dir"),
        summary.get("input"),
        (backtest or {}).get("input"),
    ):
        if found := _ground_truth_in(candidate):
            return found
    return None


def _outputs_dir(out_dir: Path, summary: Mapping[str, Any] | None) -> Path:
    """Where the JSONL outputs are: ``out_dir`` itself, or where the summary says."""
    if (out_dir / "outcomes.jsonl").exists():
        return out_dir
    outcomes = ((summary or {}).get("outputs") or {}).get("outcomes")
    if outcomes and Path(str(outcomes)).exists():
        return Path(str(outcomes)).parent
    return out_dir


def load_model(
    out_dir: Path,
    *,
    ground_truth: Path | None = None,
    title: str | None = None,
) -> ReportModel:
    """Read the run in ``out_dir`` and aggregate it into a :class:`ReportModel`.

    A backtest directory (``backtest.json``) is reported through its first policy's
    outputs, with the side-by-side comparison of all policies.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no such directory: {out_dir}")
    summary = _read_json(out_dir / "summary.json")
    backtest = _read_json(out_dir / "backtest.json")
    if summary is None and backtest:
        first = next(iter(backtest.get("policies") or []), None)
        summary = (first or {}).get("summary") if isinstance(first, Mapping) else None
    data_dir = _outputs_dir(out_dir, summary)
    if summary is None and not (data_dir / "outcomes.jsonl").exists():
        raise FileNotFoundError(
            f"{out_dir} has no Salvage outputs: expected summary.json, outcomes.jsonl "
            "or backtest.json (written by salvage replay, demo or backtest)"
        )
    truth = Path(ground_truth) if ground_truth else find_ground_truth(summary, backtest)
    if truth is not None and not truth.exists():
        raise FileNotFoundError(f"no such ground-truth file: {truth}")
    scenario = _read_json(truth.parent / "scenario.json") if truth else None
    if truth:
        log.debug("report: using ground truth %s", truth)
    return build_model(
        summary,
        iter_jsonl(data_dir / "outcomes.jsonl"),
        iter_jsonl(data_dir / "interventions.jsonl"),
        ground_truth=iter_jsonl(truth) if truth else None,
        decisions=iter_jsonl(data_dir / "decisions.jsonl") if truth else None,
        backtest=backtest,
        scenario=scenario,
        title=title,
        source="/".join(out_dir.resolve().parts[-2:]),
    )


def render_report(
    out_dir: Path, *, ground_truth: Path | None = None, title: str | None = None
) -> str:
    """The report of the run in ``out_dir`` as one self-contained HTML document."""
    return render_html(load_model(out_dir, ground_truth=ground_truth, title=title))


def write_report(
    out_dir: Path,
    path: Path | None = None,
    *,
    ground_truth: Path | None = None,
    title: str | None = None,
) -> Path:
    """Write the report of ``out_dir`` to ``path`` (default ``out_dir/report.html``)."""
    html = render_report(out_dir, ground_truth=ground_truth, title=title)
    target = Path(path) if path else Path(out_dir) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target
