"""Multi-model serving under churn through a real `ksrv up`: a predictor whose memory holds
fewer models than clients call unloads the least recently used with no failed request, a
TrainedModel that can never fit says so in its status, and a new storageUri rolls in place
while clients call it."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests import models
from tests.conftest import wait_until
from tests.integration.platform.test_multi_model import (
    HOST,
    ISVC,
    ROWS,
    conditions,
    loads,
    service,
    tm_status,
    trained_model,
)
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(180)

MODELS = [f"m{i}" for i in range(8)]


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("models")
    iris, newer = models.sklearn_iris(root / "v1"), models.sklearn_iris(root / "v2")
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-churn")).start()
    try:
        # The oversize model comes before its service: the webhook cannot judge it yet.
        documents = [trained_model("huge", iris, "1Gi")]
        documents += [trained_model(name, iris, "1Mi") for name in MODELS]
        platform.apply([*documents, service("3Mi")])  # room for 3 of the 8
        platform.wait_ready(ISVC)
        yield platform, iris, newer
    finally:
        platform.stop()


def test_clients_over_more_models_than_fit_see_no_failure(churn):
    platform, _, newer = churn
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client(offset: int) -> None:
        with httpx.Client(timeout=30) as http:
            turn = offset
            while not stop.is_set():
                name = MODELS[turn % len(MODELS)]
                turn += 3
                response = http.post(
                    f"{platform.gateway}/v1/models/{name}:predict",
                    json={"instances": ROWS},
                    headers={"Host": HOST},
                )
                if response.status_code != 200:
                    failures.append(f"{name}: {response.status_code} {response.text}")
                answered[0] += 1

    before = loads(platform)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: loads(platform) - before >= 3 * len(MODELS), "models churn", 60)
        # A new storageUri for a model the clients call: it rolls while they do.
        platform.apply([trained_model("m0", newer, "1Mi")])
        # Rolled in place if it was loaded, else loaded anew from the new URI on demand.
        wait_until(lambda: f"model=m0 uri={newer}" in _replica_log(platform), "m0 rolls", 60)
        served = loads(platform)
        wait_until(lambda: loads(platform) > served + len(MODELS), "churn goes on", 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:5]
    assert answered[0] > 3 * len(MODELS)
    assert "unloading least recently used" in _replica_log(platform)


def test_a_model_that_can_never_fit_says_memory_resource_is_not_available(churn):
    platform, _, _ = churn

    def refused() -> bool:
        found = conditions(tm_status(platform, "huge"))
        return found.get("MemoryResourceAvailable", {}).get("status") == "False"

    wait_until(refused, "huge is refused in its status", 20)
    found = conditions(tm_status(platform, "huge"))
    assert found["Ready"]["status"] == "False"
    assert found["IsMMSPredictor"]["status"] == "True"
    answer = platform.http.post(
        f"{platform.gateway}/v1/models/huge:predict",
        json={"instances": ROWS},
        headers={"Host": HOST},
    )
    assert answer.status_code == 404  # not placed, as KServe leaves it out of models.json


def _replica_log(platform: LocalKsrv) -> str:
    logs = platform.state_dir / "platform" / "logs" / "default"
    return "".join(path.read_text() for path in logs.glob(f"{ISVC}-*.log"))
