"""Streamed answers through the gateway: passed on chunk by chunk as the replica produces
them, and a client that hangs up hangs up on the replica too. The replica is a tiny server
on `ksrv.http` whose generator waits on events the test sets, on the test's own loop, or a
real model server whose `tokens` toy holds its stream at a gate: what arrives when is
forced, not timed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from ksrv.gateway.app import Gateway
from ksrv.http import sse
from ksrv.http.server import HTTPServer, Request, Response, StreamingResponse
from tests.integration.gateway.conftest import DOMAIN, service
from tests.streaming import open_gate, wait_for_state

HOST = {"host": "stream.default.example.com"}
HOST_TOY = {"host": "toy.default.example.com"}
Chunks = Callable[[], AsyncIterator[bytes]]


def _run(chunks: Chunks, test: Callable[[httpx.AsyncClient, Gateway], Awaitable[None]]) -> None:
    """`test` gets a client of a gateway whose only route streams `chunks()` for any request."""

    async def handler(request: Request) -> Response | StreamingResponse:
        if request.path == "/whole":
            return Response(b'{"whole":true}', 200, [(b"content-type", b"application/json")])
        return StreamingResponse(chunks(), headers=sse.HEADERS)

    async def run() -> None:
        replica = HTTPServer(handler, 1 << 20, lambda n: Response(b"", 413))
        await replica.start("127.0.0.1", 0)
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0)
        address = f"127.0.0.1:{replica.port}"
        backend = {"revision": "r1", "percent": 100, "replicas": [{"http": address}]}
        gateway.set_routes(_table(backend))
        try:
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, headers=HOST, timeout=20) as client:
                await test(client, gateway)
        finally:
            await gateway.stop(grace_s=1)
            await replica.shutdown(grace_s=1)

    asyncio.run(asyncio.wait_for(run(), 60))


def _table(backend: dict[str, Any]) -> dict[str, Any]:
    component = {"backends": [backend]}
    return {
        "version": 1,
        "domain": DOMAIN,
        "services": [
            {"namespace": "default", "name": "stream", "components": {"predictor": component}}
        ],
    }


def test_the_first_chunk_reaches_the_client_before_the_replica_produced_the_last():
    last = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield sse.event("one")
        await last.wait()
        yield sse.event("two")

    async def test(client: httpx.AsyncClient, gateway: Gateway) -> None:
        async with client.stream("POST", "/v2/models/m/generate_stream", content=b"{}") as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/event-stream"
            assert r.headers["transfer-encoding"] == "chunked"
            received = r.aiter_raw()
            assert await anext(received) == b"data: one\n\n"
            assert not last.is_set()  # the replica has not produced "two" yet
            (endpoint,) = gateway.rest.balancer.endpoints.values()
            assert endpoint.outstanding == 1  # a streaming replica counts as busy
            last.set()
            assert b"".join([chunk async for chunk in received]) == b"data: two\n\n"
        assert endpoint.outstanding == 0
        # The connection stays usable, and answers with a length still come whole.
        whole = await client.get("/whole")
        assert whole.json() == {"whole": True}
        assert whole.headers["content-length"] == "14"

    _run(chunks, test)


def test_a_client_that_hangs_up_closes_the_replicas_stream():
    closed = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield sse.event("one")
            await asyncio.Event().wait()  # would stream forever
        finally:
            closed.set()

    async def test(client: httpx.AsyncClient, gateway: Gateway) -> None:
        async with client.stream("POST", "/v2/models/m/generate_stream", content=b"{}") as r:
            assert await anext(r.aiter_raw()) == b"data: one\n\n"
            assert not closed.is_set()
        # Leaving the block closes the unfinished response's connection: the gateway sees the
        # hang-up, aborts its upstream connection, and the replica's server closes the
        # generator. (The 60 s bound in _run is only a safety net.)
        await closed.wait()
        (endpoint,) = gateway.rest.balancer.endpoints.values()
        assert endpoint.outstanding == 0

    _run(chunks, test)


def test_a_streaming_custom_model_streams_through_the_gateway_process(gateway, toy_server):
    """Issue 11's bar: the first chunk reaches the client through the gateway before the model
    produced the last one (the `tokens` toy holds its stream at a gate the test opens)."""
    gateway.publish([service("toy", [(100, [toy_server])])])
    key = uuid.uuid4().hex
    body = {"instances": ["alpha", "beta", "gamma"], "key": key}
    with (
        httpx.Client(base_url=gateway.url, headers=HOST_TOY, timeout=30) as client,
        client.stream("POST", "/v1/models/tokens:predict", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        lines = response.iter_lines()
        assert next(lines) == "alpha"
        assert wait_for_state(client, key, {"streaming"}) == "streaming"
        open_gate(client, key)
        assert list(lines) == ["beta", "gamma"]


def test_a_client_hanging_up_on_the_gateway_stops_the_models_generator(gateway, toy_server):
    gateway.publish([service("toy", [(100, [toy_server])])])
    key = uuid.uuid4().hex
    body = {"instances": ["alpha", "beta"], "key": key}
    with httpx.Client(base_url=gateway.url, headers=HOST_TOY, timeout=30) as client:
        with client.stream("POST", "/v1/models/tokens:predict", json=body) as response:
            assert next(response.iter_lines()) == "alpha"
        # Closed with the gate still shut: the gateway cuts its upstream connection, and the
        # model server closes the generator.
        with httpx.Client(base_url=gateway.url, headers=HOST_TOY, timeout=30) as other:
            assert wait_for_state(other, key, {"closed", "finished"}) == "closed"
