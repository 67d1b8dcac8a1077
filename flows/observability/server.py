"""Serving ``/metrics`` over HTTP."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server


def start_http(
    port: int, registry: CollectorRegistry | None = None, addr: str = "127.0.0.1"
) -> WSGIServer:
    """Serve ``/metrics`` of ``registry`` (default: the global one) on ``addr:port`` in a
    daemon thread; returns the server (call ``shutdown()`` and ``server_close()`` to stop).
    Port 0 picks a free port: read it from ``server.server_port``."""
    try:
        # prometheus-client >= 0.17 (pyproject asks for >= 0.20) returns (server, thread)
        server, _thread = start_http_server(port, addr=addr, registry=registry or REGISTRY)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    return server
