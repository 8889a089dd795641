"""The one request path's decisions: retry on another replica, hold, give up; driven by a
transport that answers from a script (a `Transport` like REST's and gRPC's, minus sockets)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest

from ksrv.errors import NoReadyReplica, ServiceNotFound, UpstreamFailed, UpstreamTimeout
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.dispatch import Dispatcher
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match, parse_table
from ksrv.http.upstream import UpstreamDropped

HOST = "svc.ns.example.com"


class ScriptedTransport:
    """Answers each attempt with the next outcome scripted for that address."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.balancer: Balancer[None] = Balancer(lambda address: None)
        self.attempts: list[tuple[str, dict[str, int]]] = []
        self.attempted = asyncio.Event()

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        return backend.http

    async def send(self, endpoint: Endpoint[None], call: Call, match: Match) -> str:
        in_flight = {a: e.outstanding for a, e in self.balancer.endpoints.items()}
        self.attempts.append((endpoint.address, in_flight))
        self.attempted.set()
        outcome = self.script[endpoint.address].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)


def _table(replicas: list[str], version: int = 1, timeout_s: float = 60.0, failed: str = "") -> Any:
    backend = {"revision": "r1", "percent": 100, "replicas": [{"http": r} for r in replicas]}
    component: dict[str, Any] = {"backends": [backend]}
    if failed:
        component["failed"] = failed
    service = {
        "namespace": "ns",
        "name": "svc",
        "timeout_s": timeout_s,
        "components": {"predictor": component},
    }
    return parse_table({"version": version, "domain": "example.com", "services": [service]})


def _dispatch(dispatcher: Dispatcher, transport: ScriptedTransport) -> Any:
    call = Call("rest", HOST, b"/v2/models/m/infer", {}, None)
    return dispatcher.dispatch(transport, call)


def _dispatcher(table: Any) -> Dispatcher:
    dispatcher = Dispatcher(random.Random(0))
    dispatcher.set_table(table)
    return dispatcher


def test_a_retryable_failure_goes_to_another_replica_which_no_longer_counts_the_first():
    async def run() -> None:
        transport = ScriptedTransport(
            {"a:1": [UpstreamDropped("refused", True, is_refused=True)], "b:1": ["ok"]}
        )
        dispatcher = _dispatcher(_table(["a:1", "b:1"]))
        transport.balancer._turn = -1  # the first choice is "a:1"
        assert await _dispatch(dispatcher, transport) == "ok"
        assert [address for address, _ in transport.attempts] == ["a:1", "b:1"]
        assert transport.attempts[1][1] == {"a:1": 0, "b:1": 1}
        assert transport.balancer.endpoints["a:1"].down_until > 0  # refused: put last

    asyncio.run(run())


def test_a_failure_after_the_answer_began_is_not_retried():
    async def run() -> None:
        transport = ScriptedTransport({"a:1": [UpstreamDropped("cut mid-answer", False)]})
        with pytest.raises(UpstreamDropped, match="cut mid-answer"):
            await _dispatch(_dispatcher(_table(["a:1"])), transport)
        assert len(transport.attempts) == 1

    asyncio.run(run())


def test_when_every_try_fails_the_request_is_held_until_a_new_table_brings_a_replica():
    async def run() -> None:
        refused = [UpstreamDropped("refused", True, is_refused=True) for _ in range(3)]
        transport = ScriptedTransport({"a:1": refused, "b:1": ["from b"]})
        dispatcher = _dispatcher(_table(["a:1"]))
        held = asyncio.ensure_future(_dispatch(dispatcher, transport))
        while len(transport.attempts) < 3:  # the first try and two retries, all refused
            transport.attempted.clear()
            await transport.attempted.wait()
        assert not held.done()
        dispatcher.set_table(_table(["b:1"], version=2))
        assert await held == "from b"
        assert transport.balancer.endpoints["a:1"].outstanding == 0

    asyncio.run(run())


def test_held_for_a_revision_without_replicas_until_the_routes_timeout_then_504():
    async def run() -> None:
        dispatcher = _dispatcher(_table([], timeout_s=0.01))
        with pytest.raises(UpstreamTimeout, match=r"no ready replica .* within 0\.01 s"):
            await _dispatch(dispatcher, ScriptedTransport({}))

    asyncio.run(run())


def test_held_with_no_revision_to_wait_for_until_the_hold_time_then_no_ready_replica():
    async def run() -> None:
        table = _table([], timeout_s=0.01)
        table.services[0].components["predictor"] = dataclasses.replace(
            table.services[0].components["predictor"], backends=()
        )
        dispatcher = _dispatcher(table)
        with pytest.raises(NoReadyReplica, match=r"within 0\.01 s"):
            await _dispatch(dispatcher, ScriptedTransport({}))

    asyncio.run(run())


def test_a_replicas_own_unavailable_is_passed_back_rather_than_held():
    async def run() -> None:
        said = UpstreamFailed("the replica said: model not ready")
        unavailable = [UpstreamDropped("unavailable", True, answer=said) for _ in range(3)]
        transport = ScriptedTransport({"a:1": unavailable})
        with pytest.raises(UpstreamFailed) as raised:
            await _dispatch(_dispatcher(_table(["a:1"])), transport)
        assert raised.value is said

    asyncio.run(run())


def test_an_unknown_host_is_service_not_found():
    async def run() -> None:
        call = Call("rest", "other.example.com", b"/x", {}, None)
        with pytest.raises(ServiceNotFound, match=r"other\.example\.com"):
            await _dispatcher(_table(["a:1"])).dispatch(ScriptedTransport({}), call)

    asyncio.run(run())


def test_a_failed_component_is_answered_at_once_with_the_reason_instead_of_held():
    async def run() -> None:
        dispatcher = _dispatcher(_table([], failed="ModelLoadFailed: no such file"))
        with pytest.raises(NoReadyReplica, match=r"predictor of ns/svc .*: ModelLoadFailed"):
            await _dispatch(dispatcher, ScriptedTransport({}))

    asyncio.run(run())


def test_a_request_held_while_starting_is_answered_once_the_table_says_failed():
    async def run() -> None:
        dispatcher = _dispatcher(_table([]))  # starting: held, as before
        held = asyncio.ensure_future(_dispatch(dispatcher, ScriptedTransport({})))
        await asyncio.sleep(0)
        assert not held.done()
        dispatcher.set_table(_table([], version=2, failed="InvalidSpec: bad"))
        with pytest.raises(NoReadyReplica, match="InvalidSpec: bad"):
            await asyncio.wait_for(held, 5)

    asyncio.run(run())


def test_failed_is_ignored_while_a_backend_has_replicas():
    async def run() -> None:
        dispatcher = _dispatcher(_table(["a:1"], failed="stale"))
        assert await _dispatch(dispatcher, ScriptedTransport({"a:1": ["ok"]})) == "ok"

    asyncio.run(run())


def test_a_tag_header_held_until_its_revision_has_a_replica_goes_there_alone():
    def table(tagged_replicas: list[str], version: int) -> Any:
        backends = [
            {"revision": "r2", "percent": 0, "tag": "latest",
             "replicas": [{"http": r} for r in tagged_replicas]},
            {"revision": "r1", "percent": 100, "tag": "prev", "replicas": [{"http": "a:1"}]},
        ]  # fmt: skip
        service = {
            "namespace": "ns",
            "name": "svc",
            "components": {"predictor": {"backends": backends}},
        }
        return parse_table({"version": version, "domain": "example.com", "services": [service]})

    async def run() -> None:
        dispatcher = _dispatcher(table([], 1))
        transport = ScriptedTransport({"b:1": ["from r2"], "a:1": ["from r1"]})
        call = Call("rest", HOST, b"/v1/models/m:predict", {}, None, tag="latest")
        held = asyncio.ensure_future(dispatcher.dispatch(transport, call))
        await asyncio.sleep(0)
        assert not held.done()  # r2 has no replica yet; r1 is not what was asked for
        dispatcher.set_table(table(["b:1"], 2))
        assert await asyncio.wait_for(held, 5) == "from r2"
        assert call.backend is not None and call.backend.revision == "r2"
        untagged = Call("rest", HOST, b"/v1/models/m:predict", {}, None)
        assert await dispatcher.dispatch(transport, untagged) == "from r1"

    asyncio.run(run())
