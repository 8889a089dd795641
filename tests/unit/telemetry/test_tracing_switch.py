"""When tracing is on, and what it costs when off: decisions and wiring, no sockets.

The environment rule is a pure function (`is_enabled_by`). Off, nothing is wrapped: the
model server's and the gateway's request methods are the plain ones, so a request pays
nothing for tracing. These tests never turn tracing on in this process (the OpenTelemetry
provider is process-global); tests/integration/telemetry/ do, in server processes.
"""

from __future__ import annotations

import sys

import pytest

from ksrv.gateway import proxy
from ksrv.gateway.app import Gateway
from ksrv.protocol import client, rest_codec
from ksrv.server import app
from ksrv.server.dataplane import DataPlane
from ksrv.server.rest import RESTApp
from ksrv.server.settings import ServerSettings
from ksrv.telemetry import tracing
from tests import toys


@pytest.mark.parametrize(
    ("env", "is_on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "iris"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_traces_are_on_only_when_the_environment_names_an_exporter_or_endpoint(env, is_on):
    assert tracing.is_enabled_by(env) is is_on


def test_untraced_hop_passes_the_incoming_trace_headers_on():
    assert tracing.tracer() is None
    incoming = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "v=1",
                "x-b3-traceid": "c" * 32, "content-type": "application/json"}  # fmt: skip
    assert tracing.outgoing_headers(incoming) == {
        "traceparent": incoming["traceparent"],
        "tracestate": "v=1",
    }
    assert tracing.outgoing_headers(None) == {}
    # The transformer's forwarding keeps B3 as before, and the W3C headers now too.
    assert client.forwarded(incoming) == {
        "x-b3-traceid": "c" * 32,
        "traceparent": incoming["traceparent"],
        "tracestate": "v=1",
    }


def test_untraced_model_server_and_gateway_keep_their_plain_request_methods():
    assert tracing.tracer() is None
    rest = app.build_app(ServerSettings(), [toys.Echo()])
    assert rest.handle.__func__ is RESTApp.handle  # type: ignore[attr-defined]
    assert rest.decode_v2 is rest_codec.decode_request
    assert rest.dataplane.infer.__func__ is DataPlane.infer  # type: ignore[attr-defined]
    assert rest.dataplane.run_sync.__func__ is DataPlane.run_sync  # type: ignore[attr-defined]
    gateway = Gateway()
    assert gateway.handle.__func__ is Gateway.handle  # type: ignore[attr-defined]
    assert gateway.rest.send.__func__ is proxy.RESTTransport.send  # type: ignore[attr-defined]


def test_without_the_sdk_tracing_stays_off_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    env = {"OTEL_TRACES_EXPORTER": "otlp"}
    assert tracing.configure("iris", env) is False
    assert tracing.tracer() is None
    assert "pip install 'ksrv[tracing]'" in caplog.text
