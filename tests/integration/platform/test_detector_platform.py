"""Detectors and the ART explainer on a real `ksrv up`, reached through the gateway.

An iris InferenceService's `logger.url` is a detector InferenceService's URL: its replicas'
CloudEvents go through the gateway to the detector, which flags drift when petal length moves
by 3 sigma and scores an outlier above the normal rows' 99th percentile. The example's
`explainer.art` answers `:explain` with an adversarial example that changes the predictor's
label.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import detector_data
from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytest.importorskip("hyppo")
pytest.importorskip("art")
pytestmark = pytest.mark.timeout(300)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "outlier-detection"


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import models

    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def isvc(name: str, predictor: dict, **components: dict) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name}, "spec": {"predictor": predictor, **components}}  # fmt: skip


def test_a_logger_pointing_at_a_detector_service_flags_drift_and_outliers(
    ksrv_platform: LocalKsrv, iris_model: Path, tmp_path: Path
):
    reference = detector_data.reference_csv(tmp_path / "reference")
    detector = {"model": {"modelFormat": {"name": "detector"}, "storageUri": str(reference),
                          "args": ["--window-size=100", "--test-every=50"]}}  # fmt: skip
    # The detector's status.address.url, known before it exists: both start side by side.
    detector_url = f"{ksrv_platform.gateway}/serving/default/iris-detector"
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": str(iris_model)}
    predictor = {"logger": {"url": detector_url, "mode": "all"}, "model": model}
    ksrv_platform.apply([isvc("iris-detector", detector), isvc("iris-logged", predictor)],
                        "--wait")  # fmt: skip
    assert ksrv_platform.isvc("iris-detector")["status"]["address"]["url"] == detector_url
    http = ksrv_platform.http
    predict = f"{ksrv_platform.gateway}/serving/default/iris-logged/v1/models/iris-logged:predict"

    def report() -> dict:
        response = http.get(f"{detector_url}/v1/models/iris-detector/report")
        assert response.status_code == 200, response.text
        return response.json()

    rng = np.random.default_rng(7)
    for row in detector_data.iris_like(500, rng):
        assert http.post(predict, json={"instances": [row.tolist()]}).status_code == 200
    wait_until(lambda: report()["events"]["request"] == 500, what="500 request events")
    normal = report()
    assert normal["drift_tests"] == 9 and normal["drifted_tests"] == 0, normal
    assert normal["events"]["response"] <= 500

    for row in detector_data.iris_like(500, rng, shift_sigmas=3.0):
        assert http.post(predict, json={"instances": [row.tolist()]}).status_code == 200
    wait_until(lambda: report()["events"]["request"] == 1000, what="1000 request events")
    shifted = report()
    assert shifted["drifted_tests"] > 0
    assert shifted["drift"]["features"]["petal_length"]["is_drift"] == 1
    metrics = http.get(f"{detector_url}/metrics").text
    assert 'ksrv_detector_drift{feature="petal_length",model_name="iris-detector"} 1.0' in metrics
    assert 'ksrv_detector_instances_total{model_name="iris-detector"} 1000.0' in metrics

    rows = detector_data.iris_like(1000, np.random.default_rng(8)).tolist()
    scored = http.post(f"{detector_url}/v1/models/iris-detector:predict",
                       json={"instances": [*rows, detector_data.OUTLIER]}).json()  # fmt: skip
    scores = scored["predictions"]["instance_score"]
    assert scores[-1] > np.percentile(scores[:-1], 99)
    assert scored["predictions"]["is_outlier"][-1] == 1


def test_the_example_logs_to_its_detector_and_its_art_explainer_changes_the_label(
    ksrv_platform: LocalKsrv, tmp_path: Path
):
    """examples/outlier-detection, with its storageUris and the gateway's port rewritten: the
    predictor's events reach the detector, and `explainer.art` answers `:explain` with an
    adversarial example the predictor labels differently."""
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py"), str(tmp_path)], check=True)
    detector = yaml.safe_load((EXAMPLE / "detector.yaml").read_text())
    detector["spec"]["predictor"]["model"]["storageUri"] = str(tmp_path / "detector")
    iris = yaml.safe_load((EXAMPLE / "iris.yaml").read_text())
    predictor = iris["spec"]["predictor"]
    predictor["model"]["storageUri"] = str(tmp_path / "iris")
    predictor["logger"]["url"] = predictor["logger"]["url"].replace(
        "127.0.0.1:8080", f"127.0.0.1:{ksrv_platform.port}"
    )
    ksrv_platform.apply([detector, iris], "--wait")
    gateway = f"{ksrv_platform.gateway}/serving/default"
    rows = detector_data.iris_like(20, np.random.default_rng(1)).tolist()

    for row in rows:
        response = ksrv_platform.http.post(f"{gateway}/iris/v1/models/iris:predict",
                                           json={"instances": [row]})  # fmt: skip
        assert response.status_code == 200
    url = f"{gateway}/iris-outlier-detector/v1/models/iris-outlier-detector/report"

    def events() -> dict:
        return ksrv_platform.http.get(url).json()["events"]

    wait_until(lambda: events() == {"request": 20, "response": 20, "other": 0}, "40 events")
    scored = ksrv_platform.http.post(
        f"{gateway}/iris-outlier-detector/v1/models/iris-outlier-detector:predict",
        json={"instances": [detector_data.OUTLIER]},
    ).json()["predictions"]
    assert scored["is_outlier"] == [1]

    original = detector_data.iris()[133].tolist()  # a virginica near versicolor
    explained = ksrv_platform.http.post(f"{gateway}/iris/v1/models/iris:explain",
                                        json={"instances": [original, 2]})  # fmt: skip
    assert explained.status_code == 200, explained.text
    explanation = explained.json()["explanations"]
    assert explanation["prediction"] == 2
    assert explanation["adversarial_prediction"] != explanation["prediction"]
    adversarial = {"instances": [explanation["adversarial_example"]]}
    again = ksrv_platform.http.post(f"{gateway}/iris/v1/models/iris:predict", json=adversarial)
    assert again.json()["predictions"] == [explanation["adversarial_prediction"]]
