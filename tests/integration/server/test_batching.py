"""Concurrent requests merged into one model call by a real server, over REST and gRPC: each
caller gets its own rows, id and errors; a max batch size of 1 turns merging off."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import HeldLoop, connect, read_response, send, toy_script_server

CONNECTIONS = 16


def v2_body(index: int) -> dict:
    rows = index % 3 + 1
    return {
        "id": f"req-{index}",
        "inputs": [{"name": "x", "shape": [rows], "datatype": "FP64", "data": [index] * rows}],
    }


def post_all_at_once(server, path: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """Every request reaches the server while its loop is held: all are read in one turn."""
    connections = [connect(server) for _ in bodies]
    with HeldLoop(server):
        for connection, body in zip(connections, bodies, strict=True):
            send(connection, path, body)
    answers = [read_response(connection) for connection in connections]
    for sock, stream in connections:
        stream.close()
        sock.close()
    return answers


def outputs(body: dict) -> dict[str, list]:
    return {output["name"]: output["data"] for output in body["outputs"]}


def assert_one_merged_call(server, path, bodies, check) -> None:
    """Sent together, every request is answered from one call holding all their rows;
    `check(index, status, body)` checks an answer and returns its call's and its own rows."""
    answers = post_all_at_once(server, path, bodies)
    rows = [check(index, status, body) for index, (status, body) in enumerate(answers)]
    total = sum(own for _, own in rows)
    assert [call for call, _ in rows] == [total] * len(rows)


def check_v2(index: int, status: int, body: dict) -> tuple[int, int]:
    rows = index % 3 + 1
    assert status == 200, body
    assert body["id"] == f"req-{index}"
    assert outputs(body)["doubled"] == [2.0 * index] * rows
    return outputs(body)["call_rows"][0], rows


def test_concurrent_v2_requests_merge_and_each_gets_its_own_rows_and_id(toy_server):
    bodies = [v2_body(index) for index in range(CONNECTIONS)]
    assert_one_merged_call(toy_server, "/v2/models/rows/infer", bodies, check_v2)


def test_a_bad_request_among_concurrent_ones_fails_alone_and_merging_goes_on(toy_server):
    bodies = [v2_body(index) for index in range(CONNECTIONS)]
    bodies[5]["inputs"][0]["data"] = [-1.0] * len(
        bodies[5]["inputs"][0]["data"]
    )  # the model refuses it
    bodies[9]["inputs"][0]["shape"] = [7]  # shape and data disagree: refused while decoding
    answers = post_all_at_once(toy_server, "/v2/models/rows/infer", bodies)
    for index, (status, body) in enumerate(answers):
        if index in (5, 9):
            assert status == 400
            assert body["error"]
        else:
            assert status == 200
            assert outputs(body)["doubled"][0] == 2.0 * index

    good_bodies = [v2_body(index) for index in range(CONNECTIONS)]
    assert_one_merged_call(toy_server, "/v2/models/rows/infer", good_bodies, check_v2)


def test_concurrent_v1_requests_merge_too(toy_server):
    bodies = [{"instances": [[index, 0]] * (index % 2 + 1)} for index in range(CONNECTIONS)]

    def check(index: int, status: int, body: dict) -> tuple[int, int]:
        rows = index % 2 + 1
        assert status == 200, body
        assert [doubled for doubled, _ in body["predictions"]] == [2.0 * index] * rows
        return body["predictions"][0][1], rows

    assert_one_merged_call(toy_server, "/v1/models/rows:predict", bodies, check)


def infer_message(index: int) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="rows", id=str(index))
    message.inputs.add(name="x", datatype="FP64", shape=[2])
    message.raw_input_contents.append(np.full(2, index, np.float64).tobytes())
    return message


def test_concurrent_grpc_calls_merge_and_each_gets_its_own_answer(toy_server):
    calls_count = 8
    with grpc.insecure_channel(toy_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with HeldLoop(toy_server, grpc_calls=calls_count) as held:
            calls = [
                stub.ModelInfer.future(infer_message(i), timeout=30) for i in range(calls_count)
            ]
            held.wait_for_grpc_calls()
        responses = [call.result() for call in calls]
    for index, response in enumerate(responses):
        assert response.id == str(index)
        by_name = dict(
            zip([o.name for o in response.outputs], response.raw_output_contents, strict=True)
        )
        assert np.frombuffer(by_name["doubled"], "<f8").tolist() == [2.0 * index] * 2
        assert np.frombuffer(by_name["call_rows"], "<i8").tolist() == [2 * calls_count] * 2


@pytest.fixture(scope="module")
def unbatched_server():
    server = toy_script_server(grpc=False, flags=("--max_batch_size", "1"))
    yield server
    server.stop()


def test_max_batch_size_one_answers_every_request_in_its_own_call(unbatched_server):
    bodies = [v2_body(index) for index in range(CONNECTIONS)]
    answers = post_all_at_once(unbatched_server, "/v2/models/rows/infer", bodies)
    for index, (status, body) in enumerate(answers):
        assert status == 200
        assert outputs(body)["call_rows"] == [index % 3 + 1] * (index % 3 + 1)
