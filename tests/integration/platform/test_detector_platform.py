"""Detectors and the ART explainer on a real `ksrv up`, reached through the gateway.

An iris InferenceService's `logger.url` is a detector InferenceService's URL: its replicas'
CloudEvents go through the gateway to the detector, which flags drift when petal length moves
by 3 sigma and scores an outlier above the normal rows' 99th percentile. An `explainer.art`
answers `:explain` with an adversarial example that changes the predictor's label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import detector_data
from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytest.importorskip("hyppo")
pytest.importorskip("art")
pytestmark = pytest.mark.timeout(300)


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
    ksrv_platform.apply([isvc("iris-detector", detector)], "--wait")
    detector_url = ksrv_platform.isvc("iris-detector")["status"]["address"]["url"]
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": str(iris_model)}
    predictor = {"logger": {"url": detector_url, "mode": "all"}, "model": model}
    ksrv_platform.apply([isvc("iris", predictor)], "--wait")
    http = ksrv_platform.http
    predict = f"{ksrv_platform.gateway}/serving/default/iris/v1/models/iris:predict"

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


def test_an_art_explainer_answers_an_adversarial_example_with_another_label(
    ksrv_platform: LocalKsrv, iris_model: Path
):
    predictor = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(iris_model)}}
    explainer = {"art": {"type": "SquareAttack",
                         "config": {"nb_classes": "3", "max_iter": "200", "eps": "1.0",
                                    "seed": "0"}}}  # fmt: skip
    ksrv_platform.apply([isvc("iris-art", predictor, explainer=explainer)], "--wait")
    base = f"{ksrv_platform.gateway}/serving/default/iris-art/v1/models/iris-art"
    original = detector_data.iris()[133].tolist()  # a virginica near versicolor

    response = ksrv_platform.http.post(f"{base}:explain", json={"instances": [original, 2]})

    assert response.status_code == 200, response.text
    explanation = response.json()["explanations"]
    assert explanation["prediction"] == 2
    assert explanation["adversarial_prediction"] != explanation["prediction"]
    adversarial = explanation["adversarial_example"]
    again = ksrv_platform.http.post(f"{base}:predict", json={"instances": [adversarial]})
    assert again.json()["predictions"] == [explanation["adversarial_prediction"]]
