"""A streamed upstream body is read no faster than it is taken: past the high-water mark the
gateway stops reading the replica's socket, and taking the chunks starts it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ksrv.http import upstream
from ksrv.http.server import HTTPServer, Request, Response, StreamingResponse

CHUNK = bytes(range(256)) * 256  # 64 KiB
COUNT = 256  # 16 MiB in all: more than the socket buffers between the two hold


def test_an_unread_stream_stops_reading_the_replica_and_resumes_when_read():
    async def handler(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(COUNT):
                yield CHUNK

        return StreamingResponse(chunks())

    async def run() -> None:
        replica = HTTPServer(handler, 1 << 20, lambda n: Response(b"", 413))
        await replica.start("127.0.0.1", 0)
        pool = upstream.ReplicaPool(f"127.0.0.1:{replica.port}")
        try:
            head = b"GET /stream HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
            deadline = asyncio.get_running_loop().time() + 30
            answer = await pool.request(head, b"", deadline)
            stream = answer.stream
            assert stream is not None
            for _ in range(3000):  # nobody reads: the stream must pause the socket
                if stream.is_paused:
                    break
                await asyncio.sleep(0.01)
            assert stream.is_paused
            # What waits in the gateway is bounded by the mark plus one socket read.
            assert stream.buffered <= upstream._HIGH_WATER_BYTES + 256 * 1024
            received = bytearray()
            async for chunk in stream:
                received += chunk
            assert len(received) == COUNT * len(CHUNK)
            assert bytes(received[: len(CHUNK)]) == CHUNK
            assert bytes(received[-len(CHUNK) :]) == CHUNK
        finally:
            pool.close()
            await replica.shutdown(grace_s=1)

    asyncio.run(asyncio.wait_for(run(), 60))
