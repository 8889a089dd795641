"""Which caller headers reach every step: KServe's PROPAGATE_HEADERS patterns, plus the
request id and trace context always."""

from __future__ import annotations

import logging

from ksrv.graph.headers import DEFAULT_PATTERNS, Propagation, parse_patterns

CALLER = [
    (b"host", b"graph.example.com"),
    (b"authorization", b"Bearer t"),
    (b"proxy-authorization", b"Basic x"),
    (b"x-request-id", b"r-1"),
    (b"traceparent", b"00-abc-def-01"),
    (b"tracestate", b"k=v"),
    (b"test-header-one", b"1"),
    (b"cookie", b"secret"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"10"),
]


def test_without_configuration_authorization_request_id_and_trace_context_pass():
    picked = Propagation(parse_patterns(None)).select(CALLER)
    # As Go's MatchString, "Authorization" matches anywhere in a name (Proxy-Authorization too).
    assert [name for name, _ in picked] == [
        b"authorization",
        b"proxy-authorization",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
    ]
    assert parse_patterns(None) == DEFAULT_PATTERNS


def test_configured_patterns_replace_the_default_and_match_case_insensitively():
    picked = Propagation(parse_patterns("Test-Header-*, ^Cookie$")).select(CALLER)
    assert [name for name, _ in picked] == [
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"test-header-one",
        b"cookie",
    ]


def test_framing_headers_are_never_passed_on_even_when_a_pattern_matches():
    picked = Propagation([".*"]).select(CALLER)
    names = {name for name, _ in picked}
    assert not names & {b"host", b"content-type", b"content-length"}
    assert b"cookie" in names


def test_a_pattern_that_does_not_compile_is_logged_and_skipped(caplog):
    # KServe's own default list carries "*Trace-Id*", which Go's regexp refuses too.
    with caplog.at_level(logging.ERROR):
        propagation = Propagation(parse_patterns("*Trace-Id*,Authorization"))
    assert "*Trace-Id*" in caplog.text
    assert (b"authorization", b"Bearer t") in propagation.select(CALLER)


def test_an_empty_configuration_passes_only_request_id_and_trace_context():
    picked = Propagation(parse_patterns("")).select(CALLER)
    assert [name for name, _ in picked] == [b"x-request-id", b"traceparent", b"tracestate"]
