"""Which x-request-id values are echoed and passed on: short tokens only."""

from __future__ import annotations

import pytest

from ksrv.protocol import client, correlation


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("abc-123", True),
        ("0f8e.trace:span_1-A", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        (None, False),
        ("a b", False),
        ("a\r\nInjected: yes", False),
        ("<script>", False),
        ("id\u00e9", False),
        ("abc\n", False),
    ],
)
def test_only_short_tokens_are_sane_request_ids(value, kept):
    assert correlation.sane_request_id(value) == (value if kept else None)


def test_a_transformer_does_not_pass_on_a_request_id_it_would_not_echo():
    headers = {"x-request-id": "a b", "authorization": "Bearer t", "x-secret": "no"}
    assert client.forwarded(headers) == {"authorization": "Bearer t"}
    assert client.forwarded({"x-request-id": "r-1"}) == {"x-request-id": "r-1"}
