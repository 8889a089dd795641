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

import numpy as np
import pytest

from tests.conftest import wait_until
from tests.otlp_collector import OTLPCollector, ReceivedSpan
from tests.platform_support import LocalKsrv

pytest.importorskip("opentelemetry.sdk")
pytestmark = pytest.mark.timeout(240)

PORTS = Path(__file__).resolve().parents[2] / "ports"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
NAME = "iris-traced"


@pytest.fixture
def collector() -> Iterator[OTLPCollector]:
    collector = OTLPCollector()
    yield collector
    collector.close()


@pytest.fixture
def traced_platform(collector, tmp_path) -> Iterator[LocalKsrv]:
    platform = LocalKsrv(tmp_path / "state")
    (tmp_path / "state").mkdir()
    platform.env.update(collector.env())
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def test_one_request_is_one_trace_through_gateway_transformer_and_predictor(
    collector, traced_platform, tmp_path
):
    from tests import models

    model_dir = models.sklearn_iris(tmp_path / "iris")
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
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    encoded = [
        {"image": {"b64": base64.b64encode(np.asarray(row, np.float32).tobytes()).decode()}}
        for row in ROWS
    ]
    response = traced_platform.http.post(
        f"{traced_platform.gateway}/serving/default/{NAME}/v1/models/{NAME}:predict",
        json={"instances": encoded},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "x-b3-traceid": trace_id},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [1, 1]}

    gateway, transformer, predictor = "ksrv-gateway", f"{NAME}-transformer", f"{NAME}-predictor"

    def has_predictor_span() -> bool:
        return any(s.service == predictor for s in collector.spans(trace_id))

    wait_until(has_predictor_span, "the predictor's spans in the caller's trace", timeout_s=15)

    def chain() -> list[ReceivedSpan]:
        """The predictor's SERVER span and its ancestors, up to the first span of the trace."""
        by_id = {s.span_id: s for s in collector.spans(trace_id)}
        (span,) = [s for s in by_id.values() if s.service == predictor and s.kind == "SERVER"]
        spans = [span]
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            spans.append(span)
        return spans

    # Every span of the path has been exported once the first one's parent is the caller's.
    wait_until(lambda: chain()[-1].parent_span_id == caller_span, "the whole path", timeout_s=15)
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
