"""Open Inference Protocol conformance, written once and run over REST and gRPC.

The clients are the real ones users have: tritonclient.http and tritonclient.grpc share one
API, so every test here takes the transport as a parameter and cannot drift between them.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.models import IRIS_ROWS, iris_expected

http = pytest.importorskip("tritonclient.http")
grpc = pytest.importorskip("tritonclient.grpc")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

TRANSPORTS = {"rest": http, "grpc": grpc}


def connect(server, transport: str):
    module = TRANSPORTS[transport]
    target = server.grpc_target if transport == "grpc" else f"127.0.0.1:{server.port}"
    return module, module.InferenceServerClient(url=target)


@pytest.fixture(params=["rest", "grpc"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def iris(iris_server, transport):
    module, client = connect(iris_server, transport)
    yield module, client
    client.close()


@pytest.fixture
def toys(toy_server, transport):
    module, client = connect(toy_server, transport)
    yield module, client
    client.close()


def test_server_is_live_and_ready(iris):
    _, client = iris
    assert client.is_server_live()
    assert client.is_server_ready()


def test_model_readiness(iris, transport):
    _, client = iris
    assert client.is_model_ready("iris")
    if transport == "rest":
        assert client.is_model_ready("missing") is False  # 404 on the wire
    else:
        with pytest.raises(InferenceServerException) as caught:
            client.is_model_ready("missing")
        assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_server_metadata(iris, transport):
    _, client = iris
    metadata = client.get_server_metadata()
    if transport == "grpc":
        metadata = {"name": metadata.name, "extensions": list(metadata.extensions)}
    assert metadata["name"] == "ksrv"
    assert "model_repository_extension" in metadata["extensions"]


def test_model_metadata(iris, transport):
    _, client = iris
    metadata = client.get_model_metadata("iris")
    if transport == "grpc":
        inputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
        outputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs]
        name = metadata.name
    else:
        inputs = [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]]
        outputs = [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]]
        name = metadata["name"]
    assert name == "iris"
    assert inputs == [("input-0", "FP64", [-1, 4])]
    assert outputs == [("output-0", "INT64", [-1])]


@pytest.mark.parametrize("binary", [False, True], ids=["typed", "binary"])
def test_batch_of_five_infers_with_request_id(iris, transport, binary):
    module, client = iris
    rows = (IRIS_ROWS * 3)[:5]
    features = np.asarray(rows, dtype=np.float32)
    infer_input = module.InferInput("input-0", list(features.shape), "FP32")
    if transport == "rest":
        infer_input.set_data_from_numpy(features, binary_data=binary)
        outputs = [module.InferRequestedOutput("output-0", binary_data=binary)]
    else:
        infer_input.set_data_from_numpy(features)  # tritonclient.grpc always sends raw
        outputs = [module.InferRequestedOutput("output-0")]
    result = client.infer("iris", [infer_input], outputs=outputs, request_id="batch-5")
    assert result.as_numpy("output-0").tolist() == iris_expected(rows)[0]
    response = result.get_response()
    response_id = response.id if transport == "grpc" else response["id"]
    assert response_id == "batch-5"


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("BOOL", np.array([[True, False], [False, True]])),
        ("INT8", np.array([[-128, 127], [0, 1]], dtype=np.int8)),
        ("INT16", np.array([[-32768, 32767], [0, 1]], dtype=np.int16)),
        ("INT32", np.array([[-(2**31), 2**31 - 1], [0, 1]], dtype=np.int32)),
        ("INT64", np.array([[-(2**63), 2**63 - 1], [0, 1]], dtype=np.int64)),
        ("UINT8", np.array([[0, 255], [2, 3]], dtype=np.uint8)),
        ("UINT16", np.array([[0, 65535], [2, 3]], dtype=np.uint16)),
        ("UINT32", np.array([[0, 2**32 - 1], [2, 3]], dtype=np.uint32)),
        ("UINT64", np.array([[0, 2**64 - 1], [5, 6]], dtype=np.uint64)),
        ("FP16", np.array([[0.5, -2.0], [65504.0, 1.0]], dtype=np.float16)),
        ("FP32", np.array([[0.5, -2.0], [1e30, 1.0]], dtype=np.float32)),
        ("FP64", np.array([[0.5, -2.0], [1e300, 1.0]], dtype=np.float64)),
        ("BYTES", np.array([[b"a", b"\x00\xffraw"], [b"", "héllo".encode()]], dtype=object)),
    ],
)
def test_every_datatype_round_trips(toys, datatype, array):
    module, client = toys
    infer_input = module.InferInput("x", list(array.shape), datatype)
    infer_input.set_data_from_numpy(array)
    result = client.infer("echo", [infer_input])
    returned = result.as_numpy("x")
    assert returned.shape == array.shape
    assert returned.tolist() == array.tolist()


def test_bf16_round_trips(toys):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    module, client = toys
    array = np.array([1.0, -2.5, 3.140625, 0.0], dtype=ml_dtypes.bfloat16)
    infer_input = module.InferInput("x", [4], "BF16")
    infer_input.set_data_from_numpy(array)
    result = client.infer("echo", [infer_input])
    assert result.as_numpy("x").astype(np.float32).tolist() == [1.0, -2.5, 3.140625, 0.0]


def test_parameters_of_every_kind_pass_through(toys, transport):
    module, client = toys
    infer_input = module.InferInput("x", [1], "INT32")
    infer_input.set_data_from_numpy(np.array([7], dtype=np.int32))
    parameters = {"text": "hello", "flag": True, "count": 42}
    result = client.infer("echo", [infer_input], parameters=parameters)
    response = result.get_response()
    if transport == "grpc":
        echoed = {
            k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in response.parameters.items()
        }
    else:
        echoed = response["parameters"]
    echoed.pop("binary_data_output", None)  # tritonclient.http adds this one itself
    assert echoed == parameters


def test_unknown_model_is_not_found(iris, transport):
    module, client = iris
    infer_input = module.InferInput("input-0", [1, 4], "FP32")
    infer_input.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("missing", [infer_input])
    expected = "StatusCode.NOT_FOUND" if transport == "grpc" else "404"
    assert expected in str(caught.value.status())
    assert "missing does not exist" in caught.value.message()


def test_wrong_feature_count_is_the_callers_mistake(iris, transport):
    module, client = iris
    infer_input = module.InferInput("input-0", [1, 3], "FP32")
    infer_input.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [infer_input])
    expected = "StatusCode.INVALID_ARGUMENT" if transport == "grpc" else "400"
    assert expected in str(caught.value.status())
    assert "features" in caught.value.message()


def test_requested_outputs_filter_and_unknown_output_is_rejected(toys, transport):
    module, client = toys
    first = module.InferInput("a", [1], "INT32")
    first.set_data_from_numpy(np.array([1], dtype=np.int32))
    second = module.InferInput("b", [1], "INT32")
    second.set_data_from_numpy(np.array([2], dtype=np.int32))
    result = client.infer("echo", [first, second], outputs=[module.InferRequestedOutput("b")])
    assert result.as_numpy("b").tolist() == [2]
    assert result.as_numpy("a") is None
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", [first], outputs=[module.InferRequestedOutput("zzz")])
    expected = "StatusCode.INVALID_ARGUMENT" if transport == "grpc" else "400"
    assert expected in str(caught.value.status())
