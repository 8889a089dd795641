"""The graph router's spans, wired in once when the router is built with tracing on.

With tracing off nothing here runs: the router keeps its plain methods, and a step call passes
on the caller's `traceparent` / `tracestate` as they came (`graph.headers`), so a trace still
goes through. On, each request gets a SERVER span whose parent is the caller's trace context,
and each step that calls a service a CLIENT span under it (under its node's step, for a step
of a sub-node), named `step node/step`; the call carries that span's context in place of the
caller's trace headers, so the service's own spans are its children.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksrv.graph.app import Router
from ksrv.graph.executor import Outcome, Payload, Run
from ksrv.graph.spec import Step
from ksrv.http.server import Request, Response
from ksrv.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

GRAPH_NODE: Final = "ksrv.graph.node"
GRAPH_STEP: Final = "ksrv.graph.step"
_TRACE_HEADERS: Final = frozenset(name.encode("ascii") for name in tracing.TRACE_HEADERS)


def instrument(router: Router) -> None:
    """Trace `router`'s requests and its executor's step calls."""
    run = router._run
    call = router.executor._call

    async def traced_run(request: Request, payload: Payload) -> Response:
        attributes = {"http.request.method": request.method, "url.path": request.path}
        context = tracing.incoming(request.headers)
        with tracing.span(request.method, "SERVER", attributes, context) as span:
            response = await run(request, payload)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                _set_error(span)
            return response

    async def traced_call(step: Step, payload: Payload, run: Run) -> Outcome:
        attributes = {
            GRAPH_NODE: step.node,
            GRAPH_STEP: step.key,
            "http.request.method": "POST",
            "url.full": step.service_url or "",
        }
        with tracing.span(f"step {step.label}", "CLIENT", attributes) as span:
            kept = [header for header in run.headers if header[0] not in _TRACE_HEADERS]
            outgoing = tracing.outgoing_headers()
            kept += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in
                     outgoing.items()]  # fmt: skip
            outcome = await call(step, payload, Run(kept, run.records))
            span.set_attribute("http.response.status_code", outcome.status)
            if outcome.status >= 500:
                _set_error(span)
            return outcome

    router._run = traced_run  # type: ignore[method-assign]
    router.executor._call = traced_call  # type: ignore[method-assign]


def _set_error(span: Span) -> None:
    from opentelemetry.trace import StatusCode

    span.set_status(StatusCode.ERROR)
