"""Memory per open case: RSS of N open order cases, and their recovery snapshot size.

Opens ``--cases`` cases (default 1,000,000) through the same logic the dataflow runs per
order (the shard's ``ExpiryClock``, a ``CaseWindow`` in its Bytewax ``CaseLogic`` wrapper,
the ``DecisionEngine`` with the default policy deciding at every point), keeps them all
open, and reads the process's resident memory (``/proc/self/statm``) before and after:

    bytes per open case = (RSS with the cases - RSS before) / N

The events are realistic: ``launch-week-backlog`` is simulated for a few thousand orders,
and each case replays one of those orders' events up to ``--open-days`` after it was
placed (nothing resolving), with its own order, event and customer ids, decoded from JSON
bytes as the flow decodes them. So a case holds what an open case of the demo holds at
that age: its timeline, the event ids it has seen, its decision bookkeeping. The learning
examples of its decision points are not in the case: the learner step holds them until
their label horizon (one per decision point, for every case, open or closed), and they are
not counted here.

In the same run, as a yardstick for the RSS reading, N empty dicts are made on top and
measured the same way (CPython: 64 bytes each), and ``--breakdown`` walks a sample of
cases to say where the bytes go. The recovery snapshot is what ``CaseLogic.snapshot``
returns per case (a pickled ``OrderCase``): mean, median and p99 over every case.

Run: ``python benchmarks/memory_per_case.py [--cases 1000000] [--breakdown]``.
Bytewax's own per-key overhead (its key string and map entry, in Rust) is not included.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.dataflow import CaseLogic  # noqa: E402
from flows.sources import find_stream_files  # noqa: E402
from operators.case import DAY, OrderCase  # noqa: E402
from operators.contract import RESOLVING_TYPES, Event, decode, parse_ts  # noqa: E402
from operators.engine import DecisionEngine  # noqa: E402
from operators.policy import RecoveryPolicy  # noqa: E402
from operators.simulation import simulate  # noqa: E402
from operators.window import CaseWindow, ExpiryClock, WindowConfig, shard_of  # noqa: E402
from state.context import InMemoryContextStore  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size of this process now, in bytes."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def templates(orders: int, seed: int, open_days: float) -> list[list[tuple[str, bytes]]]:
    """Per simulated order: its events as (stream, JSON bytes) up to ``open_days`` after
    it was placed, in event-time order, stopping before anything that resolves it."""
    with tempfile.TemporaryDirectory() as tmp:
        simulate("launch-week-backlog", orders, seed, Path(tmp))
        by_order: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}
        for stream, path in find_stream_files(Path(tmp)).items():
            with open(path, "rb") as f:
                for line in f:
                    body = orjson.loads(line)
                    t = parse_ts(body["occurred_at"])
                    by_order.setdefault(body["order_id"], []).append((t, stream, body))
    out = []
    for events in by_order.values():
        events.sort(key=lambda e: e[0])
        if events[0][2]["type"] != "order_placed":
            continue
        cut = events[0][0] + open_days * DAY
        kept = []
        for t, stream, body in events:
            if t > cut or body["type"] in RESOLVING_TYPES:
                break
            kept.append((stream, orjson.dumps(body)))
        out.append(kept)
    return out


def case_events(
    n: int, tmpl: list[list[tuple[str, bytes]]], customers: int
) -> Iterator[list[Event]]:
    """The events of case ``i`` for i < n: template ``i % len(tmpl)`` with new ids."""
    for i in range(n):
        events = tmpl[i % len(tmpl)]
        order_id = f"LWB-{i:07d}"
        customer_id = f"C{i % customers:07d}"
        decoded = []
        for k, (stream, raw) in enumerate(events):
            body = orjson.loads(raw)
            body["order_id"] = order_id
            body["event_id"] = f"{order_id}-{k + 1:02d}"
            if "customer_id" in body:
                body["customer_id"] = customer_id
            event = decode(stream, orjson.dumps(body))
            assert isinstance(event, Event), event
            decoded.append(event)
        yield decoded


def open_cases(
    n: int, tmpl: list[list[tuple[str, bytes]]], customers: int
) -> tuple[dict[str, CaseLogic], list[ExpiryClock], int]:
    """Open ``n`` cases as the flow would; returns them (by order id, as Bytewax keys
    them), the clocks and how many closed early (none should)."""
    # Cases are opened one after another, not merged by event time: a lateness above the
    # simulated span keeps every event on time and every window open (a setting, not a
    # change in what a case holds).
    config = WindowConfig(allowed_lateness=30 * DAY)
    clocks = [ExpiryClock(config) for _ in range(config.shards)]
    engine = DecisionEngine(RecoveryPolicy.default(), context=InMemoryContextStore())
    logics: dict[str, CaseLogic] = {}
    closed = 0
    for events in case_events(n, tmpl, customers):
        for event in events:
            clock = clocks[int(shard_of(event.order_id, config.shards))]
            for item in clock.on_event(event):
                if not isinstance(item, Event):
                    closed += 1
                    continue
                logic = logics.get(item.order_id)
                if logic is None:
                    window = CaseWindow(item.order_id, engine, config)
                    logic = logics[item.order_id] = CaseLogic(window, True, None, True)
                _, discard = logic.on_item(item)
                if discard:
                    closed += 1
                    del logics[item.order_id]
    return logics, clocks, closed


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it references that was not counted yet."""
    if id(obj) in seen or obj is None or isinstance(obj, bool):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__slots__") and not isinstance(obj, type):
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(obj, name):
                    size += deep_size(getattr(obj, name), seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        size += deep_size(vars(obj), seen)
    return size


def _shared_strings() -> Any:
    """The table of strings cases share (if this version of the case logic has one)."""
    import operators.case

    return getattr(operators.case, "_SHARED", None)


def breakdown(logics: dict[str, CaseLogic], sample: int) -> list[tuple[str, float]]:
    """Mean bytes per case of each part of a case, over ``sample`` cases. Objects shared
    between cases (the engine, the config, interned strings) count once, not per case."""
    shared: set[int] = set()
    some = next(iter(logics.values()))
    for obj in (some.window.decider, some.window.config, some.on_latency, _shared_strings()):
        deep_size(obj, shared)
    parts: dict[str, int] = {}
    picked = list(logics.values())[:sample]
    for logic in picked:
        seen = set(shared)
        case = logic.window.case
        parts["CaseLogic + CaseWindow objects"] = (
            parts.get("CaseLogic + CaseWindow objects", 0)
            + sys.getsizeof(logic)
            + sys.getsizeof(logic.window)
        )
        seen.update((id(logic), id(logic.window), id(case)))
        parts["OrderCase object (its slots)"] = parts.get(
            "OrderCase object (its slots)", 0
        ) + sys.getsizeof(case)
        for name in OrderCase.__slots__:
            value = getattr(case, name)
            key = f"  .{name}"
            if name not in ("timeline", "seen", "actions"):
                key = "  scalar fields (strings, floats)"
            parts[key] = parts.get(key, 0) + deep_size(value, seen)
    n = len(picked)
    return sorted(((k, v / n) for k, v in parts.items()), key=lambda kv: -kv[1])


def clock_bytes(clocks: list[ExpiryClock], sample: int = 1000) -> float:
    """Bytes the clocks hold for their open orders: their tables plus sampled entries
    (window records and deadline-heap entries; the order id strings are the cases')."""
    total = 0.0
    for c in clocks:
        total += sys.getsizeof(c.windows) + sys.getsizeof(c._heap)
        windows = list(c.windows.values())[:sample]
        if windows:
            per = statistics.mean(deep_size(w, set()) for w in windows)
            total += per * len(c.windows)
        entries = c._heap[:sample]
        if entries:
            per = statistics.mean(sys.getsizeof(e) + sys.getsizeof(e[0]) for e in entries)
            total += per * len(c._heap)
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000, help="open cases (default 1M)")
    ap.add_argument("--templates", type=int, default=5_000, help="simulated orders to copy")
    ap.add_argument("--open-days", type=float, default=4.0, help="age of the open cases")
    ap.add_argument("--customers", type=int, default=400_000, help="distinct customer ids")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--breakdown", action="store_true", help="where the bytes go (sampled)")
    args = ap.parse_args()
    if args.cases < 1:
        ap.error("--cases must be >= 1")

    tmpl = templates(args.templates, args.seed, args.open_days)
    per_template = statistics.mean(len(t) for t in tmpl)
    # Warm up (imports, policy, scorer, interned strings) before the baseline.
    warm, _, _ = open_cases(200, tmpl, args.customers)
    del warm
    before = rss()
    started = time.perf_counter()
    logics, clocks, closed = open_cases(args.cases, tmpl, args.customers)
    seconds = time.perf_counter() - started
    with_cases = rss()
    per_case = (with_cases - before) / args.cases

    dicts = [{} for _ in range(args.cases)]
    with_dicts = rss()
    per_dict = (with_dicts - with_cases) / args.cases
    del dicts

    sizes = [len(logic.snapshot() or b"") for logic in logics.values()]
    sizes.sort()
    points = statistics.mean(logic.window.case.example_points for logic in logics.values())
    tracked = sum(c.state_size() for c in clocks)

    print(
        f"opened {len(logics):,} cases in {seconds:.0f} s ({closed} closed early); "
        f"{per_template:.1f} events and {points:.2f} decision points per case on average; "
        f"clocks track {tracked:,} orders"
    )
    print(f"RSS before {before / 2**20:,.0f} MiB, with the cases {with_cases / 2**20:,.0f} MiB")
    print(f"bytes per open case:          {per_case:8,.0f}   (target <= 2,048)")
    in_dicts = f"{per_case / per_dict:,.1f}" if per_dict > 0 else "n/a (too few cases)"
    print(
        f"yardstick, bytes per {{}}:       {per_dict:8,.1f}   (CPython allocates 64): "
        f"one open case = {in_dicts} empty dicts"
    )
    print(
        f"recovery snapshot per case:   {statistics.mean(sizes):8,.0f}   bytes mean, "
        f"median {sizes[len(sizes) // 2]:,}, p99 {sizes[int(len(sizes) * 0.99)]:,}"
    )
    if args.breakdown:
        print("\nwhere the bytes go (sys.getsizeof, mean per case over 2,000 cases):")
        for name, size in breakdown(logics, 2_000):
            print(f"  {name:<36} {size:8,.0f}")
        print(
            f"  {'clock windows, heaps (per case)':<36} {clock_bytes(clocks) / len(logics):8,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
