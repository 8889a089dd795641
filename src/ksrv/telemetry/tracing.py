"""OpenTelemetry tracing for every ksrv process: off unless the `OTEL_*` environment says so.

`configure(default_service_name)` runs once when a server starts. It turns tracing on when
`OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
`OTEL_SDK_DISABLED=true`; the SDK reads every other variable (sampler, headers, batch delay,
resource). With tracing off, or the SDK not installed (the `tracing` extra), `tracer()` is
None and callers pick their untraced code once, at build time: nothing per request.

The W3C `traceparent`/`tracestate` headers (or whatever `OTEL_PROPAGATORS` names) carry the
trace from hop to hop. `outgoing_headers` is what a component that calls another one (the
transformer, the graph router) adds to its request, traced or not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
INSTRUMENTATION = "ksrv"
# Span attributes: OpenTelemetry's semantic-convention names where one exists, else ksrv.*.
MODEL_NAME = "ksrv.model.name"
MODEL_VERSION = "ksrv.model.version"
INFERENCE_PROTOCOL = "ksrv.inference.protocol"  # v1, v2, grpc-v2, openai
INFERENCE_SERVICE = "ksrv.inference_service.name"
NAMESPACE = "ksrv.inference_service.namespace"
COMPONENT = "ksrv.component"  # predictor, transformer, explainer
REVISION = "ksrv.revision"
_TRUE = ("true", "1", "yes", "on")

T = TypeVar("T")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def is_enabled_by(env: Mapping[str, str]) -> bool:
    """Whether `env` asks for traces (see the module docstring for the rule)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure(default_service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Start tracing this process if `env` (the environment) asks for it; True if it does.

    `default_service_name` is the `service.name` unless `OTEL_SERVICE_NAME` (or
    `OTEL_RESOURCE_ATTRIBUTES`) gives one.
    """
    global _tracer, _provider
    env = os.environ if env is None else env
    if _tracer is not None or not is_enabled_by(env):
        return _tracer is not None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_* asks for traces but the OpenTelemetry SDK is not installed "
            "(pip install 'ksrv[tracing]'): tracing stays off"
        )
        return False
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource, shutdown_on_exit=True)
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer(INSTRUMENTATION)
    logger.info("tracing on: service.name=%s", resource.attributes.get(SERVICE_NAME))
    return True


def _exporters(env: Mapping[str, str]) -> list[Any]:
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")]
    exporters: list[Any] = []
    for name in names:
        if name in ("otlp", "otlp_proto_http"):
            protocol = env.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
            )
            if protocol and protocol != "http/protobuf":
                logger.warning(
                    "OTLP protocol %r is not supported: traces are sent as http/protobuf", protocol
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name and name != "none":
            logger.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name)
    return exporters


def tracer() -> Tracer | None:
    """This process's tracer, or None when tracing is off."""
    return _tracer


def shutdown() -> None:
    """Export the spans still buffered and stop (a server calls it as it stops)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def incoming(headers: Mapping[str, str]) -> Context:
    """The trace context a request came with (its `traceparent`, ...)."""
    from opentelemetry import propagate

    return propagate.extract(headers)


def outgoing_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trace headers to send on a call to the next hop (the graph router's helper).

    Traced: the current span's context. Not traced: the incoming `headers`' own trace
    headers, so a trace still passes through a hop that does not record spans.
    """
    if _tracer is None:
        if not headers:
            return {}
        return {name: headers[name] for name in TRACE_HEADERS if name in headers}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def span(
    name: str,
    kind: str = "INTERNAL",
    attributes: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> Iterator[Span]:
    """A span of this process's tracer, current inside the block (tracing must be on)."""
    from opentelemetry.trace import SpanKind

    assert _tracer is not None, "span() is only called with tracing on"
    with _tracer.start_as_current_span(
        name, context, SpanKind[kind], attributes=dict(attributes or {})
    ) as current:
        yield current


def traced(name: str, function: Callable[..., T]) -> Callable[..., T]:
    """`function` run inside a span `name` (for a step chosen at build time)."""

    def run(*args: Any, **kwargs: Any) -> T:
        with span(name):
            return function(*args, **kwargs)

    return run


def traced_async(
    name: str, function: Callable[..., Awaitable[T]]
) -> Callable[..., Coroutine[Any, Any, T]]:
    """The coroutine function `function` awaited inside a span `name`."""

    async def run(*args: Any, **kwargs: Any) -> T:
        with span(name):
            return await function(*args, **kwargs)

    return run


def set_attributes(attributes: Mapping[str, Any]) -> None:
    """Add `attributes` to the current span (no-op outside one)."""
    from opentelemetry import trace

    trace.get_current_span().set_attributes(dict(attributes))
