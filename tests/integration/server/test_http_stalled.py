"""ksrv.http.server: a request that stops arriving is answered 408 and closed, not held."""

from __future__ import annotations

import asyncio

import pytest

from ksrv.http.server import HTTPServer, Request, Response


async def _echo(request: Request) -> Response:
    return Response(request.body)


@pytest.mark.parametrize(
    "partial",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly13bytes!!",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ",
    ],
)
def test_a_stalled_request_gets_408_after_the_keep_alive_time(partial):
    async def scenario() -> bytes:
        server = HTTPServer(_echo, 1 << 20, lambda n: Response(b"", 413), keep_alive_s=0.5)
        await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(partial)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # read() ends at close
            writer.close()
            return answer
        finally:
            await server.shutdown(1.0)

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 408"), answer
