"""KServe custom-model and transformer samples, ported by changing imports, run for real."""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.conftest import TESTS_DIR, ServerProcess, free_port, wait_until
from tests.models import IRIS_ROWS, iris_expected


def run_script(script: str, *args: str) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable, str(TESTS_DIR / "ports" / script),
        "--http_port", str(port), "--host", "127.0.0.1", *args,
    ]  # fmt: skip
    return ServerProcess(command, port).wait_ready()


@contextlib.contextmanager
def transformer_for(model_name: str, predictor: str, protocol: str) -> Iterator[ServerProcess]:
    """KServe's transformer sample in front of `predictor` (host:port), stopped afterwards."""
    server = run_script(
        "custom_transformer.py",
        "--model_name", model_name,
        "--predictor_host", predictor,
        "--protocol", protocol,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def custom_model():
    server = run_script("custom_model.py", "--model_name", "custom-model")
    yield server
    server.stop()


def test_custom_model_sample_answers_v2_infer(custom_model):
    image = base64.b64encode(bytes(range(64))).decode()
    body = {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [image]}]}
    response = httpx.post(f"{custom_model.url}/v2/models/custom-model/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert (output["name"], output["datatype"], output["shape"]) == ("output-0", "FP32", [1, 10])
    assert sum(output["data"]) == pytest.approx(1.0, rel=1e-5)


def test_custom_model_script_says_where_it_listens():
    # `python my_model.py` used to print nothing at all: logging was never configured.
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, str(TESTS_DIR / "ports" / "custom_model.py"), "--host", "127.0.0.1",
        "--http_port", str(http_port), "--grpc_port", str(grpc_port),
    ]  # fmt: skip
    server = ServerProcess(command, http_port, grpc_port=grpc_port).wait_ready()
    try:
        line = (
            f"ksrv model server listening on http://127.0.0.1:{http_port} "
            f"(gRPC 127.0.0.1:{grpc_port})"
        )
        wait_until(lambda: line in server.log(), "the script printed its address")
    finally:
        server.stop()


def _b64_rows(rows: list[list[float]]) -> list[str]:
    return [base64.b64encode(np.asarray(row, dtype=np.float32).tobytes()).decode() for row in rows]


@pytest.mark.parametrize("protocol", ["v1", "v2", "grpc-v2"])
def test_transformer_sample_forwards_to_a_ksrv_predictor(iris_server, protocol):
    port = iris_server.grpc_port if protocol == "grpc-v2" else iris_server.port
    with transformer_for("iris", f"127.0.0.1:{port}", protocol) as transformer:
        instances = [{"image": {"b64": item}} for item in _b64_rows(IRIS_ROWS)]
        response = httpx.post(
            f"{transformer.url}/v1/models/iris:predict", json={"instances": instances}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": iris_expected(IRIS_ROWS)[0]}


def test_transformer_v2_request_through_to_predictor(iris_server):
    with transformer_for("iris", f"127.0.0.1:{iris_server.port}", "v2") as transformer:
        rows = _b64_rows(IRIS_ROWS)
        body = {"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": rows}]}
        response = httpx.post(f"{transformer.url}/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == iris_expected(IRIS_ROWS)[0]


def test_transformer_with_unreachable_predictor_is_502():
    with transformer_for("iris", f"127.0.0.1:{free_port()}", "v2") as transformer:
        instances = [{"image": {"b64": item}} for item in _b64_rows(IRIS_ROWS)]
        response = httpx.post(
            f"{transformer.url}/v1/models/iris:predict", json={"instances": instances}
        )
        assert response.status_code == 502
        assert "unreachable" in response.json()["error"]


def test_transformer_passes_on_request_id_and_auth_but_not_other_headers(toy_server):
    with transformer_for("headers", f"127.0.0.1:{toy_server.port}", "v1") as transformer:
        instances = [{"image": {"b64": item}} for item in _b64_rows(IRIS_ROWS)]
        response = httpx.post(
            f"{transformer.url}/v1/models/headers:predict",
            json={"instances": instances},
            headers={"x-request-id": "rid-7", "authorization": "Bearer t", "x-secret": "no"},
        )
        assert response.status_code == 200, response.text
        seen = response.json()["seen"]
        assert seen["x-request-id"] == "rid-7"
        assert seen["authorization"] == "Bearer t"
        assert "x-secret" not in seen


def test_transformer_over_grpc_to_a_missing_model_is_404(iris_server):
    with transformer_for("absent", f"127.0.0.1:{iris_server.grpc_port}", "grpc-v2") as transformer:
        instances = [{"image": {"b64": item}} for item in _b64_rows(IRIS_ROWS)]
        response = httpx.post(
            f"{transformer.url}/v1/models/absent:predict", json={"instances": instances}
        )
        assert response.status_code == 404
        assert "absent" in response.json()["error"]
