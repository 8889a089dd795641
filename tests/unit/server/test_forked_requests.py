"""The fork server's request lines and which environments a fork honours: pure checks."""

from __future__ import annotations

import json

import pytest

from ksrv.control.platforms.forkserver import is_forkable_env
from ksrv.server.forked import ForkRequest


def line(**fields: object) -> bytes:
    request = {"id": 7, "argv": ["py", "-m", "m"], "env": {"A": "1"}, "cwd": "/", "log_path": "l"}
    return json.dumps({**request, **fields}).encode()


def test_a_request_line_parses_with_its_id():
    request_id, request = ForkRequest.parse(line())
    assert request_id == 7
    assert request == ForkRequest(["py", "-m", "m"], {"A": "1"}, "/", "l")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[]", "a request is a JSON object"),
        (line(argv="py -m m"), "argv must be a list of strings"),
        (line(argv=["py", 1]), "argv must be a list of strings"),
        (line(env={"A": 1}), "env must map names to strings"),
        (line(cwd=None), "cwd and log_path must be strings"),
        (b"{not json", "Expecting property name"),
    ],
)
def test_a_broken_request_line_is_a_value_error_saying_why(text: bytes, message: str):
    with pytest.raises(ValueError, match=message):
        ForkRequest.parse(text)


@pytest.mark.parametrize(
    ("env", "is_forkable"),
    [
        ({}, True),
        ({"PREDICT_PROBA": "true", "STORAGE_URI": "s3://b/m", "MY_SETTING": "x"}, True),
        ({"OMP_NUM_THREADS": "1"}, False),  # read when numpy's BLAS loads
        ({"PYTHONPATH": "/opt/lib"}, False),  # read when the interpreter starts
        ({"LD_PRELOAD": "libjemalloc.so"}, False),
        ({"GRPC_VERBOSITY": "debug"}, False),
        ({"openblas_num_threads": "2"}, False),
    ],
)
def test_env_read_at_import_time_makes_a_replica_spawn(env: dict[str, str], is_forkable: bool):
    assert is_forkable_env(env) is is_forkable
