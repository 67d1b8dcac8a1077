"""``--metrics-port``, ``--metrics-addr`` and ``--metrics-file``: metrics for one CLI run."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry

from flows.observability.metrics import SalvageMetrics
from flows.observability.server import start_http
from flows.observer import FlowObserver


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {port}")
    return port


def add_metrics_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics-port``, ``--metrics-addr`` and ``--metrics-file`` to a subcommand."""
    g = parser.add_argument_group("metrics")
    g.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics while running",
    )
    g.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to serve metrics on (default: 127.0.0.1, this host only; 0.0.0.0 for "
        "every interface)",
    )
    g.add_argument(
        "--metrics-file",
        metavar="FILE",
        help="write the final metrics to FILE in the Prometheus text format "
        "(e.g. for the node exporter's textfile collector: name it *.prom)",
    )


@contextlib.contextmanager
def metrics_session(
    args: argparse.Namespace, registry: CollectorRegistry | None = None
) -> Iterator[FlowObserver | None]:
    """Metrics for one run from the :func:`add_metrics_args` options.

    Yields None when neither ``--metrics-port`` nor ``--metrics-file`` is given. Otherwise
    yields the observer of a fresh :class:`SalvageMetrics` (on ``registry``, default a new
    one), serves it on the port while the block runs, and writes the text file when the
    block ends (also when it fails: the figures up to the failure help find it).
    """
    port = getattr(args, "metrics_port", None)
    path = getattr(args, "metrics_file", None)
    if port is None and path is None:
        yield None
        return
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    metrics = SalvageMetrics(registry if registry is not None else CollectorRegistry())
    server = None
    if port is not None:
        server = start_http(port, metrics.registry, getattr(args, "metrics_addr", "127.0.0.1"))
    try:
        yield metrics.observer()
    finally:
        try:
            if path is not None:
                metrics.write_textfile(path)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
