"""Webhook signatures: the sender's scheme, the receiver helpers and the CLI check."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import io
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.signature import SignatureError, explain, parse_header, sign, verify

REPO = Path(__file__).resolve().parents[2]


def _example_receiver():
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", REPO / "examples" / "webhook_receiver.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"intervention_id":"iv-1"}'
    header = sign("topsecret", body, timestamp=1_700_000_000)
    expected = hmac.new(b"topsecret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=300))
def test_sign_then_verify_round_trips(secret: str, body: bytes) -> None:
    header = sign(secret, body, timestamp=1000)
    assert verify(secret, body, header, now=1000)
    assert not verify(secret, body + b" ", header, now=1000)
    assert not verify(secret + "x", body, header, now=1000)


def test_replay_tolerance_is_enforced_both_ways() -> None:
    header = sign("k", b"{}", timestamp=10_000)
    assert verify("k", b"{}", header, tolerance_seconds=300, now=10_300)
    assert not verify("k", b"{}", header, tolerance_seconds=300, now=10_301)
    assert not verify("k", b"{}", header, tolerance_seconds=300, now=9_699)


def test_any_of_several_signatures_may_match_during_rotation() -> None:
    old = sign("old", b"{}", timestamp=5).split(",")[1]
    new = sign("new", b"{}", timestamp=5).split(",")[1]
    header = f"t=5,{old},{new}"
    assert verify("old", b"{}", header, now=5)
    assert verify("new", b"{}", header, now=5)
    assert not verify("third", b"{}", header, now=5)


@pytest.mark.parametrize(
    "header", ["", "t=5", "v1=ab", "t=x,v1=ab", "nonsense", "t=5,v1=" + "0" * 64]
)
def test_malformed_or_wrong_headers_do_not_verify(header: str) -> None:
    assert not verify("k", b"{}", header, now=5)


def test_parse_header_reports_what_is_missing() -> None:
    with pytest.raises(SignatureError, match="no v1="):
        parse_header("t=5")
    assert parse_header("t=5,v0=zz,v1=ab") == (5, ["ab"])  # unknown schemes are skipped


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        sign("", b"{}")


def test_explain_names_the_problem() -> None:
    header = sign("k", b"{}", timestamp=100)
    assert explain("k", b"{}", header, now=100) == "ok"
    assert explain("other", b"{}", header, now=100).startswith("signature does not match")
    assert "away from now" in explain("k", b"{}", header, now=10_000)
    assert explain("k", b"{}", None) == "no signature header"


def test_example_receiver_accepts_exactly_what_the_sender_signs() -> None:
    receiver = _example_receiver()
    body = b'{"type":"intervention"}'
    header = sign("s", body, timestamp=2_000)
    assert receiver.verify("s", body, header, now=2_000)
    assert not receiver.verify("s", body + b"x", header, now=2_000)
    assert not receiver.verify("s", body, header, now=2_000 + 301)
    assert not receiver.verify("s", body, "garbage", now=2_000)


def _cli(*args: str, capsys, monkeypatch, secret: str | None = "clisecret", stdin=None):
    from flows.cli import main

    if secret is None:
        monkeypatch.delenv("HOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("HOOK_SECRET", secret)
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(["webhook", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_exit_codes(tmp_path: Path, capsys, monkeypatch) -> None:
    body = b'{"a": 1}'
    path = tmp_path / "body.json"
    path.write_bytes(body)
    header = sign("clisecret", body)
    common = ("--secret-env", "HOOK_SECRET", "--header", header)
    code, out, _ = _cli(*common, "--body-file", str(path), capsys=capsys, monkeypatch=monkeypatch)
    assert (code, out.strip()) == (0, "valid signature")
    code, out, _ = _cli(
        *common, "--body-file", "-", stdin=body + b"!", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 1
    assert "does not match" in out
    code, _, err = _cli(
        *common, "--body-file", str(path), secret=None, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 2
    assert "HOOK_SECRET is not set" in err


# --- hostile headers, tolerances and replays -------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "t=5,v1=é" + "0" * 63,  # non-ASCII signature: hmac.compare_digest raised TypeError
        "t=" + "9" * 400 + ",v1=" + "0" * 64,  # the age check overflowed a float
        "t=-5,v1=" + "0" * 64,
        "t=٣,v1=" + "0" * 64,  # a digit, but not an ASCII one
    ],
)
def test_verify_never_raises_on_hostile_headers(header: str) -> None:
    receiver = _example_receiver()
    assert verify("k", b"{}", header, now=5) is False
    assert receiver.verify("k", b"{}", header, now=5) is False
    assert isinstance(explain("k", b"{}", header, now=5), str)


@given(st.text(max_size=300), st.floats() | st.integers(-(10**30), 10**30))
def test_verify_never_raises(header: str, tolerance: float) -> None:
    assert verify("k", b"{}", header, tolerance_seconds=tolerance, now=5) in (True, False)


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1.0])
def test_non_finite_or_negative_tolerance_accepts_nothing(tolerance: float) -> None:
    old = sign("k", b"{}", timestamp=0)  # signed in 1970
    assert not verify("k", b"{}", old, tolerance_seconds=tolerance, now=1_700_000_000)
    assert not verify("k", b"{}", sign("k", b"{}", 100), tolerance_seconds=tolerance, now=100)
    receiver = _example_receiver()
    assert not receiver.verify("k", b"{}", old, now=1_700_000_000, tolerance=tolerance)


def test_cli_refuses_a_non_finite_tolerance(tmp_path: Path, capsys, monkeypatch) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    header = sign("clisecret", b"{}", timestamp=0)
    with pytest.raises(SystemExit) as exc:
        _cli("--secret-env", "HOOK_SECRET", "--header", header, "--body-file", str(path),
             "--tolerance", "nan", capsys=capsys, monkeypatch=monkeypatch)  # fmt: skip
    assert exc.value.code == 2
    assert "finite" in capsys.readouterr().err


def test_example_receiver_deduplicates_on_the_signed_intervention_id() -> None:
    """A captured request replayed with fresh Idempotency-Keys is processed once."""
    import json
    import threading
    import urllib.request

    module = _example_receiver()
    server = module.Receiver(("127.0.0.1", 0), "s3cret")
    assert "s3cret" not in repr(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        body = json.dumps(
            {"intervention_id": "iv-1", "intervention": {"action": "a", "order_id": "o"}}
        ).encode()
        header = sign("s3cret", body)
        answers = []
        for key in ("k-1", "k-2", "k-3"):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"X-Salvage-Signature": header, "Idempotency-Key": key},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answers.append(response.read().decode())
        assert answers == ["ok", "already processed", "already processed"]
        assert server.processed == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
