"""A service the route table marks `failed` is answered 503 (gRPC UNAVAILABLE) at once with
the reason; one still starting is held as before (the Gateway on the test's loop)."""

from __future__ import annotations

import asyncio

import grpc
import httpx

from tests.conftest import free_port, wait_until_async
from tests.integration.gateway.conftest import service

REASON = "ModelLoadFailed: storageUri /models/nope does not exist"


def _table(version: int, failed: str = "") -> dict:
    entry = service("iris", [(100, [])])
    if failed:
        entry["components"]["predictor"]["failed"] = failed
    return {"version": version, "domain": "example.com", "services": [entry]}


def test_a_failed_service_is_503_and_unavailable_with_the_reason_at_once():
    from ksrv.gateway.app import Gateway

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=free_port())
        try:
            gateway.set_routes(_table(1, REASON))
            base = f"http://127.0.0.1:{gateway.http_port}"
            # The hold would last the service's 60 s timeout: 5 s is only there to fail fast.
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                answer = await client.post("/serving/default/iris/v2/models/iris/infer", json={})
            assert answer.status_code == 503
            assert REASON in answer.json()["error"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
                call = channel.unary_unary("/inference.GRPCInferenceService/ModelReady")
                try:
                    await call(b"", metadata=(("host", "iris.default.example.com"),), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    assert REASON in (exc.details() or "")
                else:
                    raise AssertionError("a failed service answered OK")
        finally:
            await gateway.stop()

    asyncio.run(run())


def test_a_request_held_while_starting_gets_the_reason_when_the_service_fails():
    from ksrv.gateway.app import Gateway

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0)
        try:
            gateway.set_routes(_table(1))  # starting: requests are held
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                held = asyncio.ensure_future(client.get("/serving/default/iris/v2/health/ready"))
                await wait_until_async(lambda: gateway.in_flight == 1, "the request is held")
                assert not held.done()
                gateway.set_routes(_table(2, REASON))
                answer = await held
            assert answer.status_code == 503
            assert REASON in answer.json()["error"]
        finally:
            await gateway.stop()

    asyncio.run(run())
