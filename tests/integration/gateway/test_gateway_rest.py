"""REST through a real gateway process to real `ksrv serve` replicas: routing, bodies,
headers, keep-alive, errors."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import struct

import httpx
import numpy as np
import pytest

from tests.conftest import HELD_TIMEOUT_S, ModelCalls, toy_script_server, wait_until
from tests.integration.gateway.conftest import service
from tests.models import IRIS_ROWS, iris_expected

V2_BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROWS}]}


@pytest.fixture
def iris_replica(start_server, iris_dir):
    return start_server(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris"]
    )


@pytest.fixture(scope="module")
def toy():
    server = toy_script_server()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "host",
    [
        "iris.default.example.com",
        "iris-default.example.com",
        "iris.default.example.com:8080",
        "iris-predictor.default.example.com",
        "iris-predictor-default.example.com",
    ],
)
def test_v1_and_v2_infer_through_host_routing(gateway, iris_replica, host):
    gateway.publish([service("iris", [(100, [iris_replica])])])
    classes = iris_expected(IRIS_ROWS)[0]
    headers = {"host": host}
    v1 = httpx.post(
        gateway.url + "/v1/models/iris:predict", json={"instances": IRIS_ROWS}, headers=headers
    )
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == classes
    v2 = httpx.post(gateway.url + "/v2/models/iris/infer", json=V2_BODY, headers=headers)
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == classes


@pytest.mark.parametrize("segment", ["iris", "iris-predictor"])
def test_path_routing_strips_the_serving_prefix(gateway, iris_replica, segment):
    gateway.publish([service("iris", [(100, [iris_replica])], namespace="team")])
    prefix = f"{gateway.url}/serving/team/{segment}"
    v2 = httpx.post(prefix + "/v2/models/iris/infer", json=V2_BODY)
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == iris_expected(IRIS_ROWS)[0]
    assert httpx.get(prefix + "/v2/models/iris/ready").status_code == 200
    assert httpx.get(prefix + "/v2/models/nope/ready").status_code == 404


def test_binary_tensors_and_a_large_body_pass_through_byte_for_byte(gateway, toy):
    gateway.publish([service("toy", [(100, [toy])])])
    data = np.arange(2_000_000, dtype=np.float32)  # 8 MB of tensor bytes
    header = json.dumps(
        {
            "id": "big-1",
            "inputs": [
                {
                    "name": "x",
                    "shape": [len(data)],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": data.nbytes},
                }
            ],
            "outputs": [{"name": "x", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {"inference-header-content-length": str(len(header))}
    body = header + data.tobytes()
    direct = httpx.post(f"{toy.url}/v2/models/echo/infer", content=body, headers=headers)
    through = httpx.post(
        f"{gateway.url}/v2/models/echo/infer",
        content=body,
        headers={**headers, "host": "toy.default.example.com"},
        timeout=30,
    )
    assert direct.status_code == through.status_code == 200, through.text
    assert through.content == direct.content
    assert (
        through.headers["inference-header-content-length"]
        == (direct.headers["inference-header-content-length"])
    )
    json_length = int(through.headers["inference-header-content-length"])
    assert np.frombuffer(through.content[json_length:], np.float32)[-1] == data[-1]
    assert struct.calcsize("f") * len(data) == len(through.content) - json_length


def test_forwarded_request_carries_identity_headers_without_hop_by_hop(gateway, toy):
    gateway.publish([service("toy", [(100, [toy])], namespace="ns1")])
    answer = httpx.post(
        f"{gateway.url}/v1/models/headers:predict",
        json={"instances": [1]},
        headers={
            "host": "toy.ns1.example.com",
            "x-request-id": "r-1",
            "x-forwarded-for": "10.0.0.9",
            "kserve-isvc-name": "spoofed",
            "proxy-authorization": "secret",
            "te": "trailers",
        },
    )
    assert answer.status_code == 200, answer.text
    seen = answer.json()["seen"]
    assert seen["x-request-id"] == "r-1"
    assert seen["kserve-isvc-name"] == "toy"
    assert seen["kserve-isvc-namespace"] == "ns1"
    assert seen["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert "proxy-authorization" not in seen and "te" not in seen
    assert seen["host"] == "toy.ns1.example.com"


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh socket; everything the gateway sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=HELD_TIMEOUT_S) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_the_gateway_holds_clients_to_the_http_server_limits(gateway, toy):
    gateway.publish([service("toy", [(100, [toy])])])
    health = b"GET /ksrv/gateway/health HTTP/1.1\r\n"
    two_hosts = _raw_exchange(gateway.port, health + b"Host: a\r\nHost: b\r\n\r\n")
    assert two_hosts.startswith(b"HTTP/1.1 400"), two_hosts
    many = _raw_exchange(gateway.port, health + b"Host: x\r\n" + b"a: b\r\n" * 10_000 + b"\r\n")
    assert many.startswith(b"HTTP/1.1 431"), many
    h2c = _raw_exchange(
        gateway.port,
        health + b"Host: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    assert h2c.startswith(b"HTTP/1.1 200") and h2c.count(b"HTTP/1.1 ") == 1, h2c
    odd_id = httpx.post(
        f"{gateway.url}/v1/models/headers:predict",
        json={"instances": [1]},
        headers={"host": "toy.default.example.com", "x-request-id": "<script>"},
    )
    assert odd_id.status_code == 200, odd_id.text
    assert "x-request-id" not in odd_id.headers


def test_query_string_reaches_the_replica(gateway, raw_upstream):
    def respond(head: bytes, body: bytes) -> bytes:
        line = head.split(b"\r\n", 1)[0]
        return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(line), line)

    upstream = raw_upstream(respond)
    gateway.publish([service("raw", [(100, [upstream])])])
    answer = httpx.get(f"{gateway.url}/serving/default/raw/v2/models/m?a=1&b=%20")
    assert answer.text == "GET /v2/models/m?a=1&b=%20 HTTP/1.1"


def test_chunked_upstream_answers_are_passed_on_chunked(gateway, raw_upstream):
    def respond(head: bytes, body: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            b'6\r\n{"a": \r\n3\r\n42}\r\n0\r\n\r\n'
        )

    upstream = raw_upstream(respond)
    gateway.publish([service("raw", [(100, [upstream])])])
    with httpx.Client(headers={"host": "raw.default.example.com"}) as client:
        for _ in range(3):  # the chunked answer leaves the connection reusable
            answer = client.post(f"{gateway.url}/v2/models/m/infer", content=b"{}")
            assert answer.status_code == 200
            assert answer.json() == {"a": 42}
            assert answer.headers["transfer-encoding"] == "chunked"  # streamed, not buffered
    assert upstream.connections == 1


def test_keep_alive_connections_are_reused(gateway, toy):
    gateway.publish([service("toy", [(100, [toy])])])
    with httpx.Client(headers={"host": "toy.default.example.com"}) as client:
        for _ in range(30):
            assert client.get(f"{gateway.url}/v2/models/echo/ready").status_code == 200
    assert _established(toy.port, gateway.process.process.pid) == 1


def test_a_pooled_connection_closed_by_the_replica_is_retried_on_a_fresh_one(gateway, raw_upstream):
    def respond(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    # Answers once per connection, then closes it without saying `connection: close`.
    upstream = raw_upstream(respond, close_after=1)
    gateway.publish([service("raw", [(100, [upstream])])])
    with httpx.Client(headers={"host": "raw.default.example.com"}) as client:
        for _ in range(20):
            answer = client.get(f"{gateway.url}/anything")
            assert answer.status_code == 200, answer.text


def test_unknown_host_and_path_are_404_naming_what_was_tried(gateway):
    gateway.publish([])
    answer = httpx.get(gateway.url + "/v2/models/x/ready", headers={"host": "nope.ns.example.com"})
    assert answer.status_code == 404
    assert "nope.ns.example.com" in answer.json()["error"]
    answer = httpx.get(gateway.url + "/serving/ns/nope/v2/models/x/ready")
    assert answer.status_code == 404
    assert "/serving/ns/nope/v2/models/x/ready" in answer.json()["error"]


def test_a_service_without_ready_replicas_is_504_after_holding_for_its_timeout(gateway):
    gateway.publish([service("empty", [(100, [])], timeout_s=0.5)])
    answer = httpx.get(gateway.url + "/serving/default/empty/v2/health/ready")
    assert answer.status_code == 504
    assert answer.json()["error"] == "no ready replica for predictor of default/empty within 0.5 s"
    assert answer.elapsed.total_seconds() >= 0.4


def test_a_request_held_without_replicas_is_served_once_one_is_ready(gateway, toy):
    gateway.publish([service("late", [(100, [])], timeout_s=20)])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            httpx.get, gateway.url + "/serving/default/late/v2/health/ready", timeout=30
        )
        wait_until(lambda: gateway.in_flight() == 1, "the gateway holding the request")
        assert not held.done()
        gateway.publish([service("late", [(100, [toy])], timeout_s=20)])
        assert held.result().status_code == 200


def test_a_replica_slower_than_the_service_timeout_is_504(gateway, toy):
    gateway.publish([service("toy", [(100, [toy])], timeout_s=0.5)])
    with ModelCalls() as calls:  # the model answers only once released: never, here
        answer = httpx.post(
            gateway.url + "/serving/default/toy/v1/models/gate:predict",
            json={"instances": [], "port": calls.port},
            timeout=HELD_TIMEOUT_S,
        )
        assert answer.status_code == 504
        assert answer.json()["error"].startswith(
            "predictor of default/toy did not answer within 0.5 s"
        )
        calls.wait_for(1)  # the call was inside the model all along


def test_an_unreachable_replica_is_502(gateway):
    from tests.conftest import free_port

    gateway.publish([service("gone", [(100, [f"127.0.0.1:{free_port()}"])], timeout_s=0.5)])
    answer = httpx.get(gateway.url + "/serving/default/gone/v2/health/ready")
    assert answer.status_code == 502
    assert "cannot connect" in answer.json()["error"]


def test_explain_goes_to_the_explainer_component(gateway, toy, raw_upstream):
    def respond(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nexplainer"

    explainer = raw_upstream(respond)
    gateway.publish([service("toy", [(100, [toy])], extra={"explainer": [(100, [explainer])]})])
    host = {"host": "toy.default.example.com"}
    explained = httpx.post(gateway.url + "/v1/models/echo:explain", json={}, headers=host)
    assert explained.text == "explainer"
    predicted = httpx.post(
        gateway.url + "/v1/models/echo:predict", json={"instances": [1]}, headers=host
    )
    assert predicted.json() == {"predictions": [1]}
    direct = httpx.post(
        gateway.url + "/v1/models/echo:explain",
        json={},
        headers={"host": "toy-explainer.default.example.com"},
    )
    assert direct.text == "explainer"


def _established(remote_port: int, pid: int) -> int:
    """TCP connections the process `pid` holds to 127.0.0.1:`remote_port`."""
    inodes = set()
    import os

    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == remote_port and inode in inodes:
                count += 1
    return count


def test_head_answers_do_not_wait_for_a_body(gateway, raw_upstream):
    def respond(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"HEAD "):
            return b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-kind: head\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"

    upstream = raw_upstream(respond)
    gateway.publish([service("raw", [(100, [upstream])])])
    with httpx.Client(headers={"host": "raw.default.example.com"}, timeout=5) as client:
        head = client.head(f"{gateway.url}/v2/health/ready")
        assert head.status_code == 200
        assert head.headers["x-kind"] == "head"
        assert client.get(f"{gateway.url}/v2/health/ready").text == "hello"
