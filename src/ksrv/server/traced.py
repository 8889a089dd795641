"""The model server's spans, wired in once at build time when tracing is on.

With tracing off nothing here runs: `RESTApp`, `DataPlane` and the gRPC servicer keep their
plain methods, so a request pays nothing. On, each instance gets wrapped methods: a SERVER
span per request whose parent is the caller's `traceparent` (REST headers, gRPC metadata),
with children `decode`, `infer` (model name and version, also set on the request's span),
`queue` (the coalescer: a request that joined another's merged call finds the model steps in
that one's trace), the model's own `preprocess` / `predict` / `postprocess` (and the call to
the predictor, for a transformer), and `encode`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any

from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.model.base import PREDICT, Headers
from ksrv.server.dataplane import DataPlane
from ksrv.server.rest import RESTApp
from ksrv.telemetry import tracing

GRPC_SERVICE = "inference.GRPCInferenceService"


def instrument_rest(app: RESTApp) -> None:
    """Trace `app`'s requests (and its data plane's)."""
    handle = app.handle

    async def traced_handle(request: Request) -> Response | StreamingResponse:
        path = request.path
        route, protocol_name = _route(path)
        attributes = {"http.request.method": request.method, "url.path": path}
        if route:
            attributes["http.route"] = route
            attributes[tracing.INFERENCE_PROTOCOL] = protocol_name
        context = tracing.incoming(request.headers)
        name = f"{request.method} {route}" if route else request.method
        with tracing.span(name, "SERVER", attributes, context) as span:
            response = await handle(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                from opentelemetry.trace import StatusCode

                span.set_status(StatusCode.ERROR)
            return response

    app.handle = traced_handle  # type: ignore[method-assign]
    app.decode_v2 = tracing.traced("decode", app.decode_v2)
    app.encode_v2 = tracing.traced("encode", app.encode_v2)
    app.decode_v1 = tracing.traced("decode", app.decode_v1)
    app.encode_v1 = tracing.traced("encode", app.encode_v1)
    instrument_dataplane(app.dataplane)


def instrument_dataplane(dataplane: DataPlane) -> None:
    """Spans for inference, the coalescer's queue, and sync model steps in the thread pool."""
    infer = dataplane.infer
    submit = dataplane.coalescer.submit
    run_sync = dataplane.run_sync

    async def traced_infer(
        name: str,
        payload: Any,
        headers: Headers,
        version: str | None = None,
        verb: str = PREDICT,
    ) -> Any:
        attributes = {tracing.MODEL_NAME: name}
        if version is not None:
            attributes[tracing.MODEL_VERSION] = version
        tracing.set_attributes(attributes)  # on the request's own span too
        with tracing.span("infer", attributes={**attributes, "ksrv.verb": verb}):
            return await infer(name, payload, headers, version, verb)

    async def in_context(function: Callable[[], Any]) -> Any:
        # The pool's threads do not inherit the loop's context: the model's sync steps would
        # start traces of their own.
        return await run_sync(functools.partial(contextvars.copy_context().run, function))

    dataplane.infer = traced_infer  # type: ignore[method-assign]
    dataplane.coalescer.submit = tracing.traced_async("queue", submit)  # type: ignore[method-assign]
    dataplane.run_sync = in_context  # type: ignore[method-assign]


def instrument_grpc(servicer: Any) -> None:
    """A SERVER span per `ModelInfer` call, its parent from the call's metadata."""
    method = servicer.ModelInfer
    name = f"{GRPC_SERVICE}/ModelInfer"
    attributes = {
        "rpc.system": "grpc",
        "rpc.service": GRPC_SERVICE,
        "rpc.method": "ModelInfer",
        tracing.INFERENCE_PROTOCOL: "grpc-v2",
    }

    async def traced_model_infer(request: Any, context: Any) -> Any:
        metadata = context.invocation_metadata() or ()
        headers = {key: value for key, value in metadata if isinstance(value, str)}
        parent = tracing.incoming(headers)
        with tracing.span(name, "SERVER", attributes, parent):
            return await method(request, context)

    servicer.ModelInfer = traced_model_infer


def _route(path: str) -> tuple[str, str]:
    """A low-cardinality `http.route` for `path` (model names as `{model}`), and its protocol."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "models":
        if parts[0] == "v2":
            rest = parts[3:]
            if len(rest) >= 2 and rest[0] == "versions":
                rest = ["versions", "{version}", *rest[2:]]
            return "/".join(["/v2/models/{model}", *rest]), "v2"
        if parts[0] == "v1":
            verb = parts[2].rpartition(":")[2]
            return f"/v1/models/{{model}}:{verb}", "v1"
    if parts[0] == "openai" or (parts[0] == "v1" and len(parts) > 1 and parts[1] != "models"):
        return "/" + "/".join(parts), "openai"
    return "", ""
