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
404 from the empty one. A request of a component with a shadow revision may be copied to it
once answered (`shadow.Shadower`, in the background); a multi-model predictor's request
prefers the replica that holds its model (`model_affinity`). Failures are `KsrvError`s; each
transport turns them into its status through `protocol/status.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from ksrv.errors import (
    KsrvError,
    NoReadyReplica,
    Overloaded,
    PermissionDenied,
    ServerNotReady,
    ServiceNotFound,
    Unauthenticated,
    UpstreamTimeout,
)
from ksrv.gateway import model_affinity
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.hooks import Call, Hook
from ksrv.gateway.routes import Backend, Match, RouteTable
from ksrv.gateway.shadow import Shadower
from ksrv.http.upstream import UpstreamDropped

A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)

MAX_RETRIES = 2
# Longest a request waits for a table that routes it anywhere (capped further by the route's
# timeout); one held for a known revision waits the route's timeout.
MAX_HOLD_S = 30.0
HOLD_POLL_S = 0.25
# Requests one gateway process holds per component at most (zero replicas, or every replica
# at its containerConcurrency); more are answered 429.
MAX_HELD = 1000


class Activation(Protocol):
    """Where a held request's demand goes at once (`activator.Activator` satisfies it)."""

    def poke(self, namespace: str, revision: str) -> None:
        """`revision` has requests held and no ready replica: ask for one now."""
        ...


class DispatchEvents(Protocol):
    """Hears what happens inside the path that a hook does not see (`metrics.GatewayMetrics`)."""

    def held(self, match: Match, count: int) -> None:
        """A request for `match` entered (1) or left (-1) its component's hold."""
        ...

    def retried(self, call: Call) -> None:
        """`call` is sent again after an attempt that no replica answered."""
        ...


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
        activator: Activation | None = None,
        max_held: int = MAX_HELD,
        shadows: Shadower | None = None,
        events: DispatchEvents | None = None,
    ) -> None:
        """`has_table=False`: a table is on its way (the control plane's); until it arrives,
        requests are held, not answered 404 from the empty one. `activator` hears of each
        revision with held requests and no replica; `events` of holds and retries."""
        self.table = RouteTable.empty()
        self.has_table = has_table
        self.rng = rng if rng is not None else random.Random()
        self.hooks = tuple(hooks)
        self.activator = activator
        self.max_held = max_held
        self.shadows = shadows if shadows is not None else Shadower()
        self.events = events
        self.placement = model_affinity.ModelPlacement()
        self._table_changed = asyncio.Event()
        self._held: dict[tuple[str, str, str], int] = {}
        self._balancers: set[Balancer[Any]] = set()

    def set_table(self, table: RouteTable) -> None:
        """Serve `table` from the next request on and wake every held request."""
        self.table = table
        self.has_table = True
        self.shadows.forget_except(table)
        changed, self._table_changed = self._table_changed, asyncio.Event()
        changed.set()
        for balancer in self._balancers:
            balancer.wake_all()

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
        if match.component.shadow is not None:
            is_refused = False
            try:
                return await self._routed(transport, call, match)
            except (Unauthenticated, PermissionDenied):
                is_refused = True  # refused at the door: no copy reaches the shadow either
                raise
            finally:  # as matched last: a held request may have waited for a new table
                if not is_refused:
                    self.shadows.offer(transport, call, call.match or match)
        return await self._routed(transport, call, match)

    async def _routed(self, transport: Transport[A], call: Call, match: Match) -> A:
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
        # The common case inline: a backend with a free replica that answers the first time.
        backend = match.component.choose(self.rng)
        if backend is not None:
            addresses = transport.addresses(backend)
            if addresses:
                call.backend = backend
                balancer = transport.balancer
                model = _model(call) if match.component.is_multi_model else None
                endpoint = self._take(balancer, model, match, addresses)
                if endpoint is None:  # every replica at containerConcurrency: queue
                    return await self._hold(transport, call, match, None)
                call.replica = endpoint.address
                try:
                    return await transport.send(endpoint, call, match)
                except UpstreamDropped as exc:
                    if not exc.is_retryable:
                        raise
                    failure = exc
                finally:
                    balancer.release(endpoint)
                    if model is not None:
                        self.placement.done(model, endpoint.address)
                return await self.retry(transport, call, match, addresses, endpoint, failure)
        elif match.component.failed is not None:
            raise _failed(match)
        return await self._hold(transport, call, match, None)

    def _take(
        self,
        balancer: Balancer[Any],
        model: str | None,
        match: Match,
        addresses: tuple[str, ...],
    ) -> Endpoint[Any] | None:
        """A replica for the call: a multi-model predictor's model goes where it is loaded
        (`model_affinity`), anything else to the least loaded."""
        limit = match.component.concurrency
        if model is not None:
            return self.placement.take(balancer, addresses, model, limit)
        return balancer.take(addresses, limit)

    async def retry(
        self,
        transport: Transport[A],
        call: Call,
        match: Match,
        addresses: tuple[str, ...],
        endpoint: Endpoint[Any],
        failure: UpstreamDropped,
    ) -> A:
        """After a first attempt on `endpoint` failed retryably (and was released): other
        replicas, then hold. Also where the fast path (`fast_path.py`) goes on."""
        tried = [endpoint]
        if failure.is_refused:
            endpoint.mark_down()
        balancer = transport.balancer
        limit = match.component.concurrency
        for _ in range(MAX_RETRIES):
            endpoint = balancer.choose(addresses, tried)
            if limit and endpoint.outstanding >= limit:
                break  # the others are full: queue for one
            if self.events is not None:
                self.events.retried(call)
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
                balancer.release(endpoint)
        if failure.answer is not None:
            raise failure.answer  # the replica itself said "unavailable": no reason to hold
        failure = UpstreamDropped(f"{failure.message} (after {MAX_RETRIES} retries)", True)
        return await self._hold(transport, call, match, failure)

    async def _hold(
        self, transport: Transport[A], call: Call, match: Match, failure: UpstreamDropped | None
    ) -> A:
        """Knative's activator: no replica could take the request (none ready, all refused,
        or all at `containerConcurrency`); hold it in the revision's bounded queue, ask the
        control plane for a replica when the revision has none, and send it as soon as the
        table brings one or a slot frees, until the hold time, counted from now, is up."""
        service = match.service
        key = (service.namespace, service.name, match.component.name)
        if self._held.get(key, 0) >= self.max_held:
            raise Overloaded(
                f"{self.max_held} requests are already queued for {match.component.name} of "
                f"{service.namespace}/{service.name}"
            )
        self._held[key] = self._held.get(key, 0) + 1
        if self.events is not None:
            self.events.held(match, 1)
        try:
            return await self._held_until_sent(transport, call, match, failure)
        finally:
            if self.events is not None:
                self.events.held(match, -1)
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

    async def _held_until_sent(
        self, transport: Transport[A], call: Call, match: Match, failure: UpstreamDropped | None
    ) -> A:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _hold_s(match)
        balancer = transport.balancer
        self._balancers.add(balancer)
        is_waiting = failure is not None  # replicas just refused: wait before trying again
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _held_too_long(match, failure)
            if is_waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._table_changed.wait(), min(remaining, HOLD_POLL_S))
                match = call.match = self._rematch(call)
            is_waiting = True
            component = match.component
            backend = component.choose(self.rng) or component.choose_held(self.rng)
            # From here the held request is the revision's demand (the traffic counter
            # counts it), as Knative's activator reports the requests it holds.
            call.backend = backend
            addresses = transport.addresses(backend) if backend is not None else ()
            if not addresses:
                if component.failed is not None:
                    raise _failed(match)  # it was starting when held; it has failed since
                if backend is not None and self.activator is not None:
                    self.activator.poke(match.service.namespace, backend.revision)
                continue
            endpoint = balancer.take(addresses, component.concurrency)
            if endpoint is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                        endpoint = await balancer.wait(addresses)
                if endpoint is None:  # the replicas changed (or time is up): choose again
                    match = call.match = self._rematch(call)
                    is_waiting = False
                    continue
            call.replica = endpoint.address
            if failure is not None and self.events is not None:
                self.events.retried(call)
            try:
                return await transport.send(endpoint, call, match)
            except UpstreamDropped as exc:
                if not exc.is_retryable:
                    raise
                if exc.is_refused:
                    endpoint.mark_down()
                failure = exc
            finally:
                balancer.release(endpoint)

    def _rematch(self, call: Call) -> Match:
        rematched = self.table.match(call.host, call.target, call.tag)
        if rematched is None:
            raise _not_found(call)
        return rematched


def _model(call: Call) -> str | None:
    """The model a multi-model predictor's request names (REST path, gRPC first field)."""
    if call.transport == "rest":
        return model_affinity.rest_model(call.target)
    return model_affinity.grpc_model(getattr(call.payload, "message", b""))


def _hold_s(match: Match) -> float:
    """How long a request may be held: the route's timeout, capped at `MAX_HOLD_S` while
    no revision is known to wait for."""
    timeout_s = match.component.timeout_s or match.service.timeout_s
    return timeout_s if match.component.backends else min(timeout_s, MAX_HOLD_S)


def _held_too_long(match: Match, failure: UpstreamDropped | None) -> KsrvError:
    if failure is not None:
        return failure
    service = match.service
    message = (
        f"no ready replica for {match.component.name} of {service.namespace}/{service.name} "
        f"within {_hold_s(match):g} s"
    )
    # A revision was waited for (the activator held it): the route's timeout, as Knative's.
    return UpstreamTimeout(message) if match.component.backends else NoReadyReplica(message)


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
