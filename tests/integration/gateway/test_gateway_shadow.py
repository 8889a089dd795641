"""Shadow copies through a real gateway (in process) to a real replica, over gRPC and REST:
every request answered by its backend, the copies counted as the traffic report carries them."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, toy_script_server
from tests.integration.gateway.conftest import service

grpcclient = pytest.importorskip("tritonclient.grpc")
HOST = "toy.default.example.com"


def _with_shadow(toy: Any, shadow: str, percent: float = 100) -> dict[str, Any]:
    table = service("toy", [(100, [toy])])
    table["components"]["predictor"]["shadow"] = {
        "revision": "toy-predictor-00002",
        "percent": percent,
        "replicas": [{"http": shadow, "grpc": shadow}],
    }
    return {"version": 1, "domain": "example.com", "services": [table]}


def test_grpc_and_rest_requests_are_copied_and_counted():
    from ksrv.gateway.app import Gateway

    toy = toy_script_server()
    dead = f"127.0.0.1:{free_port()}"

    async def run() -> None:
        gateway = Gateway(shadow_rng=random.Random(5))
        await gateway.start("127.0.0.1", 0, grpc_port=free_port())
        client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{gateway.grpc_port}")
        try:
            # The shadow is the toy's own gRPC port: 10 copies, all answered.
            gateway.set_routes(_with_shadow(toy, f"127.0.0.1:{toy.grpc_port}"))
            for _ in range(10):
                live = await asyncio.to_thread(client.is_server_live, headers={"host": HOST})
                assert live
            await gateway.shadows.drain()
            (counts,) = gateway.shadows.report()
            assert (counts["sent"], counts["errors"], counts["skipped"]) == (10, 0, 0)

            # A shadow nobody listens at: the answers still come, the copies are errors;
            # a body over the buffering limit is streamed, so its copy is skipped.
            gateway.set_routes(_with_shadow(toy, dead))
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, headers={"host": HOST}) as http:
                for _ in range(4):
                    assert (await http.get("/v2/health/live")).status_code == 200
                await gateway.shadows.drain()
                big = b"[" + b"1," * 600_000 + b"1]"
                await http.post("/v2/models/toy/infer", content=big)
            await gateway.shadows.drain()
            (counts,) = gateway.shadows.report()
            assert (counts["sent"], counts["errors"], counts["skipped"]) == (14, 4, 1)
        finally:
            client.close()
            await gateway.stop()

    try:
        asyncio.run(run())
    finally:
        toy.stop()
