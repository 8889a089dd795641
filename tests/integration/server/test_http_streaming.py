"""ksrv.http.server: a StreamingResponse reaches the client chunk by chunk, at its pace.

Each test drives the producer with events, so what arrives when is forced, not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from ksrv.http import sse
from ksrv.http.server import HTTPServer, Request, Response, StreamingResponse

Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]


async def _serve(handler: Handler) -> HTTPServer:
    server = HTTPServer(handler, 1 << 20, lambda n: Response(b"", 413))
    await server.start("127.0.0.1", 0)
    return server


async def _serve_chunks(chunks: Callable[[], AsyncIterator[bytes]]) -> HTTPServer:
    """A server answering every request with the stream `chunks()` makes."""

    async def handler(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    return await _serve(handler)


def _run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_first_chunk_arrives_before_the_last_is_produced_and_keep_alive_goes_on():
    release = asyncio.Event

    async def scenario() -> None:
        go_on = release()

        async def chunks() -> AsyncIterator[bytes]:
            yield b"first;"
            await go_on.wait()
            yield b""  # skipped: an empty chunk would end the body
            yield b"second"

        async def handler(request: Request) -> Response | StreamingResponse:
            if request.path == "/plain":
                return Response(b"plain")
            return StreamingResponse(chunks(), 201, [(b"x-kind", b"stream")])

        server = await _serve(handler)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                async with client.stream("GET", "/stream") as response:
                    assert response.status_code == 201
                    assert response.headers["transfer-encoding"] == "chunked"
                    assert response.headers["x-kind"] == "stream"
                    parts = response.aiter_raw()
                    assert await anext(parts) == b"first;"  # while the producer still waits
                    go_on.set()
                    assert b"".join([part async for part in parts]) == b"second"
                plain = await client.get("/plain")  # same keep-alive connection
                assert plain.content == b"plain"
                assert len(server.connections) == 1
        finally:
            await server.shutdown(1.0)

    _run(scenario)


def test_a_client_that_hangs_up_closes_the_producer():
    async def scenario() -> None:
        never = asyncio.Event()
        closed = asyncio.Event()

        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"one"
                await never.wait()
                yield b"never sent"
            finally:
                closed.set()

        server = await _serve_chunks(chunks)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"one\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            writer.close()
            await closed.wait()  # bounded by the scenario's timeout
        finally:
            await server.shutdown(1.0)

    _run(scenario)


def test_a_slow_reader_holds_the_producer_back():
    """The producer is never asked for more while the client's socket is full."""

    async def scenario() -> None:
        violations: list[int] = []
        server: HTTPServer

        async def chunks() -> AsyncIterator[bytes]:
            for index in range(200):
                if not all(c.can_write.is_set() for c in server.connections):
                    violations.append(index)
                yield bytes([index % 256]) * (256 * 1024)

        paused = asyncio.Event()

        async def handler(request: Request) -> StreamingResponse:
            (connection,) = server.connections
            pause = connection.pause_writing

            def pause_and_tell() -> None:
                pause()
                paused.set()

            connection.pause_writing = pause_and_tell
            return StreamingResponse(chunks())

        server = await _serve(handler)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await paused.wait()  # the server filled the socket before anything was read
            data = await reader.read()
            writer.close()
            assert data.count(b"\r\n40000\r\n") + data.count(b"\r\n\r\n40000\r\n") >= 199
            assert data.endswith(b"0\r\n\r\n")
            assert violations == []
        finally:
            await server.shutdown(1.0)

    _run(scenario)


@pytest.mark.parametrize(
    ("fail_after", "expected"),
    [(0, "500"), (1, "cut")],
)
def test_a_failing_producer_gives_500_before_its_first_chunk_and_a_cut_body_after(
    fail_after, expected
):
    async def scenario() -> bytes:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(fail_after):
                yield b"partial"
            raise RuntimeError("model failed")

        server = await _serve_chunks(chunks)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await reader.read()  # the server closes either way
            writer.close()
            return answer
        finally:
            await server.shutdown(1.0)

    answer = _run(scenario)
    if expected == "500":
        assert answer.startswith(b"HTTP/1.1 500")
        assert b"Internal server error" in answer
    else:
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"partial" in answer
        assert not answer.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a cut


def test_http10_gets_the_raw_body_then_close_and_head_gets_no_body():
    async def scenario() -> tuple[bytes, bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        server = await _serve_chunks(chunks)
        try:
            answers = []
            for request in (b"GET / HTTP/1.0\r\n\r\n", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(request)
                if request.startswith(b"HEAD"):
                    answers.append(await reader.readuntil(b"\r\n\r\n"))
                else:
                    answers.append(await reader.read())
                writer.close()
            return answers[0], answers[1]
        finally:
            await server.shutdown(1.0)

    http10, head = _run(scenario)
    assert http10.endswith(b"\r\n\r\nab")
    assert b"transfer-encoding" not in http10
    assert b"connection: close" in http10
    assert b"transfer-encoding: chunked" in head


def test_sse_framing():
    assert sse.event("hi") == b"data: hi\n\n"
    assert (
        sse.event(b"a\nb", name="token", event_id="7")
        == b"id: 7\nevent: token\ndata: a\ndata: b\n\n"
    )
    assert sse.DONE == b"data: [DONE]\n\n"
    with pytest.raises(ValueError, match="line break"):
        sse.event("x", name="a\nb")

    async def collect() -> list[bytes]:
        async def payloads() -> AsyncIterator[str]:
            yield '{"n":1}'
            yield '{"n":2}'

        return [chunk async for chunk in sse.events(payloads())]

    assert _run(collect) == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n']
