"""End to end: KServe example YAMLs applied with `ksrv apply`, answered through the gateway.

Each test drives a real `ksrv up` (control plane + gateway + replica processes) only through
the CLI and the gateway's port, as a user would.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import KSRV
from tests.platform_support import LocalKsrv, example, with_storage

pytestmark = pytest.mark.timeout(300)

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
PORTS = Path(__file__).resolve().parents[2] / "ports"


def v1_predict(platform: LocalKsrv, name: str, namespace: str = "default") -> httpx.Response:
    return platform.http.post(
        f"{platform.gateway}/serving/{namespace}/{name}/v1/models/{name}:predict",
        json={"instances": IRIS_ROWS},
    )


def test_sklearn_example_applies_and_predicts_through_the_gateway(ksrv_platform, model_dirs):
    document = with_storage(example("kserve__docs__samples__v1beta1__sklearn__v1__sklearn.yaml")[0],
                            str(model_dirs["sklearn"]))  # fmt: skip
    started = time.monotonic()
    output = ksrv_platform.apply([document])
    assert "inferenceservice.serving.kserve.io/sklearn-iris created" in output
    isvc = ksrv_platform.wait_ready("sklearn-iris")
    response = v1_predict(ksrv_platform, "sklearn-iris")
    print(f"apply -> first prediction: {time.monotonic() - started:.2f}s")
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [1, 1]}
    status = isvc["status"]
    assert status["url"] == "http://sklearn-iris-default.example.com"
    assert status["address"]["url"] == f"{ksrv_platform.gateway}/serving/default/sklearn-iris"
    # KServe's getting-started recipe, verbatim but for the gateway's address.
    ksrv = " ".join(KSRV)
    recipe = (
        f"SERVICE_HOSTNAME=$({ksrv} get inferenceservice sklearn-iris -o jsonpath='{{.status.url}}'"
        " | cut -d/ -f3)\n"
        f'curl -s -H "Host: ${{SERVICE_HOSTNAME}}" -H "Content-Type: application/json" '
        f"{ksrv_platform.gateway}/v1/models/sklearn-iris:predict -d @-"
    )
    answer = subprocess.run(
        ["bash", "-ec", recipe],
        input=json.dumps({"instances": IRIS_ROWS}),
        env=ksrv_platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(answer.stdout) == {"predictions": [1, 1]}, answer.stderr
    assert (
        status["components"]["predictor"]["latestCreatedRevision"] == "sklearn-iris-predictor-00001"
    )
    assert status["modelStatus"]["states"]["targetModelState"] == "Loaded"
    assert status["clusterServingRuntimeName"] == "ksrv-sklearn"
    # Host-based routing reaches the same service, both KServe host forms.
    for host in ("sklearn-iris-default.example.com", "sklearn-iris.default.example.com"):
        routed = ksrv_platform.http.post(
            f"{ksrv_platform.gateway}/v1/models/sklearn-iris:predict",
            json={"instances": IRIS_ROWS},
            headers={"host": host},
        )
        assert routed.json() == {"predictions": [1, 1]}, routed.text
    table = ksrv_platform.cli("get", "isvc")
    assert "sklearn-iris" in table and "True" in table
    assert "sklearn-iris" in ksrv_platform.cli("logs", "sklearn-iris")


def test_xgboost_v2_example_answers_open_inference_protocol(ksrv_platform, model_dirs):
    document = with_storage(example("kserve__docs__samples__v1beta1__xgboost__xgboost.yaml")[0],
                            str(model_dirs["xgboost"]))  # fmt: skip
    ksrv_platform.apply([document], "--wait", "--timeout", "90s")
    response = ksrv_platform.http.post(
        f"{ksrv_platform.gateway}/v2/models/xgboost-iris/infer",
        headers={"host": "xgboost-iris-default.example.com"},
        json={
            "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]
        },
    )
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [2, 3]
    assert np.argmax(np.reshape(output["data"], (2, 3)), axis=1).tolist() == [1, 1]


def test_transformer_in_front_of_predictor(ksrv_platform, model_dirs):
    document = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris-transformed"},
        "spec": {
            "transformer": {
                "containers": [{
                    "name": "kserve-container",
                    "image": "kserve/image-transformer:latest",
                    "command": ["python", str(PORTS / "custom_transformer.py")],
                }],
            },
            "predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                    "storageUri": str(model_dirs["sklearn"])}},
        },
    }  # fmt: skip
    ksrv_platform.apply([document], "--wait", "--timeout", "90s")
    encoded = [
        {"image": {"b64": base64.b64encode(np.asarray(row, np.float32).tobytes()).decode()}}
        for row in IRIS_ROWS
    ]
    response = ksrv_platform.http.post(
        f"{ksrv_platform.gateway}/serving/default/iris-transformed/v1/models/"
        "iris-transformed:predict",
        json={"instances": encoded},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [1, 1]}


def test_explainer_answers_explain_through_the_gateway(ksrv_platform, model_dirs):
    document = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris-explained"},
        "spec": {
            "predictor": {"sklearn": {"storageUri": str(model_dirs["sklearn"])}},
            "explainer": {"containers": [{"name": "kserve-container",
                                          "command": ["ksrv", "serve", "--explainer", "shap"]}]},
        },
    }  # fmt: skip
    ksrv_platform.apply([document], "--wait", "--timeout", "120s")
    base = f"{ksrv_platform.gateway}/serving/default/iris-explained/v1/models/iris-explained"
    explained = ksrv_platform.http.post(
        f"{base}:explain", json={"instances": IRIS_ROWS[:1], "parameters": {"nsamples": 20}}
    )
    assert explained.status_code == 200, explained.text
    assert "shap_values" in explained.text or "explanations" in explained.text
    assert ksrv_platform.http.post(f"{base}:predict", json={"instances": IRIS_ROWS}).json() == {
        "predictions": [1, 1]
    }


@contextmanager
def steady_load(platform: LocalKsrv, name: str, clients: int = 4) -> Iterator[dict[str, Any]]:
    """`clients` threads predicting in a loop; yields counts of answers and failures."""
    counts: dict[str, Any] = {"ok": 0, "failed": [], "stop": False}
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not counts["stop"]:
                try:
                    response = http.post(
                        f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict",
                        json={"instances": IRIS_ROWS},
                    )
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                with lock:
                    if ok:
                        counts["ok"] += 1
                    else:
                        counts["failed"].append(detail)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield counts
    finally:
        counts["stop"] = True
        for thread in threads:
            thread.join(30)


def wait_until(condition, timeout_s: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def iris_isvc(name: str, storage_uri: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                **predictor,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri},
            }
        },
    }


def test_spec_update_rolls_to_a_new_revision_without_failed_requests(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("rolling", str(model_dirs["sklearn"]))], "--wait")
    with steady_load(ksrv_platform, "rolling") as counts:
        wait_until(lambda: counts["ok"] > 20, what="load to start")
        ksrv_platform.apply([iris_isvc("rolling", str(model_dirs["sklearn-v2"]))])

        def rolled() -> bool:
            status = ksrv_platform.isvc("rolling")["status"]["components"]["predictor"]
            return status.get("latestRolledoutRevision") == "rolling-predictor-00002"

        wait_until(rolled, what="the new revision to take the traffic")
        before = counts["ok"]
        wait_until(lambda: counts["ok"] > before + 50, what="load on the new revision")
    assert counts["failed"] == [], counts["failed"][:5]
    assert counts["ok"] > 100
    pids = ksrv_platform.replica_pids()
    wait_until(lambda: "rolling-predictor-00001" not in ksrv_platform.replica_pids(),
               what="the old revision to stop")  # fmt: skip
    assert "rolling-predictor-00002" in pids


def test_canary_traffic_percent_splits_between_revisions(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("canary", str(model_dirs["sklearn"]))], "--wait")
    ksrv_platform.apply(
        [iris_isvc("canary", str(model_dirs["sklearn-v2"]), canaryTrafficPercent=30)]
    )

    def split() -> bool:
        traffic = ksrv_platform.isvc("canary")["status"]["components"]["predictor"]["traffic"]
        return sorted(t["percent"] for t in traffic) == [30, 70]

    wait_until(split, what="a 30/70 split")
    traffic = ksrv_platform.isvc("canary")["status"]["components"]["predictor"]["traffic"]
    latest = next(t for t in traffic if t["latestRevision"])
    assert latest["revisionName"] == "canary-predictor-00002" and "tag" not in latest
    (prev,) = (t for t in traffic if t.get("tag") == "prev")  # KServe tags it, always
    assert prev["revisionName"] == "canary-predictor-00001"
    # Promote: drop the percent; the latest revision takes everything, the old one stops.
    ksrv_platform.apply([iris_isvc("canary", str(model_dirs["sklearn-v2"]))])

    def promoted() -> bool:
        traffic = ksrv_platform.isvc("canary")["status"]["components"]["predictor"]["traffic"]
        return [(t["revisionName"], t["percent"]) for t in traffic] == [
            ("canary-predictor-00002", 100)
        ]

    wait_until(promoted, what="promotion")


def test_replica_killed_under_load_loses_no_request(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("sturdy", str(model_dirs["sklearn"]), minReplicas=2)], "--wait")
    wait_until(lambda: len(ksrv_platform.replica_pids().get("sturdy-predictor-00001", [])) == 2,
               what="two replicas")  # fmt: skip
    victim = ksrv_platform.replica_pids()["sturdy-predictor-00001"][0]
    with steady_load(ksrv_platform, "sturdy") as counts:
        wait_until(lambda: counts["ok"] > 50, what="load to start")
        os.kill(victim, signal.SIGKILL)
        before = counts["ok"]
        wait_until(lambda: counts["ok"] > before + 200, what="load after the kill")
        wait_until(lambda: victim not in ksrv_platform.replica_pids()["sturdy-predictor-00001"]
                   and len(ksrv_platform.replica_pids()["sturdy-predictor-00001"]) == 2,
                   what="the replica to be replaced")  # fmt: skip
    assert counts["failed"] == [], counts["failed"][:5]


def test_control_plane_killed_and_restarted_keeps_state_and_service(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("survivor", str(model_dirs["sklearn"]))], "--wait")
    before = ksrv_platform.isvc("survivor")
    pids = ksrv_platform.replica_pids()["survivor-predictor-00001"]
    with steady_load(ksrv_platform, "survivor", clients=2) as counts:
        wait_until(lambda: counts["ok"] > 20, what="load to start")
        ksrv_platform.kill()
        during = counts["ok"]
        wait_until(
            lambda: counts["ok"] > during + 50, what="answers while the control plane is down"
        )
        ksrv_platform.start()
        after_restart = counts["ok"]
        wait_until(lambda: counts["ok"] > after_restart + 50, what="answers after the restart")
    assert counts["failed"] == [], counts["failed"][:5]
    after = ksrv_platform.wait_ready("survivor")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert ksrv_platform.replica_pids()["survivor-predictor-00001"] == pids  # adopted
    assert v1_predict(ksrv_platform, "survivor").json() == {"predictions": [1, 1]}


def test_delete_stops_the_replicas_and_the_route(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("doomed", str(model_dirs["sklearn"]))], "--wait")
    pids = ksrv_platform.replica_pids()["doomed-predictor-00001"]
    assert "deleted" in ksrv_platform.cli("delete", "isvc", "doomed")
    wait_until(lambda: "doomed-predictor-00001" not in ksrv_platform.replica_pids(),
               what="the replicas to stop")  # fmt: skip
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="exit")
    wait_until(lambda: v1_predict(ksrv_platform, "doomed").status_code == 404, what="route gone")


def test_invalid_resource_is_refused_with_the_field(ksrv_platform):
    bad = iris_isvc("bad", "/nowhere", minReplicas=-1)
    output = ksrv_platform.cli("apply", "-f", "-", stdin=_yaml(bad), check=False)
    assert "minReplicas" in output
    dry = ksrv_platform.cli("apply", "--dry-run", "-f", "-", stdin=_yaml(bad), check=False)
    assert "minReplicas" in dry


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document)


def test_inference_graph_is_stored_and_names_the_service_it_waits_for(ksrv_platform):
    graph = next(d for d in example("kserve__docs__samples__graph__ensemble.yaml")
                 if d["kind"] == "InferenceGraph")  # fmt: skip
    graph["metadata"]["namespace"] = "graphs"  # no service there: the graph waits
    assert "created" in ksrv_platform.apply([graph])
    name = graph["metadata"]["name"]

    def reported() -> bool:
        document = json.loads(ksrv_platform.cli("get", "ig", name, "-n", "graphs", "-o", "json"))
        conditions = document.get("status", {}).get("conditions", [])
        return any(c.get("reason") == "InferenceServiceNotFound"
                   and "sklearn-iris" in c.get("message", "") for c in conditions)  # fmt: skip

    wait_until(reported, what="the InferenceGraph status")
    assert name in ksrv_platform.cli("get", "ig", "-n", "graphs")
    ksrv_platform.cli("delete", "ig", name, "-n", "graphs")


def test_fields_without_local_meaning_are_reported_in_status(ksrv_platform, model_dirs):
    document = iris_isvc("noted", str(model_dirs["sklearn"]), nodeSelector={"gpu": "a100"},
                         logger={"mode": "all", "url": "http://127.0.0.1:9/",
                                 "storage": {"path": "/logs"}})  # fmt: skip
    isvc = ksrv_platform.apply([document], "--wait") and ksrv_platform.isvc("noted")
    conditions = {c["type"]: c for c in isvc["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    message = conditions["LocalLimitations"]["message"]
    assert "spec.predictor.nodeSelector" in message
    assert "spec.predictor.logger.storage" in message  # the logger itself runs locally


def test_grpc_through_the_gateway_port_routed_by_host(ksrv_platform, model_dirs):
    import tritonclient.grpc as grpcclient

    ksrv_platform.apply([iris_isvc("iris-grpc", str(model_dirs["sklearn"]))], "--wait")
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ksrv_platform.grpc_port}")
    host = {"host": "iris-grpc-default.example.com"}
    try:
        assert client.is_model_ready("iris-grpc", headers=host)
        infer_input = grpcclient.InferInput("input-0", [2, 4], "FP64")
        infer_input.set_data_from_numpy(np.asarray(IRIS_ROWS, dtype=np.float64))
        result = client.infer("iris-grpc", [infer_input], headers=host)
        assert result.as_numpy("output-0").tolist() == [1, 1]
    finally:
        client.close()


def test_deleted_and_recreated_at_once_gets_a_fresh_revision(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("phoenix", str(model_dirs["sklearn"]))], "--wait")
    ksrv_platform.cli("delete", "isvc", "phoenix")
    ksrv_platform.apply([iris_isvc("phoenix", str(model_dirs["sklearn-v2"]))], "--wait")
    assert v1_predict(ksrv_platform, "phoenix").json() == {"predictions": [1, 1]}


def test_junk_written_to_a_status_does_not_stop_the_reconciler(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("scribbled", str(model_dirs["sklearn"]))], "--wait")
    url = (
        f"{ksrv_platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/"
        "inferenceservices/scribbled/status"
    )
    junk = {"status": {"components": "nonsense", "conditions": ["also nonsense"]}}
    assert ksrv_platform.http.put(url, json=junk).status_code == 200
    isvc = ksrv_platform.wait_ready("scribbled")  # the next pass writes a real status back
    assert isvc["status"]["components"]["predictor"]["latestCreatedRevision"]
    ksrv_platform.apply([iris_isvc("after-junk", str(model_dirs["sklearn"]))], "--wait")


def test_a_failing_rollout_keeps_the_old_revision_even_when_its_replica_crashes(
    ksrv_platform, model_dirs, tmp_path
):
    ksrv_platform.apply([iris_isvc("steadfast", str(model_dirs["sklearn"]))], "--wait")
    ksrv_platform.apply([iris_isvc("steadfast", str(tmp_path / "no-model-here"))])
    wait_until(lambda: "steadfast-predictor-00002" in ksrv_platform.replica_pids(),
               what="the failing revision to start")  # fmt: skip
    os.kill(ksrv_platform.replica_pids()["steadfast-predictor-00001"][0], signal.SIGKILL)
    wait_until(lambda: v1_predict(ksrv_platform, "steadfast").status_code == 200,
               what="the old revision to answer again")  # fmt: skip
    predictor = ksrv_platform.isvc("steadfast")["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "steadfast-predictor-00001"
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [
        ("steadfast-predictor-00002", 0),
        ("steadfast-predictor-00001", 100),
    ]


def test_a_canary_split_holds_when_the_previous_revision_crashes(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("split", str(model_dirs["sklearn"]))], "--wait")
    ksrv_platform.apply(
        [iris_isvc("split", str(model_dirs["sklearn-v2"]), canaryTrafficPercent=20)]
    )

    def percents() -> list[tuple[str, int]]:
        traffic = ksrv_platform.isvc("split")["status"]["components"]["predictor"]["traffic"]
        return sorted((t["revisionName"], t["percent"]) for t in traffic)

    expected = [("split-predictor-00001", 80), ("split-predictor-00002", 20)]
    wait_until(lambda: percents() == expected, what="the 20/80 split")
    (victim,) = ksrv_platform.replica_pids()["split-predictor-00001"]
    os.kill(victim, signal.SIGKILL)

    def restarted_and_routed_again() -> bool:
        assert percents() == expected  # at every look while the previous revision restarts
        pids = ksrv_platform.replica_pids().get("split-predictor-00001", [])
        routed = ksrv_platform.routed_replicas("split")
        return bool(pids) and victim not in pids and routed.get("split-predictor-00001") == 1

    # The reconciler saw the restart through: the new replica is back in the route table.
    wait_until(restarted_and_routed_again, what="the previous revision restarted and routed")
    assert percents() == expected
    predictor = ksrv_platform.isvc("split")["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "split-predictor-00001"


def test_the_only_replica_killed_under_load_loses_no_request(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris_isvc("lonely", str(model_dirs["sklearn"]))], "--wait")
    (victim,) = ksrv_platform.replica_pids()["lonely-predictor-00001"]
    with steady_load(ksrv_platform, "lonely", clients=2) as counts:
        wait_until(lambda: counts["ok"] > 30, what="load to start")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in ksrv_platform.replica_pids()["lonely-predictor-00001"]
                   and ksrv_platform.replica_pids()["lonely-predictor-00001"],
                   what="the replica to be replaced")  # fmt: skip
        before = counts["ok"]
        wait_until(lambda: counts["ok"] > before + 50, what="answers from the new replica")
    assert counts["failed"] == [], counts["failed"][:5]
