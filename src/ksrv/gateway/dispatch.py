"""The gateway's one request path, shared by REST and gRPC: route, hold, balance, retry.

`Dispatcher.dispatch(transport, call)` matches the route table, runs the hooks, picks a
backend by traffic percent and a replica by the balancer, and hands the request to the
transport (`proxy.RESTTransport`, `grpc_proxy.GRPCTransport`), which only moves bytes. A
transport raises a retryable `UpstreamDropped` when nothing reached or came back from the
replica; the request then goes to another replica (at most `MAX_RETRIES` times), and when
none is left it is held like one with no ready replica: Knative's activator, in-process. A
held request waits for the next route table (or polls every `HOLD_POLL_S`, for replicas that
refused and may be back) until the hold time is up, unless the table says the component
`failed` (no replica will come without a change): that is answered 503 with the reason at
once. A gateway still waiting for its first table holds every request too, never answering
404 from the empty one. Failures are `KsrvError`s; each transport turns them into its status
through `protocol/status.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from ksrv.errors import NoReadyReplica, ServerNotReady, ServiceNotFound
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.hooks import Call, Hook
from ksrv.gateway.routes import Backend, Match, RouteTable
from ksrv.gateway.upstream import UpstreamDropped

A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)

MAX_RETRIES = 2
# Longest a request waits for a ready replica (capped further by the route's timeout).
MAX_HOLD_S = 30.0
HOLD_POLL_S = 0.25


class Transport(Protocol[A_co]):
    """What the path needs from REST or gRPC: addresses, endpoints, and one attempt."""

    balancer: Balancer[Any]

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        """The replica addresses of `backend` this transport can reach (may be empty)."""
        ...

    async def send(self, endpoint: Endpoint[Any], call: Call, match: Match) -> A_co:
        """One attempt on `endpoint` (`call.payload` is the transport's own request).

        Raises:
            UpstreamDropped: with `is_retryable` when the request may go to another replica.
        """
        ...


class Dispatcher:
    """Routes calls of any transport over the current route table."""

    def __init__(
        self,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        has_table: bool = True,
    ) -> None:
        """`has_table=False`: a table is on its way (the control plane's); until it arrives,
        requests are held, not answered 404 from the empty one."""
        self.table = RouteTable.empty()
        self.has_table = has_table
        self.rng = rng if rng is not None else random.Random()
        self.hooks = tuple(hooks)
        self._table_changed = asyncio.Event()

    def set_table(self, table: RouteTable) -> None:
        """Serve `table` from the next request on and wake every held request."""
        self.table = table
        self.has_table = True
        changed, self._table_changed = self._table_changed, asyncio.Event()
        changed.set()

    def add_hook(self, hook: Hook) -> None:
        """Call `hook` on every request from the next one on."""
        self.hooks = (*self.hooks, hook)

    async def dispatch(self, transport: Transport[A], call: Call) -> A:
        """The transport's answer from a replica of the route `call` matches.

        Raises:
            ServiceNotFound: no route for the call's host or path.
            ServerNotReady: no route table arrived within the hold time.
            NoReadyReplica: no replica became ready within the hold time.
            UpstreamFailed, UpstreamTimeout: as the transport raised them.
        """
        match = self.table.match(call.host, call.target, call.tag)
        if match is None:
            match = await self._first_table(call) if not self.has_table else None
            if match is None:
                raise _not_found(call)
        call.match = match
        hooks = self.hooks
        if not hooks:
            return await self._route(transport, call, match)
        try:
            for hook in hooks:
                hook.on_request(call)
            answer = await self._route(transport, call, match)
        except BaseException as exc:
            for hook in hooks:
                hook.on_response(call, exc)
            raise
        for hook in hooks:
            hook.on_response(call, None)
        return answer

    async def _first_table(self, call: Call) -> Match | None:
        """A (re)started gateway has no table yet: hold the call until the first one comes
        (then match it there) or the hold time is up."""
        try:
            async with asyncio.timeout(MAX_HOLD_S):
                while not self.has_table:
                    await self._table_changed.wait()
        except TimeoutError:
            raise ServerNotReady(
                f"the gateway has had no route table from the control plane for {MAX_HOLD_S:g} s"
            ) from None
        return self.table.match(call.host, call.target, call.tag)

    async def _route(self, transport: Transport[A], call: Call, match: Match) -> A:
        # The common case inline: a backend with a replica that answers the first time.
        backend = match.component.choose(self.rng)
        if backend is not None:
            addresses = transport.addresses(backend)
            if addresses:
                call.backend = backend
                endpoint = transport.balancer.choose(addresses)
                call.replica = endpoint.address
                endpoint.outstanding += 1
                try:
                    return await transport.send(endpoint, call, match)
                except UpstreamDropped as exc:
                    if not exc.is_retryable:
                        raise
                    failure = exc
                finally:
                    endpoint.outstanding -= 1
                return await self._retry(transport, call, match, addresses, endpoint, failure)
        elif match.component.failed is not None:
            raise _failed(match)
        return await self._hold(transport, call, match, None)

    async def _retry(
        self,
        transport: Transport[A],
        call: Call,
        match: Match,
        addresses: tuple[str, ...],
        endpoint: Endpoint[Any],
        failure: UpstreamDropped,
    ) -> A:
        """After a first attempt failed retryably: other replicas, then hold."""
        tried = [endpoint]
        if failure.is_refused:
            endpoint.mark_down()
        for _ in range(MAX_RETRIES):
            endpoint = transport.balancer.choose(addresses, tried)
            call.replica = endpoint.address
            endpoint.outstanding += 1
            try:
                return await transport.send(endpoint, call, match)
            except UpstreamDropped as exc:
                if not exc.is_retryable:
                    raise
                if exc.is_refused:
                    endpoint.mark_down()
                tried.append(endpoint)
                failure = exc
            finally:
                endpoint.outstanding -= 1
        if failure.answer is not None:
            raise failure.answer  # the replica itself said "unavailable": no reason to hold
        failure = UpstreamDropped(f"{failure.message} (after {MAX_RETRIES} retries)", True)
        return await self._hold(transport, call, match, failure)

    async def _hold(
        self, transport: Transport[A], call: Call, match: Match, failure: UpstreamDropped | None
    ) -> A:
        """No replica could take the request (none ready, or all refused): hold it until the
        table brings one or the hold time, counted from now, is up."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            hold_s = min(match.component.timeout_s or match.service.timeout_s, MAX_HOLD_S)
            remaining = started + hold_s - loop.time()
            if remaining <= 0:
                if failure is not None:
                    raise failure
                service = match.service
                raise NoReadyReplica(
                    f"no ready replica for {match.component.name} of "
                    f"{service.namespace}/{service.name} within {hold_s:g} s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._table_changed.wait(), min(remaining, HOLD_POLL_S))
            rematched = self.table.match(call.host, call.target, call.tag)
            if rematched is None:
                raise _not_found(call)
            match = call.match = rematched
            backend = match.component.choose(self.rng)
            addresses = transport.addresses(backend) if backend is not None else ()
            if not addresses:
                if match.component.failed is not None:
                    raise _failed(match)  # it was starting when held; it has failed since
                continue
            call.backend = backend
            endpoint = transport.balancer.choose(addresses)
            call.replica = endpoint.address
            endpoint.outstanding += 1
            try:
                return await transport.send(endpoint, call, match)
            except UpstreamDropped as exc:
                if not exc.is_retryable:
                    raise
                if exc.is_refused:
                    endpoint.mark_down()
                failure = exc
            finally:
                endpoint.outstanding -= 1


def _failed(match: Match) -> NoReadyReplica:
    service = match.service
    return NoReadyReplica(
        f"{match.component.name} of {service.namespace}/{service.name} has no ready replica "
        f"and will get none until it changes: {match.component.failed}"
    )


def _not_found(call: Call) -> ServiceNotFound:
    if call.transport == "grpc":
        return ServiceNotFound(
            f"no InferenceService for host {call.host!r} (send the host as 'host' metadata)"
        )
    path = call.target.partition(b"?")[0].decode("latin-1")
    return ServiceNotFound(f"no InferenceService for host {call.host!r} or path {path!r}")
