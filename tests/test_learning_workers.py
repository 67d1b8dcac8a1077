"""Online learning with two Bytewax workers: one learner sees every labelled example, and
the scorers of both workers read the versions it publishes.

The input is a small simulated week with short recovery windows, so cases close (and
labels reach the learner) while the replay is still running, not only at end of input.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from flows.dataflow import FlowObserver
from flows.jsonl import read_jsonl
from flows.replay import ReplayOptions, run_replay
from operators.case import DAY
from operators.contract import parse_ts
from operators.policy import RecoveryPolicy
from operators.simulation import simulate
from operators.window import WindowConfig

PUBLISH_EVERY = 37
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
    (Path(__file__).resolve().parents[1] / "operators" / "policies" / "default.yaml").read_text()
)
DEFAULT_SHORT = RecoveryPolicy.from_text(
    yaml.safe_dump({**_DEFAULT_DOC, "learning": {"label_horizon_days": HORIZON_DAYS}}),
    "default-short.yaml",
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
        "default-1": replay(data, base / "default-1", DEFAULT_SHORT, workers=1),
        "default-2": replay(data, base / "default-2", DEFAULT_SHORT, workers=2),
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
    assert labelled_examples(two) == labelled_examples(one) > 10 * PUBLISH_EVERY
    assert all(d["action"] == "none" for d in two["decisions"])


def test_the_learner_publishes_versions_in_order_during_the_run(runs) -> None:
    for name, run in runs.items():
        versions = [s["version"] for s in run["published"]]
        assert versions == list(range(1, len(versions) + 1)), name
        counts = [s["examples"] for s in run["published"]]
        # Published whenever the examples learned cross a multiple of PUBLISH_EVERY (one
        # release can cross several: a worker running behind holds releases back) and once
        # at the end.
        assert counts == sorted(counts) and counts[0] >= PUBLISH_EVERY, name
        assert all(b // PUBLISH_EVERY > a // PUBLISH_EVERY for a, b in pairwise(counts[:-1]))
        # One worker releases at every crossing; with two, how many crossings share a
        # release depends on how far apart the workers run, so only "several" is certain.
        assert len(versions) >= (5 if name.endswith("-1") else 2), name


# Not "default-2": with two workers and actions, a no-action point can be learned before
# its order's first action arrives from a worker running more than the learner's margin
# behind (a known limit, docs/decisions.md); the count then differs by a few in a thousand.
@pytest.mark.parametrize("name", ["watch-1", "watch-2", "default-1"])
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
