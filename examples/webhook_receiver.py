"""A minimal Salvage webhook receiver (standard library only).

It checks ``X-Salvage-Signature`` over the raw body, answers 401 to bad signatures,
deduplicates by the ``intervention_id`` *inside the signed body* (a retry of a delivery it
already accepted gets 200 again and is not processed twice), and prints one line per new
intervention. The ``Idempotency-Key`` header carries the same id but is not signed: a
captured request replayed with new keys would pass a check on it. A real receiver would
hand the intervention to its messaging tool or support queue instead, and keep the seen
ids in its own database.

Run::

    export SALVAGE_WEBHOOK_SECRET=$(python -c "import secrets; print(secrets.token_hex(32))")
    python examples/webhook_receiver.py --port 8080 --secret-env SALVAGE_WEBHOOK_SECRET

Signature scheme (see ``operators/signature.py``)::

    X-Salvage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """The receiver side of the scheme, self-contained so it can be copied as is. Never
    raises: anything odd (a huge timestamp, non-ASCII text, a non-finite tolerance) is
    simply not valid."""
    if not header or not math.isfinite(tolerance) or tolerance < 0:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    stamp = fields.get("t", [""])[0]
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False  # too old (or from the future): a replayed request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    candidates = [s for s in fields.get("v1", []) if s.isascii()]
    return any(hmac.compare_digest(expected.hexdigest(), s) for s in candidates)


class Receiver(ThreadingHTTPServer):
    """HTTP server holding the secret and the intervention ids already processed."""

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.processed = 0  # new interventions handled (for tests)

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"Receiver({self.server_address!r}, seen={len(self.seen)})"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._answer(400, "bad Content-Length")
            return
        if not 0 <= length <= 1 << 20:
            self._answer(413, "body too large")
            return
        body = self.rfile.read(length)  # the raw bytes: verify before parsing
        if not verify(self.server.secret, body, self.headers.get("X-Salvage-Signature")):
            self._answer(401, "bad signature")
            return
        try:
            payload = json.loads(body)
            iid = payload["intervention_id"]
            iv = payload["intervention"]
        except (ValueError, KeyError, TypeError):
            self._answer(400, "not an intervention")
            return
        if not isinstance(iid, str) or not iid:
            self._answer(400, "no intervention_id")
            return
        # Deduplicate on the signed id: the Idempotency-Key header is not signed.
        with self.server.lock:
            duplicate = iid in self.server.seen
            self.server.seen.add(iid)
            if not duplicate:
                self.server.processed += 1
        if duplicate:
            self._answer(200, "already processed")
            return
        # Print ids and the action only: the body holds customer data that logs should not.
        print(
            f"{iv.get('decided_at')}  {iv.get('action')!s:<30} order {iv.get('order_id')}  "
            f"send_after={payload.get('send_after')}  id={iid}",
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
