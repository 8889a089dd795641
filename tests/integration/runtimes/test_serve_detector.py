"""`ksrv serve --model-format detector`: a CloudEvents sink, as alibi-detect's server is.

Real servers on 127.0.0.1: the detector, an iris predictor whose payload logger sends to it
directly, and a sink for the detector's own detection events. The platform test
(tests/integration/platform/test_detector_platform.py) covers the path through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import detector_data, models
from tests.conftest import ServerProcess, wait_until
from tests.event_sink import EventSink

pytest.importorskip("hyppo")
pytest.importorskip("art")
pytestmark = pytest.mark.timeout(180)

REQUEST = {"ce-specversion": "1.0", "ce-type": "org.kubeflow.serving.inference.request",
           "ce-source": "http://127.0.0.1:1/", "ce-id": "event-1",
           "ce-inferenceservicename": "iris", "content-type": "application/json"}  # fmt: skip


@pytest.fixture(scope="module")
def sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def detector(
    tmp_path_factory: pytest.TempPathFactory, sink: EventSink, start_module_server
) -> ServerProcess:
    """A detector with a classifier beside its reference set (adversarial detection on)."""
    directory = detector_data.reference_csv(tmp_path_factory.mktemp("detector"))
    models.sklearn_iris(directory, filename="classifier.joblib")
    return start_module_server(["--model-format", "detector", "--model-dir", str(directory),
                                "--model-name", "iris-detector", "--", "--window-size=40",
                                "--test-every=20", f"--sink-url={sink.url}"])  # fmt: skip


@pytest.fixture(scope="module")
def start_module_server() -> Iterator:
    from tests.conftest import serve

    started: list[ServerProcess] = []

    def start(args: list[str]) -> ServerProcess:
        started.append(serve(args))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def report(detector: ServerProcess) -> dict:
    response = httpx.get(f"{detector.url}/v1/models/iris-detector/report")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_request_event_is_answered_with_an_outlier_cloudevent(detector: ServerProcess):
    response = httpx.post(detector.url + "/", json={"instances": [detector_data.OUTLIER]},
                          headers=REQUEST)  # fmt: skip

    assert response.status_code == 200, response.text
    assert response.headers["ce-type"] == "org.kubeflow.serving.inference.outlier"
    assert response.headers["ce-id"] == "event-1"
    body = response.json()
    assert body["data"]["is_outlier"] == [1]
    assert body["data"]["instance_score"][0] > body["data"]["threshold"]
    assert body["meta"] == {"name": "OutlierDetector", "event_id": "event-1", "service": "iris"}


def test_a_v2_request_event_and_a_structured_event_are_read(detector: ServerProcess):
    v2 = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                      "data": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]}]}  # fmt: skip
    binary = httpx.post(detector.url + "/", json=v2, headers=REQUEST)
    structured = httpx.post(detector.url + "/", json={
        "specversion": "1.0", "type": REQUEST["ce-type"], "source": "x", "id": "s-1",
        "datacontenttype": "application/json", "data": {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    }, headers={"content-type": "application/cloudevents+json"})  # fmt: skip

    assert binary.json()["data"]["is_outlier"] == [0, 0]
    assert structured.json()["data"]["is_outlier"] == [0]


def test_response_events_are_counted_and_not_analysed(detector: ServerProcess):
    before = report(detector)
    headers = {**REQUEST, "ce-type": "org.kubeflow.serving.inference.response"}
    response = httpx.post(detector.url + "/", json={"predictions": [1]}, headers=headers)

    assert response.status_code == 200
    after = report(detector)
    assert after["events"]["response"] == before["events"]["response"] + 1
    assert after["instances"] == before["instances"]


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"instances": [[1.0, 2.0]]}, REQUEST, "rows of 4 numbers"),
        ({"instances": [["a", "b", "c", "d"]]}, REQUEST, "rows of numbers"),
        ({"rows": []}, REQUEST, "no instances"),
        ({"instances": [[1, 2, 3, 4]]}, {"content-type": "application/json"}, "not a CloudEvent"),
    ],
)
def test_a_bad_event_is_a_400_naming_what_is_wrong(detector, body, headers, message):
    response = httpx.post(detector.url + "/", json=body, headers=headers)

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_logged_predictor_drives_drift_detection_and_detection_events(
    detector: ServerProcess, sink: EventSink, iris_dir: Path, start_module_server
):
    predictor = start_module_server(["--model-format", "sklearn", "--model-dir", str(iris_dir),
                                     "--model-name", "iris", "--log-url", detector.url + "/",
                                     "--log-mode", "request"])  # fmt: skip
    start = report(detector)["events"]["request"]
    rng = np.random.default_rng(3)
    rows = [*detector_data.iris_like(80, rng), *detector_data.iris_like(80, rng, 3.0)]
    for count, row in enumerate(rows, 1):
        httpx.post(f"{predictor.url}/v1/models/iris:predict", json={"instances": [row.tolist()]})
        if count == 80:  # the window sees the normal rows in order before the shifted ones
            wait_until(lambda: report(detector)["events"]["request"] == start + 80, "80 events")
            assert report(detector)["drifted_tests"] == 0
    wait_until(lambda: report(detector)["events"]["request"] == start + 160, "160 events")

    final = report(detector)
    assert final["drift"]["features"]["petal_length"]["is_drift"] == 1
    wait_until(lambda: sink.of_type(".drift") != [], "a drift event at the sink")
    drift = sink.of_type(".drift")[-1]
    assert drift["source"] == "org.kubeflow.serving.iris-detector"
    assert {"is_drift", "p_val", "features", "mmd"} <= set(drift.data["data"])
    assert sink.of_type(".outlier")


def test_adversarial_examples_of_the_classifier_are_flagged(detector: ServerProcess):
    from ksrv.runtimes import square_attack

    classifier = models._iris_classifier()
    normal = detector_data.iris_like(100, np.random.default_rng(5))
    settings = square_attack.AttackSettings(nb_classes=3, max_iter=200, eps=1.0, seed=11)
    attacked = square_attack.generate(classifier.predict, normal, None, settings)
    changed = classifier.predict(attacked) != classifier.predict(normal)

    def flagged(rows: np.ndarray) -> float:
        answer = httpx.post(f"{detector.url}/v1/models/iris-detector:predict",
                            json={"instances": rows.tolist()})  # fmt: skip
        return float(np.mean(answer.json()["predictions"]["is_adversarial"]))

    assert changed.sum() > 50
    assert flagged(attacked[changed]) > 0.5
    assert flagged(normal) < 0.05


def test_the_report_of_an_unknown_detector_or_by_post_is_a_404(detector: ServerProcess):
    unknown = httpx.get(f"{detector.url}/v1/models/nope/report")
    posted = httpx.post(f"{detector.url}/v1/models/iris-detector/report", json={})

    assert unknown.status_code == 404 and "No route for GET" in unknown.json()["error"]
    assert posted.status_code == 404
