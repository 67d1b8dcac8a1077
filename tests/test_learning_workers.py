"""Online learning with two Bytewax workers: one learner sees every labelled example, and
the scorers of both workers read the versions it publishes.

The input is a small simulated week with short recovery windows, so cases close (and
labels reach the learner) while the replay is still running, not only at end of input.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.dataflow import FlowObserver
from flows.replay import ReplayOptions, run_replay
from flows.sinks import read_jsonl
from operators.case import DAY, POINTS_LIMIT
from operators.policy import RecoveryPolicy
from operators.simulation import simulate
from operators.window import WindowConfig

PUBLISH_EVERY = 37
SHORT_WINDOWS = WindowConfig(window_after_delivery=3 * DAY, window_after_placed=10 * DAY)
#: Decides (and so keeps decision points) but never acts: every labelled case then gives
#: one example per decision point, whatever the models say, in any number of workers.
WATCH_ONLY = RecoveryPolicy.from_text(
    'version: "watch-only"\nranking: {min_return_propensity: 1.0}\n'
    "actions: {human_review: {cost: 4}}\n",
    "watch-only.yaml",
)


def replay(data: Path, out: Path, policy: RecoveryPolicy, workers: int) -> dict[str, Any]:
    published: list[dict[str, Any]] = []
    run = run_replay(
        data,
        out,
        policy,
        ReplayOptions(
            window=SHORT_WINDOWS, workers=workers, publish_every=PUBLISH_EVERY, batch_size=100
        ),
        observer=FlowObserver(on_model=published.append),
    )
    return {
        "out": out,
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
        "default-2": replay(data, base / "default-2", RecoveryPolicy.default(), workers=2),
    }


def labelled_examples(run: dict[str, Any]) -> int:
    """The learning examples a run's outputs imply: a labelled case (closed, not cancelled)
    teaches one example per decision point (the latest six), or, if the treatment arm
    acted on it, one example at the point its first action was chosen."""
    points = Counter(d["order_id"] for d in run["decisions"])
    total = 0
    for o in run["outcomes"]:
        n = points[o["order_id"]]
        if o["outcome"] in ("open", "cancelled") or n == 0:
            continue
        total += 1 if o["arm"] == "treatment" and o["actions"] else min(n, POINTS_LIMIT)
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
    assert labelled_examples(two) == labelled_examples(one) > 10 * PUBLISH_EVERY
    assert all(d["action"] == "none" for d in two["decisions"])


def test_the_learner_publishes_versions_in_order_during_the_run(runs) -> None:
    for name, run in runs.items():
        versions = [s["version"] for s in run["published"]]
        assert versions == list(range(1, len(versions) + 1)), name
        counts = [s["examples"] for s in run["published"]]
        assert counts == sorted(counts) and counts[0] == PUBLISH_EVERY, name
        assert len(versions) >= labelled_examples(run) // PUBLISH_EVERY, name


@pytest.mark.parametrize("name", ["watch-1", "watch-2", "default-2"])
def test_the_learner_counts_every_labelled_example(runs, name: str) -> None:
    run = runs[name]
    expected = labelled_examples(run)
    assert expected % PUBLISH_EVERY != 0  # else a missing final publish would go unseen
    assert run["stats"]["examples"] == expected
    assert run["published"][-1]["examples"] == expected
    if name == "watch-2":
        assert expected == runs["watch-1"]["stats"]["examples"]


def test_scorers_on_both_workers_read_published_versions(runs) -> None:
    for name in ("watch-2", "default-2"):
        out: Path = runs[name]["out"]
        parts = [out / "decisions.jsonl", out / "decisions.w1.jsonl"]
        last_version = max(s["version"] for s in runs[name]["published"])
        for part in parts:
            lines = part.read_bytes().splitlines()
            assert lines, f"{part.name}: the worker decided nothing"
            versions = [orjson.loads(line)["model_version"] for line in lines]
            learned = [int(v.rsplit("v", 1)[1]) for v in versions if v.startswith("river-lr-v")]
            assert len(learned) >= 10, f"{part.name}: scorers never read a published model"
            # A scorer only ever moves to a newer version, and only to published ones.
            first = versions.index(f"river-lr-v{learned[0]}")
            assert set(versions[:first]) <= {"heuristic-1"}
            assert learned == sorted(learned) and max(learned) <= last_version
