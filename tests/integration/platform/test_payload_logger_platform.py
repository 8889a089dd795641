"""An InferenceService's `predictor.logger` on a real `ksrv up`: its replicas send KServe's
CloudEvents to a real sink, for calls through the gateway over REST and gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import wait_until
from tests.event_sink import EventSink
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


@pytest.fixture
def sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import models

    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def logged_isvc(name: str, model: Path, logger: dict) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"team": "fraud"}},
        "spec": {
            "predictor": {
                "logger": logger,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(model)},
            }
        },
    }


def test_a_predictor_logger_sends_kserves_events_for_calls_through_the_gateway(
    ksrv_platform: LocalKsrv, iris: Path, sink: EventSink
):
    import tritonclient.grpc as grpcclient

    logger = {"url": sink.url, "mode": "all", "metadataHeaders": ["X-Team"],
              "metadataAnnotations": ["team"]}  # fmt: skip
    ksrv_platform.apply([logged_isvc("logged", iris, logger)], "--wait")
    base = f"{ksrv_platform.gateway}/serving/default/logged"
    v1 = ksrv_platform.http.post(
        f"{base}/v1/models/logged:predict",
        json={"instances": ROWS},
        headers={"ce-id": "through-gateway", "x-team": "risk"},
    )
    assert v1.status_code == 200 and v1.json() == {"predictions": [1, 1]}
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ksrv_platform.grpc_port}")
    try:
        data = grpcclient.InferInput("input-0", [2, 4], "FP64")
        data.set_data_from_numpy(np.array(ROWS))
        host = {"host": "logged-default.example.com", "x-request-id": "grpc-through-gateway"}
        client.infer("logged", [data], headers=host)
    finally:
        client.close()
    wait_until(lambda: sink.count() == 4, what="four events at the sink", timeout_s=60)

    assert {(e["id"], e["type"].rsplit(".", 1)[1]) for e in sink.events} == {
        ("through-gateway", "request"), ("through-gateway", "response"),
        ("grpc-through-gateway", "request"), ("grpc-through-gateway", "response"),
    }  # fmt: skip
    for event in sink.events:
        assert event["inferenceservicename"] == "logged" and event["namespace"] == "default"
        assert event["component"] == "predictor" and event["endpoint"] == "default"
        assert json.loads(event["annotations"]) == {"team": "fraud"}
    response = next(e for e in sink.of_type(".response") if e["id"] == "through-gateway")
    assert response.data == {"predictions": [1, 1]}
    assert json.loads(response["metadata"]) == {"X-Team": ["risk"]}

    conditions = {c["type"]: c for c in ksrv_platform.isvc("logged")["status"]["conditions"]}
    assert "logger" not in conditions.get("LocalLimitations", {}).get("message", "")


def test_with_the_sink_down_every_call_through_the_platform_is_answered(
    ksrv_platform: LocalKsrv, iris: Path
):
    from tests.conftest import free_port

    logger = {"url": f"http://127.0.0.1:{free_port()}/"}
    ksrv_platform.apply([logged_isvc("unheard", iris, logger)], "--wait")
    url = f"{ksrv_platform.gateway}/serving/default/unheard/v1/models/unheard:predict"
    codes = [ksrv_platform.http.post(url, json={"instances": ROWS}).status_code for _ in range(50)]
    assert codes == [200] * 50
