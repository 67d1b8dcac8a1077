"""Webhook delivery: a kept-alive connection per delivery thread against a new connection
per request, over HTTP and HTTPS, in the same run.

A local receiver (HTTP/1.1, keep-alive, answering 200 at once) runs in its own process;
this process sends ``--webhooks`` signed JSON bodies from 8 threads (a dispatcher's
``max_in_flight``), once with ``flows.connectors.webhooks.http.post_json`` (one connection
per thread and host, reused) and once with a new connection per request (what the
dispatcher did before: ``urllib``, ``Connection: close``), alternated ``--repeat`` times.
HTTPS uses a self-signed certificate made here with ``openssl`` (verified, as in
production, through a context that trusts it). Prints webhooks per second and this
process's CPU per webhook, and the ratio of the two ways.

    python benchmarks/webhook_delivery.py [--webhooks 3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.connectors.webhooks import http as webhook_http  # noqa: E402
from flows.connectors.webhooks.signing import signed_headers  # noqa: E402

THREADS = 8


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(cert: str | None, conn: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    conn.send(server.server_address[1])
    server.serve_forever()


def _certificate(work: Path) -> str:
    """A self-signed certificate and key for 127.0.0.1, in one PEM file."""
    pem = work / "receiver.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(pem), "-out", str(pem)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(pem)


def _new_connection_each(context: ssl.SSLContext | None) -> Callable[..., Any]:
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with opener.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status)

    return post


def _kept_alive(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    result = webhook_http.post_json(url, body, headers, timeout)
    assert result.ok, result
    return int(result.status or 0)


def _run(post: Callable[..., Any], url: str, n: int) -> tuple[float, float]:
    """(webhooks per second, CPU microseconds per webhook of this process)."""
    body = b'{"intervention_id": "iv", "action": "proactive_reassurance", "message": {}}'

    def one(i: int) -> None:
        headers = signed_headers(
            "bench-secret", body, timestamp=int(time.time()), intervention_id=f"iv-{i}",
            attempt=1, extra={},
        )  # fmt: skip
        assert post(url, body, dict(headers), 5.0) == 200

    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", type=int, default=3000, help="per run")
    parser.add_argument("--repeat", type=int, default=3, help="alternated rounds")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="salvage-webhooks-"))
    cert = _certificate(work)
    trusted = ssl.create_default_context(cafile=cert)
    # Production verifies against the system's CAs; here the one CA is the test's own.
    webhook_http._TLS[:] = [trusted]
    print(
        f"{args.webhooks:,} webhooks per run from {THREADS} threads, {args.repeat} alternated "
        "rounds; receiver in its own process (HTTP/1.1, answers at once); medians"
    )
    print(f"{'':>6} {'way':>26} {'webhooks/s':>11} {'CPU us/webhook':>15} {'CPU ratio':>10}")
    ctx = multiprocessing.get_context("spawn")
    for scheme, pem in (("http", None), ("https", cert)):
        parent, child = ctx.Pipe()
        receiver = ctx.Process(target=_serve, args=(pem, child), daemon=True)
        receiver.start()
        url = f"{scheme}://127.0.0.1:{parent.recv()}/hook"
        ways: dict[str, Callable[..., Any]] = {
            "new connection per request": _new_connection_each(trusted),
            "kept alive (post_json)": _kept_alive,
        }
        _run(_kept_alive, url, 100)  # warm up (imports, the first handshakes)
        got: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(args.repeat):
            for name, post in ways.items():
                got[name].append(_run(post, url, args.webhooks))
        receiver.terminate()
        receiver.join(5)
        base = statistics.median(c for _, c in got["new connection per request"])
        for name in ways:
            rate = statistics.median(r for r, _ in got[name])
            cpu = statistics.median(c for _, c in got[name])
            print(f"{scheme:>6} {name:>26} {rate:>11,.0f} {cpu:>15,.0f} {base / cpu:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
