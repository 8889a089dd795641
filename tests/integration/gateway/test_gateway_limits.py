"""What a caller cannot make the gateway hold: a body over the limit (refused from its head,
or as soon as a chunked one passes it), a large body (streamed to the replica, not buffered),
and random gRPC method names (a bounded handler cache)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import Iterator

import grpc
import httpx

from tests.conftest import free_port, wait_until_async
from tests.integration.gateway.conftest import RawUpstream, service

PATH = "/serving/default/sink/v2/models/sink/infer"
MIB = 1024 * 1024


class CountingReplica(RawUpstream):
    """Reads each request body (Content-Length or chunked) in small pieces, keeping only its
    size and SHA-256, and answers them as JSON: a replica that costs nothing to feed."""

    def __init__(self) -> None:
        super().__init__(lambda head, body: b"")

    def _serve(self, conn: socket.socket) -> None:
        # A body the gateway cut off ends the connection mid-body: nothing to answer.
        with conn, conn.makefile("rb") as reader, contextlib.suppress(OSError, ValueError):
            while True:
                head = []
                while (line := reader.readline()) not in (b"\r\n", b""):
                    head.append(line.lower())
                if not head:
                    return
                digest, size = hashlib.sha256(), 0
                for piece in _body(reader, head):
                    digest.update(piece)
                    size += len(piece)
                body = b'{"size":%d,"sha256":"%s"}' % (size, digest.hexdigest().encode())
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


def _body(reader, head: list[bytes]) -> Iterator[bytes]:
    lengths = [int(line.split(b":")[1]) for line in head if line.startswith(b"content-length:")]
    if lengths:
        left = lengths[0]
        while left:
            piece = reader.read(min(left, MIB))
            left -= len(piece)
            yield piece
        return
    while size := int(reader.readline().strip(), 16):
        yield reader.read(size)
        reader.readline()
    reader.readline()


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _pieces(count: int, piece: bytes) -> Iterator[bytes]:
    for _ in range(count):
        yield piece


def test_large_bodies_stream_through_the_gateway_without_being_held(gateway):
    replica = CountingReplica()
    try:
        gateway.publish([service("sink", [(100, [replica])])])
        pid = gateway.process.process.pid
        before = _peak_rss_mib(pid)
        piece = bytes(range(256)) * 4096  # 1 MiB
        expected = hashlib.sha256(piece * 64).hexdigest()
        with httpx.Client(base_url=gateway.url, timeout=60) as client:
            for headers in ({"content-length": str(64 * MIB)}, {}):  # sized, then chunked
                answer = client.post(PATH, content=_pieces(64, piece), headers=headers)
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"size": 64 * MIB, "sha256": expected}
        # Either body held whole would add 64 MiB (twice that once joined).
        assert _peak_rss_mib(pid) - before < 32, (before, _peak_rss_mib(pid))
    finally:
        replica.close()


def test_a_streamed_body_refused_by_a_replica_is_held_and_sent_whole_to_the_next():
    from ksrv.gateway.app import Gateway

    piece = bytes(range(256)) * 4096  # 1 MiB
    expected = {"size": 8 * MIB, "sha256": hashlib.sha256(piece * 8).hexdigest()}

    async def run() -> None:
        replica = CountingReplica()
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0)
        try:
            dead = f"127.0.0.1:{free_port()}"  # refuses: none of the body was sent
            gateway.set_routes({"version": 1, "domain": "example.com",
                                "services": [service("sink", [(100, [dead])])]})  # fmt: skip
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                sending = asyncio.ensure_future(
                    client.post(PATH, content=piece * 8)  # over STREAM_BODY_OVER: streamed
                )
                endpoints = gateway.rest.balancer.endpoints
                await wait_until_async(
                    lambda: dead in endpoints and endpoints[dead].down_until > 0,
                    "the first replica refused the request",
                )
                gateway.set_routes({"version": 2, "domain": "example.com",
                                    "services": [service("sink", [(100, [replica])])]})  # fmt: skip
                answer = await sending
            assert answer.status_code == 200, answer.text
            assert answer.json() == expected
        finally:
            await gateway.stop()
            replica.close()

    asyncio.run(run())


def test_a_body_over_the_limit_is_refused_from_its_content_length_before_any_is_read(gateway):
    # 200 MB: what the issue sent (the replicas' limit is 100 MiB; the gateway's was 256).
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"
            % (PATH.encode(), 200 * 1000 * 1000)
        )
        answer = _read_until_closed(sock)  # no body sent: only a head-time refusal answers
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in answer


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit():
    from ksrv.gateway.app import Gateway

    def send(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST %s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" % PATH.encode()
            )
            chunk = b"%x\r\n%b\r\n" % (MIB, b"x" * MIB)
            for _ in range(5):  # 5 MiB and never the last chunk: only a cut-off answers
                sock.sendall(chunk)
            return _read_until_closed(sock)

    async def run() -> bytes:
        replica = CountingReplica()
        gateway = Gateway(max_body_bytes=4 * MIB)
        await gateway.start("127.0.0.1", 0)
        try:
            gateway.set_routes({"version": 1, "domain": "example.com",
                                "services": [service("sink", [(100, [replica])])]})  # fmt: skip
            return await asyncio.to_thread(send, gateway.http_port)
        finally:
            await gateway.stop()
            replica.close()

    answer = asyncio.run(run())
    assert answer.startswith(b"HTTP/1.1 413 "), answer


def test_the_gateway_body_limit_is_no_higher_than_the_replicas():
    from ksrv.gateway import app
    from ksrv.server import settings

    assert app.DEFAULT_MAX_BODY_BYTES <= settings.DEFAULT_MAX_REQUEST_BYTES
    assert settings.ServerSettings().grpc_max_receive_bytes == settings.DEFAULT_MAX_REQUEST_BYTES


def _read_until_closed(sock: socket.socket) -> bytes:
    """What the server sent before it closed (a reset too: it read no more of the body)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_random_grpc_method_names_do_not_grow_the_method_cache():
    from ksrv.gateway import grpc_proxy
    from ksrv.gateway.app import Gateway

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=free_port())
        try:
            assert gateway._grpc is not None
            cache = gateway._grpc.forwarder.handler
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
                for number in range(grpc_proxy.MAX_CACHED_METHODS + 100):
                    call = channel.unary_unary(f"/attacker.Service/Method{number}")
                    try:
                        await call(b"", metadata=(("host", "nowhere.example.com"),))
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert cache.cache_info().currsize == grpc_proxy.MAX_CACHED_METHODS
        finally:
            await gateway.stop()

    asyncio.run(run())
