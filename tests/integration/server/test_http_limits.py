"""ksrv.http.server's limits, over raw sockets against a server on 127.0.0.1: a head that
crawls in (slowloris) is cut off, connections are capped, an oversized head is refused even
when it arrives whole, two Host fields are refused, and an `Upgrade: h2c` gets one answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ksrv.http.server import HTTPServer, Request, Response
from tests.conftest import wait_until_async

Client = Callable[[HTTPServer], Awaitable[Any]]


async def _ok(request: Request) -> Response:
    return Response(b'{"ok":true}', 200, [(b"content-type", b"application/json")])


def _run(client: Client, **options: Any) -> Any:
    """Start a server with `options`, run `client` against it, shut it down."""

    async def scenario() -> Any:
        server = HTTPServer(_ok, 1 << 20, lambda n: Response(b"", 413), **options)
        await server.start("127.0.0.1", 0)
        try:
            return await asyncio.wait_for(client(server), 20)
        finally:
            await server.shutdown(1.0)

    return asyncio.run(scenario())


async def _exchange(server: HTTPServer, request: bytes) -> bytes:
    """Send `request`, then read everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def _responses(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Every (status, head, body) in `data`, framed by content-length."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        found.append((int(head.split()[1]), head, rest[:length]))
        data = rest[length:]
    return found


def test_a_slowloris_head_is_cut_off_at_the_head_deadline_though_bytes_keep_coming():
    async def slowloris(server: HTTPServer) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")

        async def drip() -> None:
            while True:  # one byte every 50 ms: never silent for keep_alive_s (60 s)
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.05)

        dripping = asyncio.ensure_future(drip())
        try:
            return await reader.read()  # ends when the server closes
        finally:
            dripping.cancel()
            writer.close()

    answer = _run(slowloris, keep_alive_s=60.0, head_timeout_s=0.5)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer


def test_line_breaks_that_begin_no_request_do_not_hold_a_connection():
    async def drip_crlf(server: HTTPServer) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

        async def drip() -> None:
            while True:  # llhttp skips blank lines before a request: no request ever begins
                writer.write(b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)

        dripping = asyncio.ensure_future(drip())
        try:
            return await reader.read()
        finally:
            dripping.cancel()
            writer.close()

    assert _run(drip_crlf, keep_alive_s=60.0, head_timeout_s=0.5) == b""


def test_the_default_head_deadline_cuts_a_slowloris_off_within_35_s():
    async def half_a_head(server: HTTPServer) -> bytes:
        assert server.head_timeout_s <= 30
        assert server.keep_alive_s > 31  # so only the head deadline can act below
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        await writer.drain()
        await wait_until_async(
            lambda: any(c.head_started is not None for c in server.connections),
            "the server has the first bytes of the head",
        )
        # The sweeper runs every second: 31 s after the first byte it must have acted.
        server.sweep(time.monotonic() + 31)
        answer = await reader.read()
        writer.close()
        return answer

    answer = _run(half_a_head)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_connections_over_the_cap_get_503_and_are_closed():
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

    async def crowd(server: HTTPServer) -> tuple[bytes, bytes]:
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            await reader.readuntil(b'{"ok":true}')  # answered: the server counts it
            held.append(writer)
        refused = await _exchange(server, request)
        held.pop().close()
        await wait_until_async(lambda: len(server.connections) == 1, "one connection closed")
        admitted = await _exchange(
            server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        held.pop().close()
        return refused, admitted

    refused, admitted = _run(crowd, max_connections=2)
    [(status, head, body)] = _responses(refused)
    assert (status, b"too many connections" in body) == (503, True)
    assert b"connection: close" in head
    assert _responses(admitted)[0][0] == 200


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /" + b"u" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 10_000 + b"\r\n",
    ],
    ids=["70-KB-header", "70-KB-target", "10000-headers"],
)
def test_an_oversized_head_sent_whole_gets_431_and_the_connection_closes(head):
    answer = _run(lambda server: _exchange(server, head))
    [(status, _, _)] = _responses(answer)
    assert status == 431


@pytest.mark.parametrize(
    "hosts", [b"Host: a\r\nHost: b\r\n", b"Host: a\r\nhost: a\r\n", b"HOST: a\r\nHost: b\r\n"]
)
def test_two_host_fields_get_400(hosts):
    answer = _run(lambda server: _exchange(server, b"GET / HTTP/1.1\r\n" + hosts + b"\r\n"))
    [(status, _, body)] = _responses(answer)
    assert status == 400
    assert b"Host" in body


H2C = (
    b"Host: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
)


def test_an_h2c_upgrade_is_ignored_with_exactly_one_http11_response():
    answer = _run(lambda server: _exchange(server, b"GET / HTTP/1.1\r\n" + H2C + b"\r\n"))
    [(status, head, body)] = _responses(answer)
    assert (status, body) == (200, b'{"ok":true}')
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head


def test_an_upgrade_with_a_body_is_refused_with_exactly_one_response():
    request = b"POST / HTTP/1.1\r\n" + H2C + b"Content-Length: 3\r\n\r\nabc"
    answer = _run(lambda server: _exchange(server, request))
    [(status, _, body)] = _responses(answer)
    assert status == 400
    assert b"upgrades are not supported" in body
