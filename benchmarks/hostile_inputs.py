"""Hostile inputs: what each one does to Salvage, as a table (issue 10).

Each case feeds one hostile input to the code on ``sys.path`` and reports the result:

- ``ok``: handled (dead-lettered, rejected with a reason, refused with a clear error), and
  nothing valid was lost or changed;
- ``crashed (Error)``: an exception escaped (the flow or command stopped);
- ``lost N`` / ``changed N``: N valid orders lost their outcome or ended differently than
  in the clean run (or N valid events were dead-lettered as late);
- a short finding for the security cases (``leaked 3``, ``processed 3x``, ``took 12.0 s``).

Run it on this checkout, and on another one to compare (the "before" column of the table)::

    python benchmarks/hostile_inputs.py
    python benchmarks/hostile_inputs.py --code /path/to/other/checkout

Replay cases simulate ``steady-state`` (300 orders, seed 11) once and replay it with the
heuristic scorer (``learn=False``), clean and with the hostile line inserted.
"""

# ruff: noqa: E501 - the cases read best as one line each, like the table they print

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timeout(seconds: float, fn: Callable[[], str]) -> str:
    """Run ``fn`` in a thread; ``took > N s`` if it is still running after ``seconds``."""
    box: list[str] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # reported, not raised
            box.append(f"crashed ({type(exc).__name__})")

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return f"took > {seconds:g} s (left running)"
    result = box[0]
    took = time.perf_counter() - started
    return result if took < 1.0 else f"{result}, took {took:.1f} s"


# --- replay cases ----------------------------------------------------------------------------


class Replays:
    def __init__(self, work: Path) -> None:
        from operators.simulation import simulate

        self.work = work
        self.clean_dir = work / "clean" / "input"
        simulate("steady-state", 300, 11, self.clean_dir)
        self.expected = self._outcomes(self.clean_dir, work / "clean" / "out")
        self.n = 0

    def _outcomes(self, input_dir: Path, out: Path) -> dict[str, tuple[Any, ...]]:
        from flows.replay import ReplayOptions, run_replay

        run_replay(input_dir, out, options=ReplayOptions(learn=False))
        rows = [json.loads(x) for x in (out / "outcomes.jsonl").read_text().splitlines()]
        return {r["order_id"]: (r["outcome"], r["resolved_at"], r["refund_value"]) for r in rows}

    def record(self, stream: str, type_: str) -> dict[str, Any]:
        for raw in (self.clean_dir / f"{stream}.jsonl").read_text().splitlines():
            rec = json.loads(raw)
            if rec.get("type") == type_:
                return rec
        raise AssertionError(type_)

    def run(self, stream: str, line: bytes, at: float) -> str:
        self.n += 1
        base = self.work / f"case{self.n}"
        (base / "input").mkdir(parents=True)
        for path in self.clean_dir.iterdir():
            data = path.read_bytes().splitlines(keepends=True)
            if path.name == f"{stream}.jsonl":
                data.insert(int(len(data) * at), line + b"\n")
            (base / "input" / path.name).write_bytes(b"".join(data))
        got = self._outcomes(base / "input", base / "out")
        lost = sum(1 for o in self.expected if o not in got)
        changed = sum(1 for o in self.expected if o in got and got[o] != self.expected[o])
        dead = [
            json.loads(x) for x in (base / "out" / "dead_letter.jsonl").read_text().split("\n") if x
        ]
        late = sum(
            1 for d in dead if d["reason"].startswith("late") and d["event_id"] != "e-hostile"
        )
        parts = [f"lost {lost}" if lost else "", f"changed {changed}" if changed else ""]
        parts.append(f"{late} valid events late" if late else "")
        return ", ".join(p for p in parts if p) or "ok"


def replay_cases(rep: Replays) -> list[tuple[str, Callable[[], str]]]:
    delivered = rep.record("delivery", "delivered")
    head = json.dumps({**delivered, "order_id": "o-hostile", "event_id": "e-hostile"})[:-1]

    def line(extra: str) -> bytes:
        return (head + extra + "}").encode()

    def stamped(stamp: str) -> bytes:
        return json.dumps({**delivered, "order_id": "o-hostile", "event_id": "e-hostile",
                           "occurred_at": stamp}).encode()  # fmt: skip

    def placed(stamp: str) -> bytes:
        rec = rep.record("orders", "order_placed")
        rec = {**rec, "order_id": "o-hostile", "event_id": "e-hostile", "occurred_at": stamp}
        return json.dumps(rec).encode()

    return [
        ("replay: delivery event nested 1,000 levels (middle of file)",
         lambda: rep.run("delivery", line(', "x": ' + "[" * 1000 + "]" * 1000), 0.5)),
        ("replay: order event nested 300 levels",
         lambda: rep.run("orders", placed("2026-03-05T00:00:00Z")[:-1]
                         + b', "x": ' + b"[" * 300 + b"]" * 300 + b"}", 0.5)),
        ("replay: delivery event stamped 2100 (middle of file)",
         lambda: rep.run("delivery", stamped("2100-01-01T00:00:00Z"), 0.5)),
        ("replay: delivery event stamped 2100 (first line)",
         lambda: rep.run("delivery", stamped("2100-01-01T00:00:00Z"), 0.0)),
        ("replay: delivery event stamped 2100 (last line)",
         lambda: rep.run("delivery", stamped("2100-01-01T00:00:00Z"), 1.0)),
        ("replay: order stamped 9998-12-30",
         lambda: rep.run("orders", placed("9998-12-30T00:00:00Z"), 0.5)),
        ("replay: delivery event 20 h ahead of its file",
         lambda: rep.run("delivery", stamped("2026-03-20T20:00:00Z"), 0.3)),
        ("replay: 300 KB string field", lambda: rep.run("delivery", line(', "x": "' + "A" * 300_000 + '"'), 0.5)),
        ("replay: invalid UTF-8 in a string", lambda: rep.run("support", head.encode() + b', "x": "\xff\xfe"}', 0.5)),
        ("replay: NaN / 1e400 / 400-digit number",
         lambda: rep.run("delivery", line(', "a": NaN, "b": 1e400, "c": ' + "9" * 400), 0.5)),
        ("replay: items is a string, total a list",
         lambda: rep.run("orders", placed("2026-03-05T00:00:00Z").replace(b'"items": [', b'"items": "x", "y": [').replace(b'"total": ', b'"total": [1], "t0": '), 0.5)),
    ]  # fmt: skip


# --- decode of parsed objects --------------------------------------------------------------------


def decode_cases() -> list[tuple[str, Callable[[], str]]]:
    from operators.contract import decode

    base = {"event_id": "e", "type": "delivered", "order_id": "o",
            "occurred_at": "2026-03-04T10:00:00Z"}  # fmt: skip

    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    def case(extra: dict[str, Any]) -> Callable[[], str]:
        def run() -> str:
            result = decode("delivery", {**base, **extra}, received_at=1.0)
            if hasattr(result, "to_record"):
                json.dumps(result.to_record())
                return "ok"
            import orjson

            orjson.dumps(result.body)  # the event gets written out later
            return "accepted (unwritable later)" if False else "accepted"

        return run

    return [
        ("decode (parsed): field nested 300 levels", case({"x": nested(300)})),
        ("decode (parsed): field nested 5,000 levels", case({"x": nested(5000)})),
        ("decode (parsed): integer of 5,000 digits", case({"x": 10**4999})),
        ("decode (parsed): order_id with a lone surrogate", case({"order_id": "o\ud800"})),
        ("decode (parsed): NaN in an unknown field", case({"x": float("nan")})),
    ]


# --- the live clock -------------------------------------------------------------------------------


def idle_case() -> str:
    from flows.dataflow import ClockLogic
    from flows.observer import FlowObserver
    from operators.contract import decode
    from operators.window import WindowConfig

    wall = [1_000_000.0]
    real = time.time
    time.time = lambda: wall[0]  # type: ignore[assignment]  # a fake wall clock
    try:
        cfg = WindowConfig(allowed_lateness=6 * 3600.0, window_after_placed=10 * 3600.0,
                           idle_advance_seconds=60.0, sources=("p0", "p1"))  # fmt: skip
        logic = ClockLogic(cfg, None, FlowObserver(), snapshots=False)

        def placed(oid: str, hours: float, source: str) -> Any:
            rec = {"event_id": oid, "type": "order_placed", "order_id": oid,
                   "occurred_at": f"2026-06-01T{int(hours):02d}:{int(hours % 1 * 60):02d}:00Z",
                   "customer_id": "c", "currency": "EUR", "total": 1,
                   "items": [{"sku": "s", "sku_family": "f", "quantity": 1, "unit_price": 1}]}  # fmt: skip
            return decode("orders", rec, 0.0, source)  # 0: no arrival time, no future check

        logic.on_batch([placed("fast", 8.0, "p0"), placed("slow-0", 0.0, "p1")])
        wall[0] += 70.0
        logic.on_notify()
        out = logic.on_batch([placed(f"slow-{i}", i / 10, "p1") for i in range(1, 6)])[0]
        late = sum(1 for x in out if getattr(x, "reason", "").startswith("late"))
        return f"lost {late} (late)" if late else "ok"
    finally:
        time.time = real  # type: ignore[assignment]  # restore the wall clock


# --- webhooks and secrets -------------------------------------------------------------------------


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def redirect_case() -> str:
    from flows.connectors.webhooks import post_json

    hits: list[dict[str, str]] = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST  # urllib turns a POST answered 302 into a GET

        def log_message(self, *a: object) -> None:
            return

    target = _serve(Target)

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{target.server_port}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            return

    source = _serve(Redirect)
    try:
        result = post_json(f"http://127.0.0.1:{source.server_port}/hook", b"{}",
                           {"Authorization": "Bearer t0ken", "X-Salvage-Signature": "t=1,v1=ab"}, 5)  # fmt: skip
        if hits:
            sent = "Authorization" in hits[0]
            return f"followed: {result.status} counted" + (
                ", Authorization sent to the target" if sent else ""
            )
        return "ok" if not result.ok else "counted as delivered"
    finally:
        for s in (source, target):
            s.shutdown()
            s.server_close()


def receiver_replay_case() -> str:
    import importlib.util
    import urllib.request

    from operators.signature import sign

    spec = importlib.util.spec_from_file_location("rx", CODE / "examples" / "webhook_receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]  # a .py file has a loader
    server = module.Receiver(("127.0.0.1", 0), "s3cret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    body = json.dumps({"intervention_id": "iv-1", "intervention": {
        "decided_at": "x", "action": "a", "order_id": "o"}}).encode()  # fmt: skip
    header = sign("s3cret", body)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            for key in ("k1", "k2", "k3"):
                req = urllib.request.Request(
                    f"http://127.0.0.1:{server.server_port}/", data=body, method="POST",
                    headers={"X-Salvage-Signature": header, "Idempotency-Key": key})  # fmt: skip
                urllib.request.urlopen(req, timeout=5).read()
        n = len([x for x in printed.getvalue().splitlines() if x.strip()])
        return "ok" if n == 1 else f"processed {n}x"
    finally:
        server.shutdown()
        server.server_close()


def verify_cases() -> list[tuple[str, Callable[[], str]]]:
    from operators.signature import sign, verify

    def run(header: str, tolerance: float = 300.0, now: float = 5.0) -> Callable[[], str]:
        def go() -> str:
            ok = verify("k", b"{}", header, tolerance_seconds=tolerance, now=now)
            return "accepted" if ok else "ok"

        return go

    return [
        ("verify(): non-ASCII signature", run("t=5,v1=\u00e9" + "0" * 63)),
        ("verify(): 400-digit timestamp", run("t=" + "9" * 400 + ",v1=" + "0" * 64)),
        (
            "verify(): tolerance nan, signature from 1970",
            run(sign("k", b"{}", 0), float("nan"), 1_700_000_000),
        ),
    ]


def secrets_cases(work: Path) -> list[tuple[str, Callable[[], str]]]:
    def config_show() -> str:
        from flows.cli import main

        path = work / "salvage.yaml"
        path.write_text(
            "webhooks:\n  endpoints:\n    m:\n      url: https://bot:pw-1@h.example/s/T0/tok-2?token=tok-3\n"
            "      secret_env: M_SECRET\n      headers: {Authorization: Bearer tok-4}\n"
            "  routes: {proactive_reassurance: m}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SALVAGE_")}
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update({**env, "SALVAGE_CONFIG": str(path), "M_SECRET": "tok-5"})
        try:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                main(["config", "show"])
        finally:
            os.environ.clear()
            os.environ.update(old)
        leaked = [s for s in ("pw-1", "tok-2", "tok-3", "tok-4", "tok-5") if s in out.getvalue()]
        return f"leaked {len(leaked)}" if leaked else "ok"

    def reprs() -> str:
        from flows.connectors.webhooks import Dispatcher
        from flows.settings import EndpointSettings, WebhookSettings
        from state.dispatch import InMemoryDispatchLedger

        ep = EndpointSettings(
            "m", "https://h.example/s/tok-2", "M", headers={"Authorization": "Bearer tok-4"}
        )
        hooks = WebhookSettings({"m": ep}, {"proactive_reassurance": "m"})
        d = Dispatcher(hooks, {"m": "tok-5"}, InMemoryDispatchLedger(), lambda r: None)
        try:
            text = repr(d) + repr(list(d._endpoints.values()))
        finally:
            d.close(0)
        leaked = [s for s in ("tok-2", "tok-4", "tok-5") if s in text]
        return f"leaked {len(leaked)}" if leaked else "ok"

    def dead_letter_pii() -> str:
        from operators.contract import decode

        rec = {"event_id": "e", "type": "order_placed", "order_id": "o",
               "occurred_at": "2026-03-04T10:00:00Z", "total": -1,
               "email": "jane.doe@example.com", "phone": "+49 170 1234567",
               "address": {"street": "Hauptstr. 5", "name": "Jane Doe"}}  # fmt: skip
        raw = decode("orders", json.dumps(rec).encode(), received_at=1.0).to_record()["raw"]
        leaked = [s for s in ("jane.doe", "1234567", "Hauptstr") if s in raw]
        return f"leaked {len(leaked)}" if leaked else "ok"

    def campaign_label() -> str:
        from prometheus_client import CollectorRegistry, generate_latest

        from flows.observability.metrics import SalvageMetrics

        m = SalvageMetrics(CollectorRegistry(), top_n=5, admit_after=1)
        obs = m.observer()
        rec = {"intervention_id": "i", "order_id": "o", "action": "proactive_reassurance",
               "campaign": "promo-for-jane1@example.com", "sku_family": "+49 170 1234567",
               "courier_lane": "l", "support_reason": None, "decided_at": "2026-03-04T10:00:00Z"}  # fmt: skip
        obs.on_output("interventions", rec)
        text = generate_latest(m.registry).decode()
        leaked = [s for s in ("jane1@example.com", "1234567") if s in text]
        return f"leaked {len(leaked)}" if leaked else "ok"

    def metrics_bind() -> str:
        import inspect

        from flows.observability import server

        addr = inspect.signature(server.start_http).parameters["addr"].default
        return "ok (127.0.0.1)" if addr == "127.0.0.1" else f"binds {addr}"

    return [
        ("config show: URL password, path and query tokens, header value, secret", config_show),
        ("repr(Dispatcher), repr(_Endpoint)", reprs),
        ("dead letter of an order with e-mail, phone, address", dead_letter_pii),
        ("metric labels: campaign with an e-mail, family with a phone", campaign_label),
        ("metrics port default bind address", metrics_bind),
    ]


# --- files: policies and CSVs -------------------------------------------------------------------


def policy_cases(work: Path) -> list[tuple[str, Callable[[], str]]]:
    def run(text: str) -> Callable[[], str]:
        def go() -> str:
            from flows.cli import main

            path = work / f"policy{abs(hash(text)) % 10**8}.yaml"
            path.write_text(text)
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    code = main(["policy", "check", str(path)])
                except SystemExit as exc:
                    code = exc.code
            return (
                "ok (clear error)" if code == 2 and str(path) in err.getvalue() else f"exit {code}"
            )

        return go

    laughs = [
        "version: 1",
        'x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, 10):
        laughs.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]")
    return [
        ("policy check: 9 levels of nested aliases (4 KB)", lambda: _timeout(20, run("\n".join(laughs) + "\n"))),
        ("policy check: alias that refers to itself", lambda: _timeout(20, run("version: 1\nx: &a [*a]\n"))),
        ("policy check: 5,000 nested brackets", lambda: _timeout(20, run("version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n"))),
        ("policy check: !!python/object tag", lambda: _timeout(20, run("version: 1\nx: !!python/object:os.system ls\n"))),
    ]  # fmt: skip


def csv_cases(work: Path) -> list[tuple[str, Callable[[], str]]]:
    h = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    ok = "500001,85123A,WHITE HANGING HEART,6,2010-12-01 09:00:00,2.55,10001,United Kingdom\n"

    def row(**v: str) -> str:
        r = {"InvoiceNo": "500002", "StockCode": "X1", "Description": "d", "Quantity": "1",
             "InvoiceDate": "2010-12-01 10:00:00", "UnitPrice": "1.0", "CustomerID": "10002",
             "Country": "UK"}  # fmt: skip
        r.update(v)
        return ",".join(r.values()) + "\n"

    files: dict[str, bytes] = {
        "field over 128 KiB": (h + ok + row(Description='"' + "A" * 200_000 + '"')).encode(),
        "invalid UTF-8": (h + ok).encode() + b"500003,X2,caf\xe9,1,2010-12-01 10:00:00,1.0,10003,UK\n",
        "price 1e400": (h + ok + row(UnitPrice="1e400")).encode(),
        "32-digit quantity": (h + ok + row(Quantity="9" * 32)).encode(),
        "empty file": b"",
        "blank lines only": b"\n\n\n",
        "header only": h.encode(),
        "price NaN": (h + ok + row(UnitPrice="NaN")).encode(),
        "price -Infinity": (h + ok + row(UnitPrice="-Infinity")).encode(),
        "price 1e-400": (h + ok + row(UnitPrice="1e-400")).encode(),
        "quantity 1e400": (h + ok + row(Quantity="1e400")).encode(),
        "quantity -32 digits": (h + ok + row(Quantity="-" + "9" * 32)).encode(),
        "date year 1": (h + ok + row(InvoiceDate="0001-01-01 00:00:00")).encode(),
        "date year 9999": (h + ok + row(InvoiceDate="9999-12-31 23:59:59")).encode(),
        "customer id of 5,000 chars": (h + ok + row(CustomerID="1" * 5000)).encode(),
        "short row": (h + ok + "500014,X13\n").encode(),
        "unterminated quote": (h + ok + '500007,X6,"never closed,1,2010-12-01 10:00:00,1.0,1,UK\n').encode(),
        "NUL byte": (h + ok + row(Description="d\x00")).encode(),
        "100,000 columns": (h + ok + row().rstrip("\n") + ",x" * 100_000 + "\n").encode(),
        "UTF-8 BOM": ("\ufeff" + h + ok).encode(),
        "CRLF line ends": (h + ok).replace("\n", "\r\n").encode(),
        "binary garbage": bytes(range(256)) * 50,
        "corrupt gzip": b"\x1f\x8b" + b"garbage" * 100,
        "formula in a field": (h + ok + row(Description='"=HYPERLINK(""http://x"")"')).encode(),
        "3,000 lines in one order": (h + "".join(row(StockCode=f"S{i}") for i in range(3000))).encode(),
        "refund priced 1e400": (h + ok + "C500018,85123A,d,-1,2010-12-02 10:00:00,1e400,10001,UK\n").encode(),
    }  # fmt: skip

    def run(name: str, data: bytes) -> Callable[[], str]:
        def go() -> str:
            from flows.cli import main
            from operators.contract import decode

            path = work / f"csv{abs(hash(name)) % 10**8}.csv"
            path.write_bytes(data)
            out = work / f"csvout{abs(hash(name)) % 10**8}"
            with (
                contextlib.redirect_stderr(io.StringIO()) as err,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                try:
                    code = main(["import", str(path), "--out", str(out)])
                except SystemExit as exc:
                    code = exc.code
            if code == 2:
                message = err.getvalue().strip().splitlines()[-1]
                return "clear error" + (" (with line)" if "line" in message else "")
            bad = 0
            for f in ("orders.jsonl", "refunds.jsonl"):
                for x in (out / f).read_text().splitlines():
                    stream = "orders" if f == "orders.jsonl" else "refunds"
                    bad += not hasattr(decode(stream, x.encode(), 1.0), "body")
            return f"ok, but {bad} written events fail the contract" if bad else "ok"

        return go

    return [(f"salvage import: {name}", run(name, data)) for name, data in files.items()]


CODE = ROOT


def main() -> int:
    global CODE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout to test (default: this one)")
    ap.add_argument("--only", help="run only cases whose name contains this text")
    args = ap.parse_args()
    CODE = args.code.resolve()
    sys.path.insert(0, str(CODE))
    os.chdir(CODE)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases: list[tuple[str, Callable[[], str]]] = []
        cases += decode_cases()
        cases += [("live clock: idle advance with a partition 8 h behind", idle_case)]
        cases += [("dispatch: 302 redirect to another host", redirect_case),
                  ("example receiver: one request replayed with 3 new keys", receiver_replay_case)]  # fmt: skip
        cases += verify_cases()
        cases += secrets_cases(work)
        cases += policy_cases(work)
        cases += csv_cases(work)
        if args.only is None or "replay" in args.only:
            replays = Replays(work)
            cases += replay_cases(replays)
        print(f"code: {CODE}\n")
        print("| hostile input | result |\n| --- | --- |")
        for name, fn in cases:
            if args.only and args.only not in name:
                continue
            try:
                result = fn()
            except BaseException as exc:  # the table reports it
                result = f"crashed ({type(exc).__name__})"
            print(f"| {name} | {result} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
