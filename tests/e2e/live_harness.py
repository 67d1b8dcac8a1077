"""A live-mode rig for the fault tests: one set of topics and one Redis prefix per flow,
a webhook receiver that records every request, the flow started as a child process (under
``python -m bytewax.run`` or ``salvage run``) and stopped by PID.

Reads use ``assign()`` (group joins take ~20 s on Tansu) and are repeated by ``wait_for``
until what is awaited is there: Tansu's reported high watermarks lag behind the writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tests.fixtures.processes import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
SALVAGE = [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())"]
BYTEWAX_RUN = [sys.executable, "-m", "bytewax.run", "flows.live:flow"]
INPUTS = ("orders", "delivery", "support", "refunds")
OUTPUTS = ("interventions", "decisions", "outcomes", "dead_letter")
SECRET_ENV = "FAULTS_WEBHOOK_SECRET"
REVIEW_SECRET = "faults-review-" + uuid.uuid4().hex


@dataclass
class Hit:
    path: str
    key: str
    status: int
    at: float


@dataclass
class Receiver:
    """Records every webhook request; ``status()`` says what to answer (200 by default)."""

    status: Callable[[str, str], int] = lambda path, key: 200
    #: Seconds each request waits before it is answered (a slow receiver: deliveries are
    #: on the wire when a process is killed).
    delay_seconds: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted_keys(self) -> list[str]:
        with self.lock:
            return [h.key for h in self.hits if 200 <= h.status < 300]


def start_receiver(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.headers.get("Idempotency-Key", "")
            if receiver.delay_seconds:
                time.sleep(receiver.delay_seconds)
            status = receiver.status(self.path, key)
            with receiver.lock:
                receiver.hits.append(Hit(self.path, key, status, time.time()))
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


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (not a sleep to hide a race: the
    condition itself is what the test waits for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def read_topic(
    bootstrap: str, topic: str, partitions: int
) -> list[tuple[bytes | None, dict[str, bytes], Any]]:
    """Every record now in ``topic``: (headers, JSON value).

    Read up to the end-of-partition event of a fetch, not up to the high watermark that
    ``get_watermark_offsets`` reports: Tansu's reported watermark lags behind the log
    (by the last few records, until the next write), so a reader stopping there misses
    the newest records for as long as nothing more is written."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "faults-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        at_end: set[int] = set()
        deadline = time.monotonic() + 20
        while len(at_end) < partitions and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            out.append((msg.key(), dict(msg.headers() or []), orjson.loads(msg.value())))
        return out
    finally:
        consumer.close()


@dataclass
class LiveRig:
    """One flow's topics, Redis prefix, settings file and receiver."""

    bootstrap: str
    redis_url: str
    work: Path
    partitions: int = 1
    extra_yaml: str = ""
    #: librdkafka properties for every client (``kafka.security`` passes them through).
    kafka_properties: dict[str, str] = field(default_factory=dict)
    receiver: Receiver = field(default_factory=Receiver)
    #: ``(retry_base_seconds, retry_max_seconds)`` of every endpoint (None: the defaults,
    #: 60 s and 1800 s); the webhook-outage test scales the slow retries down with it.
    retry_seconds: tuple[float, float] | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[subprocess.Popen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.topics = {s: f"{self.tag}.{s}" for s in (*INPUTS, *OUTPUTS)}
        self.topics["review"] = f"{self.tag}.review-decisions"
        self.server, base = start_receiver(self.receiver)
        self.prefix = f"faults-{self.tag}"
        self.recovery_dir = self.work / "recovery"
        t = self.topics
        slow = "{}"
        if self.retry_seconds is not None:
            retry_base, retry_max = self.retry_seconds
            slow = f"{{retry_base_seconds: {retry_base}, retry_max_seconds: {retry_max}}}"
        self.config = self.work / "salvage.yaml"
        self.config.write_text(
            f"""
kafka:
  topics: {{orders: {t["orders"]}, delivery: {t["delivery"]},
           support: {t["support"]}, refunds: {t["refunds"]}}}
  review_decisions_topic: {t["review"]}
  output_topics: {{interventions: {t["interventions"]}, decisions: {t["decisions"]},
                  outcomes: {t["outcomes"]}, dead_letter: {t["dead_letter"]}}}
  security: {json.dumps(self.kafka_properties)}
redis:
  prefix: {self.prefix}
webhooks:
  endpoints:
    messaging:
      url: {base}/messaging
      secret_env: {SECRET_ENV}
      timeout_seconds: 2
      backoff_base_seconds: 0.05
      backoff_max_seconds: 0.2
      <<: {slow}
    support:
      url: {base}/support
      secret_env: {SECRET_ENV}
      <<: {slow}
  routes:
    human_review: support
    "*": messaging
review:
  reviewers: [agent-7]
recovery:
  dir: {self.recovery_dir}
  snapshot_interval_seconds: 1
metrics_port: 0
batch_size: 50
{self.extra_yaml}
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALVAGE_", "BYTEWAX_"))}
        env.update(
            {
                "SALVAGE_CONFIG": str(self.config),
                "SALVAGE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "SALVAGE_REDIS_URL": self.redis_url,
                SECRET_ENV: "faults-" + uuid.uuid4().hex,
                "SALVAGE_REVIEW_SECRET": REVIEW_SECRET,
                "PYTHONPATH": str(REPO),
            }
        )
        self.env = env

    # --- processes -------------------------------------------------------------------

    def salvage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SALVAGE, *args], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def create_topics(self) -> None:
        r = self.salvage("topics", "create", "--partitions", str(self.partitions))
        assert r.returncode == 0, r.stderr

    def start(self, argv: list[str], log_name: str, env: dict[str, str] | None = None):
        log = open(self.work / log_name, "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log_text(self, log_name: str) -> str:
        return (self.work / log_name).read_text(errors="replace")

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- Kafka -------------------------------------------------------------------------

    def read(self, name: str) -> list[tuple[dict[str, bytes], Any]]:
        return [
            (h, v) for _, h, v in read_topic(self.bootstrap, self.topics[name], self.partitions)
        ]

    def decisions(self) -> list[dict[str, Any]]:
        return [r for h, r in self.read("decisions") if h.get("type") == b"decision"]


def load_events(input_dir: Path) -> list[tuple[str, bytes, str]]:
    """(stream, value, order id) of a simulated input directory, in event-time order."""
    from flows.connectors.kafka import iter_input_dir

    return [(s, v, o or "") for s, v, o, _ in iter_input_dir(input_dir)]


def produce(
    rigs: Iterable[LiveRig],
    events: list[tuple[str, bytes, str]],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Produce ``events`` to every rig's input topics (the same records, in the same order),
    at ``rate`` events per second; ``on_progress(n)`` after each event."""
    from confluent_kafka import Producer

    rigs = list(rigs)
    producers = {
        rig.bootstrap: Producer({"bootstrap.servers": rig.bootstrap, "linger.ms": 5})
        for rig in rigs
    }
    started = time.perf_counter()
    for n, (stream, value, order_id) in enumerate(events):
        if rate:
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the input, not waiting for a result
        for rig in rigs:
            producer = producers[rig.bootstrap]
            producer.produce(rig.topics[stream], value, key=order_id.encode() or None)
            producer.poll(0)
        if on_progress is not None:
            on_progress(n + 1)
    for producer in producers.values():
        assert producer.flush(120) == 0


def marker_events(order_id: str, after: float) -> list[tuple[str, bytes, str]]:
    """One order with an event on every input topic, later than everything else (from
    epoch second ``after`` on): once all four are decided, every input record before them
    has been processed."""
    from tests.helpers import BASE, body, order_placed, support

    h0 = (after - BASE.timestamp()) / 3600 + 1
    records = [
        ("orders", order_placed(order_id, h0, customer_id="c-" + order_id)),
        ("delivery", body("delayed", order_id, h0 + 60)),
        ("support", support("ticket_opened", order_id, h0 + 61, intent="where_is_my_order",
                            sentiment=-0.5)),
        ("refunds", body("refund_requested", order_id, h0 + 62, reason="damaged", amount=80)),
    ]  # fmt: skip
    return [(s, orjson.dumps(r), order_id) for s, r in records]


def marker_ids(events: list[tuple[str, bytes, str]]) -> set[str]:
    return {orjson.loads(v)["event_id"] for _, v, _ in events}
