"""The bar: one request with a `traceparent` through `ksrv up` is one trace across processes.

A real platform (control plane, gateway, replica processes) started with the OTEL_*
environment of an in-test OTLP/HTTP collector serves an InferenceService with a custom
transformer (KServe's sample, ported) in front of a scikit-learn predictor. The gateway's,
the transformer's and the predictor's spans share the caller's trace id, each hop's SERVER
span is the child of the previous hop's CLIENT span, and each process names itself.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import wait_until
from tests.otlp_collector import OTLPCollector, ReceivedSpan
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(240)

PORTS = Path(__file__).resolve().parents[2] / "ports"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
NAME = "iris-traced"


@pytest.fixture(scope="module")
def collector() -> Iterator[OTLPCollector]:
    collector = OTLPCollector()
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def traced_platform(collector, tmp_path_factory) -> Iterator[LocalKsrv]:
    platform = LocalKsrv(tmp_path_factory.mktemp("traced-state"))
    platform.env.update(collector.env())
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests import models

    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def new_trace() -> tuple[str, str, str]:
    """A caller's `traceparent`, its trace id and its span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def test_one_request_is_one_trace_through_gateway_transformer_and_predictor(
    collector, traced_platform, model_dir
):
    document = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME},
        "spec": {
            "transformer": {"containers": [{
                "name": "kserve-container",
                "image": "kserve/image-transformer:latest",
                "command": ["python", str(PORTS / "custom_transformer.py")],
            }]},
            "predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                    "storageUri": str(model_dir)}},
        },
    }  # fmt: skip
    traced_platform.apply([document], "--wait", "--timeout", "120s")
    traceparent, trace_id, caller_span = new_trace()
    encoded = [
        {"image": {"b64": base64.b64encode(np.asarray(row, np.float32).tobytes()).decode()}}
        for row in ROWS
    ]
    response = traced_platform.http.post(
        f"{traced_platform.gateway}/serving/default/{NAME}/v1/models/{NAME}:predict",
        json={"instances": encoded},
        headers={"traceparent": traceparent, "x-b3-traceid": trace_id},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [1, 1]}

    gateway, transformer, predictor = "ksrv-gateway", f"{NAME}-transformer", f"{NAME}-predictor"

    def chain() -> list[ReceivedSpan]:
        """The predictor's SERVER span and its ancestors, up to the first span of the trace
        (none while the predictor's SERVER span has not arrived)."""
        by_id = {s.span_id: s for s in collector.spans(trace_id)}
        spans = [s for s in by_id.values() if s.service == predictor and s.kind == "SERVER"]
        while spans and spans[-1].parent_span_id in by_id:
            spans.append(by_id[spans[-1].parent_span_id])
        return spans

    # Every span of the path has arrived once the first one's parent is the caller's (spans
    # leave each process in batches, in no particular order).
    wait_until(
        lambda: bool(chain()) and chain()[-1].parent_span_id == caller_span,
        "the path from the caller to the predictor in the collector",
        timeout_s=15,
    )
    path = chain()
    hops = [(s.service, s.kind) for s in path if s.kind in ("SERVER", "CLIENT")]
    # The transformer reaches its predictor through the gateway, as KServe's does.
    assert hops == [
        (predictor, "SERVER"),
        (gateway, "CLIENT"), (gateway, "SERVER"),
        (transformer, "CLIENT"), (transformer, "SERVER"),
        (gateway, "CLIENT"), (gateway, "SERVER"),
    ]  # fmt: skip
    outer, inner = path[-1], next(s for s in path if s.service == gateway and s.kind == "SERVER")
    assert outer.attributes["ksrv.inference_service.name"] == NAME
    assert outer.attributes["ksrv.component"] == "transformer"
    assert outer.attributes["ksrv.revision"] == f"{NAME}-transformer-00001"
    assert inner.attributes["ksrv.component"] == "predictor"
    assert inner.attributes["ksrv.revision"] == f"{NAME}-predictor-00001"

    # The transformer's steps, and its call to the predictor with the model and protocol.
    call = next(s for s in path if s.service == transformer and s.kind == "CLIENT")
    assert call.attributes["ksrv.model.name"] == NAME
    assert call.attributes["ksrv.inference.protocol"] == "v1"
    transformer_steps = {s.name for s in collector.spans(trace_id) if s.service == transformer}
    assert {"decode", "infer", "preprocess", "predict", "postprocess", "encode"} <= (
        transformer_steps
    )

    # The predictor ran its model's steps; each process says who it is.
    predictor_server = path[0]
    assert predictor_server.attributes["ksrv.model.name"] == NAME
    assert "predict" in {s.name for s in collector.spans(trace_id) if s.service == predictor}
    assert predictor_server.resource["service.version"] == f"{NAME}-predictor-00001"
    assert predictor_server.resource["service.namespace"] == "default"


def test_grpc_through_the_gateway_continues_the_trace_in_metadata(
    collector, traced_platform, model_dir
):
    name = "iris-grpc-traced"
    document = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "protocolVersion": "v2",
                                         "storageUri": str(model_dir)}}},
    }  # fmt: skip
    traced_platform.apply([document], "--wait", "--timeout", "120s")
    traceparent, trace_id, caller_span = new_trace()
    request = pb.ModelInferRequest(model_name=name)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[2, 4])
    tensor.contents.fp64_contents.extend(value for row in ROWS for value in row)
    metadata = (("host", f"{name}-default.example.com"), ("traceparent", traceparent))
    with grpc.insecure_channel(f"127.0.0.1:{traced_platform.grpc_port}") as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=metadata, timeout=30
        )
    assert list(answer.outputs[0].contents.int64_contents) == [1, 1]

    method = "inference.GRPCInferenceService/ModelInfer"

    def hops() -> list[tuple[str, str, str]]:
        return [(s.service, s.kind, s.name) for s in collector.spans(trace_id)
                if s.kind in ("SERVER", "CLIENT")]  # fmt: skip

    wait_until(lambda: len(hops()) == 3, "the gateway's two spans and the replica's", 15)
    spans = {(s.service, s.kind): s for s in collector.spans(trace_id)}
    gateway_server = spans[("ksrv-gateway", "SERVER")]
    attempt = spans[("ksrv-gateway", "CLIENT")]
    replica = spans[(f"{name}-predictor", "SERVER")]
    assert gateway_server.name == attempt.name == replica.name == method
    assert gateway_server.parent_span_id == caller_span
    assert gateway_server.attributes["rpc.system"] == "grpc"
    assert gateway_server.attributes["ksrv.revision"] == f"{name}-predictor-00001"
    assert attempt.parent_span_id == gateway_server.span_id
    assert replica.parent_span_id == attempt.span_id
    assert replica.attributes["ksrv.model.name"] == name
