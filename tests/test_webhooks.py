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

from operators.webhooks import SignatureError, explain, parse_header, sign, verify

REPO = Path(__file__).resolve().parents[1]


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
