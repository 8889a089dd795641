"""The gateway's token check (`gateway/auth.py`) on the test's own loop, against a real replica.

A protected service answers 401 without a token and 403 with another namespace's, and neither
reaches the replica, nor its shadow (the `calls` toy counts what reached it); an open service
needs no token, and with no protected service the check is not on the path at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ksrv.protocol.tokens import token_hash
from tests.conftest import toy_script_server
from tests.integration.gateway.conftest import _replica, service

MINE, THEIRS = "ksrv_mine", "ksrv_theirs"
GRANTS = [
    {"sha256": token_hash(MINE), "namespace": "default", "role": "invoke"},
    {"sha256": token_hash(THEIRS), "namespace": "team-b", "role": "invoke"},
]


def table(version: int, toy: Any, is_protected: bool) -> dict[str, Any]:
    calls = service("calls", [(100, [toy])])
    calls["components"]["predictor"]["shadow"] = {
        "revision": "calls-predictor-shadow", "percent": 100, "replicas": [_replica(toy)],
    }  # fmt: skip
    if is_protected:
        calls["enable_auth"] = True
    return {
        "version": version, "domain": "example.com", "tokens": GRANTS,
        "services": [calls, service("open", [(100, [toy])])],
    }  # fmt: skip


def test_a_protected_service_refuses_before_any_replica_and_an_open_one_needs_no_token():
    from ksrv.gateway.app import Gateway

    toy = toy_script_server(grpc=False)

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=0)
        try:
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:

                async def calls(headers: dict[str, str]) -> httpx.Response:
                    path = "/serving/default/calls/v1/models/calls:predict"
                    return await client.post(path, json={"instances": [1]}, headers=headers)

                gateway.set_routes(table(1, toy, is_protected=False))
                assert gateway.auth not in gateway.dispatcher.hooks  # nothing protected: no check
                gateway.set_routes(table(2, toy, is_protected=True))
                assert gateway.dispatcher.hooks[0] is gateway.auth  # before any hook counts it
                missing = await calls({})
                assert missing.status_code == 401
                assert missing.headers["www-authenticate"] == 'Bearer realm="ksrv"'
                assert "bearer token" in missing.json()["error"]
                assert (await calls({"authorization": "Bearer ksrv_x"})).status_code == 401
                assert (await calls({"authorization": MINE})).status_code == 401  # no scheme
                other = await calls({"authorization": f"Bearer {THEIRS}"})
                assert other.status_code == 403 and "team-b" in other.json()["error"]
                first = await calls({"authorization": f"Bearer {MINE}"})
                assert first.json() == {"calls": 1}  # nothing refused reached it or its shadow
                opened = await client.post(
                    "/serving/default/open/v1/models/echo:predict", json={"instances": [1]}
                )
                assert opened.status_code == 200
        finally:
            await gateway.stop()

    try:
        asyncio.run(run())
    finally:
        toy.stop()
