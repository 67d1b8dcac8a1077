"""Benchmark: context reads and outcome writes against Redis, naive vs cached/pipelined.

The read pattern is what the feature builder does per decision: one customer's stats, the
SKU family's refund rate and the lane's refund and delay rates. Variants:

- ``naive``: no cache, one round trip per read (4 per decision);
- ``cache``: family/lane rates from the 5 s read-through cache, the customer per read;
- ``cache+prefetch``: plus one pipelined ``prefetch`` of the batch's customers.

Writes compare one flush per outcome with one pipelined flush per batch.

Run: ``python benchmarks/redis_context.py`` (starts a throwaway redis-server on a free
port; or pass ``--redis-url``). Figures depend on the machine; the ratios are against the
naive variant measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from state.redis_conn import connect, mask_url
from state.redis_store import RedisContextStore

T0 = 1_780_000_000.0


def _workload(args: argparse.Namespace) -> tuple[list[tuple[str, str, str]], list[dict]]:
    rng = random.Random(7)
    families = [f"family-{i}" for i in range(args.families)]
    lanes = [f"courier{i % 5}:lane-{i}" for i in range(args.lanes)]
    decisions = [
        (f"c{rng.randrange(args.customers)}", rng.choice(families), rng.choice(lanes))
        for _ in range(args.decisions)
    ]
    outcomes = [
        {
            "customer_id": f"c{rng.randrange(args.customers)}",
            "outcome": rng.choice(["kept", "kept", "kept", "refunded", "exchanged"]),
            "refund_value": 30.0,
            "order_value": 60.0,
            "sku_family": rng.choice(families),
            "courier_lane": rng.choice(lanes),
            "delayed": rng.random() < 0.2,
            "resolved_at_ts": T0 + i * 60.0,
        }
        for i in range(args.outcomes)
    ]
    return decisions, outcomes


def _read(store: RedisContextStore, cid: str, family: str, lane: str, now: float) -> float:
    stats = store.customer(cid)
    orders = stats.orders if stats is not None else 0
    return (
        store.family_rate(family, now)
        + store.lane_refund_rate(lane, now)
        + store.lane_delay_rate(lane, now)
        + orders
    )


def _decisions_per_second(
    store: RedisContextStore,
    decisions: list[tuple[str, str, str]],
    batch: int,
    prefetch: bool,
) -> float:
    started = time.perf_counter()
    now = T0 + 30 * 86400.0
    for i in range(0, len(decisions), batch):
        chunk = decisions[i : i + batch]
        if prefetch:
            store.prefetch([c for c, _, _ in chunk])
        for cid, family, lane in chunk:
            _read(store, cid, family, lane, now)
    return len(decisions) / (time.perf_counter() - started)


def _outcomes_per_second(
    store: RedisContextStore, outcomes: list[dict], batch: int | None
) -> float:
    started = time.perf_counter()
    for i, outcome in enumerate(outcomes, 1):
        store.record_outcome(outcome)
        if batch is None or i % batch == 0:
            store.flush()
    store.flush()
    return len(outcomes) / (time.perf_counter() - started)


def run(url: str, args: argparse.Namespace) -> None:
    decisions, outcomes = _workload(args)
    client = connect(url)
    client.flushdb()
    print(f"redis {mask_url(url)}: {args.customers:,} customers, {args.families} families, "
          f"{args.lanes} lanes; batches of {args.batch}")  # fmt: skip

    # Writes first: they also fill the aggregates the reads then use.
    half = len(outcomes) // 2

    def writer() -> RedisContextStore:
        return RedisContextStore(client, flush_max_pending=10**9, flush_max_delay=1e9)

    naive_w = _outcomes_per_second(writer(), outcomes[:half], None)
    batched_w = _outcomes_per_second(writer(), outcomes[half:], args.batch)
    print("\noutcome writes (record_outcome + flush)")
    print(f"  {'flush per outcome':<28}{naive_w:>12,.0f} outcomes/s   1.0x")
    print(f"  {'flush per batch (pipeline)':<28}{batched_w:>12,.0f} outcomes/s "
          f"{batched_w / naive_w:>6.1f}x")  # fmt: skip

    # The naive variant is slow; a sample of the same decisions measures its rate well.
    sample = decisions[: args.naive_decisions]
    variants: list[tuple[str, Callable[[], RedisContextStore], bool, list]] = [
        ("naive (no cache)", lambda: RedisContextStore(client, cache_seconds=0), False, sample),
        ("cache", lambda: RedisContextStore(client, cache_seconds=5.0), False, decisions),
        ("cache + prefetch", lambda: RedisContextStore(client, cache_seconds=5.0), True, decisions),
    ]
    print("\ndecision reads (customer + family rate + lane refund/delay rates)")
    baseline = 0.0
    for name, make, prefetch, work in variants:
        store = make()
        rate = _decisions_per_second(store, work, args.batch, prefetch)
        per_decision = store.round_trips / len(work)
        baseline = baseline or rate
        print(f"  {name:<28}{rate:>12,.0f} decisions/s {rate / baseline:>6.1f}x   "
              f"{per_decision:.3f} round trips/decision")  # fmt: skip
    client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", help="use this server (default: start a throwaway one)")
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--families", type=int, default=40)
    p.add_argument("--lanes", type=int, default=30)
    p.add_argument("--decisions", type=int, default=20_000)
    p.add_argument("--naive-decisions", type=int, default=3_000, help="sample for naive")
    p.add_argument("--outcomes", type=int, default=6_000)
    p.add_argument("--batch", type=int, default=500, help="Bytewax batch size (default 500)")
    args = p.parse_args()
    if args.redis_url:
        run(args.redis_url, args)
        return 0
    from tests.fixtures.redis_server import LocalRedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = LocalRedisServer(Path(tmp))
        try:
            run(server.start(), args)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
