"""gRPC through the gateway's gRPC port to real replicas, routed by `host` metadata."""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.gateway.conftest import service
from tests.models import IRIS_ROWS, iris_expected

grpcclient = pytest.importorskip("tritonclient.grpc")
HOST = {"host": "iris.default.example.com"}


@pytest.fixture
def iris_replica(start_server, iris_dir):
    return start_server(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris"]
    )


@pytest.fixture
def client(gateway):
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{gateway.grpc_port}")
    yield client
    client.close()


def test_tritonclient_grpc_infers_through_the_gateway(gateway, iris_replica, client):
    gateway.publish([service("iris", [(100, [iris_replica])])])
    features = np.asarray(IRIS_ROWS, dtype=np.float64)
    infer_input = grpcclient.InferInput("input-0", list(features.shape), "FP64")
    infer_input.set_data_from_numpy(features)
    result = client.infer("iris", [infer_input], headers=HOST, request_id="g-1")
    assert result.as_numpy("output-0").tolist() == iris_expected(IRIS_ROWS)[0]
    assert result.get_response().id == "g-1"
    assert client.is_model_ready("iris", headers=HOST)


def test_grpc_errors_from_the_replica_come_back_unchanged(gateway, iris_replica, client):
    gateway.publish([service("iris", [(100, [iris_replica])])])
    with pytest.raises(grpcclient.InferenceServerException) as raised:
        client.get_model_metadata("nope", headers=HOST)
    assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_grpc_without_a_known_host_is_not_found(gateway, client):
    gateway.publish([])
    with pytest.raises(grpcclient.InferenceServerException) as raised:
        client.is_server_live(headers={"host": "nope.default.example.com"})
    assert raised.value.status() == "StatusCode.NOT_FOUND"
    assert "nope.default.example.com" in raised.value.message()


def test_grpc_to_a_dead_replica_is_retried_on_a_live_one(gateway, iris_replica, client):
    from tests.conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    table = service("iris", [(100, [iris_replica])])
    table["components"]["predictor"]["backends"][0]["replicas"].insert(
        0, {"http": dead, "grpc": dead}
    )
    gateway.publish([table])
    for _ in range(6):
        assert client.is_server_ready(headers=HOST)
