"""A model server alone traces its requests to a real OTLP/HTTP collector when OTEL_* says so.

`ksrv serve --otlp-endpoint` of a scikit-learn model (the collector's address): each request's
SERVER span takes its parent from the caller's `traceparent` (REST header, gRPC metadata),
and its steps (decode, infer, the model's predict, encode) are its descendants in the same
trace, with the model's name and protocol as attributes.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator

import grpc
import httpx
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import KSRV, ServerProcess, free_port, wait_until
from tests.otlp_collector import OTLPCollector, ReceivedSpan

ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


@pytest.fixture(scope="module")
def collector() -> Iterator[OTLPCollector]:
    collector = OTLPCollector()
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def traced_server(collector, tmp_path_factory) -> Iterator[ServerProcess]:
    from tests import models

    model_dir = models.sklearn_iris(tmp_path_factory.mktemp("iris"))
    http_port, grpc_port = free_port(), free_port()
    command = [*KSRV, "serve", "--model-format", "sklearn", "--model-dir", str(model_dir),
               "--model-name", "iris", "--http-port", str(http_port),
               "--grpc-port", str(grpc_port), "--otlp-endpoint", collector.endpoint]  # fmt: skip
    # The flag turns tracing on; the SDK's own variables still apply.
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "iris-predictor"}
    server = ServerProcess(command, http_port, env, grpc_port=grpc_port).wait_ready()
    yield server
    server.stop()


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def trace_of(collector: OTLPCollector, trace_id: str, names: set[str]) -> list[ReceivedSpan]:
    wait_until(
        lambda: names <= {s.name for s in collector.spans(trace_id)},
        f"spans {sorted(names)} of trace {trace_id} at the collector",
        timeout_s=10,
    )
    return collector.spans(trace_id)


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def is_descendant(spans: list[ReceivedSpan], span: ReceivedSpan, ancestor: ReceivedSpan) -> bool:
    by_id = {s.span_id: s for s in spans}
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        if span.span_id == ancestor.span_id:
            return True
    return False


def test_rest_v2_request_is_one_trace_under_the_callers_traceparent(collector, traced_server):
    header, trace_id, caller_span = traceparent()
    response = httpx.post(
        f"{traced_server.url}/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]},
        headers={"traceparent": header, "tracestate": "vendor=1"},
    )
    assert response.status_code == 200, response.text
    spans = trace_of(collector, trace_id, {"POST /v2/models/{model}/infer", "decode", "infer",
                                           "predict", "encode"})  # fmt: skip
    server = by_name(spans, "POST /v2/models/{model}/infer")
    assert server.kind == "SERVER" and server.parent_span_id == caller_span
    assert server.service == "iris-predictor"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v2/models/{model}/infer"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["ksrv.inference.protocol"] == "v2"
    assert server.attributes["ksrv.model.name"] == "iris"
    for step in ("decode", "infer", "encode"):
        assert by_name(spans, step).parent_span_id == server.span_id, step
    infer = by_name(spans, "infer")
    assert infer.attributes["ksrv.model.name"] == "iris"
    assert is_descendant(spans, by_name(spans, "predict"), infer)


def test_rest_v1_error_is_traced_as_an_error(collector, traced_server):
    header, trace_id, caller_span = traceparent()
    response = httpx.post(
        f"{traced_server.url}/v1/models/iris:predict",
        json={"instances": [[1.0, 2.0]]},  # two features where the model takes four
        headers={"traceparent": header},
    )
    assert response.status_code == 400, response.text
    spans = trace_of(collector, trace_id, {"POST /v1/models/{model}:predict", "infer"})
    server = by_name(spans, "POST /v1/models/{model}:predict")
    assert server.parent_span_id == caller_span
    assert server.attributes["http.response.status_code"] == 400
    assert server.attributes["ksrv.inference.protocol"] == "v1"
    assert by_name(spans, "infer").is_error


def test_request_without_traceparent_starts_its_own_trace(collector, traced_server):
    before = {s.trace_id for s in collector.spans()}
    response = httpx.post(f"{traced_server.url}/v1/models/iris:predict", json={"instances": ROWS})
    assert response.json() == {"predictions": [1, 1]}

    def new_roots() -> list[ReceivedSpan]:
        return [s for s in collector.spans() if s.trace_id not in before and s.kind == "SERVER"]

    wait_until(lambda: len(new_roots()) == 1, "the new request's SERVER span", timeout_s=10)
    assert new_roots()[0].parent_span_id == ""


def test_grpc_model_infer_takes_its_parent_from_metadata(collector, traced_server):
    header, trace_id, caller_span = traceparent()
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend(value for row in ROWS for value in row)
    with grpc.insecure_channel(traced_server.grpc_target) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=(("traceparent", header),), timeout=10
        )
    assert list(answer.outputs[0].contents.int64_contents) == [1, 1]
    name = "inference.GRPCInferenceService/ModelInfer"
    spans = trace_of(collector, trace_id, {name, "infer"})
    server = by_name(spans, name)
    assert server.kind == "SERVER" and server.parent_span_id == caller_span
    assert server.attributes["rpc.system"] == "grpc"
    assert server.attributes["ksrv.inference.protocol"] == "grpc-v2"
    assert server.attributes["ksrv.model.name"] == "iris"
    assert by_name(spans, "infer").parent_span_id == server.span_id


def test_without_the_sdk_a_server_asked_to_trace_serves_untraced(tmp_path):
    """The `tracing` extra is optional: with OpenTelemetry unimportable, a server whose
    environment asks for traces still imports, starts and answers, and says why it does not
    trace."""
    port = free_port()
    blocked = (
        "import sys; sys.modules['opentelemetry'] = None; "
        "from ksrv.cli.main import main; sys.argv[0] = 'ksrv'; main()"
    )
    command = [sys.executable, "-c", blocked, "serve", "tests/toys.py:Echo", "--model-name",
               "echo", "--http-port", str(port), "--grpc-port", "0"]  # fmt: skip
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    server = ServerProcess(command, port, env).wait_ready()
    try:
        response = httpx.post(
            f"{server.url}/v1/models/echo:predict",
            json={"instances": [[1, 2]]},
            headers={"traceparent": traceparent()[0]},
        )
        assert response.json() == {"predictions": [[1, 2]]}
        assert "pip install 'ksrv[tracing]'" in server.log()
    finally:
        server.stop()
