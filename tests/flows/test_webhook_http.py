"""The webhook HTTP client against real local servers: one kept-alive connection per
thread and host, and what a server that closes it, stalls or answers at length does to
the next attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flows.connectors.webhooks.http import MAX_BODY, post_json


class Server:
    """An HTTP/1.1 server that records each request's client port (one per connection)."""

    def __init__(self, respond: Any) -> None:
        self.ports: list[int] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.ports.append(self.client_address[1])
                    n = len(outer.ports)
                respond(self, n)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?x=1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _ok(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Any]:
    made: list[Server] = []

    def make(respond: Any) -> Server:
        made.append(Server(respond))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _post(url: str, timeout: float = 2.0) -> Any:
    return post_json(url, b'{"a": 1}', {"Content-Type": "application/json"}, timeout)


def test_one_thread_sends_many_webhooks_on_one_connection(serve: Any) -> None:
    server = serve(lambda h, n: _ok(h))
    results = [_post(server.url) for _ in range(20)]
    assert [r.status for r in results] == [200] * 20
    assert len(set(server.ports)) == 1  # urllib opened (and closed) one per request

    # Another thread has its own connection (the delivery threads share none).
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(_post(server.url)))
    t.start()
    t.join()
    assert other[0].ok and len(set(server.ports)) == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_for_the_same_attempt(
    serve: Any,
) -> None:
    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        _ok(h)
        h.close_connection = True  # no "Connection: close": the client finds out later

    server = serve(respond)
    first = _post(server.url)
    time.sleep(0.05)  # the server has closed its end by now
    second = _post(server.url)
    assert first.ok and second.ok
    assert len(server.ports) == 2  # each request reached the server once
    assert len(set(server.ports)) == 2


def test_after_a_timeout_or_a_long_answer_the_next_attempt_gets_a_clean_connection(
    serve: Any,
) -> None:
    release = threading.Event()

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        if n == 2:
            release.wait(5)  # stalls past the client's timeout; its late answer is unread
        _ok(h, b"x" * (MAX_BODY + 10) if n == 3 else b"ok")

    server = serve(respond)
    assert _post(server.url).ok
    stalled = _post(server.url, timeout=0.3)
    assert stalled.status is None and stalled.error == "timeout after 0.3 s"
    release.set()
    long = _post(server.url)
    assert long.ok  # a long body is not drained: its connection is closed instead
    after = _post(server.url)
    assert after.ok
    assert len(server.ports) == 4 and len(set(server.ports)) == 3


def test_statuses_map_as_before(serve: Any) -> None:
    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        status = {1: 503, 2: 429, 3: 302, 4: 404}[n]
        h.send_response(status)
        if status == 429:
            h.send_header("Retry-After", "7")
        if status == 302:
            h.send_header("Location", "http://127.0.0.1:9/elsewhere")
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = serve(respond)
    got = [_post(server.url) for _ in range(4)]
    assert [(r.status, r.error, r.retry_after) for r in got] == [
        (503, "HTTP 503", None),
        (429, "HTTP 429", 7.0),
        (302, "HTTP 302: redirects are not followed", None),
        (404, "HTTP 404", None),
    ]
    assert [r.retryable for r in got] == [True, True, False, False]
    assert len(set(server.ports)) == 1  # error answers keep the connection too


def test_network_trouble_is_a_result_not_an_exception() -> None:
    from tests.fixtures.processes import free_port

    refused = _post(f"http://127.0.0.1:{free_port()}/hook")
    assert refused.status is None and refused.error == "connection error: Connection refused"
    assert _post("ftp://127.0.0.1/hook").error == "connection error: not an http(s) URL: ftp"


def test_a_connection_idle_too_long_is_not_reused(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.connectors.webhooks import http as webhook_http

    server = serve(lambda h, n: _ok(h))
    assert _post(server.url).ok and _post(server.url).ok
    assert len(set(server.ports)) == 1
    monkeypatch.setattr(webhook_http, "IDLE_SECONDS", 0.05)
    time.sleep(0.1)
    assert _post(server.url).ok
    assert len(server.ports) == 3 and len(set(server.ports)) == 2
