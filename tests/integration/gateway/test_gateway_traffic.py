"""Traffic counts from a real `ksrv gateway` process, read on the control plane's side.

The control plane's half runs here for real: the management API (route table + the traffic
endpoint) on its own event loop in a thread, with a `TrafficCollector`. The gateway polls the
routes, sends real requests to a real replica (tests/toys.py), and reports each second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ksrv.control.api_server import MAX_BODY_BYTES, ManagementAPI
from ksrv.control.autoscaler import Sample
from ksrv.control.routes import RoutePublisher
from ksrv.control.store import Store
from ksrv.control.traffic import TrafficCollector
from ksrv.http.server import HTTPServer
from tests.conftest import KSRV, ServerProcess, free_port, toy_script_server, wait_until
from tests.integration.gateway.conftest import service

R = TypeVar("R")
REVISION = "toy-predictor-00001"


class ControlPlane:
    """The management API with a route table and a traffic collector, on its own loop."""

    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = Store(state_dir / "ksrv.db")
        self.routes = RoutePublisher("example.com")
        self.traffic = TrafficCollector()
        self.activations: list[dict[str, str]] = []
        self.api = ManagementAPI(
            self.store, routes=self.routes, traffic=self.traffic, activate=self._activate
        )
        self.server = HTTPServer(self.api, MAX_BODY_BYTES, self.api.too_large)
        self.port = free_port()
        self.call(lambda: self.server.start("127.0.0.1", self.port))

    async def _activate(self, activation: Any) -> None:
        self.activations.append(dict(activation))

    def call(self, action: Callable[[], Any]) -> Any:
        """Run `action` on the control plane's loop (awaiting it if it is a coroutine)."""

        async def run() -> Any:
            result = action()
            return await result if asyncio.iscoroutine(result) else result

        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout=10)

    def samples(self, window_s: float = 60) -> list[Sample]:
        return self.call(lambda: self.traffic.samples("default", REVISION, time.time(), window_s))

    def close(self) -> None:
        self.call(self.api.close)
        self.call(lambda: self.server.shutdown(1.0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.store.close()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path)
    yield plane
    plane.close()


@dataclass(frozen=True)
class GatewayAt:
    url: str
    grpc_port: int


@pytest.fixture
def gateway(plane: ControlPlane) -> Iterator[GatewayAt]:
    port, grpc_port = free_port(), free_port()
    command = [
        *KSRV, "gateway", "--http-port", str(port), "--grpc-port", str(grpc_port),
        "--routes-url", f"http://127.0.0.1:{plane.port}/ksrv/v1/routes",
    ]  # fmt: skip
    process = ServerProcess(command, port, grpc_port=grpc_port)
    process.wait_ready(path="/ksrv/gateway/health")
    yield GatewayAt(f"http://127.0.0.1:{port}", grpc_port)
    process.stop()


@pytest.fixture(scope="module")
def toy() -> Iterator[ServerProcess]:
    server = toy_script_server(grpc=True)
    yield server
    server.stop()


def serve_toy(plane: ControlPlane, gateway: GatewayAt, toy: ServerProcess) -> None:
    plane.call(lambda: plane.routes.publish([service("toy", [(100, [toy])])]))
    wait_until(
        lambda: (
            httpx.get(gateway.url + "/ksrv/gateway/health").json()["version"]
            == plane.routes.version
        ),
        "the gateway serves the table",
    )


def test_arrivals_reach_the_control_plane_per_revision(plane, gateway, toy):
    serve_toy(plane, gateway, toy)
    with httpx.Client(base_url=gateway.url) as client:
        for _ in range(20):
            answer = client.get("/serving/default/toy/v2/health/ready")
            assert answer.status_code == 200
    wait_until(
        lambda: sum(s.requests for s in plane.samples()) == 20,
        "the control plane counted 20 requests to the revision",
        timeout_s=10,
    )
    samples = plane.samples()
    assert len({s.second for s in samples}) == len(samples)  # one sample per second
    assert all(s.concurrency >= 0 for s in samples)
    assert plane.traffic.reports >= 1


def test_requests_in_flight_are_averaged_into_request_seconds(plane, gateway, toy):
    serve_toy(plane, gateway, toy)
    body = {"instances": [[1]], "delay_s": 0.5}

    async def timed(client: httpx.AsyncClient) -> float:
        started = time.monotonic()
        answer = await client.post("/serving/default/toy/v1/models/slow:predict", json=body)
        assert answer.status_code == 200
        return time.monotonic() - started

    async def four_at_once() -> list[float]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            return await asyncio.gather(*(timed(client) for _ in range(4)))

    client_seconds = sum(asyncio.run(four_at_once()))
    done = int(time.time())
    wait_until(
        lambda: max((s.second for s in plane.samples()), default=0) >= done + 2,
        "the seconds after the last answer were reported",
        timeout_s=10,
    )
    samples = plane.samples()
    assert sum(s.requests for s in samples) == 4
    # Each request is in flight at the gateway for at least the model's half second, and for
    # no longer than its client waited: however the machine schedules the processes.
    request_seconds = sum(s.concurrency for s in samples)
    assert 2.0 <= request_seconds <= client_seconds
    assert max(s.concurrency for s in samples) <= 4.0


def test_the_traffic_endpoint_refuses_a_malformed_report_and_other_methods(plane):
    url = f"http://127.0.0.1:{plane.port}/ksrv/v1/traffic"
    bad = httpx.post(url, json={"reporter": "g", "first": 1, "last": 0, "samples": []})
    assert bad.status_code == 400
    assert "not a range" in bad.json()["message"]
    assert httpx.get(url).status_code == 405
    good = httpx.post(url, json={"reporter": "g", "first": 1, "last": 1, "samples": []})
    assert good.status_code == 204


def test_a_request_held_at_zero_asks_the_control_plane_for_a_replica_at_once(plane, gateway, toy):
    plane.call(lambda: plane.routes.publish([service("toy", [(100, [])])]))  # at zero
    url = f"{gateway.url}/serving/default/toy/v1/models/echo:predict"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, url, json={"instances": [[1]]}, timeout=30)
        wait_until(lambda: plane.activations != [], "the activation")
        assert plane.activations[0] == {"namespace": "default", "revision": REVISION}
        assert not held.done()
        serve_toy(plane, gateway, toy)  # the replica is ready: the table brings it
        assert held.result().status_code == 200
    # Held, the request counted for the revision it waited for.
    wait_until(lambda: sum(s.requests for s in plane.samples()) >= 1, "the held request counted")
    url = f"http://127.0.0.1:{plane.port}/ksrv/v1/activate"
    assert httpx.post(url, json={"namespace": "default"}).status_code == 400
    assert httpx.get(url).status_code == 405


def test_grpc_requests_are_counted_too(plane, gateway, toy):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    serve_toy(plane, gateway, toy)
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{gateway.grpc_port}")
    try:
        for _ in range(5):
            assert client.is_model_ready("echo", headers={"host": "toy.default.example.com"})
    finally:
        client.close()
    wait_until(
        lambda: sum(s.requests for s in plane.samples()) == 5,
        "the control plane counted 5 gRPC calls to the revision",
        timeout_s=10,
    )
