"""Multi-model serving through a real `ksrv up`: KServe's multimodelserving example (an
InferenceService with no storageUri plus TrainedModels) served through the gateway over V1,
V2 and gRPC; models load on first request (once for concurrent ones), unload least recently
used under the predictor's memory, refuse what can never fit, and 404 once deleted."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests import models
from tests.conftest import wait_until
from tests.platform_support import LocalKsrv, example

pytestmark = pytest.mark.timeout(180)

ISVC = "sklearn-iris-example"
HOST = f"{ISVC}-default.example.com"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def trained_model(name: str, uri: Path, memory: str = "1Mi") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": name},
        "spec": {
            "inferenceService": ISVC,
            "model": {"storageUri": str(uri), "framework": "sklearn", "memory": memory},
        },
    }


def service(memory: str = "512Mi") -> dict[str, Any]:
    [isvc] = example("kserve__docs__samples__multimodelserving__sklearn__inferenceservice.yaml")
    resources = isvc["spec"]["predictor"]["sklearn"]["resources"]
    resources["requests"]["memory"] = resources["limits"]["memory"] = memory
    return isvc


def predict(platform: LocalKsrv, name: str) -> httpx.Response:
    return platform.http.post(
        f"{platform.gateway}/v1/models/{name}:predict",
        json={"instances": ROWS},
        headers={"Host": HOST},
    )


def tm_status(platform: LocalKsrv, name: str) -> dict[str, Any]:
    document = json.loads(platform.cli("get", "tm", name, "-o", "json"))
    return dict(document.get("status") or {})


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def loads(platform: LocalKsrv) -> int:
    """Loads logged by the predictor's replicas so far."""
    logs = platform.state_dir / "platform" / "logs" / "default"
    return sum(path.read_text().count("loaded model=") for path in logs.glob(f"{ISVC}-*.log"))


@pytest.fixture(scope="module")
def mms(tmp_path_factory: pytest.TempPathFactory, iris: Path):
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-mms")).start()
    try:
        documents = example("kserve__docs__samples__multimodelserving__sklearn__trainedmodels.yaml")
        for document in documents:
            document["spec"]["model"]["storageUri"] = str(iris)
        platform.apply([service("512Mi"), *documents])
        platform.wait_ready(ISVC)
        yield platform
    finally:
        platform.stop()


def test_the_examples_trained_models_answer_over_v1_v2_and_grpc(mms):
    for name in ("model1-sklearn", "model2-sklearn"):
        wait_until(lambda name=name: predict(mms, name).status_code == 200, f"{name} answers", 30)
        assert predict(mms, name).json() == {"predictions": [1, 1]}
        v2 = mms.http.post(
            f"{mms.gateway}/v2/models/{name}/infer",
            json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]},
            headers={"Host": HOST},
        )
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == [1, 1]
    with grpc.insecure_channel(f"127.0.0.1:{mms.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="model2-sklearn")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 4])
        tensor.contents.fp32_contents.extend([v for row in ROWS for v in row])
        answer = stub.ModelInfer(request, metadata=(("host", HOST),), timeout=10)
    contents = answer.outputs[0].contents
    assert list(contents.int64_contents or contents.int_contents) == [1, 1]


def test_a_trained_models_status_names_its_url_conditions_and_replica(mms):
    predict(mms, "model1-sklearn").raise_for_status()

    def loaded() -> bool:
        return bool(tm_status(mms, "model1-sklearn").get("loadedOn"))

    wait_until(loaded, "status names the replica", 20)
    status = tm_status(mms, "model1-sklearn")
    assert status["url"] == f"http://{HOST}/v1/models/model1-sklearn:predict"
    found = conditions(status)
    for kind in ("InferenceServiceReady", "IsMMSPredictor", "MemoryResourceAvailable", "Ready"):
        assert found[kind]["status"] == "True", status
    table = mms.cli("get", "tm", "-o", "wide")
    assert "LOADEDON" in table and status["loadedOn"][0] in table and status["url"] in table


def test_concurrent_first_requests_load_the_model_once(mms, iris):
    mms.apply([trained_model("concurrent", iris)])
    before = loads(mms)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: predict_when_known(mms, "concurrent"), range(16)))
    assert [a.status_code for a in answers] == [200] * 16
    assert loads(mms) - before == 1


def predict_when_known(platform: LocalKsrv, name: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        while True:
            answer = client.post(
                f"{platform.gateway}/v1/models/{name}:predict",
                json={"instances": ROWS},
                headers={"Host": HOST},
            )
            if answer.status_code != 404:
                return answer


def test_a_model_larger_than_the_predictors_memory_is_refused(mms, iris):
    huge = json.dumps(trained_model("huge", iris, "1Gi"))
    refused = mms.cli("apply", "-f", "-", stdin=huge, check=False)
    assert "spec.model.memory" in refused and "huge" in refused
    assert "not found" in mms.cli("get", "tm", "huge", check=False).lower()


def test_a_deleted_trained_model_answers_404(mms, iris):
    mms.apply([trained_model("short-lived", iris)])
    wait_until(lambda: predict(mms, "short-lived").status_code == 200, "it answers", 20)
    mms.cli("delete", "tm", "short-lived")
    wait_until(lambda: predict(mms, "short-lived").status_code == 404, "it is gone", 20)


def test_models_stay_loaded_while_the_control_plane_restarts(mms):
    predict(mms, "model2-sklearn").raise_for_status()
    pids = mms.replica_pids()
    before = loads(mms)
    mms.kill()
    assert predict(mms, "model2-sklearn").status_code == 200  # the gateway keeps routing
    mms.start()
    mms.wait_ready(ISVC)
    wait_until(lambda: tm_status(mms, "model2-sklearn").get("loadedOn"), "status again", 20)
    assert predict(mms, "model2-sklearn").json() == {"predictions": [1, 1]}
    assert mms.replica_pids() == pids and loads(mms) == before  # adopted, nothing reloaded
