"""Concurrent requests merged into one model call by a real server, over REST and gRPC: each
caller gets its own rows, id and errors; `--max-batch-size 1` turns merging off."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import BinaryIO

import grpc
import numpy as np
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import TESTS_DIR

CONNECTIONS = 16


def v2_body(index: int) -> dict:
    rows = index % 3 + 1
    return {
        "id": f"req-{index}",
        "inputs": [{"name": "x", "shape": [rows], "datatype": "FP64", "data": [index] * rows}],
    }


class HeldLoop:
    """The server's event loop held by the `hold` toy (tests/toys.py) for the `with` body.

    Whatever reaches the server meanwhile waits in its sockets and is read in one loop
    turn once the loop is released, so concurrent arrival is forced, not hoped for.
    """

    def __init__(self, server, grpc_calls: int = 0) -> None:
        self.server = server
        self.grpc_calls = grpc_calls

    def __enter__(self) -> HeldLoop:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        body = {"instances": [], "port": self.listener.getsockname()[1]}
        if self.grpc_calls:
            body["grpc_calls"] = self.grpc_calls
        self.request = connect(self.server)
        send(self.request, "/v1/models/hold:predict", body)
        self.model, _ = self.listener.accept()
        self.model.settimeout(30)
        assert self.model.recv(4) == b"held"
        return self

    def wait_for_grpc_calls(self) -> None:
        """Until `grpc_calls` gRPC calls are waiting for the held loop."""
        assert self.model.recv(6) == b"queued"

    def __exit__(self, *exc_info: object) -> None:
        with self.listener, self.model:
            self.model.sendall(b"go")
        status, body = read_response(self.request)
        self.request[0].close()
        assert (status, body) == (200, {"held": True})


def connect(server) -> tuple[socket.socket, BinaryIO]:
    """A keep-alive connection the server has accepted (one health call answered on it)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    stream = sock.makefile("rb")
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: t\r\n\r\n")
    assert read_response((sock, stream))[0] == 200
    return sock, stream


def send(connection: tuple[socket.socket, BinaryIO], path: str, body: dict) -> None:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(data)}\r\n"
    connection[0].sendall(head.encode() + b"content-type: application/json\r\n\r\n" + data)


def post_all_at_once(
    server, path: str, bodies: list[dict], hold: bool = True
) -> list[tuple[int, dict]]:
    """Every request reaches the server while its loop is held: all are read in one turn
    (`hold=False` for a server without the `hold` toy: then they are merely concurrent)."""
    connections = [connect(server) for _ in bodies]
    with HeldLoop(server) if hold else contextlib.nullcontext():
        for connection, body in zip(connections, bodies, strict=True):
            send(connection, path, body)
    answers = [read_response(connection) for connection in connections]
    for sock, stream in connections:
        stream.close()
        sock.close()
    return answers


def read_response(connection: tuple[socket.socket, BinaryIO]) -> tuple[int, dict]:
    stream = connection[1]
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(stream.read(length))


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
    from tests.conftest import serve

    server = serve(
        [f"{TESTS_DIR / 'toys.py'}:Rows", "--model-name", "rows", "--max-batch-size", "1"]
    )
    yield server
    server.stop()


def test_max_batch_size_one_answers_every_request_in_its_own_call(unbatched_server):
    bodies = [v2_body(index) for index in range(CONNECTIONS)]
    answers = post_all_at_once(unbatched_server, "/v2/models/rows/infer", bodies, hold=False)
    for index, (status, body) in enumerate(answers):
        assert status == 200
        assert outputs(body)["call_rows"] == [index % 3 + 1] * (index % 3 + 1)
