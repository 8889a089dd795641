"""A model server as a CloudEvents sink: `POST /` and the detector's report route.

KServe's detectors (alibi-detect's server) take the payload logger's CloudEvents on their
root path and answer each with a CloudEvent of the result. A model that implements
`EventSink` (the `detector` runtime) gets that here: `POST /` goes to the server's one sink,
`GET /v1/models/{name}/report` to the named one's `report()`. Installed only when a model
is a sink, by wrapping the REST app's `handle`, so other servers pay nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast, runtime_checkable

from prometheus_client import CollectorRegistry

from ksrv.errors import InvalidInput, KsrvError, ModelNotReady, RouteNotFound
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.model.base import Model
from ksrv.server import rest

logger = logging.getLogger(__name__)


@runtime_checkable
class EventSink(Protocol):
    """A model that analyses CloudEvents (structurally: the detector runtime)."""

    def receive_event(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], Any]:
        """The reply's CloudEvent headers (`ce-*`) and data."""
        ...

    def report(self) -> dict[str, Any]: ...

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Create its metrics on the server's registry."""
        ...


def install(app: rest.RESTApp, models: list[Model]) -> None:
    """Route `POST /` and the report route of `app` to `models` (each an `EventSink`), their
    metrics to its registry."""
    sinks = {model.name: model for model in models}
    for sink in sinks.values():
        assert isinstance(sink, EventSink)
        sink.bind_metrics(app.dataplane.metrics.registry)
    inner = app.handle
    dataplane = app.dataplane

    async def handle(request: Request) -> Response | StreamingResponse:
        path = request.path
        try:
            if path == "/" and request.method == "POST":
                return await _receive(models, request, dataplane.run_sync)
            if path.startswith("/v1/models/") and path.endswith("/report"):
                name = path[len("/v1/models/") : -len("/report")]
                sink = sinks.get(name)
                if sink is None or request.method != "GET":
                    raise RouteNotFound(f"No route for {request.method} {path}")
                return rest.json_response(cast(EventSink, sink).report())
        except KsrvError as exc:
            return rest.error_response(exc)
        except Exception as exc:  # a bug: logged whole, answered as the REST app answers one
            logger.exception("event sink request failed: %s %s", request.method, path)
            return rest.error_response(exc)
        return await inner(request)

    app.handle = handle  # type: ignore[method-assign]


async def _receive(
    sinks: list[Model], request: Request, run_sync: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> Response:
    if len(sinks) != 1:  # the platform runs one detector per server
        raise InvalidInput(f"this server holds {len(sinks)} detectors; POST / needs exactly one")
    sink = sinks[0]
    if not sink.ready:
        raise ModelNotReady(sink.name)
    receive = cast(EventSink, sink).receive_event
    headers = request.headers
    body = request.body
    reply_headers, data = await run_sync(lambda: receive(headers, body))
    response = rest.json_response(data)
    response.headers.extend((k.encode(), v.encode("latin-1")) for k, v in reply_headers.items())
    return response
