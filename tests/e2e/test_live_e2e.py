"""End to end: Kafka-protocol broker (Tansu) + redis-server + a local webhook receiver.

One scenario, run through ``salvage run`` and then, after a hard stop, run again under
``python -m bytewax.run`` without recovery (so everything is re-read and re-emitted):

- contract events produced to the input topics come out as interventions, decisions and
  outcomes on the output topics, keyed by order id, with type/version headers;
- webhooks are signed, carry the idempotency key, are retried after a 500 and after a
  timeout, and are dead-lettered after the last attempt;
- after the restart nothing is delivered twice, and new events are still processed;
- the human-review round trip (on the restarted flow): request -> approve on
  review-decisions -> intervention (automated=false, reviewer id) on the topic and at the
  webhook; a decision after the case closed is recorded and ignored;
- ``salvage case`` shows the case with the review and the dispatch status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from operators.signature import verify
from tests.e2e.live_harness import read_topic, wait_for
from tests.fixtures.kafka_broker import KafkaBroker
from tests.fixtures.processes import free_port, stop_process
from tests.helpers import at, body, order_placed, support

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: The CLI, as the console script runs it (``-m flows.cli`` would make a second module).
SALVAGE = [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())"]
SECRET_MESSAGING = "e2e-messaging-" + uuid.uuid4().hex
SECRET_SUPPORT = "e2e-support-" + uuid.uuid4().hex
SECRET_REVIEW = "e2e-review-" + uuid.uuid4().hex
PARTITIONS = 2


# --- a webhook receiver with scripted failures ---------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what we answered (0: we stalled past the client's timeout)
    at: float


@dataclass
class Receiver:
    """Records every request. ``script(path, payload, attempt)`` returns the status to answer
    (0: stall for ``stall_seconds`` before answering, so the client times out)."""

    script: Callable[[str, dict[str, Any], int], int]
    stall_seconds: float = 1.5
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempts(self, key: str) -> int:
        with self.lock:
            return sum(1 for h in self.hits if h.headers.get("Idempotency-Key") == key)

    def accepted(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if 200 <= h.status < 300]


def start_receiver(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = orjson.loads(raw)
            key = self.headers.get("Idempotency-Key", "")
            with receiver.lock:
                attempt = 1 + sum(
                    1 for h in receiver.hits if h.headers.get("Idempotency-Key") == key
                )
            status = receiver.script(self.path, payload, attempt)
            with receiver.lock:
                receiver.hits.append(Hit(self.path, dict(self.headers), raw, status, time.time()))
            if status == 0:
                time.sleep(receiver.stall_seconds)
                status = 200  # too late: the sender has given up on this attempt
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --- Kafka helpers ---------------------------------------------------------------------------


def late_parcel(oid: str, h0: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """A late parcel and a where-is-my-order ticket: proactive reassurance."""
    return [
        ("orders", order_placed(oid, h0, customer_id="c-" + oid)),
        ("delivery", body("delayed", oid, h0 + 50, estimated_delivery_at=at(h0 + 140))),
        (
            "support",
            support(
                "ticket_opened",
                oid,
                h0 + 75,
                ticket_id="t-" + oid,
                intent="where_is_my_order",
                sentiment=-0.5,
            ),
        ),
    ]


def big_refund(oid: str) -> list[tuple[str, dict[str, Any]]]:
    """A refund request on an expensive order: past the automation boundary (review)."""
    return [
        ("orders", order_placed(oid, 0, total=400, cost=150, customer_id="c-" + oid)),
        ("delivery", body("delivered", oid, 40)),
        ("refunds", body("refund_requested", oid, 60, reason="damaged", amount=400)),
    ]


def by_time(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(events, key=lambda e: e[1]["occurred_at"])


def script(path: str, payload: dict[str, Any], attempt: int) -> int:
    if path == "/support":
        return 200
    if payload["order_id"] == "o-dead":
        return 500  # never accepted: dead-lettered after the last attempt
    # Every other delivery: a 500, then a stall past the timeout, then accepted.
    return {1: 500, 2: 0}.get(attempt, 200)


@dataclass
class Live:
    broker: KafkaBroker
    env: dict[str, str]
    topics: dict[str, str]
    receiver: Receiver
    work: Path
    prefix: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def produce(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.broker.bootstrap})
        for stream, record in events:
            producer.produce(
                self.topics[stream], orjson.dumps(record), key=record["order_id"].encode()
            )
        assert producer.flush(15) == 0

    def read(self, name: str) -> list[tuple[bytes | None, dict[str, bytes], Any]]:
        return read_topic(self.broker.bootstrap, self.topics[name], PARTITIONS)

    def start(
        self, argv: list[str], log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = open(self.work / log_name, "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        return proc

    def salvage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SALVAGE, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def live(kafka_broker: KafkaBroker, redis_server: str, tmp_path: Path) -> Iterator[Live]:
    tag = uuid.uuid4().hex[:8]
    streams = ["orders", "delivery", "support", "refunds"]
    topics = {s: f"{tag}.{s}" for s in streams}
    topics |= {
        "review": f"{tag}.review-decisions",
        "interventions": f"{tag}.interventions",
        "decisions": f"{tag}.decisions",
        "outcomes": f"{tag}.outcomes",
        "dead_letter": f"{tag}.dead-letter",
    }
    receiver = Receiver(script)
    server, base = start_receiver(receiver)
    config = tmp_path / "salvage.yaml"
    config.write_text(
        f"""
kafka:
  topics: {{orders: {topics["orders"]}, delivery: {topics["delivery"]},
           support: {topics["support"]}, refunds: {topics["refunds"]}}}
  review_decisions_topic: {topics["review"]}
  output_topics: {{interventions: {topics["interventions"]}, decisions: {topics["decisions"]},
                  outcomes: {topics["outcomes"]}, dead_letter: {topics["dead_letter"]}}}
redis:
  prefix: e2e-{tag}
webhooks:
  endpoints:
    messaging:
      url: {base}/messaging
      secret_env: E2E_MESSAGING_SECRET
      timeout_seconds: 0.5
      max_attempts: 4
      backoff_base_seconds: 0.05
      backoff_max_seconds: 0.2
      retry_hours: 0  # dead-letter after the quick attempts (slow retries: test_retries)
      max_in_flight: 4
    support:
      url: {base}/support
      secret_env: E2E_SUPPORT_SECRET
  routes:
    proactive_reassurance: messaging
    exchange_first_offer: messaging
    human_review: support
review:
  reviewers: [agent-7, agent-8]
recovery:
  dir: {tmp_path / "recovery"}
  snapshot_interval_seconds: 1
metrics_port: 0
batch_size: 100
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALVAGE_", "BYTEWAX_"))}
    env.update(
        {
            "SALVAGE_CONFIG": str(config),
            "SALVAGE_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
            "SALVAGE_REDIS_URL": redis_server,
            "E2E_MESSAGING_SECRET": SECRET_MESSAGING,
            "E2E_SUPPORT_SECRET": SECRET_SUPPORT,
            "SALVAGE_REVIEW_SECRET": SECRET_REVIEW,
            "PYTHONPATH": str(REPO),
        }
    )
    state = Live(kafka_broker, env, topics, receiver, tmp_path, f"e2e-{tag}")
    try:
        yield state
    finally:
        for proc in state.procs:
            stop_process(proc)
        server.shutdown()
        server.server_close()


def _iv(records: list[Any], order_id: str, action: str) -> dict[str, Any] | None:
    return next(
        (r for _, _, r in records if r["order_id"] == order_id and r["action"] == action), None
    )


def test_live_mode_end_to_end(live: Live) -> None:
    r = live.salvage("topics", "create", "--partitions", str(PARTITIONS))
    assert r.returncode == 0, r.stderr
    assert live.topics["review"] in r.stdout

    events = by_time(late_parcel("o-late") + late_parcel("o-dead") + big_refund("o-rev"))
    events += by_time(big_refund("o-rev2"))
    # First run: the CLI. Events are produced before it starts: it reads from earliest.
    live.produce(events)
    first = live.start([*SALVAGE, "run"], "run1.log")

    # --- outputs on the topics ---------------------------------------------------------------
    interventions = wait_for(
        "four interventions on the topic",
        lambda: (recs := live.read("interventions")) and len(recs) >= 4 and recs,
        timeout=60,
    )
    for key, headers, record in interventions:
        assert key == record["order_id"].encode()
        assert headers == {"type": b"intervention", "contract_version": b"1"}
    late = _iv(interventions, "o-late", "proactive_reassurance")
    review = _iv(interventions, "o-rev", "human_review")
    assert late is not None and review is not None
    assert _iv(interventions, "o-rev2", "human_review") is not None
    wanted = {"o-late", "o-dead", "o-rev", "o-rev2"}
    wait_for(
        "decisions for every order",
        lambda: (
            {r["order_id"] for _, h, r in live.read("decisions") if h["type"] == b"decision"}
            >= wanted
        ),
    )

    # --- webhooks: signature, idempotency key, retries, dead letter -------------------------
    receiver = live.receiver
    wait_for("the late-parcel delivery", lambda: receiver.attempts(late["intervention_id"]) >= 3)
    hits = [h for h in receiver.hits if h.headers.get("Idempotency-Key") == late["intervention_id"]]
    assert [h.status for h in hits] == [500, 0, 200]  # retried after a 500 and a timeout
    for h in hits:
        assert h.path == "/messaging"
        assert verify(SECRET_MESSAGING, h.body, h.headers["X-Salvage-Signature"])
        assert not verify(SECRET_SUPPORT, h.body, h.headers["X-Salvage-Signature"])
        assert h.headers["X-Salvage-Event"] == "intervention"
        assert h.headers["X-Salvage-Contract-Version"] == "1"
        payload = orjson.loads(h.body)
        assert payload["intervention"]["intervention_id"] == late["intervention_id"]
        assert payload["text"] == late["message"]["text"]
    dead = _iv(interventions, "o-dead", "proactive_reassurance")
    assert dead is not None
    dead_letters = wait_for(
        "the dispatch dead letter",
        lambda: [r for _, _, r in live.read("dead_letter") if r["stream"] == "dispatch"],
    )
    assert dead_letters[0]["event_id"] == dead["intervention_id"]
    assert "after 4 attempts" in dead_letters[0]["reason"]
    assert receiver.attempts(dead["intervention_id"]) == 4
    support_hit = wait_for(
        "the review request at the support endpoint",
        lambda: [h for h in receiver.accepted() if h.path == "/support"],
    )[0]
    assert verify(SECRET_SUPPORT, support_hit.body, support_hit.headers["X-Salvage-Signature"])

    # --- restart: hard stop, then a run without recovery under bytewax.run ---------------------
    # Without a recovery snapshot the flow re-reads every topic from the earliest offset and
    # re-emits every intervention: the worst case for duplicates. The dispatch ledger in
    # Redis must keep each of them from being delivered again. (Done before any review
    # decision exists: a full re-read applies review decisions in read order.)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    delivered_before = len(receiver.accepted())
    before = {r["intervention_id"] for _, _, r in live.read("interventions")}
    # flows.live:flow takes recovery from recovery.dir as `salvage run` does: an empty
    # directory of its own gives it no snapshot to resume from.
    second = live.start(
        [sys.executable, "-m", "bytewax.run", "flows.live:flow"],
        "run2.log",
        {"SALVAGE_RECOVERY__DIR": str(live.work / "recovery-empty")},
    )
    live.produce(late_parcel("o-new", h0=80))
    new = wait_for(
        "an intervention from the restarted flow",
        lambda: _iv(live.read("interventions"), "o-new", "proactive_reassurance"),
        timeout=60,
    )
    wait_for(
        "the new delivery",
        lambda: any(
            h.headers.get("Idempotency-Key") == new["intervention_id"] for h in receiver.accepted()
        ),
    )

    # The new order's intervention can reach the topic before the re-read of another
    # partition re-emits the old ones (partitions run independently): wait for the re-emit
    # itself, which must come, rather than reading the topic once.
    def reemitted_all() -> list[str] | None:
        ids = [r["intervention_id"] for _, _, r in live.read("interventions")]
        return ids if all(ids.count(iid) >= 2 for iid in before) else None

    reemitted = wait_for("the restart to re-emit every intervention", reemitted_all, timeout=60)
    assert all(reemitted.count(iid) >= 2 for iid in before), "the restart did not re-emit"
    time.sleep(1.5)  # a duplicate delivery, if any, would arrive by now
    keys = [h.headers["Idempotency-Key"] for h in receiver.accepted()]
    assert len(keys) == len(set(keys)), "an intervention was delivered twice"
    assert len(keys) == delivered_before + 1
    assert receiver.attempts(dead["intervention_id"]) == 4  # dead letters are not retried
    assert second.poll() is None, (live.work / "run2.log").read_text()[-2000:]

    # --- the human-review round trip -------------------------------------------------------
    # A credit the policy does not allow (the proposed exchange has no credit share) is
    # refused at approval and the request stays open; a corrected decision goes through.
    r = live.salvage(
        "review", "approve", "o-rev", review["intervention_id"], "--reviewer", "agent-7",
        "--credit", "10",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    invalid = wait_for(
        "the refused approval",
        lambda: [
            r
            for _, h, r in live.read("decisions")
            if h["type"] == b"review" and r["order_id"] == "o-rev" and r["status"] == "invalid"
        ],
    )
    assert "credit_share" in invalid[0]["reason"]
    r = live.salvage(
        "review", "approve", "o-rev", review["intervention_id"], "--reviewer", "agent-7"
    )
    assert r.returncode == 0, r.stderr
    approved = wait_for(
        "the approved intervention",
        lambda: _iv(live.read("interventions"), "o-rev", "exchange_first_offer"),
    )
    assert approved["automated"] is False
    assert approved["reviewer_id"] == "agent-7"
    assert approved["review_id"] == review["intervention_id"]
    assert approved["offer"] is None
    wait_for(
        "the approved intervention at the webhook",
        lambda: any(
            h.headers.get("Idempotency-Key") == approved["intervention_id"]
            for h in receiver.accepted()
        ),
    )
    # o-rev2 closes (refund issued) before its reviewer answers: recorded and ignored.
    review2 = _iv(interventions, "o-rev2", "human_review")
    live.produce([("refunds", body("refund_issued", "o-rev2", 200, amount=400))])
    wait_for(
        "the o-rev2 outcome",
        lambda: [r for _, _, r in live.read("outcomes") if r["order_id"] == "o-rev2"],
    )
    r = live.salvage(
        "review", "approve", "o-rev2", review2["intervention_id"], "--reviewer", "agent-8"
    )
    assert r.returncode == 0, r.stderr
    ignored = wait_for(
        "the ignored late decision",
        lambda: [
            r
            for _, h, r in live.read("decisions")
            if h["type"] == b"review" and r["order_id"] == "o-rev2" and r["status"] == "ignored"
        ],
    )
    assert "closed" in ignored[0]["reason"]
    assert _iv(live.read("interventions"), "o-rev2", "exchange_first_offer") is None

    # --- salvage case ------------------------------------------------------------------------
    r = live.salvage("case", "o-rev", "--json", "--prefix", live.prefix)
    assert r.returncode == 0, r.stderr
    case = orjson.loads(r.stdout)
    assert {iv["action"] for iv in case["interventions"]} >= {
        "human_review",
        "exchange_first_offer",
    }
    assert case["dispatch"][approved["intervention_id"]] == "delivered"
    assert any(d.get("action") == "review_approved" for d in case["decisions"])
