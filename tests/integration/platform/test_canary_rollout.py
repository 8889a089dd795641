"""The whole canary rollout through a real `ksrv up` (issue 14's canary bar).

Two sklearn models that answer different constants stand for two model versions, so every
answer says which revision gave it. The gateway's split is seeded (`KSRV_GATEWAY_SEED`), so
the 2,000-request count is the same on every run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

V1, V2 = 7, 8  # what each model version answers
TAG_ROUTING = {"serving.kserve.io/enable-tag-routing": "true"}
ROLLOUT_TIMEOUT_S = 90.0


def constant_model(directory: Path, answer: int) -> str:
    """A fitted sklearn classifier that always predicts `answer`."""
    import joblib
    from sklearn.dummy import DummyClassifier

    directory.mkdir(parents=True)
    model = DummyClassifier(strategy="constant", constant=answer).fit([[0.0]] * 2, [answer, 0])
    joblib.dump(model, directory / "model.joblib")
    return str(directory)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    root = tmp_path_factory.mktemp("canary-models")
    return {V1: constant_model(root / "v1", V1), V2: constant_model(root / "v2", V2)}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    local = LocalKsrv(tmp_path_factory.mktemp("ksrv-canary"))
    local.env["KSRV_GATEWAY_SEED"] = "14"
    local.start()
    try:
        yield local
    finally:
        local.stop()


def isvc(name: str, storage_uri: str, annotations: dict[str, str], **predictor: Any) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "predictor": {
                **predictor,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri},
            }
        },
    }


def answer(http: httpx.Client, platform: LocalKsrv, name: str, **headers: str) -> int:
    """Which version answered one V1 predict (path form unless a Host header is given)."""
    url = (
        f"{platform.gateway}/v1/models/{name}:predict"
        if "host" in headers
        else f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict"
    )
    response = http.post(url, json={"instances": [[1.0]]}, headers=headers)
    assert response.status_code == 200, response.text
    (predicted,) = response.json()["predictions"]
    return int(predicted)


def predictor_status(platform: LocalKsrv, name: str) -> dict[str, Any]:
    return platform.isvc(name)["status"]["components"]["predictor"]


def traffic(platform: LocalKsrv, name: str) -> list[tuple[str, int]]:
    return [(t["revisionName"], t["percent"]) for t in predictor_status(platform, name)["traffic"]]


@contextmanager
def steady_load(platform: LocalKsrv, name: str) -> Iterator[dict[str, Any]]:
    """One client predicting back to back; counts answers by version, and every failure."""
    counts: dict[str, Any] = {"answers": Counter(), "failed": [], "last": None, "stop": False}

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not counts["stop"]:
                try:
                    counts["last"] = got = answer(http, platform, name)
                    counts["answers"][got] += 1
                except (AssertionError, httpx.HTTPError) as exc:
                    counts["failed"].append(repr(exc))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        yield counts
    finally:
        counts["stop"] = True
        thread.join(30)


def test_canary_split_tags_rollback_and_promotion(platform, models):
    name, v1, v2 = "canary", "canary-predictor-00001", "canary-predictor-00002"
    platform.apply([isvc(name, models[V1], TAG_ROUTING)], "--wait")
    assert traffic(platform, name) == [(v1, 100)]
    platform.apply([isvc(name, models[V2], TAG_ROUTING, canaryTrafficPercent=20)])
    wait_until(
        lambda: (
            traffic(platform, name) == [(v2, 20), (v1, 80)]
            and platform.routed_replicas(name) == {v2: 1, v1: 1}
        ),
        "a 20/80 split with both revisions routed",
        ROLLOUT_TIMEOUT_S,
    )
    status = predictor_status(platform, name)
    assert status["latestCreatedRevision"] == status["latestReadyRevision"] == v2
    assert status["latestRolledoutRevision"] == v1
    latest, prev = status["traffic"]
    assert latest == {
        "revisionName": v2,
        "percent": 20,
        "latestRevision": True,
        "tag": "latest",
        "url": "http://latest-canary-predictor-default.example.com",
    }
    assert prev == {"revisionName": v1, "percent": 80, "latestRevision": False, "tag": "prev",
                    "url": "http://prev-canary-predictor-default.example.com"}  # fmt: skip

    # The bar: over 2,000 requests the canary answers 20% +- 3%.
    with httpx.Client(timeout=30) as http:
        started = time.monotonic()
        counts = Counter(answer(http, platform, name) for _ in range(2000))
        print(f"2,000 requests in {time.monotonic() - started:.1f}s, canary {counts[V2]}")
        assert counts[V1] + counts[V2] == 2000
        assert 340 <= counts[V2] <= 460, counts
        # Tag hosts (both of ksrv's host forms) and the header reach one revision each.
        for tag, version in (("latest", V2), ("prev", V1)):
            for host in (f"{tag}-canary-predictor-default.example.com",
                         f"{tag}-canary-predictor.default.example.com"):  # fmt: skip
                assert {answer(http, platform, name, host=host) for _ in range(20)} == {version}
            by_header = {answer(http, platform, name, **{"Knative-Serving-Tag": tag})
                         for _ in range(20)}  # fmt: skip
            assert by_header == {version}
    v1_pids = platform.replica_pids()[v1]

    with steady_load(platform, name) as load:
        wait_until(lambda: sum(load["answers"].values()) > 20, "the load to start")
        # Roll back: every answer from v1 again, from the replicas it kept (no cold start).
        platform.apply([isvc(name, models[V2], TAG_ROUTING, canaryTrafficPercent=0)])
        wait_until(lambda: traffic(platform, name) == [(v2, 0), (v1, 100)], "the rollback")
        seen = sum(load["answers"].values())
        wait_until(lambda: sum(load["answers"].values()) > seen + 50, "answers after it")
        rolled_back = Counter(load["answers"])
        wait_until(lambda: sum(load["answers"].values()) > sum(rolled_back.values()) + 100,
                   "more answers after the rollback")  # fmt: skip
        assert load["answers"][V2] == rolled_back[V2], "the canary answered after the rollback"
        assert platform.replica_pids()[v1] == v1_pids
        with httpx.Client(timeout=30) as http:  # still reachable by its tag at 0%
            host = "latest-canary-predictor-default.example.com"
            assert answer(http, platform, name, host=host) == V2
        # Promote: drop the field; the canary takes everything and v1 is collected.
        platform.apply([isvc(name, models[V2], TAG_ROUTING)])
        wait_until(lambda: predictor_status(platform, name)["latestRolledoutRevision"] == v2,
                   "the promotion", ROLLOUT_TIMEOUT_S)  # fmt: skip
        wait_until(lambda: load["last"] == V2, "answers from the promoted revision")
        promoted = sum(load["answers"].values())
        wait_until(lambda: sum(load["answers"].values()) > promoted + 100, "answers after it")
    assert load["failed"] == [], load["failed"][:5]
    status = predictor_status(platform, name)
    assert status["previousRolledoutRevision"] == v1
    assert status["traffic"] == [{
        "revisionName": v2, "percent": 100, "latestRevision": True, "tag": "latest",
        "url": "http://latest-canary-predictor-default.example.com",
    }]  # fmt: skip
    wait_until(lambda: v1 not in platform.replica_pids(), "the old revision to stop")


def test_standard_mode_ignores_canary_traffic_percent_and_says_so(platform, models):
    standard = {"serving.kserve.io/deploymentMode": "Standard", **TAG_ROUTING}
    name, v2 = "raw", "raw-predictor-00002"
    platform.apply([isvc(name, models[V1], standard)], "--wait")
    platform.apply([isvc(name, models[V2], standard, canaryTrafficPercent=20)])
    wait_until(
        lambda: predictor_status(platform, name).get("latestRolledoutRevision") == v2,
        "the new revision to take everything",
        ROLLOUT_TIMEOUT_S,
    )
    assert traffic(platform, name) == [(v2, 100)]
    conditions = {c["type"]: c for c in platform.isvc(name)["status"]["conditions"]}
    assert "canaryTrafficPercent: ignored in Standard mode" in conditions[
        "LocalLimitations"]["message"]  # fmt: skip
    with httpx.Client(timeout=30) as http:
        wait_until(lambda: answer(http, platform, name) == V2, "the gateway's new table")
        assert {answer(http, platform, name) for _ in range(100)} == {V2}
        # No Knative tags in Standard mode: no tag host.
        response = http.post(
            f"{platform.gateway}/v1/models/{name}:predict",
            json={"instances": [[1.0]]},
            headers={"host": "latest-raw-predictor-default.example.com"},
        )
        assert response.status_code == 404


def test_standard_mode_spec_canary_splits_and_is_promoted_by_name(platform, models):
    standard = {"serving.kserve.io/deploymentMode": "Standard"}
    name, stable, c1 = "std", "std-predictor-00001", "std-c1-predictor-00001"
    platform.apply([isvc(name, models[V1], standard)], "--wait")
    with_canary = isvc(name, models[V1], standard)
    with_canary["spec"]["canary"] = [{
        "predictor": {"name": "c1", "model": {"storageUri": models[V2]}}, "trafficPercent": 20,
    }]  # fmt: skip
    platform.apply([with_canary])

    def canary_ready() -> bool:
        found = platform.isvc(name)["status"].get("canaryStatuses") or [{}]
        return found[0].get("ready") is True and platform.routed_replicas(name) == {
            stable: 1,
            c1: 1,
        }

    wait_until(canary_ready, "the canary to be Ready and routed", ROLLOUT_TIMEOUT_S)
    status = platform.isvc(name)["status"]
    (canary_status,) = status["canaryStatuses"]
    assert (canary_status["name"], canary_status["trafficPercent"]) == ("c1", 20)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["CanaryPredictorReady"] == conditions["Ready"] == "True"
    with httpx.Client(timeout=30) as http:
        counts = Counter(answer(http, platform, name) for _ in range(2000))
    assert 340 <= counts[V2] <= 460, counts
    canary_pids = platform.replica_pids()[c1]

    promoted = isvc(name, models[V2], standard)
    promoted["spec"]["predictor"]["name"] = "c1"
    with steady_load(platform, name) as load:
        wait_until(lambda: sum(load["answers"].values()) > 20, "the load to start")
        platform.apply([promoted])
        wait_until(lambda: platform.routed_replicas(name) == {c1: 1}, "the promotion")
        seen = sum(load["answers"].values())
        wait_until(lambda: sum(load["answers"].values()) > seen + 100, "answers after it")
        after = Counter(load["answers"])
        wait_until(lambda: sum(load["answers"].values()) > sum(after.values()) + 50,
                   "more answers")  # fmt: skip
        assert load["answers"][V1] == after[V1], "the old stable answered after the promotion"
    assert load["failed"] == [], load["failed"][:5]
    assert platform.replica_pids()[c1] == canary_pids  # the canary became stable unrestarted
    predictor = predictor_status(platform, name)
    assert predictor["latestCreatedRevision"] == predictor["latestRolledoutRevision"] == c1
    assert "canaryStatuses" not in platform.isvc(name)["status"]
    wait_until(lambda: stable not in platform.replica_pids(), "the old stable to stop")
