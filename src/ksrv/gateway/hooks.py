"""The seam where per-request features plug into the gateway's one request path.

Autoscaler metrics (arrivals and requests in flight per revision), auth, Prometheus metrics
and payload logging all need the same two moments of every REST and gRPC request, so
`dispatch.Dispatcher` calls each `Hook` at those two moments and at no others. With no hook
registered the path pays one falsy-tuple test per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ksrv.gateway.routes import Backend, Match


class Call:
    """One request on its way through the gateway: what a hook may read.

    `transport` is "rest" or "grpc"; `target` is the REST request target or the gRPC method
    path; `headers` are the REST headers or the gRPC metadata (lower-case names). `match` is
    set once routed, `backend` (the revision) and `replica` (its address) once one is chosen;
    a held request has a match, and the revision it waits for as `backend` when the table
    lists one (at zero, or starting), with no replica yet. `payload` belongs to the transport.
    `tag` is the `Knative-Serving-Tag` header (or metadata): the one revision the caller asked
    for. `code` is the replica's HTTP status once a REST answer came; `started_s` is for a
    hook's own clock (the metrics hook's `perf_counter` at `on_request`).
    """

    __slots__ = (
        "backend", "code", "headers", "host", "match", "payload", "replica", "started_s", "tag",
        "target", "transport",
    )  # fmt: skip

    def __init__(
        self,
        transport: str,
        host: str,
        target: bytes,
        headers: Mapping[str, str],
        payload: Any,
        tag: str = "",
    ) -> None:
        self.transport = transport
        self.tag = tag
        self.host = host
        self.target = target
        self.headers = headers
        self.payload = payload
        self.match: Match | None = None
        self.backend: Backend | None = None
        self.replica = ""
        self.code = 0
        self.started_s = 0.0


class Hook(Protocol):
    """Sees every routed request of both transports.

    `on_request` runs once the route is known and before any replica is chosen or the request
    is held; raising a `KsrvError` there rejects the request (auth), answered through the
    status table like any other error. `on_response` runs once per routed request, when its
    outcome is known: `error` is None when a replica answered (for a streamed answer: when
    its head arrived), else the exception the caller gets (a rejection included). Both run
    on the event loop, inline: they must not block.
    """

    def on_request(self, call: Call) -> None: ...

    def on_response(self, call: Call, error: BaseException | None) -> None: ...
