"""Issue 13's bar: `ksrv k8s operator`, pointed by KUBECONFIG at the strict emulator, creates a
sklearn InferenceService's Deployment (with the storage initializer) and Service, turns it Ready
with its URL once the Deployment reports ready replicas, and deleting it removes them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import KSRV, wait_until
from tests.k8s_cluster import Cluster, isvc

NS = "default"
TIMEOUT_S = 40.0  # includes the command's start-up (imports, discovery)


def test_ksrv_k8s_operator_serves_sklearn_from_create_to_delete(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path
) -> None:
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*KSRV, "k8s", "operator"],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            _serve_and_delete(cluster)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{log_path.read_text()}") from None
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
    assert process.returncode == 0, log_path.read_text()


def _serve_and_delete(cluster: Cluster) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    pod = cluster.deployment(NS, "sklearn-iris-predictor")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]
    wait_until(lambda: cluster.service(NS, "sklearn-iris-predictor") is not None,
               "the predictor Service exists", TIMEOUT_S)  # fmt: skip
    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("status")
               == "True", "the InferenceService is Ready", TIMEOUT_S)  # fmt: skip
    assert cluster.isvc(NS, "sklearn-iris")["status"]["url"] == (
        "http://sklearn-iris-default.example.com"
    )
    cluster.delete_isvc(NS, "sklearn-iris")
    wait_until(lambda: cluster.isvc(NS, "sklearn-iris") is None,
               "the InferenceService is gone", TIMEOUT_S)  # fmt: skip
    assert cluster.deployment(NS, "sklearn-iris-predictor") is None
    assert cluster.service(NS, "sklearn-iris-predictor") is None
