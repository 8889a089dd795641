"""The head checks of ksrv.http.limits, as a table: what is refused, with which status."""

from __future__ import annotations

import pytest

from ksrv.http import limits

HOST = [(b"host", b"x")]


@pytest.mark.parametrize(
    ("target", "headers", "is_upgrade", "status"),
    [
        (b"/", HOST, False, None),
        (b"/", HOST + [(b"x-h", b"v")] * 1999, False, None),
        (b"/", HOST + [(b"x-h", b"v")] * 2000, False, 431),
        (b"/", [*HOST, (b"x-big", b"a" * 65_000)], False, None),
        (b"/", [*HOST, (b"x-big", b"a" * 66_000)], False, 431),
        (b"/" + b"u" * 66_000, HOST, False, 431),
        (b"/", HOST * 2, False, 400),
        (b"/", [], False, None),
        (b"/", HOST, True, None),
        (b"/", [*HOST, (b"content-length", b"0")], True, None),
        (b"/", [*HOST, (b"content-length", b"3")], True, 400),
        (b"/", [*HOST, (b"transfer-encoding", b"chunked")], True, 400),
        (b"/", [*HOST, (b"content-length", b"3")], False, None),
    ],
)
def test_check_head_refuses_what_breaks_a_limit(target, headers, is_upgrade, status):
    if status is None:
        limits.check_head(target, headers, is_upgrade)
    else:
        with pytest.raises(limits.Refused) as refused:
            limits.check_head(target, headers, is_upgrade)
        assert refused.value.status == status


def test_the_default_connection_cap_leaves_descriptors_to_spare():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = limits.default_max_connections()
    assert 64 <= cap <= 4096
    if soft != resource.RLIM_INFINITY and soft >= 128:
        assert cap <= soft // 2


def test_the_head_deadline_is_at_most_30_s():
    assert limits.HEAD_TIMEOUT_S <= 30
