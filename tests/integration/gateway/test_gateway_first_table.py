"""A (re)started gateway holds requests until the control plane's first route table arrives:
never a 404 from the empty table it starts with (issue 12, item 9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import wait_until
from tests.integration.gateway.conftest import Gateway, RouteServer, service


def test_requests_before_the_first_route_table_are_held_then_routed(
    routes: RouteServer, toy_server
):
    gateway = Gateway(routes)  # the route server has no table for it yet
    try:
        with (
            ThreadPoolExecutor(2) as pool,
            httpx.Client(base_url=gateway.url, timeout=30) as client,
        ):
            known = pool.submit(client.get, "/serving/default/toy/v2/health/ready")
            unknown = pool.submit(client.get, "/serving/default/nope/v2/health/ready")
            wait_until(lambda: gateway.in_flight() == 2, "both requests held")
            # Its health answers meanwhile (what `ksrv up --detach` waits for).
            assert client.get("/ksrv/gateway/health").json()["version"] == 0
            assert not known.done() and not unknown.done()
            routes.publish([service("toy", [(100, [toy_server])])])
            assert known.result().status_code == 200
            assert unknown.result().status_code == 404  # the table says it is not there
    finally:
        gateway.process.stop()
