"""Review authentication settings: the secret's variable, the reviewer and link
allowlists, the text bound; and how the live flow turns them into a ReviewAuth."""

from __future__ import annotations

import pytest

from flows.settings import SettingsError, build_settings, load_settings


def test_defaults_let_nobody_in() -> None:
    rv = load_settings(env={}).review
    assert rv.secret_env == "SALVAGE_REVIEW_SECRET"
    assert rv.reviewers == () and rv.link_hosts == ()
    assert rv.max_message_chars == 500
    assert rv.secret({}) is None


def test_allowlists_from_a_file_or_a_variable() -> None:
    s = build_settings(
        {"review": {"reviewers": ["agent-7", "agent-8"], "link_hosts": ["Shop.Example."]}}
    )
    assert s.review.reviewers == ("agent-7", "agent-8")
    assert s.review.link_hosts == ("shop.example",)
    env = {"SALVAGE_REVIEW__REVIEWERS": "agent-7, agent-9", "SALVAGE_REVIEW__SECRET_ENV": "RS"}
    s = load_settings(env=env)
    assert s.review.reviewers == ("agent-7", "agent-9")
    assert s.review.secret({"RS": "x"}) == "x"
    shown = s.effective({"RS": "x"})["review"]
    assert shown["secret"] == "****" and "x" not in str(shown.values())


@pytest.mark.parametrize(
    ("review", "error"),
    [
        ({"secret": "hunter2"}, "review.secret: secrets are not read from settings"),
        ({"secret_env": "not a name"}, "review.secret_env: must be a variable name"),
        ({"reviewers": "a b"}, "review.reviewers: names must be short and have no spaces"),
        ({"reviewers": [1]}, "review.reviewers: must be a list of names"),
        ({"max_message_chars": 0}, "review.max_message_chars: must be >= 1"),
    ],
)
def test_bad_review_settings_name_the_key(review: dict, error: str) -> None:
    with pytest.raises(SettingsError) as exc:
        build_settings({"review": review})
    assert str(exc.value).startswith(error)
    assert "hunter2" not in str(exc.value)


def test_the_flow_builds_its_review_auth_from_the_settings(monkeypatch) -> None:
    from flows.live import review_auth

    monkeypatch.setenv("SALVAGE_REVIEW_SECRET", "s3cret")
    s = build_settings(
        {"review": {"reviewers": ["agent-7"], "link_hosts": ["shop.example"],
                    "signature_max_age_hours": 2}}
    )  # fmt: skip
    auth = review_auth(s)
    assert auth.secret == "s3cret"
    assert auth.reviewers == frozenset({"agent-7"})
    assert auth.link_hosts == frozenset({"shop.example"})
    assert auth.max_age_seconds == 7200.0
    monkeypatch.delenv("SALVAGE_REVIEW_SECRET")
    assert review_auth(s).secret is None
