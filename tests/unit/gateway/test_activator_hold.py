"""The activator on the one request path: requests for a revision at zero are held, the
control plane is asked for a replica at once, the queue is bounded (429), and
`containerConcurrency` is a hard per-replica limit with a first-come-first-served queue.
Driven by a transport whose answers a test releases (no sockets)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from ksrv.errors import Overloaded
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.dispatch import Dispatcher
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match, parse_table
from ksrv.gateway.traffic import TrafficCounter

HOST = "svc.ns.example.com"


class GatedTransport:
    """Each attempt waits until the test opens the gate; records concurrency per replica."""

    def __init__(self) -> None:
        self.balancer: Balancer[None] = Balancer(lambda address: None)
        self.gate = asyncio.Event()
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.order: list[str] = []

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        return backend.http

    async def send(self, endpoint: Endpoint[None], call: Call, match: Match) -> str:
        address = endpoint.address
        self.in_flight[address] = self.in_flight.get(address, 0) + 1
        self.most[address] = max(self.most.get(address, 0), self.in_flight[address])
        try:
            await self.gate.wait()
            self.order.append(call.payload)
            return f"{call.payload}@{address}"
        finally:
            self.in_flight[address] -= 1


class Pokes:
    def __init__(self) -> None:
        self.revisions: list[tuple[str, str]] = []
        self.poked = asyncio.Event()

    def poke(self, namespace: str, revision: str) -> None:
        self.revisions.append((namespace, revision))
        self.poked.set()


def _table(replicas: list[str], version: int = 1, concurrency: int = 0) -> Any:
    backend = {"revision": "r1", "percent": 100, "replicas": [{"http": r} for r in replicas]}
    component: dict[str, Any] = {"backends": [backend], "container_concurrency": concurrency}
    service = {
        "namespace": "ns",
        "name": "svc",
        "timeout_s": 30,
        "components": {"predictor": component},
    }
    return parse_table({"version": version, "domain": "example.com", "services": [service]})


def _call(tag: str) -> Call:
    return Call("rest", HOST, b"/v1/models/m:predict", {}, tag)


def test_a_request_for_a_revision_at_zero_is_held_and_the_control_plane_asked_at_once():
    async def run() -> None:
        pokes = Pokes()
        counter = TrafficCounter(clock=lambda: 100.0)
        dispatcher = Dispatcher(random.Random(0), [counter], activator=pokes)
        dispatcher.set_table(_table([]))
        transport = GatedTransport()
        transport.gate.set()
        call = _call("a")
        held = asyncio.ensure_future(dispatcher.dispatch(transport, call))
        await pokes.poked.wait()
        assert pokes.revisions == [("ns", "r1")]
        assert not held.done()
        # Held, it is already the revision's demand for the autoscaler.
        assert call.backend is not None and call.backend.revision == "r1"
        _, samples = counter.sample(101.0)
        assert [(s["revision"], s["concurrency"]) for s in samples] == [("r1", 1.0)]
        dispatcher.set_table(_table(["a:1"], version=2))
        assert await held == "a@a:1"

    asyncio.run(run())


def test_held_requests_beyond_the_queue_bound_are_answered_429():
    async def run() -> None:
        dispatcher = Dispatcher(random.Random(0), activator=Pokes(), max_held=2)
        dispatcher.set_table(_table([]))
        transport = GatedTransport()
        transport.gate.set()
        held = [asyncio.ensure_future(dispatcher.dispatch(transport, _call(t))) for t in "ab"]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="2 requests are already queued"):
            await dispatcher.dispatch(transport, _call("c"))
        dispatcher.set_table(_table(["a:1"], version=2))
        assert sorted(await asyncio.gather(*held)) == ["a@a:1", "b@a:1"]

    asyncio.run(run())


def test_container_concurrency_is_a_hard_limit_per_replica_and_the_queue_is_fifo():
    async def run() -> None:
        dispatcher = Dispatcher(random.Random(0))
        dispatcher.set_table(_table(["a:1", "b:1"], concurrency=2))
        transport = GatedTransport()
        tags = [str(i) for i in range(8)]
        calls = []
        for tag in tags:
            calls.append(asyncio.ensure_future(dispatcher.dispatch(transport, _call(tag))))
            await asyncio.sleep(0)  # arrive in order
        await asyncio.sleep(0.01)
        assert transport.in_flight == {"a:1": 2, "b:1": 2}
        assert transport.balancer.queued == 4
        transport.gate.set()
        answers = await asyncio.gather(*calls)
        assert [answer.split("@")[0] for answer in answers] == tags
        assert transport.most == {"a:1": 2, "b:1": 2}
        assert transport.order[4:] == tags[4:]  # the queued four went in arrival order
        assert all(e.outstanding == 0 for e in transport.balancer.endpoints.values())

    asyncio.run(run())


def test_a_new_replica_in_the_table_takes_requests_queued_at_full_ones():
    async def run() -> None:
        dispatcher = Dispatcher(random.Random(0))
        dispatcher.set_table(_table(["a:1"], concurrency=1))
        transport = GatedTransport()
        first = asyncio.ensure_future(dispatcher.dispatch(transport, _call("first")))
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(dispatcher.dispatch(transport, _call("queued")))
        await asyncio.sleep(0.01)
        assert transport.balancer.queued == 1
        dispatcher.set_table(_table(["a:1", "b:1"], version=2, concurrency=1))
        await asyncio.sleep(0.01)
        assert transport.in_flight == {"a:1": 1, "b:1": 1}
        transport.gate.set()
        assert await queued == "queued@b:1" and await first == "first@a:1"

    asyncio.run(run())


def test_a_released_slot_goes_to_the_oldest_waiter_not_to_a_newcomer():
    async def run() -> None:
        balancer: Balancer[None] = Balancer(lambda address: None)
        first = balancer.take(("a:1",), 1)
        assert first is not None and balancer.take(("a:1",), 1) is None
        waiter = asyncio.ensure_future(balancer.wait(("a:1",)))
        await asyncio.sleep(0)
        balancer.release(first)
        assert balancer.take(("a:1",), 1) is None  # handed over, not freed
        assert await waiter is first and first.outstanding == 1
        balancer.release(first)
        assert first.outstanding == 0

    asyncio.run(run())
