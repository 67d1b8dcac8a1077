"""A minimal Salvage webhook receiver (standard library only).

It checks ``X-Salvage-Signature`` over the raw body, answers 401 to bad signatures,
deduplicates by ``Idempotency-Key`` (a retry of a delivery it already accepted gets 200
again and is not processed twice), and prints one line per new intervention. A real
receiver would hand the intervention to its messaging tool or support queue instead, and
keep the seen keys in its own database.

Run::

    export SALVAGE_WEBHOOK_SECRET=$(python -c "import secrets; print(secrets.token_hex(32))")
    python examples/webhook_receiver.py --port 8080 --secret-env SALVAGE_WEBHOOK_SECRET

Signature scheme (see ``operators/webhooks.py``)::

    X-Salvage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> bool:
    """The receiver side of the scheme, self-contained so it can be copied as is."""
    if not header:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False  # too old (or from the future): a replayed request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return any(hmac.compare_digest(expected.hexdigest(), s) for s in fields.get("v1", []))


class Receiver(ThreadingHTTPServer):
    """HTTP server holding the secret and the idempotency keys already processed."""

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.seen: set[str] = set()
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)  # the raw bytes: verify before parsing
        if not verify(self.server.secret, body, self.headers.get("X-Salvage-Signature")):
            self._answer(401, "bad signature")
            return
        key = self.headers.get("Idempotency-Key") or ""
        with self.server.lock:
            duplicate = key in self.server.seen
            self.server.seen.add(key)
        if duplicate:
            self._answer(200, "already processed")
            return
        payload = json.loads(body)
        iv = payload["intervention"]
        # Print ids and the action only: the body holds customer data that logs should not.
        print(
            f"{iv['decided_at']}  {iv['action']:<30} order {iv['order_id']}  "
            f"send_after={payload.get('send_after')}  key={key}",
            flush=True,
        )
        self._answer(200, "ok")

    def _answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet access log
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret-env", default="SALVAGE_WEBHOOK_SECRET")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"set {args.secret_env} to the endpoint's secret", file=sys.stderr)
        return 2
    server = Receiver((args.host, args.port), secret)
    print(f"listening on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
