"""``salvage replay --processes N``: a Bytewax cluster of processes, orders split between
them. The split is exact (every record read by exactly one process, with the same
``received_at`` as in one process), and the cluster closes every order with the same
outcome as one process, writing each output per worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.cli import main
from flows.cluster import PartitionedReplaySource, process_of
from flows.jsonl import read_jsonl
from flows.sources import ReplaySource
from operators.simulation import simulate

#: The fields of an outcome the input decides (the actions, arm and prediction recorded
#: with it depend on per-process context and models; see flows/cluster.py).
OUTCOME_FIELDS = ("outcome", "resolved_at", "refund_value", "retained_value", "order_value")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    simulate("launch-week-backlog", 300, 11, out, invalid_rate=0.01)
    return out


def _drain(part: Any) -> list[Any]:
    items = []
    while True:
        try:
            items.extend(part.next_batch())
        except StopIteration:
            return items


@pytest.mark.parametrize("processes", [2, 3])
def test_the_partitions_split_the_merged_input_exactly(world: Path, processes: int) -> None:
    whole = _drain(ReplaySource(world, 64).build_part("input", "replay", None))
    parts = []
    for i in range(processes):
        source = PartitionedReplaySource(world, 64, i, processes, 8)
        assert source.list_parts() == [f"replay-{i}-of-{processes}"]  # only its own part
        parts.append(_drain(source.build_part("input", source.list_parts()[0], None)))
    key = repr
    assert sorted(map(key, whole)) == sorted(key(x) for part in parts for x in part)
    for i, part in enumerate(parts):
        assert part, i
        assert all(process_of(item[1], 8, processes) == i for item in part)
        assert [x for x in whole if process_of(x[1], 8, processes) == i] == part  # same order
    assert any(not isinstance(item[1], dict) for item in parts[0])  # unreadable: process 0


@pytest.mark.slow
def test_two_processes_close_every_order_like_one(world: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["replay", str(world), "--out", str(one), "--no-learning", "-q"]) == 0
    (two / "decisions.w1.jsonl").parent.mkdir()
    (two / "decisions.w1.jsonl").write_text('{"stale": true}\n')  # from an earlier run
    argv = ["replay", str(world), "--out", str(two), "--no-learning", "--processes", "2", "-q"]
    assert main(argv) == 0
    for name in ("decisions", "outcomes"):
        assert (two / f"{name}.jsonl").stat().st_size > 0, name
        assert (two / f"{name}.w1.jsonl").stat().st_size > 0, name  # written per process
    assert not list(two.glob(".process-*"))
    single = {o["order_id"]: o for o in read_jsonl(one / "outcomes.jsonl")}
    cluster = read_jsonl(two / "outcomes.jsonl")
    assert len(cluster) == len(single) == 300  # every order closed once
    for o in cluster:
        assert [o[k] for k in OUTCOME_FIELDS] == [single[o["order_id"]][k] for k in OUTCOME_FIELDS]
    dead_one = sorted(d["raw"] for d in read_jsonl(one / "dead_letter.jsonl"))
    assert dead_one and dead_one == sorted(d["raw"] for d in read_jsonl(two / "dead_letter.jsonl"))
    summary_one = orjson.loads((one / "summary.json").read_bytes())
    summary_two = orjson.loads((two / "summary.json").read_bytes())
    assert summary_two["input_records"] == summary_one["input_records"]
    # One order's records are all in one part, in event-time order.
    for part in ("decisions.jsonl", "decisions.w1.jsonl"):
        by_order: dict[str, list[str]] = {}
        for d in _lines(two / part):
            by_order.setdefault(d["order_id"], []).append(d["decided_at"])
        assert all(times == sorted(times) for times in by_order.values())


@pytest.fixture(scope="module")
def world_2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world-2k")
    simulate("launch-week-backlog", 2000, 5, out, invalid_rate=0.01)
    return out


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}


@pytest.mark.slow
@pytest.mark.parametrize("learning", [False, True])
def test_each_process_keeps_its_orders_closes_them_like_one_and_repeats_exactly(
    world_2k: Path, tmp_path: Path, learning: bool
) -> None:
    flags = ["-q"] if learning else ["--no-learning", "-q"]
    one = tmp_path / "one"
    assert main(["replay", str(world_2k), "--out", str(one), *flags]) == 0
    runs = []
    for run in ("a", "b"):
        out = tmp_path / run
        argv = ["replay", str(world_2k), "--out", str(out), "--processes", "2", *flags]
        assert main(argv) == 0
        runs.append(out)
    # Every order closes once, with the outcome it has in one process.
    single = {
        o["order_id"]: [o[k] for k in OUTCOME_FIELDS] for o in read_jsonl(one / "outcomes.jsonl")
    }
    cluster = read_jsonl(runs[0] / "outcomes.jsonl")
    assert len(single) == 2000
    assert {o["order_id"]: [o[k] for k in OUTCOME_FIELDS] for o in cluster} == single
    assert len(cluster) == 2000
    # Each process's parts hold only the orders it read: no case ran in the other process
    # (Bytewax would have hashed about half of them there with plain order-id keys).
    for name in ("decisions", "interventions", "outcomes"):
        for part, process in ((f"{name}.jsonl", 0), (f"{name}.w1.jsonl", 1)):
            rows = _lines(runs[0] / part)
            assert rows, part
            assert {process_of(r, 8, 2) for r in rows} == {process}, part
    # The same input gives the same files, byte for byte.
    first, second = _outputs(runs[0]), _outputs(runs[1])
    assert len(first) == 8 and first == second


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_processes_must_be_positive(world: Path, tmp_path: Path) -> None:
    assert main(["replay", str(world), "--out", str(tmp_path), "--processes", "0", "-q"]) == 2


def test_the_kubernetes_cluster_manifest_forms_one_cluster() -> None:
    import shlex

    import yaml

    from flows.cli import build_parser
    from flows.settings import load_settings
    from state.redis_conn import is_cluster_url

    path = Path(__file__).parents[2] / "deploy" / "k8s" / "cluster" / "statefulset.yaml"
    docs = {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}
    sts, svc, pvc = docs["StatefulSet"], docs["Service"], docs["PersistentVolumeClaim"]
    replicas = sts["spec"]["replicas"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    addresses = env["SALVAGE_ADDRESSES"].split(";")
    assert len(addresses) == replicas
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "bytewax")
    for i, address in enumerate(addresses):
        assert address == f"{sts['metadata']['name']}-{i}.{svc['metadata']['name']}:{port}"
    # The command line the shell builds is one the CLI accepts, for every pod.
    for i in range(replicas):
        line = container["args"][0].replace('"${HOSTNAME##*-}"', str(i))
        line = line.replace('"$SALVAGE_ADDRESSES"', shlex.quote(env["SALVAGE_ADDRESSES"]))
        argv = shlex.split(line)
        assert argv[:2] == ["exec", "salvage"]
        args = build_parser().parse_args(argv[2:])
        assert (args.process_id, args.addresses) == (i, env["SALVAGE_ADDRESSES"])
    settings = load_settings(env={k: v for k, v in env.items() if v and k != "SALVAGE_CONFIG"})
    assert is_cluster_url(settings.redis.url)
    assert settings.recovery.partitions >= replicas
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "recovery")
    assert settings.recovery.dir.startswith(mount["mountPath"])
