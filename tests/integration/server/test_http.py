"""The HTTP/1.1 layer itself, over raw sockets: keep-alive, pipelining, chunked bodies,
100-continue, malformed requests, HEAD, and closing rules."""

from __future__ import annotations

import json
import socket

import pytest

from tests.models import IRIS_ROWS, iris_expected

PREDICT = json.dumps({"instances": IRIS_ROWS}).encode()
EXPECTED = json.dumps({"predictions": iris_expected(IRIS_ROWS)[0]}, separators=(",", ":"))


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off the socket (content-length framed); leftovers stay in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a full response")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    buffer[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


def test_keep_alive_serves_many_requests_on_one_connection(iris_server):
    with connect(iris_server) as sock:
        buffer = bytearray()
        for _ in range(5):
            sock.sendall(post("/v1/models/iris:predict", PREDICT))
            status, headers, body = read_response(sock, buffer)
            assert status == 200
            assert body.decode() == EXPECTED
            assert headers.get("connection") != "close"


def test_pipelined_requests_are_answered_in_order(iris_server):
    with connect(iris_server) as sock:
        sock.sendall(
            post("/v1/models/iris:predict", PREDICT)
            + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            + post("/v1/models/nope:predict", PREDICT)
        )
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 404]
    assert answers[1][2] == b'{"live":true}'


def test_chunked_request_bodies_are_read(iris_server):
    half = len(PREDICT) // 2
    chunks = [PREDICT[:half], PREDICT[half:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    request = (
        b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    with connect(iris_server) as sock:
        sock.sendall(request)
        status, _, answer = read_response(sock, bytearray())
    assert (status, answer.decode()) == (200, EXPECTED)


def test_expect_100_continue_is_honoured(iris_server):
    with connect(iris_server) as sock:
        head = (
            f"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(PREDICT)}\r\nExpect: 100-continue\r\n\r\n"
        )
        sock.sendall(head.encode())
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(1024)
        assert bytes(buffer).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buffer[: len(b"HTTP/1.1 100 Continue\r\n\r\n")]
        sock.sendall(PREDICT)
        status, _, answer = read_response(sock, buffer)
    assert (status, answer.decode()) == (200, EXPECTED)


def test_http_10_and_connection_close_end_the_connection(iris_server):
    for request in (
        b"GET /v2/health/live HTTP/1.0\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ):
        with connect(iris_server) as sock:
            sock.sendall(request)
            buffer = bytearray()
            status, headers, _ = read_response(sock, buffer)
            assert status == 200
            assert headers["connection"] == "close"
            assert sock.recv(10) == b""


@pytest.mark.parametrize(
    "garbage",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", b"\x00\xff" * 50],
)
def test_malformed_http_gets_400_and_the_connection_closes(iris_server, garbage):
    with connect(iris_server) as sock:
        sock.sendall(garbage)
        status, _, body = read_response(sock, bytearray())
        assert status == 400
        assert b"Malformed HTTP request" in body
        assert sock.recv(10) == b""


def test_head_returns_headers_without_a_body(iris_server):
    with connect(iris_server) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 18" in head
    assert body == b""


def test_oversized_declared_body_is_413_without_reading_it(start_server, iris_dir):
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris",
         "--max-request-bytes", "100"]
    )  # fmt: skip
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
        )
        status, headers, body = read_response(sock, bytearray())
    assert status == 413, body
    assert headers["connection"] == "close"
    assert b"exceeds the limit of 100 bytes" in body


@pytest.mark.parametrize("unfinished", [b"X-Big: " + b"a" * 4096, b"X-" + b"b" * 4096])
def test_an_endless_request_head_gets_431_instead_of_growing_memory(iris_server, unfinished):
    with connect(iris_server) as sock:
        sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
        for _ in range(40):  # 160 KiB of one header that never ends
            try:
                sock.sendall(unfinished)
            except OSError:
                break  # the server answered and closed
        status, _, body = read_response(sock, bytearray())
        assert status == 431 and b"65536" in body


def test_many_ordinary_headers_are_still_served(iris_server):
    many = "".join(f"x-h{i}: {'v' * 20}\r\n" for i in range(1000))
    with connect(iris_server) as sock:
        sock.sendall(f"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
        status, _, _ = read_response(sock, bytearray())
        assert status == 200
