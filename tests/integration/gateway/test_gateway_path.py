"""The one request path, seen from both transports: hooks see REST and gRPC requests, a hook
may reject, and gRPC is held until a replica is ready, like REST. The Gateway runs on the
test's own event loop so a hook can tell the test, without timing, where a request is."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest

from ksrv import errors
from ksrv.gateway.app import Gateway
from ksrv.gateway.hooks import Call
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb2
from tests.conftest import toy_script_server
from tests.integration.gateway.conftest import DOMAIN, service

READY = "/inference.GRPCInferenceService/ServerReady"
HOST = "toy.default.example.com"


@pytest.fixture(scope="module")
def toy():
    server = toy_script_server()
    yield server
    server.stop()


class Recorder:
    """A hook that records what it sees and may reject requests."""

    def __init__(self, reject: errors.KsrvError | None = None) -> None:
        self.reject = reject
        self.seen: list[tuple[str, str, str]] = []
        self.outcomes: list[tuple[str, str, str]] = []
        self.arrived = asyncio.Event()

    def on_request(self, call: Call) -> None:
        assert call.match is not None
        self.seen.append((call.transport, call.match.service.name, call.headers["host"]))
        self.arrived.set()
        if self.reject is not None:
            raise self.reject

    def on_response(self, call: Call, error: BaseException | None) -> None:
        revision = call.backend.revision if call.backend is not None else ""
        self.outcomes.append((call.transport, revision, type(error).__name__ if error else ""))


def _run(
    hook: Recorder, test: Callable[[Gateway, httpx.AsyncClient, Any], Awaitable[None]]
) -> None:
    async def run() -> None:
        gateway = Gateway(hooks=[hook])
        await gateway.start("127.0.0.1", 0, grpc_port=_free_port())
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client,
                grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
            ):
                ready = channel.unary_unary(
                    READY,
                    request_serializer=pb2.ServerReadyRequest.SerializeToString,
                    response_deserializer=pb2.ServerReadyResponse.FromString,
                )
                await test(gateway, client, ready)
        finally:
            await gateway.stop()

    asyncio.run(run())


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


def _table(*services: dict[str, Any], version: int = 1) -> dict[str, Any]:
    return {"version": version, "domain": DOMAIN, "services": list(services)}


def test_a_hook_sees_rest_and_grpc_requests_with_their_revision(toy):
    hook = Recorder()

    async def test(gateway: Gateway, client: httpx.AsyncClient, ready: Any) -> None:
        gateway.set_routes(_table(service("toy", [(100, [toy])])))
        answer = await client.get("/v2/health/ready", headers={"host": HOST})
        assert answer.status_code == 200
        reply = await ready(pb2.ServerReadyRequest(), metadata=(("host", HOST),))
        assert reply.ready

    _run(hook, test)
    assert hook.seen == [("rest", "toy", HOST), ("grpc", "toy", HOST)]
    revision = "toy-predictor-00001"
    assert hook.outcomes == [("rest", revision, ""), ("grpc", revision, "")]


def test_a_hook_rejects_rest_and_grpc_through_the_status_table(toy):
    hook = Recorder(reject=errors.Overloaded("too many requests from this caller"))

    async def test(gateway: Gateway, client: httpx.AsyncClient, ready: Any) -> None:
        gateway.set_routes(_table(service("toy", [(100, [toy])])))
        answer = await client.get("/v2/health/ready", headers={"host": HOST})
        assert answer.status_code == 429
        assert answer.json() == {"error": "too many requests from this caller"}
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ready(pb2.ServerReadyRequest(), metadata=(("host", HOST),))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert raised.value.details() == "too many requests from this caller"

    _run(hook, test)
    assert hook.outcomes == [("rest", "", "Overloaded"), ("grpc", "", "Overloaded")]


def test_grpc_is_held_until_the_route_table_brings_a_ready_replica(toy):
    hook = Recorder()

    async def test(gateway: Gateway, client: httpx.AsyncClient, ready: Any) -> None:
        gateway.set_routes(_table(service("toy", [(100, [])], timeout_s=30)))
        call = asyncio.ensure_future(
            ready(pb2.ServerReadyRequest(), metadata=(("host", HOST),), timeout=30)
        )
        await hook.arrived.wait()  # routed, and no replica: the gateway now holds it
        assert not call.done()
        gateway.set_routes(_table(service("toy", [(100, [toy])], timeout_s=30), version=2))
        assert (await call).ready

    _run(hook, test)
    assert hook.outcomes == [("grpc", "toy-predictor-00001", "")]


def test_a_revision_without_a_ready_replica_is_504_and_deadline_exceeded_after_the_hold():
    hook = Recorder()
    message = "no ready replica for predictor of default/empty within 0.2 s"

    async def test(gateway: Gateway, client: httpx.AsyncClient, ready: Any) -> None:
        gateway.set_routes(_table(service("empty", [(100, [])], timeout_s=0.2)))
        host = "empty.default.example.com"
        answer = await client.get("/v2/health/ready", headers={"host": host})
        assert answer.status_code == 504  # the activator held it for the route's timeout
        assert answer.json() == {"error": message}
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ready(pb2.ServerReadyRequest(), metadata=(("host", host),))
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert raised.value.details() == message

    _run(hook, test)
    # Held for the revision, the request was its demand.
    held = ("empty-predictor-00001", "UpstreamTimeout")
    assert hook.outcomes == [("rest", *held), ("grpc", *held)]


def test_an_unknown_host_is_404_and_not_found_without_calling_hooks():
    hook = Recorder()

    async def test(gateway: Gateway, client: httpx.AsyncClient, ready: Any) -> None:
        gateway.set_routes(_table())
        answer = await client.get("/v2/health/ready", headers={"host": "nope.x.example.com"})
        assert answer.status_code == 404
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ready(pb2.ServerReadyRequest(), metadata=(("host", "nope.x.example.com"),))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    _run(hook, test)
    assert hook.seen == []
