"""Online learning with two Bytewax workers: one learner sees every labelled example, cuts
versions of the models at event-time boundaries, and the scorers of both workers read the
version of each decision's event time: the same versions, and the same bytes, as with one
worker.

The input is a small simulated week with short recovery windows, so cases close (and
labels reach the learner) while the replay is still running, not only at end of input.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.jsonl import read_jsonl
from flows.observer import FlowObserver
from flows.replay import ReplayOptions, run_replay
from flows.sinks import OUTPUTS
from operators.case import DAY
from operators.contract import parse_ts
from operators.policy import RecoveryPolicy
from operators.simulation import simulate
from operators.vocabulary import Covariance
from operators.window import WindowConfig

HORIZON_DAYS = 3
SHORT_WINDOWS = WindowConfig(window_after_delivery=3 * DAY, window_after_placed=10 * DAY)
#: Decides (and so emits decision points) but never acts: every decision point whose label
#: horizon ends within the input is then an example, whatever the models say.
WATCH_ONLY = RecoveryPolicy.from_text(
    'version: "watch-only"\nranking: {min_return_propensity: 1.0}\n'
    f"learning: {{label_horizon_days: {HORIZON_DAYS}}}\n"
    "actions: {human_review: {cost: 4}}\n",
    "watch-only.yaml",
)
_DEFAULT_DOC = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "operators" / "policies" / "default.yaml").read_text()
)
DEFAULT_SHORT = RecoveryPolicy.from_text(
    yaml.safe_dump({**_DEFAULT_DOC, "learning": {"label_horizon_days": HORIZON_DAYS}}),
    "default-short.yaml",
)
_LEARNING_DOC = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "operators" / "policies" / "learning.yaml").read_text()
)
#: The learning policy: wider eligibility and a full-covariance posterior (numpy).
LEARNING_SHORT = RecoveryPolicy.from_text(
    yaml.safe_dump(
        {**_LEARNING_DOC, "learning": {**_LEARNING_DOC["learning"], "label_horizon_days": 3}}
    ),
    "learning-short.yaml",
)


def replay(data: Path, out: Path, policy: RecoveryPolicy, workers: int) -> dict[str, Any]:
    published: list[dict[str, Any]] = []
    run = run_replay(
        data,
        out,
        policy,
        ReplayOptions(window=SHORT_WINDOWS, workers=workers, batch_size=100),
        observer=FlowObserver(on_model=published.append),
    )
    return {
        "out": out,
        "exactness": run.exactness,
        "stats": run.model_stats,
        "published": published,
        "outcomes": read_jsonl(out / "outcomes.jsonl"),
        "decisions": read_jsonl(out / "decisions.jsonl"),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("workers")
    data = base / "input"
    simulate("launch-week-backlog", 800, 99, data)
    return {
        "watch-1": replay(data, base / "watch-1", WATCH_ONLY, workers=1),
        "watch-2": replay(data, base / "watch-2", WATCH_ONLY, workers=2),
        "default-1": replay(data, base / "default-1", DEFAULT_SHORT, workers=1),
        "default-2": replay(data, base / "default-2", DEFAULT_SHORT, workers=2),
        "learning-1": replay(data, base / "learning-1", LEARNING_SHORT, workers=1),
        "learning-2": replay(data, base / "learning-2", LEARNING_SHORT, workers=2),
    }


def labelled_examples(run: dict[str, Any]) -> int:
    """The learning examples a run's outputs imply. Each decision point is labelled at
    ``decided_at + horizon`` if that is within the input (censored cases: never later);
    a treated case's first action drops its no-action points whose horizon ends after it,
    gives one example at its own point and ends the case's examples; a cancellation drops
    the points whose horizon ends after it."""
    horizon = HORIZON_DAYS * DAY
    outcomes = {o["order_id"]: o for o in run["outcomes"]}
    end = max(parse_ts(o["resolved_at"]) for o in run["outcomes"])
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in run["decisions"]:
        by_order[d["order_id"]].append(d)
    total = 0
    for order_id, decisions in by_order.items():
        o = outcomes[order_id]
        limit = end
        if o["outcome"] == "cancelled":
            limit = min(end, parse_ts(o["resolved_at"]))
        releases: list[float] = []
        for d in sorted(decisions, key=lambda d: d["decided_at"]):
            t = parse_ts(d["decided_at"])
            if d["arm"] == "treatment" and d["action"] != "none":
                releases = [r for r in releases if r <= t] + [t + horizon]
                break
            releases.append(t + horizon)
        total += sum(1 for r in releases if r <= limit)
    return total


def outcome_set(run: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (o["order_id"], o["outcome"], o["resolved_at"], o["refund_value"], o["retained_value"])
        for o in run["outcomes"]
    }


def test_two_workers_close_the_same_cases_with_the_same_labels(runs) -> None:
    one, two = runs["watch-1"], runs["watch-2"]
    assert outcome_set(two) == outcome_set(one) == outcome_set(runs["default-2"])
    assert Counter(d["order_id"] for d in two["decisions"]) == Counter(
        d["order_id"] for d in one["decisions"]
    )
    # Labels arrived during the replay, not only at its end.
    kinds = Counter(o["outcome"] for o in one["outcomes"])
    assert kinds["kept"] > 100 and kinds["refunded"] > 0
    assert labelled_examples(two) == labelled_examples(one) > 300
    assert all(d["action"] == "none" for d in two["decisions"])


def _visible(decided_at: str) -> float:
    lag = RecoveryPolicy.default().version_lag_hours * 3600.0
    return math.floor((parse_ts(decided_at) - lag) / DAY) * DAY


def test_the_versions_and_their_boundaries_are_the_same_with_one_or_two_workers(runs) -> None:
    for policy in ("watch", "default"):
        one, two = runs[f"{policy}-1"], runs[f"{policy}-2"]
        # Every version a decision could read: cut at or before the last decision's
        # boundary (later cuts only depend on when the end of input reached the learner).
        last = max(_visible(d["decided_at"]) for d in one["decisions"])

        def cuts(run: dict[str, Any], last: float = last) -> list[tuple[int, float, int]]:
            return [
                (s["version"], s["version_boundary"], s["examples"])
                for s in run["published"]
                if s["version_boundary"] is not None and s["version_boundary"] <= last
            ]

        assert cuts(one) == cuts(two), policy
        # Several versions during the run, numbered in order, cut at increasing boundaries
        # of whole days of event time.
        versions = [v for v, _, _ in cuts(one)]
        assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 5, policy
        boundaries = [b for _, b, _ in cuts(one)]
        assert boundaries == sorted(set(boundaries)), policy
        assert all(b % DAY == 0 for b in boundaries), policy
        counts = [n for _, _, n in cuts(one)]
        assert counts == sorted(counts) and counts[0] > 0, policy
        assert one["stats"]["examples"] == two["stats"]["examples"], policy
        # Exact: nothing reached the learner after the version it belonged in was cut, and
        # no decision read a version before it was complete.
        for run in (one, two):
            assert run["exactness"] == {
                "late_examples": 0, "early_reads": 0, "late_context_updates": 0,
            }, policy  # fmt: skip


@pytest.mark.parametrize("name", ["watch-1", "watch-2", "default-1", "default-2"])
def test_the_learner_counts_every_labelled_example(runs, name: str) -> None:
    run = runs[name]
    expected = labelled_examples(run)
    assert run["stats"]["examples"] == expected
    assert run["published"][-1]["examples"] == expected


def test_each_decision_reads_the_version_of_its_event_time(runs) -> None:
    """A decision at t reads the newest version cut at or before floor((t - lag) / day)
    days: which version that is depends on t alone, not on batches or workers."""
    for name in ("watch-2", "default-2"):
        run = runs[name]
        cuts = [
            (s["version_boundary"], s["version"])
            for s in run["published"]
            if s["version_boundary"] is not None
        ]
        learned = 0
        for d in run["decisions"]:
            visible = _visible(d["decided_at"])
            known = [v for b, v in cuts if b <= visible]
            expected = f"river-lr-v{known[-1]}" if known else "heuristic-1"
            assert d["model_version"] == expected, (name, d["order_id"], d["decided_at"])
            learned += bool(known)
        assert learned >= 100, f"{name}: scorers never read a published model"


def test_two_workers_write_the_same_bytes_as_one(runs) -> None:
    assert LEARNING_SHORT.covariance is Covariance.FULL
    # The bandit learned (its full covariance included) before the bytes are compared.
    assert sum(runs["learning-1"]["stats"]["bandit_outcomes"].values()) > 20
    for policy in ("watch", "default", "learning"):
        one, two = runs[f"{policy}-1"]["out"], runs[f"{policy}-2"]["out"]
        for name in OUTPUTS:
            assert (one / f"{name}.jsonl").read_bytes() == (two / f"{name}.jsonl").read_bytes()
        assert not any(two.glob("*.w*.jsonl"))  # the workers' parts were merged
