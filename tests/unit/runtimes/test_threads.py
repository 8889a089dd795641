"""`thread_count`: constructor argument, then environment variable, then default."""

from __future__ import annotations

import pytest

from ksrv.errors import InvalidInput
from ksrv.runtimes.threads import thread_count


@pytest.mark.parametrize(
    ("value", "env", "default", "expected"),
    [
        (3, "7", 1, 3),
        (None, "7", 1, 7),
        (None, " 2 ", None, 2),
        (None, "", 1, 1),
        (None, None, None, None),
        (0, None, 1, 0),
    ],
)
def test_argument_wins_then_environment_then_default(monkeypatch, value, env, default, expected):
    if env is None:
        monkeypatch.delenv("KSRV_TEST_THREADS", raising=False)
    else:
        monkeypatch.setenv("KSRV_TEST_THREADS", env)
    assert thread_count(value, "KSRV_TEST_THREADS", default) == expected


@pytest.mark.parametrize(("value", "env"), [(None, "many"), (-1, None), (None, "-2")])
def test_non_integers_and_negative_counts_are_refused(monkeypatch, value, env):
    monkeypatch.setenv("KSRV_TEST_THREADS", env or "")
    with pytest.raises(InvalidInput, match="KSRV_TEST_THREADS"):
        thread_count(value, "KSRV_TEST_THREADS", 1)
