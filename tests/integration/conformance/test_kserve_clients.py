"""KServe's own InferenceRESTClient and InferenceGRPCClient work against ksrv unchanged."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import TESTS_DIR
from tests.models import IRIS_ROWS, iris_expected

# Only look for it: importing kserve here would register its protobuf names in this process,
# where tritonclient's identical ones live.
if importlib.util.find_spec("kserve") is None:
    pytest.skip("kserve is not installed (test extra)", allow_module_level=True)


def test_kserve_clients_infer_and_check_health(iris_server):
    result = subprocess.run(
        [
            sys.executable,
            str(TESTS_DIR / "clients" / "kserve_clients.py"),
            iris_server.url,
            iris_server.grpc_target,
            "iris",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    classes = iris_expected(IRIS_ROWS)[0]
    assert found["rest_server_live"] and found["rest_server_ready"] and found["rest_model_ready"]
    assert found["grpc_server_live"] and found["grpc_server_ready"] and found["grpc_model_ready"]
    assert found["rest_v2"] == classes
    assert found["rest_v2_binary"] == classes
    assert found["rest_v2_id"] == "kserve-1"
    assert found["rest_v1"] == {"predictions": classes}
    assert found["rest_missing_status"] == 404
    assert found["grpc"] == classes
    assert found["grpc_id"] == "kserve-1"
    assert found["grpc_missing_code"] == "StatusCode.NOT_FOUND"
