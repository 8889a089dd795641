"""`ksrv router --graph-json JSON`: serve one InferenceGraph, as KServe's router image does.

The control plane (local or Kubernetes) starts it with the graph's spec, each step's
`serviceUrl` already resolved; readiness is `GET /readyz` on the HTTP port.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from ksrv.cli import telemetry
from ksrv.errors import KsrvError


@click.command()
@click.option(
    "--graph-json",
    required=True,
    help="The InferenceGraphSpec as JSON, each serviceName step's serviceUrl set (KServe's).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--http-port", default=8080, show_default=True, help="HTTP port.")
@click.option(
    "--step-timeouts",
    envvar="KSRV_STEP_TIMEOUTS",
    help="Per-step timeouts, a JSON object: step name (or NODE[INDEX], or * for every step) "
    "-> seconds; the value of the graph's ksrv.dev/step-timeouts annotation "
    "(env KSRV_STEP_TIMEOUTS).",
)
@click.option(
    "--seed",
    type=int,
    envvar="KSRV_ROUTER_SEED",
    hidden=True,
    help="Seed the Splitter's draw, so a test's split is reproducible (env KSRV_ROUTER_SEED).",
)
@telemetry.otlp_option
def router(
    graph_json: str, host: str, http_port: int, step_timeouts: str | None, seed: int | None
) -> None:
    """Route requests through an InferenceGraph's nodes to its InferenceServices.

    Headers passed on to every step: request id and trace context always, plus those matching
    the comma-separated patterns of PROPAGATE_HEADERS (KServe's router.headers.propagate;
    default Authorization).
    """
    from ksrv.graph import app, headers, spec
    from ksrv.telemetry import buffered_log

    # A line per request (every step's latency): written out in blocks, not a write each.
    buffered_log.configure(logging.INFO)
    # A line per request is logged: skip the record fields this format never prints.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        graph = spec.parse_graph(graph_json, step_timeouts)
        settings = app.RouterSettings(
            graph,
            host=host,
            http_port=http_port,
            propagate=headers.parse_patterns(os.environ.get(headers.ENV)),
            seed=seed,
        )
        app.serve_router(settings)
    except KsrvError as exc:
        click.echo(f"ksrv router: {exc}", err=True)
        sys.exit(2)
