"""A real V2 client (tritonclient.http) against ksrv: JSON and binary tensors, metadata."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models import IRIS_ROWS, iris_expected

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture
def iris_client(iris_server):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{iris_server.port}")
    yield client
    client.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infers_iris(iris_client, binary):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    infer_input = httpclient.InferInput("input-0", list(features.shape), "FP32")
    infer_input.set_data_from_numpy(features, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("output-0", binary_data=binary)]
    result = iris_client.infer("iris", [infer_input], outputs=outputs, request_id="t-1")
    assert result.as_numpy("output-0").tolist() == iris_expected(IRIS_ROWS)[0]
    assert result.get_response()["id"] == "t-1"


def test_tritonclient_default_outputs_come_back_binary(iris_client):
    features = np.asarray(IRIS_ROWS * 3, dtype=np.float64)  # a batch of 6
    infer_input = httpclient.InferInput("input-0", list(features.shape), "FP64")
    infer_input.set_data_from_numpy(features)
    result = iris_client.infer("iris", [infer_input])
    assert result.as_numpy("output-0").tolist() == iris_expected(IRIS_ROWS * 3)[0]


def test_tritonclient_health_and_metadata(iris_client):
    assert iris_client.is_server_live()
    assert iris_client.is_server_ready()
    assert iris_client.is_model_ready("iris")
    assert not iris_client.is_model_ready("missing")
    assert iris_client.get_server_metadata()["name"] == "ksrv"
    metadata = iris_client.get_model_metadata("iris")
    assert metadata["inputs"][0]["shape"] == [-1, 4]


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("BOOL", np.array([[True, False], [False, True]])),
        ("INT8", np.array([[-128, 127], [0, 1]], dtype=np.int8)),
        ("UINT16", np.array([[0, 65535], [2, 3]], dtype=np.uint16)),
        ("INT64", np.array([[-(2**63), 2**63 - 1], [0, 1]], dtype=np.int64)),
        ("UINT64", np.array([[0, 2**64 - 1], [5, 6]], dtype=np.uint64)),
        ("FP16", np.array([[0.5, -2.0], [65504.0, 1.0]], dtype=np.float16)),
        ("FP32", np.array([[0.5, -2.0], [1e30, 1.0]], dtype=np.float32)),
        ("FP64", np.array([[0.5, -2.0], [1e300, 1.0]], dtype=np.float64)),
        ("BYTES", np.array([[b"a", b"\x00\xffraw"], [b"", "héllo".encode()]], dtype=object)),
    ],
)
def test_binary_tensors_of_every_type_round_trip(toy_server, datatype, array):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{toy_server.port}")
    try:
        infer_input = httpclient.InferInput("x", list(array.shape), datatype)
        infer_input.set_data_from_numpy(array, binary_data=True)
        outputs = [httpclient.InferRequestedOutput("x", binary_data=True)]
        result = client.infer("echo", [infer_input], outputs=outputs)
        returned = result.as_numpy("x")
        assert returned.shape == array.shape
        assert returned.tolist() == array.tolist()
    finally:
        client.close()


def test_bf16_binary_input_widens_to_float32(toy_server):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{toy_server.port}")
    try:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
        infer_input = httpclient.InferInput("x", [3], "BF16")
        infer_input.set_data_from_numpy(values.astype(ml_dtypes.bfloat16), binary_data=True)
        outputs = [httpclient.InferRequestedOutput("x", binary_data=False)]
        result = client.infer("echo", [infer_input], outputs=outputs)
        assert result.get_response()["outputs"][0]["data"] == values.tolist()
    finally:
        client.close()
