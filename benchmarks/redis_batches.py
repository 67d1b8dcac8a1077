"""Benchmark: the live flow's Redis calls per batch, one command per record against batched.

A live flow talks to Redis on its dataflow thread for every batch: it writes the batch's
case records to the case store, reads the decision memo for the batch's possible decision
points and writes the decisions it made, and prices credit offers from the credit ledger.
Each arm does one batch of the same records (from a replay of a simulated shop, see
below), the way the flow did before (``per record``) and the way it does now:

- *case store*: one script call per order (what a cluster still needs), with redis-py's own
  command packer; against up to ``ORDERS_PER_CALL`` orders per call, with ``LeanPacker``;
- *memo read*: a pipeline of ``GET`` per point; against one ``MGET``;
- *memo write*: a pipeline of ``SET NX EX`` per point; against ``remember_many`` (a script
  call per ``POINTS_PER_CALL`` points);
- *credit*: a ``used`` round trip per decision that prices a credit (one where an action
  that offers credit is eligible); against one ``prefetch`` of the customers of the
  batch's decisions (the flow reads those of every event that can be a decision point, a
  superset), then ``used`` from memory.

Records: ``launch-week-backlog`` replayed with learning; a batch is ``--batch-size``
consecutive events' worth of records: one case view per event (the order's final view, the
largest it gets), and the decisions, interventions and outcomes of those events' orders.
Arms alternate, ``--repeat`` rounds; the table gives the median CPU (this process) and
wall time per batch, and the ratio of the per-record arm's CPU to the batched one's.
Run: ``python benchmarks/redis_batches.py [--orders 4000] [--repeat 5]`` (starts a
throwaway redis-server on a free port).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.replay import ReplayOptions, run_replay  # noqa: E402
from operators.memo import MemoEntry, decision_point  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402
from state.redis_conn import connect  # noqa: E402
from state.redis_credit import RedisCreditLedger  # noqa: E402
from state.redis_memo import RedisDecisionMemo  # noqa: E402
from state.redis_store import RedisCaseStore  # noqa: E402
from tests.fixtures.redis_server import LocalRedisServer  # noqa: E402

CaseItems = list[tuple[str, dict[str, Any]]]


def _records(
    orders: int, batch_size: int
) -> tuple[list[CaseItems], list[tuple[list[str], list[str]]]]:
    """Batches of case records, and per batch the customers of its decisions and of those
    of its decisions that price a credit."""
    work = Path(tempfile.mkdtemp(prefix="redis-batches-"))
    data = work / "input"
    simulate("launch-week-backlog", orders, 7, data)
    out = work / "out"
    run_replay(data, out, options=ReplayOptions(ground_truth=data / "ground_truth.jsonl"))
    by_order: dict[str, CaseItems] = {}
    for kind, name in (("decision", "decisions"), ("intervention", "interventions"),
                       ("outcome", "outcomes")):  # fmt: skip
        for line in (out / f"{name}.jsonl").read_bytes().splitlines():
            record = orjson.loads(line)
            by_order.setdefault(record["order_id"], []).append((kind, record))
    customer_of: dict[str, str] = {}
    timed: list[tuple[str, str]] = []  # (occurred_at, order id) of every event
    for stream in ("orders", "delivery", "support", "refunds"):
        for line in (data / f"{stream}.jsonl").read_bytes().splitlines():
            event = orjson.loads(line)
            timed.append((event["occurred_at"], event["order_id"]))
            if event.get("customer_id"):
                customer_of[event["order_id"]] = event["customer_id"]
    order_events = [oid for _, oid in sorted(timed)]  # the streams merged by event time
    # A view the size of the order's last one: its decisions' fields and a timeline entry
    # per event (the flow's ``OrderCase.view``).
    events_of: dict[str, int] = {}
    for oid in order_events:
        events_of[oid] = events_of.get(oid, 0) + 1
    policy = RecoveryPolicy.default()
    credit = {a.name for a in policy.actions.values() if a.credit_share > 0}
    batches: list[CaseItems] = []
    customers: list[tuple[list[str], list[str]]] = []
    for start in range(0, len(order_events), batch_size):
        items: CaseItems = []
        deciding: list[str] = []
        pricing: list[str] = []
        for oid in order_events[start : start + batch_size]:
            view = {
                "order_id": oid, "customer_id": customer_of.get(oid), "stage": "in_transit",
                "as_of": "2026-06-01T10:00:00Z", "order_value": 84.5, "currency": "EUR",
                "sku_family": "footwear", "courier_lane": "dhl:DE-FR", "campaign": None,
                "signals": {"slip_hours": 30.5, "delays": 1, "exceptions": 0,
                            "failed_attempts": 0, "lost": False, "contacts": 1,
                            "last_intent": "wismo", "last_sentiment": -0.4, "request": None,
                            "request_reason": None, "exchange_preferred": False},
                "timeline": [["2026-06-01T10:00:00Z", "parcel.delayed"]] * events_of[oid],
                "arm": "treatment", "actions": [], "outcome": None,
            }  # fmt: skip
            items.append(("case", view))
            for kind, record in by_order.pop(oid, []):
                items.append((kind, record))
                if kind == "decision" and oid in customer_of:
                    deciding.append(customer_of[oid])
                    # ``used`` prices the actions that offer credit, where one is eligible.
                    if credit & set(record["eligible"]):
                        pricing.append(customer_of[oid])
        batches.append(items)
        customers.append((deciding, pricing))
    return batches, customers


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    batches, customers = _records(args.orders, args.batch_size)
    server = LocalRedisServer(Path(tempfile.mkdtemp(prefix="redis-batches-srv-")))
    url = server.start()
    try:
        lean = connect(url)
        stock = redis.Redis.from_url(url)  # redis-py's own packer
        per_order = RedisCaseStore(stock, "po")
        per_order.ORDERS_PER_CALL = 1
        batched = RedisCaseStore(lean, "bt")
        memo = RedisDecisionMemo(lean, "memo")
        ttl = memo.ttl_seconds
        # About a third of a shop's events can be decision points.
        points = [[decision_point(f"o{b}-{i}", "e", "v") for i in range(args.batch_size // 3)]
                  for b in range(len(batches))]  # fmt: skip
        entry = _memo_entry(next(r for k, r in batches[0] if k == "decision"))
        value = orjson.dumps(entry.to_json())

        def gets(pts: list[str]) -> None:
            pipe = stock.pipeline(transaction=False)
            for p in pts:
                pipe.get(memo.key(p))
            pipe.execute()

        def sets(pts: list[str]) -> None:
            pipe = stock.pipeline(transaction=False)
            for p in pts:
                pipe.set(memo.key(p), value, nx=True, ex=ttl)
            pipe.execute()

        seed = RedisCreditLedger(lean, "credit")
        per_call = RedisCreditLedger(stock, "credit")
        prefetching = RedisCreditLedger(lean, "credit")
        now = 1_780_000_000.0 + 86_400.0

        def credit_per_call(b: int) -> None:
            for c in customers[b][1]:
                per_call.used(c, now)

        def credit_prefetched(b: int) -> None:
            prefetching.prefetch(customers[b][0])
            for c in customers[b][1]:
                prefetching.used(c, now)

        arms: list[tuple[str, Callable[[int], Any], Callable[[int], Any]]] = [
            ("case store", lambda b: per_order.write_batch(batches[b]),
             lambda b: batched.write_batch(batches[b])),
            ("memo read", lambda b: gets(points[b]), lambda b: memo.get_many(points[b])),
            ("memo write", lambda b: sets(points[b]),
             lambda b: memo.remember_many([(p, entry) for p in points[b]])),
            ("credit", credit_per_call, credit_prefetched),
        ]  # fmt: skip
        figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for name, before, after in arms:
                for label, fn in (("per record", before), ("batched", after)):
                    stock.flushdb()  # every round writes from scratch
                    seed_grants(seed, customers)
                    spent = [_timed(lambda b=b, fn=fn: fn(b)) for b in range(len(batches))]
                    cpu = sum(s[0] for s in spent) / len(batches)
                    wall = sum(s[1] for s in spent) / len(batches)
                    figures.setdefault((name, label), []).append((cpu, wall))
        n_records = statistics.mean(len(b) for b in batches)
        print(
            f"{len(batches)} batches of {args.batch_size} events ({n_records:,.0f} case records, "
            f"{statistics.mean(len(p) for p in points):,.0f} memo points, "
            f"{statistics.mean(len(c[1]) for c in customers):,.0f} credit prices among "
            f"{statistics.mean(len(c[0]) for c in customers):,.0f} decisions each); "
            f"medians of {args.repeat} alternated rounds, per batch"
        )
        print(f"{'':<12} {'per record: CPU':>16} {'wall':>8} {'batched: CPU':>13} {'wall':>8}  "
              f"{'CPU ratio':>9}")  # fmt: skip
        for name, _, _ in arms:
            b_cpu = statistics.median(c for c, _ in figures[(name, "per record")])
            b_wall = statistics.median(w for _, w in figures[(name, "per record")])
            a_cpu = statistics.median(c for c, _ in figures[(name, "batched")])
            a_wall = statistics.median(w for _, w in figures[(name, "batched")])
            print(
                f"{name:<12} {b_cpu * 1e3:>13.2f} ms {b_wall * 1e3:>5.2f} ms "
                f"{a_cpu * 1e3:>10.2f} ms {a_wall * 1e3:>5.2f} ms  {b_cpu / a_cpu:>8.1f}x"
            )
    finally:
        server.stop()
    return 0


def seed_grants(seed: RedisCreditLedger, customers: list[tuple[list[str], list[str]]]) -> None:
    """A grant for every fourth customer: their ``used`` round trips include the HMGET."""
    for i, cid in enumerate(sorted({c for cs, _ in customers for c in cs})):
        if i % 4 == 0:
            seed.grant(cid, 1_780_000_000.0, 5.0)


def _memo_entry(decision: dict[str, Any]) -> MemoEntry:
    """A memo entry of the flow's shape: the decision's outputs and its pending example."""
    pending = {
        "order_id": decision["order_id"], "decided_at": 1_780_000_000.0,
        "vector": tuple(0.5 for _ in range(24)), "predicted": 0.25, "action": None,
        "arm": "treatment", "point": "delivery", "first": True,
        "keys": tuple(f"k{i}" for i in range(7)), "offset": -0.5,
    }  # fmt: skip
    return MemoEntry(1_780_000_000.0, decision["action"], "treatment", 0.25,
                     (("decision", decision),), pending)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
