"""The gateway's common case without a task: a request answered from callbacks alone.

Why: at 8 connections the task, the chain of coroutines and the future each proxied request
went through cost about as much as the rest of the hop (routing, hooks, the two parses). Most
requests need none of what they are for: the route is in the table, a replica is free and a
keep-alive connection to it is idle, the body is whole, and the replica answers with a
content-length. Such a request is written upstream from `ksrv.http.server`'s parser callback,
and its answer written back from the upstream parser's callback.

Anything else is declined before anything is done (the server then hands the request to
`Gateway.handle`, the one request path) or, once sent, handed back to that path where it
would have gone on: a retryable failure continues in `Dispatcher.retry` (another replica,
then the hold), as an awaitable the connection answers in turn. Hooks (metrics, traffic,
auth) see every request exactly as on the full path: `on_request` once routed, `on_response`
once the outcome is known; so do the in-flight count, the balancer's outstanding counts and
the deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ksrv.errors import KsrvError, UpstreamTimeout
from ksrv.gateway import proxy
from ksrv.gateway.balancer import Endpoint
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Match
from ksrv.http.messages import Answer, FastReply, Request, Response
from ksrv.http.upstream import (
    ReplicaPool,
    UpstreamConnection,
    UpstreamDropped,
    UpstreamResponse,
)

if TYPE_CHECKING:
    from ksrv.gateway.app import Gateway

logger = logging.getLogger(__name__)


class FastPath:
    """`ksrv.http.server.FastPath` for one `Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.taken = 0  # requests taken, for tests and debugging

    def __call__(self, request: Request, reply: FastReply) -> bool:
        gateway = self.gateway
        dispatcher = gateway.dispatcher
        if request.body_stream is not None or not dispatcher.has_table:
            return False
        host = request.header(b"host")
        tag = request.header(b"knative-serving-tag")
        host_name = host.decode("latin-1") if host else ""
        tag_name = tag.decode("latin-1") if tag else ""
        match = dispatcher.table.match(host_name, request.target, tag_name)
        if match is None:
            return False
        component = match.component
        if component.shadow is not None or component.is_multi_model:
            return False
        backend = component.choose(dispatcher.rng)
        if backend is None or not backend.http:
            return False
        balancer = gateway.rest.balancer
        endpoint = balancer.take(backend.http, component.concurrency)
        if endpoint is None:
            return False
        connection = endpoint.conn.take_idle()
        if connection is None:  # connecting means waiting: the full path does it
            balancer.release(endpoint)
            return False
        headers = proxy.LazyHeaders(request) if dispatcher.hooks else proxy.NO_HEADERS
        call = Call("rest", host_name, request.target, headers, request, tag_name)
        call.match = match
        gateway.in_flight += 1
        self.taken += 1
        try:
            for hook in dispatcher.hooks:
                hook.on_request(call)
        except Exception as exc:  # a refusal (auth), or a hook's bug: answered either way
            endpoint.conn.release(connection)
            balancer.release(endpoint)
            if not isinstance(exc, KsrvError):
                logger.exception("a hook failed on %s", request.path)
            reply.fast_done(self._failed(call, exc))
            return True
        call.backend = backend
        call.replica = endpoint.address
        service = match.service
        head = proxy.request_head(
            request, match.target, service.identity, b"content-length: %d" % len(request.body)
        )
        timeout_s = component.timeout_s or service.timeout_s
        sent = _Sent(self, reply, call, match, endpoint, connection, timeout_s)
        endpoint.conn.deadlines.watch(connection, asyncio.get_running_loop().time() + timeout_s)
        reply.fast_cancel = sent.cancel
        connection.send(head, request.body, sent)
        return True

    def answered(self, call: Call, answer: UpstreamResponse) -> Answer:
        """A replica answered (`call.code` is its status): the hooks hear it, the client gets
        it."""
        self.ended(call, None)
        return proxy.respond(answer)

    def _failed(self, call: Call, exc: BaseException) -> Response:
        self.ended(call, exc)
        return proxy.error_response(exc) if isinstance(exc, KsrvError) else _INTERNAL

    def ended(self, call: Call, error: BaseException | None) -> None:
        """`call`'s outcome is known: the hooks hear it, and it is in flight no more."""
        for hook in self.gateway.dispatcher.hooks:
            hook.on_response(call, error)
        self.gateway.in_flight -= 1

    async def retried(
        self, call: Call, match: Match, endpoint: Endpoint[ReplicaPool], failure: UpstreamDropped
    ) -> Answer:
        """The first attempt was dropped before any answer: on, as the full path goes on."""
        backend = call.backend
        assert backend is not None
        try:
            answer = await self.gateway.dispatcher.retry(
                self.gateway.rest, call, match, backend.http, endpoint, failure
            )
        except BaseException as exc:
            response = self._failed(call, exc)
            if not isinstance(exc, KsrvError):
                raise
            return response
        return self.answered(call, answer)  # the transport set `call.code`


_INTERNAL = Response(b'{"error":"Internal server error"}', 500)


class _Sent:
    """One request the fast path sent: the upstream connection's waiter (`upstream.Waiter`),
    and the client connection's cancel."""

    __slots__ = ("call", "connection", "endpoint", "fast", "is_done", "match", "reply", "timeout_s")

    def __init__(
        self,
        fast: FastPath,
        reply: FastReply,
        call: Call,
        match: Match,
        endpoint: Endpoint[ReplicaPool],
        connection: UpstreamConnection,
        timeout_s: float,
    ) -> None:
        self.fast = fast
        self.reply = reply
        self.call = call
        self.match = match
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.connection = connection
        self.is_done = False

    def done(self) -> bool:
        return self.is_done

    def _finish(self) -> None:
        self.is_done = True
        endpoint = self.endpoint
        endpoint.conn.deadlines.unwatch(self.connection)
        self.fast.gateway.rest.balancer.release(endpoint)

    def set_result(self, answer: UpstreamResponse, /) -> None:
        self._guarded(self._answer, answer)

    def set_exception(self, exception: BaseException, /) -> None:
        self._guarded(self._fail, exception)

    def _guarded(self, step: Callable[[Any], None], outcome: Any) -> None:
        # Called from the upstream parser's callback: a failure here must not become the
        # parser's (the client would never be answered), so it is answered 500 and logged.
        try:
            step(outcome)
        except Exception:
            logger.exception("unhandled error answering a proxied request")
            self.reply.fast_done(_INTERNAL)

    def _answer(self, answer: UpstreamResponse) -> None:
        self._finish()
        self.fast.gateway.rest.took(self.endpoint, self.call, answer)
        self.reply.fast_done(self.fast.answered(self.call, answer))

    def _fail(self, exception: BaseException) -> None:
        self._finish()
        call, match = self.call, self.match
        if isinstance(exception, UpstreamDropped) and exception.is_retryable:
            self.endpoint.conn.close_idle()  # its other idle connections likely died too
            self.reply.fast_done(self.fast.retried(call, match, self.endpoint, exception))
            return
        if isinstance(exception, UpstreamTimeout):
            exception = proxy.timed_out(match, self.timeout_s, exception)
        self.reply.fast_done(self.fast._failed(call, exception))

    def cancel(self) -> None:
        """The client hung up before the answer: the attempt is abandoned, as a cancelled
        task's would be (the upstream connection mid-answer cannot be reused)."""
        if self.is_done:
            return
        self._finish()
        self.connection.abort()
        self.fast.ended(self.call, asyncio.CancelledError())
