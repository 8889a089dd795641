"""The Gateway class on the test's own event loop, its table set with `set_routes`."""

from __future__ import annotations

import asyncio
import os

import httpx

from tests.conftest import toy_script_server
from tests.integration.gateway.conftest import service


def test_set_routes_serves_a_table_without_a_control_plane():
    from ksrv.gateway.app import Gateway

    toy = toy_script_server()

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=0)
        try:
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                missing = await client.get("/serving/default/toy/v2/health/ready")
                assert missing.status_code == 404
                gateway.set_routes({"version": 7, "domain": "example.com",
                                    "services": [service("toy", [(100, [toy])])]})  # fmt: skip
                ready = await client.get("/serving/default/toy/v2/health/ready")
                assert ready.status_code == 200
                health = await client.get("/ksrv/gateway/health")
                assert health.json() == {"version": 7, "pid": os.getpid(), "in_flight": 0}
        finally:
            await gateway.stop()

    try:
        asyncio.run(run())
    finally:
        toy.stop()
