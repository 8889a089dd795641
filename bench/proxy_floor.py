"""Bare reverse-proxy "floor" for the gateway benchmark.

Why: the gateway's bar (CPU per proxied request) only means something next to the least any
Python proxy on uvloop + httptools must spend here: parse a request's framing, write it to a
pooled keep-alive upstream connection, parse the answer's framing, write it back. No routing,
no header rewriting, no metrics, no timeouts, no errors handled. `bench/gateway.py --floor`
runs it beside the gateway, pinned to the same CPU, so the gap is the gateway's own work.

Run: `python bench/proxy_floor.py PORT UPSTREAM_PORT` (forwards every request to
127.0.0.1:UPSTREAM_PORT, whatever its path; the gateway prefix is stripped).
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop

PREFIX = b"/serving/default/iris"


class Peer(asyncio.Protocol):
    """A connection whose bytes go to an httptools parser (set by the subclass)."""

    parser: httptools.HttpRequestParser | httptools.HttpResponseParser
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)


class Upstream(Peer):
    """One pooled keep-alive connection to the replica; one request at a time."""

    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None
        self.body: list[bytes] = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        body, self.body = b"".join(self.body), []
        self.pool.append(self)
        if client is not None:
            client.answer(self.parser.get_status_code(), body)


class Client(Peer):
    """One client connection: each request goes to a pooled upstream connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, pool: list[Upstream]) -> None:
        self.loop, self.port, self.pool = loop, port, pool
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() != b"content-length":
            self.headers.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = self.url.removeprefix(PREFIX)
        body = b"".join(self.body)
        head = b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (
            url,
            b"".join(self.headers),
            len(body),
        )
        self.url, self.headers, self.body = b"", [], []
        if self.pool:  # the usual case: no task, no await
            self.send(self.pool.pop(), head + body)
        else:
            self.loop.create_task(self.connect_and_send(head + body))

    def send(self, upstream: Upstream, data: bytes) -> None:
        upstream.client = self
        assert upstream.transport is not None
        upstream.transport.write(data)

    async def connect_and_send(self, data: bytes) -> None:
        _, upstream = await self.loop.create_connection(
            lambda: Upstream(self.pool), "127.0.0.1", self.port
        )
        self.send(upstream, data)

    def answer(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )


async def main(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    pool: list[Upstream] = []
    server = await loop.create_server(
        lambda: Client(loop, upstream_port, pool), "127.0.0.1", port, backlog=1024
    )
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
