"""Live mode under faults, end to end (real Tansu, real redis-server, a recording receiver).

Crashes: the flow runs under ``python -m bytewax.run flows.live:flow`` with recovery and is
killed with SIGKILL several times at random moments (the seed is printed and can be set
with ``FAULTS_SEED``) while the input is produced; a second flow reads the same input on
its own topics and Redis prefix without interruption. After both have processed the whole
input, the killed run must have made the same decisions as the uninterrupted one: every
decision point decided (0 missing), every copy of a re-emitted record identical to the
first (effectively once per decision point, whatever moved in Redis meanwhile), every
intervention delivered exactly once (0 duplicated, 0 missing) and no order over the
contact limit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli.live import init_recovery
from tests.fixtures.kafka_broker import KafkaBroker
from tests.live_harness import (
    BYTEWAX_RUN,
    LiveRig,
    load_events,
    marker_events,
    marker_ids,
    produce,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

ORDERS = 300
KILLS = 4
RATE = 80.0  # events/s: about 20 s of input, so the kills land while it is processed
MAX_CONTACTS = 2  # the shipped policy's limits.max_contacts_per_order
MARKER = "zz-marker"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes, str]]:
    from flows.cli import main

    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "steady-state", "--orders", str(ORDERS), "--seed", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    events = load_events(out)
    last = max(orjson.loads(v)["occurred_at"] for _, v, _ in events)
    from operators.contract import parse_ts

    return events + marker_events(MARKER, parse_ts(last))


@pytest.fixture
def rigs(kafka_broker: KafkaBroker, redis_server: str, tmp_path: Path) -> Iterator[Any]:
    made: list[LiveRig] = []

    def make(name: str, **kwargs: Any) -> LiveRig:
        rig = LiveRig(kafka_broker.bootstrap, redis_server, tmp_path / name, **kwargs)
        made.append(rig)
        rig.create_topics()
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.close()


def bytewax_run(rig: LiveRig) -> list[str]:
    init_recovery(rig.recovery_dir, 1)
    return [*BYTEWAX_RUN, "-r", str(rig.recovery_dir), "-s", "1", "-b", "0"]


def finished(rig: LiveRig, markers: set[str]) -> list[dict[str, Any]] | None:
    """The decisions, once the marker order's four events are all decided."""
    decisions = rig.decisions()
    seen = {d["trigger_event_id"] for d in decisions if d["order_id"] == MARKER}
    return decisions if seen >= markers else None


def delivered_all(rig: LiveRig) -> list[dict[str, Any]] | None:
    """The interventions, once every one of them was accepted by the receiver."""
    interventions = [r for _, r in rig.read("interventions")]
    accepted = set(rig.receiver.accepted_keys())
    if all(iv["intervention_id"] in accepted for iv in interventions):
        return interventions
    return None


def by_point(decisions: list[dict[str, Any]]) -> dict[tuple[str, str], set[bytes]]:
    points: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    for d in decisions:
        points[(d["order_id"], d["trigger_event_id"])].add(
            orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
        )
    return points


def test_sigkill_at_random_moments_changes_no_decision_and_no_delivery(
    rigs: Any, simulated: list[tuple[str, bytes, str]]
) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"FAULTS_SEED={seed}")
    rng = random.Random(seed)
    reference, killed = rigs("reference"), rigs("killed")
    markers = marker_ids(simulated[-4:])

    reference.start(bytewax_run(reference), "reference.log")
    runs = [killed.start(bytewax_run(killed), "killed-0.log")]

    # Kill points: one random input position in each of KILLS equal stretches of the input
    # (so kills are spread over the run, at moments no one chose).
    n = len(simulated)
    stretch = 0.85 * n / KILLS
    kill_at = [int(0.05 * n + k * stretch + rng.uniform(0, stretch)) for k in range(KILLS)]
    print(f"kills after events {kill_at} of {n}")
    progress = threading.Condition()
    produced = [0]

    def on_progress(count: int) -> None:
        with progress:
            produced[0] = count
            progress.notify_all()

    producer = threading.Thread(
        target=produce, args=([reference, killed], simulated, RATE, on_progress), daemon=True
    )
    producer.start()
    for k, position in enumerate(kill_at, start=1):
        with progress:
            assert progress.wait_for(lambda p=position: produced[0] >= p, timeout=120)
        os.kill(runs[-1].pid, signal.SIGKILL)
        runs[-1].wait(10)
        runs.append(killed.start(bytewax_run(killed), f"killed-{k}.log"))
    producer.join(120)
    assert not producer.is_alive()

    ref_decisions = wait_for(
        "the reference run to finish", lambda: finished(reference, markers), 180
    )
    got_decisions = wait_for("the killed run to finish", lambda: finished(killed, markers), 180)
    ref_ivs = wait_for("the reference deliveries", lambda: delivered_all(reference), 60)
    got_ivs = wait_for("the killed run's deliveries", lambda: delivered_all(killed), 60)
    for proc in runs[:-1]:
        assert proc.returncode == -signal.SIGKILL
    assert runs[-1].poll() is None, killed.log_text(f"killed-{KILLS}.log")[-3000:]

    ref_points, got_points = by_point(ref_decisions), by_point(got_decisions)
    # Effectively once: a decision point re-read after a crash re-emits the same record.
    changed = {p: len(v) for p, v in got_points.items() if len(v) > 1}
    missing = set(ref_points) - set(got_points)
    extra = set(got_points) - set(ref_points)
    copies = len(got_decisions) - len(got_points)

    def action(records: set[bytes]) -> str:
        return orjson.loads(next(iter(records)))["action"]

    differ = {p for p in set(ref_points) & set(got_points)
              if action(ref_points[p]) != action(got_points[p])}  # fmt: skip
    keys = Counter(killed.receiver.accepted_keys())
    duplicated = {k: c for k, c in keys.items() if c > 1}
    ref_ids = {iv["intervention_id"] for iv in ref_ivs}
    got_ids = {iv["intervention_id"] for iv in got_ivs}
    contacts: dict[str, set[str]] = defaultdict(set)
    for iv in got_ivs:
        if iv["action"] != "human_review":
            contacts[iv["order_id"]].add(iv["intervention_id"])
    over_cap = {o: len(ids) for o, ids in contacts.items() if len(ids) > MAX_CONTACTS}
    summary = {
        "seed": seed, "decision_points": len(ref_points), "re_emitted_copies": copies,
        "changed_on_re_emit": len(changed), "missing": len(missing), "extra": len(extra),
        "action_differs_from_reference": len(differ), "interventions": len(got_ids),
        "deliveries": sum(keys.values()), "duplicated_deliveries": len(duplicated),
        "over_contact_limit": len(over_cap),
    }  # fmt: skip
    print("SIGKILL summary:", json.dumps(summary))
    assert not changed, f"re-emitted decisions differ from the first: {list(changed)[:5]}"
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert not differ, f"decided differently from the uninterrupted run: {sorted(differ)[:5]}"
    assert got_ids == ref_ids
    assert not duplicated, duplicated
    assert set(keys) == got_ids  # every intervention delivered, nothing else
    assert not over_cap, over_cap
