"""gRPC errors match REST: INVALID_ARGUMENT for the caller's mistakes, NOT_FOUND, UNAVAILABLE."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import toy_script_server


@pytest.fixture(scope="module")
def stub(iris_server):
    channel = grpc.insecure_channel(iris_server.grpc_target)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def request(**inputs_and_raw) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="iris")
    for item in inputs_and_raw.get("inputs", []):
        message.inputs.append(item)
    message.raw_input_contents.extend(inputs_and_raw.get("raw", []))
    return message


def tensor(name="input-0", datatype="FP32", shape=(1, 4), **contents):
    item = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(shape))
    for field, values in contents.items():
        getattr(item.contents, field).extend(values)
    return item


FOUR_FLOATS = np.ones(4, dtype=np.float32).tobytes()


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (request(inputs=[tensor(fp32_contents=[1, 2, 3])]), "needs 4 elements"),
        (request(inputs=[tensor(datatype="FP99", fp32_contents=[1, 2, 3, 4])]), "FP99"),
        (request(inputs=[tensor(datatype="FP16")]), "raw_input_contents"),
        (request(inputs=[tensor(shape=(1, -4), fp32_contents=[1, 2, 3, 4])]), "shape"),
        (request(inputs=[tensor(), tensor(name="b")], raw=[FOUR_FLOATS]), "one per input"),
        (request(inputs=[tensor(fp32_contents=[1, 2, 3, 4])], raw=[FOUR_FLOATS]), "sets contents"),
        (request(inputs=[tensor()], raw=[b"\x00" * 15]), "bytes"),
        (request(inputs=[tensor(shape=(1000000000, 4))], raw=[FOUR_FLOATS]), "bytes"),
        (
            request(inputs=[tensor(datatype="BYTES", shape=(1,))], raw=[struct.pack("<I", 99)]),
            "past the end",
        ),
        (request(inputs=[tensor(datatype="INT8", int_contents=[300, 1, 2, 3])]), "range"),
        (request(inputs=[tensor(shape=(1, 3), fp32_contents=[1, 2, 3])]), "features"),
    ],
)
def test_malformed_infer_requests_are_invalid_argument(stub, message, fragment):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(message, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.details()


def test_unknown_model_is_not_found_on_every_rpc(stub):
    for call, message in (
        (stub.ModelInfer, pb.ModelInferRequest(model_name="nope")),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="nope")),
        (stub.ModelReady, pb.ModelReadyRequest(name="nope")),
        (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="nope")),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(message, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "Model with name nope does not exist."


def test_raw_request_gets_raw_response_and_typed_gets_typed(stub):
    raw = stub.ModelInfer(request(inputs=[tensor()], raw=[FOUR_FLOATS]), timeout=10)
    assert len(raw.raw_output_contents) == 1
    assert np.frombuffer(raw.raw_output_contents[0], dtype="<i8").shape == (1,)
    typed = stub.ModelInfer(request(inputs=[tensor(fp32_contents=[1, 2, 3, 4])]), timeout=10)
    assert not typed.raw_output_contents
    assert len(typed.outputs[0].contents.int64_contents) == 1


def test_not_ready_model_is_unavailable_and_a_bug_is_internal():
    server = toy_script_server()
    try:
        channel = grpc.insecure_channel(server.grpc_target)
        toys = pb_grpc.GRPCInferenceServiceStub(channel)
        import httpx

        httpx.post(f"{server.url}/v1/models/switch:predict", json={"ready": False})
        with pytest.raises(grpc.RpcError) as caught:
            toys.ModelInfer(pb.ModelInferRequest(model_name="switch"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not toys.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        assert not toys.ModelReady(pb.ModelReadyRequest(name="switch"), timeout=10).ready
        channel.close()
    finally:
        server.stop()


def test_messages_over_the_limit_are_resource_exhausted(start_server, iris_dir):
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris",
         "--grpc-max-message-bytes", "1000"]
    )  # fmt: skip
    with grpc.insecure_channel(server.grpc_target) as channel:
        client = pb_grpc.GRPCInferenceServiceStub(channel)
        big = request(inputs=[tensor(shape=(500, 4))], raw=[np.ones(2000, np.float32).tobytes()])
        with pytest.raises(grpc.RpcError) as caught:
            client.ModelInfer(big, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        small = request(inputs=[tensor()], raw=[FOUR_FLOATS])
        assert client.ModelInfer(small, timeout=10).outputs[0].name == "output-0"


def test_repository_rpcs_load_and_unload(start_server, tmp_path):
    from tests.models import sklearn_iris

    sklearn_iris(tmp_path / "iris")
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(tmp_path / "iris"), "--model-name", "iris"]
    )
    sklearn_iris(tmp_path / "iris" / "extra")
    with grpc.insecure_channel(server.grpc_target) as channel:
        client = pb_grpc.GRPCInferenceServiceStub(channel)
        loaded = client.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="extra"))
        assert (loaded.model_name, loaded.isLoaded) == ("extra", True)
        assert client.ModelReady(pb.ModelReadyRequest(name="extra")).ready
        unload = pb.RepositoryModelUnloadRequest(model_name="extra")
        assert client.RepositoryModelUnload(unload).isUnloaded
        with pytest.raises(grpc.RpcError) as caught:
            client.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="absent"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
