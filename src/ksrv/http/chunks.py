"""A queue of body chunks between a socket and the coroutine that reads them, with back-pressure.

Two streamed bodies need it: a request body that reaches its handler while it still arrives
(`ksrv.http.body.BodyStream`) and a replica's streamed answer in the gateway
(`ksrv.http.upstream.UpstreamStream`). The protocol callback pushes chunks; the reader
awaits them; above `high_water` unread bytes the socket stops being read, and it is read
again once the reader has brought them down to `low_water`. How a stream ends differs between
the two, so that stays with each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class ChunkQueue:
    """Chunks in arrival order, with `pause`/`resume` of their source at the water marks."""

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        high_water: int,
        low_water: int,
    ) -> None:
        self._pause, self._resume = pause, resume
        self._high_water, self._low_water = high_water, low_water
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.is_paused = False
        self.waiter: asyncio.Future[None] | None = None

    def push(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        if self.buffered > self._high_water and not self.is_paused:
            self.is_paused = True
            self._pause()
        self.wake()

    def wake(self) -> None:
        """Let a waiting reader look again (a chunk came, or the stream ended)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until `wake`: the reader found no chunk and the stream has not ended."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def pop(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.is_paused and self.buffered <= self._low_water:
            self.unpause()
        return chunk

    def unpause(self) -> None:
        """Read the source again (also when nothing more will come through this queue)."""
        if self.is_paused:
            self.is_paused = False
            self._resume()
