"""The one URL masking of Salvage (operators.masking.mask_url): settings, CLI and Redis errors."""

from __future__ import annotations

import pytest

from operators.masking import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # The password goes; user, host, port and path stay (an operator needs them).
        ("redis://:s3cr3t@cache:6379/0", "redis://:****@cache:6379/0"),
        ("rediss://app:s3cr3t@cache.internal:6380/2", "rediss://app:****@cache.internal:6380/2"),
        ("rediss://app:p%40ss%3Aw0rd@[::1]:6380/0", "rediss://app:****@[::1]:6380/0"),
        ("rediss+cluster://app:topsecret@cache:7000", "rediss+cluster://app:****@cache:7000"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        # Query values may be tokens: every one is masked, the keys stay.
        ("unix://:s3cr3t@/run/redis.sock?db=1", "unix://:****@/run/redis.sock?db=****"),
        # A lone user info is a token; a fragment is dropped.
        ("https://TOKEN@hooks.example.com/x#frag", "https://****@hooks.example.com/x"),
        # Not a URL (no scheme, a bad port): nothing of it is shown.
        ("not a url with a :pass@word", "****"),
        ("redis://:pw@cache:99999/0", "****"),
    ],
)
def test_mask_url_hides_credentials_and_query_values(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_can_hide_the_path_of_a_webhook_url() -> None:
    url = "https://hooks.example.com/services/T0/B1/XyZ?token=abc&x"
    assert mask_url(url, keep_path=False) == "https://hooks.example.com/****?token=****&x=****"
    assert mask_url("https://hooks.example.com/", keep_path=False) == "https://hooks.example.com/"
