"""The threaded gRPC server: calls that end early give their thread back at once."""

from __future__ import annotations

import time

import grpc
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import toy_script_server

ABANDONED_CALLS = 40  # more than the server's 32 gRPC threads


@pytest.fixture
def fresh_toy_server():
    server = toy_script_server()
    yield server
    server.stop()


def slow_call(seconds: float) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="slow")
    request.parameters["delay_s"].double_param = seconds
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    return request


def test_calls_past_their_deadline_free_their_threads(fresh_toy_server):
    with grpc.insecure_channel(fresh_toy_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [
            stub.ModelInfer.future(slow_call(5.0), timeout=0.3) for _ in range(ABANDONED_CALLS)
        ]
        codes = {call.exception().code() for call in calls}
        assert codes == {grpc.StatusCode.DEADLINE_EXCEEDED}
        started = time.monotonic()
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        # Were the abandoned calls still holding the threads, this would wait for the slow model
        # (5 s a call, a few at a time).
        assert time.monotonic() - started < 4.0
