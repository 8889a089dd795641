"""Shadow traffic in the gateway: the route's `shadow` parsed, and which requests are copied
(seeded draws, exact counts), what a copy counts as, and that the real answer never waits."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from ksrv.errors import InvalidInput, UpstreamTimeout
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.dispatch import Dispatcher
from ksrv.gateway.grpc_proxy import GRPCRequest
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match, RouteTable, parse_table
from ksrv.gateway.shadow import Shadower
from ksrv.http.upstream import UpstreamResponse

HOST = "svc.ns.example.com"


def _table(percent: float | None = 50, shadow_replicas: tuple[str, ...] = ("s:1",)) -> RouteTable:
    component: dict[str, Any] = {
        "backends": [
            {"revision": "svc-predictor-00002", "percent": 0, "replicas": [], "tag": "latest"},
            {"revision": "svc-predictor-00001", "percent": 100, "replicas": [{"http": "a:1"}]},
        ]
    }
    if percent is not None:
        component["shadow"] = {
            "revision": "svc-predictor-00002",
            "percent": percent,
            "replicas": [{"http": r, "grpc": ""} for r in shadow_replicas],
        }
    service = {
        "namespace": "ns",
        "name": "svc",
        "timeout_s": 5,
        "components": {"predictor": component},
    }
    return parse_table({"version": 1, "domain": "example.com", "services": [service]})


class Recorder:
    """A transport: the real replica answers 200 at once; the shadow as `shadow_answer` says."""

    def __init__(self, shadow_answer: Any = 200) -> None:
        self.balancer: Balancer[None] = Balancer(lambda address: None)
        self.shadow_answer = shadow_answer
        self.sent: list[str] = []
        self.copied: list[Any] = []
        self.release = asyncio.Event()
        self.release.set()

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        return backend.http

    async def send(self, endpoint: Endpoint[None], call: Call, match: Match) -> UpstreamResponse:
        self.sent.append(endpoint.address)
        if endpoint.address == "a:1":
            return UpstreamResponse(200, [], b"real")
        self.copied.append(call.payload)
        await self.release.wait()
        if isinstance(self.shadow_answer, BaseException):
            raise self.shadow_answer
        return UpstreamResponse(self.shadow_answer, [], b"shadow")


class Payload:
    def __init__(self, body_stream: Any = None) -> None:
        self.body_stream = body_stream


def _dispatcher(table: RouteTable, seed: int = 3, max_in_flight: int = 64) -> Dispatcher:
    dispatcher = Dispatcher(random.Random(0), shadows=Shadower(random.Random(seed), max_in_flight))
    dispatcher.set_table(table)
    return dispatcher


async def _requests(
    dispatcher: Dispatcher, transport: Recorder, count: int, settle: bool = True, **kw: Any
) -> None:
    """`count` requests one after the other; with `settle`, each one's copy ends before the
    next (as copies keep pace with a real client's requests)."""
    for _ in range(count):
        call = Call("rest", HOST, b"/v1/models/m:predict", {}, Payload(**kw))
        answer = await dispatcher.dispatch(transport, call)
        assert answer.body == b"real"
        if settle:
            await dispatcher.shadows.drain()


def _counts(dispatcher: Dispatcher) -> dict[str, int]:
    (report,) = dispatcher.shadows.report()
    assert (report["namespace"], report["revision"]) == ("ns", "svc-predictor-00002")
    return {key: report[key] for key in ("sent", "errors", "skipped")}  # type: ignore[literal-required]


def test_the_route_names_the_shadow_as_a_one_backend_component():
    component = _table(25).services[0].components["predictor"]
    assert component.shadow is not None
    assert component.shadow.percent == 25
    (backend,) = component.shadow.component.backends
    assert (backend.revision, backend.http) == ("svc-predictor-00002", ("s:1",))
    assert component.tags["latest"].shadow is None  # a tag reaches the revision alone
    assert _table(None).services[0].components["predictor"].shadow is None


@pytest.mark.parametrize("percent", [0, -1, 100.5])
def test_a_shadow_percent_outside_0_to_100_is_refused(percent):
    with pytest.raises(InvalidInput, match="shadow percent"):
        _table(percent)


def test_the_seeded_draw_copies_exactly_the_expected_requests_and_every_answer_is_real():
    async def run() -> None:
        transport = Recorder()
        dispatcher = _dispatcher(_table(50), seed=3)
        await _requests(dispatcher, transport, 200)
        await dispatcher.shadows.drain()
        draws = random.Random(3)
        expected = sum(draws.random() * 100 < 50 for _ in range(200))
        assert _counts(dispatcher) == {"sent": expected, "errors": 0, "skipped": 0}
        assert transport.sent.count("s:1") == expected
        assert transport.sent.count("a:1") == 200
        assert transport.balancer.endpoints["s:1"].outstanding == 0

    asyncio.run(run())


@pytest.mark.parametrize(
    "failure", [503, UpstreamTimeout("slow"), ConnectionResetError("reset")], ids=str
)
def test_non_2xx_transport_failures_and_timeouts_count_as_errors(failure):
    async def run() -> None:
        transport = Recorder(shadow_answer=failure)
        dispatcher = _dispatcher(_table(100))
        await _requests(dispatcher, transport, 5)
        await dispatcher.shadows.drain()
        assert _counts(dispatcher) == {"sent": 5, "errors": 5, "skipped": 0}

    asyncio.run(run())


def test_copies_beyond_the_in_flight_bound_are_skipped_and_never_delay_the_answer():
    async def run() -> None:
        transport = Recorder()
        transport.release.clear()  # the shadow never answers until released
        dispatcher = _dispatcher(_table(100), max_in_flight=2)
        await _requests(dispatcher, transport, 5, settle=False)  # answered while copies hang
        assert _counts(dispatcher) == {"sent": 2, "errors": 0, "skipped": 3}
        transport.release.set()
        await dispatcher.shadows.drain()

    asyncio.run(run())


def test_streamed_bodies_and_a_shadow_without_replicas_are_skipped():
    async def run() -> None:
        transport = Recorder()
        dispatcher = _dispatcher(_table(100))
        await _requests(dispatcher, transport, 3, body_stream=object())
        assert _counts(dispatcher) == {"sent": 0, "errors": 0, "skipped": 3}
        dispatcher = _dispatcher(_table(100, shadow_replicas=()))
        await _requests(dispatcher, transport, 2)
        assert _counts(dispatcher) == {"sent": 0, "errors": 0, "skipped": 2}
        assert "s:1" not in transport.sent

    asyncio.run(run())


def test_counts_of_a_revision_no_longer_the_shadow_are_forgotten():
    async def run() -> None:
        dispatcher = _dispatcher(_table(100))
        await _requests(dispatcher, Recorder(), 1)
        await dispatcher.shadows.drain()
        assert dispatcher.shadows.report()
        dispatcher.set_table(_table(None))
        assert dispatcher.shadows.report() == []

    asyncio.run(run())


def test_a_grpc_copy_is_the_same_request_without_the_clients_deadline():
    async def run() -> None:
        transport = Recorder()
        dispatcher = _dispatcher(_table(100))
        request = GRPCRequest("/inference.GRPCInferenceService/ModelInfer", b"msg", (), 1.0)
        call = Call("grpc", HOST, request.method.encode(), {}, request)
        await dispatcher.dispatch(transport, call)
        await dispatcher.shadows.drain()
        (copied,) = transport.copied
        assert (copied.method, copied.message, copied.deadline) == (request.method, b"msg", None)
        assert request.deadline == 1.0  # the real request is untouched
        assert _counts(dispatcher) == {"sent": 1, "errors": 0, "skipped": 0}

    asyncio.run(run())
