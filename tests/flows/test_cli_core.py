"""The core CLI as a user runs it: ``salvage simulate``, ``replay`` and ``demo`` in a
subprocess, exit codes and messages for bad input, and ``--help`` on every subcommand."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flows.cli import build_parser, main
from flows.jsonl import read_jsonl
from flows.sinks import OUTPUTS
from operators.contract import VALIDATORS

REPO = Path(__file__).resolve().parents[2]


def _salvage() -> list[str]:
    """The installed ``salvage`` script of this interpreter, else ``python -m flows.cli``."""
    script = Path(sys.executable).with_name("salvage")
    if script.exists():
        return [str(script)]
    found = shutil.which("salvage")
    return [found] if found else [sys.executable, "-m", "flows.cli"]


def salvage(*args: str, module: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flows.cli"] if module else _salvage()
    return subprocess.run(
        [*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def _assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


# --- simulate, replay, demo ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "input"
    proc = salvage("simulate", "steady-state", "--orders", "300", "--seed", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "simulated steady-state: 300 orders" in proc.stdout
    return out


def test_simulate_writes_the_four_streams_and_ground_truth(simulated: Path) -> None:
    for name in ("orders", "delivery", "support", "refunds", "ground_truth"):
        assert (simulated / f"{name}.jsonl").stat().st_size > 0
    orders = Counter(r["type"] for r in read_jsonl(simulated / "orders.jsonl"))
    assert orders["order_placed"] >= 300


@pytest.mark.slow
def test_replay_writes_valid_outputs_and_a_summary(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = salvage("replay", str(simulated), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    _assert_no_traceback(proc)
    assert "replayed" in proc.stdout and "events/s" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    outcomes = read_jsonl(out / "outcomes.jsonl")
    assert summary["cases"] == len(outcomes) > 0
    for name in OUTPUTS:
        for row in read_jsonl(out / f"{name}.jsonl"):
            assert VALIDATORS[name](row) == [], (name, row)

    # `salvage validate` checks the same files with the same validators ...
    checked = salvage("validate", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"outcomes: {len(outcomes):,} records, 0 invalid" in checked.stdout
    # ... and names the file, line and problem of a broken record, not its content.
    lines = (out / "outcomes.jsonl").read_text().splitlines()
    broken = json.loads(lines[2])
    del broken["resolved_at"]
    lines[2] = json.dumps(broken)
    (out / "outcomes.jsonl").write_text("\n".join(lines) + "\n")
    checked = salvage("validate", str(out))
    assert checked.returncode == 1
    assert "outcomes: " in checked.stdout and ", 1 invalid" in checked.stdout
    assert "outcomes.jsonl:3: missing resolved_at" in checked.stdout
    assert broken["order_id"] not in checked.stdout


@pytest.mark.slow
def test_replay_via_python_dash_m_with_options(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = salvage(
        "replay", str(simulated), "--out", str(out), "--workers", "2", "--batch-size", "50",
        "--allowed-lateness-hours", "1", "--shards", "3", module=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    counts = Counter(o["order_id"] for o in read_jsonl(out / "outcomes.jsonl"))
    assert counts and set(counts.values()) == {1}


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = salvage("demo", "--orders", "2000", "--dir", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    _assert_no_traceback(proc)
    assert "simulating launch-week-backlog: 2,000 orders" in proc.stdout
    assert "interventions" in proc.stdout and "done in" in proc.stdout
    out = tmp_path / "demo" / "output"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interventions"] > 0 and summary["cases"] >= 2000
    assert (tmp_path / "demo" / "input" / "orders.jsonl").exists()
    # The demo says where its report and metrics are, and they are there.
    report, metrics = out / "report.html", out / "metrics.prom"
    assert f"report:  {report}" in proc.stdout and f"metrics: {metrics}" in proc.stdout
    assert report.read_text().lstrip().lower().startswith("<!doctype html")
    prom = metrics.read_text()
    assert "salvage_refund_leakage_total" in prom and "salvage_input_records_total" in prom


@pytest.mark.slow
def test_replay_metrics_file_and_report_flags(simulated: Path, tmp_path: Path) -> None:
    out, prom = tmp_path / "out", tmp_path / "m" / "replay.prom"
    proc = salvage(
        "replay", str(simulated), "--out", str(out), "--metrics-file", str(prom), "--report"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    text = prom.read_text()
    # Counters in the file agree with the outputs of the same run.
    total = sum(
        float(ln.rsplit(" ", 1)[1])
        for ln in text.splitlines()
        if ln.startswith("salvage_input_records_total{")
    )
    assert total == summary["input_records"]
    assert (out / "report.html").exists() and f"report: {out / 'report.html'}" in proc.stdout


# --- errors -------------------------------------------------------------------------------------


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """``main`` in-process (same exit-code mapping as the script, without the start-up)."""
    code = main(args)
    return code, capsys.readouterr().err


def test_input_dir_without_stream_files_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, err = run_main(["replay", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "no stream files" in err and "orders.jsonl" in err


BAD_POLICIES = [
    ('version: "x"\nactions:\n  teleport: {cost: 1}\n', ":3: actions.teleport: unknown action"),
    ("version: [unclosed\n", "not valid YAML"),
    ('version: "x"\nactions:\n  proactive_reassurance:\n    cost: low\n', ":4:"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_POLICIES)
def test_every_policy_error_exits_2(
    simulated: Path, tmp_path: Path, text: str, fragment: str, capsys
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(text)
    args = ["replay", str(simulated), "--out", str(tmp_path / "o"), "--policy", str(policy)]
    code, err = run_main(args, capsys)
    assert code == 2
    assert str(policy) in err and fragment in err, err
    assert not (tmp_path / "o" / "outcomes.jsonl").exists()  # refused before replaying


def test_missing_policy_file_exits_2(simulated: Path, tmp_path: Path, capsys) -> None:
    args = ["replay", str(simulated), "--out", str(tmp_path / "o")]
    code, err = run_main([*args, "--policy", str(tmp_path / "no.yaml")], capsys)
    assert code == 2 and "no.yaml" in err


def test_bad_option_values_exit_2(tmp_path: Path, capsys) -> None:
    code, err = run_main(
        ["simulate", "steady-state", "--orders", "0", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 2 and "--orders must be >= 1" in err
    code, err = run_main(
        ["replay", str(tmp_path), "--out", str(tmp_path / "o"), "--shards", "0"], capsys
    )
    assert code == 2 and "shards must be between 1 and 4096" in err
    with pytest.raises(SystemExit) as exit_info:  # --out missing: argparse's usage error
        main(["replay", str(tmp_path)])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["demo", "--orders", "0"], ["replay", "IN", "--workers", "0"],
     ["replay", "IN", "--batch-size", "0"]],
    ids=["demo-orders-0", "workers-0", "batch-size-0"],
)  # fmt: skip
def test_out_of_range_run_options_exit_2(
    args: list[str], simulated: Path, tmp_path: Path, capsys
) -> None:
    args = [str(simulated) if a == "IN" else a for a in args]
    where = ["--dir", str(tmp_path / "d")] if args[0] == "demo" else ["--out", str(tmp_path / "o")]
    code, err = run_main([*args, *where], capsys)
    assert code == 2 and ">= 1" in err


# --- help ---------------------------------------------------------------------------------------


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _command_paths(sub, (*prefix, name))


COMMANDS = sorted(set(_command_paths(build_parser())))


def test_core_subcommands_are_registered() -> None:
    assert {
        ("demo",),
        ("simulate",),
        ("replay",),
        ("policy",),
        ("policy", "check"),
        ("validate",),
    } <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_works_on_every_subcommand(path: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: salvage {' '.join(path)}")
    assert "-h, --help" in out


@pytest.mark.slow
def test_errors_and_help_as_a_user_sees_them(simulated: Path, tmp_path: Path) -> None:
    """Exit code 2 and a one-line message (no traceback) for a missing input dir, an unknown
    scenario and a bad policy file; ``--help`` exits 0. Run concurrently: start-up dominates."""
    policy = tmp_path / "bad.yaml"
    policy.write_text(BAD_POLICIES[0][0])
    runs = {
        "missing_dir": ["replay", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")],
        "unknown_scenario": ["simulate", "black-friday", "--out", str(tmp_path / "x")],
        "bad_policy": ["replay", str(simulated), "--out", str(tmp_path / "o2"), "--policy",
                       str(policy)],
        "help": ["--help"],
    }  # fmt: skip
    procs = {
        name: subprocess.Popen(
            [*_salvage(), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in runs.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
        assert "Traceback" not in err, (name, err)

    code, _, err = results["missing_dir"]
    assert code == 2 and err.startswith("salvage: error:")
    assert "nowhere" in err and "not a directory" in err

    code, _, err = results["unknown_scenario"]
    assert code == 2 and "unknown scenario 'black-friday'" in err
    assert "launch-week-backlog" in err and "steady-state" in err
    assert not (tmp_path / "x").exists()

    code, _, err = results["bad_policy"]
    assert code == 2 and err.startswith("salvage: error:")
    assert f"{policy}{BAD_POLICIES[0][1]}" in err, err

    code, out, _ = results["help"]
    assert code == 0
    for (name,) in (p for p in COMMANDS if len(p) == 1):
        assert name in out


def test_version_names_the_package_and_the_contract(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("salvage ") and "event contract v1" in out


def test_simulate_describe_prints_the_scenario_story(capsys) -> None:
    from operators.simulation import describe_scenario

    assert main(["simulate", "launch-week-backlog", "--describe"]) == 0
    assert capsys.readouterr().out.strip() == describe_scenario("launch-week-backlog").strip()
    code, err = run_main(["simulate", "launch-week-backlog"], capsys)
    assert code == 2 and "--out is required" in err


def test_simulate_help_names_every_shipped_scenario() -> None:
    from operators.simulation import SCENARIOS

    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["simulate"]
    text = " ".join(sub.format_help().split())
    assert all(name in text for name in SCENARIOS), text
