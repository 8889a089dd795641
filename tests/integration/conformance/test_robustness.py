"""Garbage, truncation, huge shapes, bad encodings and a crowd: clear 4xx or a right answer,
on REST and gRPC, and the server stays healthy after all of it."""

from __future__ import annotations

import concurrent.futures
import random

import grpc
import httpx
import numpy as np
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.models import IRIS_ROWS, iris_expected

TEN_MB = 10 * 1024 * 1024


def garbage(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def raw_infer(iris_server):
    channel = grpc.insecure_channel(
        iris_server.grpc_target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    yield channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=lambda data: data,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    channel.close()


def assert_healthy(server) -> None:
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready


@pytest.mark.parametrize(
    "body",
    [
        garbage(TEN_MB),
        b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2',
        b'{"inputs": [{"name": "input-0", "shape": [1000000000, 4], "datatype": "FP32", '
        b'"data": [1, 2, 3, 4]}]}',
        b'{"inputs": [{"name": "\xff\xfe", "shape": [1], "datatype": "FP32", "data": [1]}]}',
        b"\x00" * 1000,
    ],
    ids=["10MB-garbage", "truncated", "huge-shape", "non-utf8", "nul-bytes"],
)
def test_rest_rejects_bad_bodies_with_400(iris_server, body):
    response = httpx.post(f"{iris_server.url}/v2/models/iris/infer", content=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]
    assert_healthy(iris_server)


def test_binary_header_pointing_past_the_body_is_400(iris_server):
    response = httpx.post(
        f"{iris_server.url}/v2/models/iris/infer",
        content=b'{"inputs": []}',
        headers={"inference-header-content-length": "99999"},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        garbage(TEN_MB),
        garbage(100, seed=3),
        pb.ModelInferRequest(model_name="iris", id="x").SerializeToString()[:-1],
        # model_name (field 1) holding bytes that are not UTF-8
        b"\x0a\x02\xff\xfe",
    ],
    ids=["10MB-garbage", "short-garbage", "truncated", "non-utf8-name"],
)
def test_grpc_rejects_bad_messages_with_invalid_argument(iris_server, raw_infer, payload):
    with pytest.raises(grpc.RpcError) as caught:
        raw_infer(payload, timeout=60)
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert_healthy(iris_server)


def test_grpc_huge_shape_with_little_data_is_invalid_argument(iris_server, raw_infer):
    message = pb.ModelInferRequest(model_name="iris")
    message.inputs.add(name="input-0", datatype="FP32", shape=[1000000000, 4])
    message.raw_input_contents.append(np.ones(4, np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as caught:
        raw_infer(message.SerializeToString(), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_two_hundred_concurrent_grpc_calls_get_the_sequential_answers(iris_server):
    def message(i: int) -> pb.ModelInferRequest:
        request = pb.ModelInferRequest(model_name="iris", id=str(i))
        request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
        request.raw_input_contents.append(np.asarray(IRIS_ROWS[i % 2], np.float64).tobytes())
        return request

    expected = [iris_expected([row])[0][0] for row in IRIS_ROWS]
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        futures = [stub.ModelInfer.future(message(i), timeout=60) for i in range(200)]
        responses = [future.result() for future in futures]
    for i, response in enumerate(responses):
        assert response.id == str(i)
        value = np.frombuffer(response.raw_output_contents[0], dtype="<i8")[0]
        assert value == expected[i % 2]
    assert_healthy(iris_server)


def test_rest_and_grpc_together_under_concurrency(iris_server):
    url = f"{iris_server.url}/v1/models/iris:predict"
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        rest = [pool.submit(httpx.post, url, json={"instances": IRIS_ROWS}) for _ in range(64)]
        answers = {future.result().text for future in rest}
    assert answers == {'{"predictions":' + str(iris_expected(IRIS_ROWS)[0]).replace(" ", "") + "}"}
    assert_healthy(iris_server)
