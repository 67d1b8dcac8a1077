"""The report in a real browser: headless Chromium renders every chart, logs no error,
fetches nothing, and leaves a full-page screenshot in ``artifacts/report.png``.

Chromium is driven over the DevTools protocol (a minimal WebSocket client below, no extra
dependency) rather than through ``--dump-dom``/``--screenshot``: the protocol reports
console calls, uncaught exceptions, browser log entries (failed loads, CSP violations) and
every network request as events, so the test sees errors the page itself cannot catch,
and it measures the rendered charts with ``getBoundingClientRect`` in the loaded page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main as salvage
from flows.report import write_report
from tests.fixtures.processes import missing_service

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _require_chromium() -> str:
    if CHROMIUM is None:
        missing_service(
            "chromium not installed", "apt-get install chromium, or ./scripts/bootstrap --system"
        )
    assert CHROMIUM is not None
    return CHROMIUM


# --- a minimal WebSocket client (RFC 6455), enough for the DevTools protocol ----------------


class WebSocket:
    """Text frames over a plain TCP socket; client frames masked as the RFC requires."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://") :].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket handshake refused: {status!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        with suppress(OSError):
            self._send_frame(0x8, b"")
        self.sock.close()


class DevToolsPage:
    """One Chromium page over the DevTools protocol; events are kept for inspection."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        call_id = self.next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == call_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e["method"] == event:
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == event:
                    return msg
        raise TimeoutError(event)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning"):
                out.append("console: " + " ".join(str(a.get("value")) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        self.ws.close()


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """Chromium writes the port it picked (``--remote-debugging-port=0``) to this file."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if marker.exists():
            lines = marker.read_text().split()
            if lines:
                return int(lines[0])
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


def _no_proxy_get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return json.loads(resp.read())


@contextmanager
def open_chromium(profile: Path, width: int = 1280, height: int = 1000) -> Iterator[DevToolsPage]:
    """Start headless Chromium on a free DevTools port; yield its first page; stop it."""
    binary = _require_chromium()
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = None
    try:
        port = _devtools_port(profile, proc)
        targets = _no_proxy_get(f"http://127.0.0.1:{port}/json/list")
        target = next(t for t in targets if t.get("type") == "page")
        page = DevToolsPage(target["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def load(page: DevToolsPage, path: Path) -> None:
    """Navigate to a local file with logging on and wait until it has loaded and painted."""
    for domain in ("Runtime", "Log", "Network", "Page"):
        page.call(f"{domain}.enable")
    page.call("Page.navigate", url=path.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    # Two animation frames: layout and paint are done before anything is measured.
    page.call(
        "Runtime.evaluate",
        expression="new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
        awaitPromise=True,
    )


def full_page_png(page: DevToolsPage, width: int = 1280) -> bytes:
    """A screenshot of the whole page at ``width`` CSS pixels."""
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = page.call(
        "Page.captureScreenshot",
        timeout=60,
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    )
    return base64.b64decode(shot["data"])


CHART_PROBE = """
(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('rect, circle, polyline, polygon, line, path')]
      .filter(el => { const b = el.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
    const labels = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).length;
    return {id: svg.id, width: box.width, height: box.height, marks: marks.length, labels,
            title: (svg.querySelector('title') || {}).textContent || ''};
  });
  const wide = [...document.querySelectorAll('main *')]
    .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(el => el.tagName + '#' + el.id);
  return {charts, wide, svgs: document.querySelectorAll('svg').length,
          title: document.title, bodyText: document.body.innerText.length};
})()
"""


# --- the test ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_chromium()
    base = tmp_path_factory.mktemp("report-browser")
    data, out = base / "input", base / "output"
    assert salvage(["simulate", "launch-week-backlog", "--orders", "1500", "--out", str(data)]) == 0
    assert salvage(["replay", str(data), "--out", str(out)]) == 0
    return write_report(out, ground_truth=data / "ground_truth.jsonl")


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    with open_chromium(tmp_path / "profile") as page:
        load(page, report)
        probe = page.evaluate(CHART_PROBE)
        png = full_page_png(page)
        errors = page.errors()
        requests = page.requests()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.write_bytes(png)

    charts = {c["id"]: c for c in probe["charts"]}
    expected = {
        "chart-leakage-by-order-day",
        "chart-observed-by-day",
        "chart-interventions-by-action",
        "chart-interventions-by-day",
        "chart-segment-sku-family",
        "chart-segment-courier-lane",
        "chart-segment-campaign",
        "chart-segment-support-reason",
        "chart-uplift",
        "chart-calibration",
    }
    assert expected <= set(charts), sorted(charts)
    for cid, c in charts.items():
        assert c["width"] > 200 and c["height"] > 30, (cid, c)
        assert c["marks"] >= 3, (cid, c)
        assert c["labels"] >= 2, (cid, c)
        assert c["title"], cid
    assert probe["wide"] == [], "elements overflow the page width"
    assert errors == [], errors
    assert requests == [report.resolve().as_uri()], "the report loaded something besides itself"

    assert shot.stat().st_size > 50_000
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack("!II", png[16:24])
    assert width == 1280 and height > 2000


def test_harness_catches_errors_and_requests(tmp_path: Path) -> None:
    """The checks above can fail: a page with a script error, a console error and an
    outside image is caught on all three counts."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        '<img src="http://127.0.0.1:9/pixel.png" alt="">'
        "<script>console.error('boom'); missing_function();</script></body></html>"
    )
    with open_chromium(tmp_path / "profile") as page:
        load(page, bad)
        errors = page.errors()
        requests = page.requests()
    assert any("boom" in e for e in errors), errors
    assert any(e.startswith("exception:") for e in errors), errors
    assert "http://127.0.0.1:9/pixel.png" in requests
