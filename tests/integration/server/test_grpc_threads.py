"""The threaded gRPC server: calls that end early give their thread back at once."""

from __future__ import annotations

import grpc
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from ksrv.server.settings import DEFAULT_GRPC_THREADS
from tests.conftest import HELD_TIMEOUT_S, ModelCalls, toy_script_server

ABANDONED_CALLS = DEFAULT_GRPC_THREADS + 8  # some wait in gRPC's queue for a thread


@pytest.fixture
def fresh_toy_server():
    # enough model threads that every call holding a gRPC thread is inside the model
    server = toy_script_server(flags=("--max_threads", str(ABANDONED_CALLS)))
    yield server
    server.stop()


def gate_call(port: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="gate")
    request.parameters["port"].int64_param = port
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    return request


def test_calls_that_end_early_free_their_threads(fresh_toy_server):
    """A call the client gives up on (cancelled here; a passed deadline takes the same path,
    the RPC's end callback) frees its gRPC thread although its model call never returns."""
    with (
        ModelCalls() as calls,
        grpc.insecure_channel(fresh_toy_server.grpc_target) as channel,
    ):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        abandoned = [
            stub.ModelInfer.future(gate_call(calls.port), timeout=HELD_TIMEOUT_S * 2)
            for _ in range(ABANDONED_CALLS)
        ]
        calls.wait_for(DEFAULT_GRPC_THREADS)  # every gRPC thread holds a call inside the model
        for call in abandoned:
            call.cancel()
        assert {call.code() for call in abandoned} == {grpc.StatusCode.CANCELLED}
        # The model still holds all of them: were their threads still taken, this call
        # would wait for one until its deadline and fail.
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=HELD_TIMEOUT_S).ready
        assert calls.held() == DEFAULT_GRPC_THREADS
