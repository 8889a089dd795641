"""`--otlp-endpoint`: the command-line way to turn tracing on (`ksrv.telemetry.tracing`).

It only sets `OTEL_EXPORTER_OTLP_ENDPOINT` in this process's environment, which the server
reads when it starts and which `ksrv up` hands on to the gateway and every replica, so the
flag and the standard variable can never disagree.
"""

from __future__ import annotations

import os

import click


def _set_endpoint(_context: click.Context, _parameter: click.Parameter, value: str | None) -> None:
    if value:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = value


otlp_option = click.option(
    "--otlp-endpoint",
    metavar="URL",
    expose_value=False,
    callback=_set_endpoint,
    help="Send OpenTelemetry traces over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318); "
    "the same as setting OTEL_EXPORTER_OTLP_ENDPOINT. Tracing is off without either.",
)
