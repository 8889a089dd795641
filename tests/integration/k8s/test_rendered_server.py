"""The rendered model container really runs: a multi-model predictor with a `logger`, its
`kserve-container` args as rendered (only the pod's paths and ports swapped for this machine's),
started as a real `ksrv serve`, loads a TrainedModel from the models.json the ConfigMap holds and
logs the request's CloudEvent."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from ksrv.k8s import render
from ksrv.k8s.config import STANDARD, ClusterConfig
from tests import models
from tests.conftest import KSRV, ServerProcess, free_port, wait_until
from tests.k8s_support import assert_valid


def test_the_rendered_multi_model_container_serves_and_logs(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"predictor": {
            "logger": {"url": f"file://{events}", "mode": "request"},
            "sklearn": {"resources": {"requests": {"memory": "64Mi"}}},
        }},
    }  # fmt: skip
    trained = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "model1", "namespace": "ml"},
        "spec": {"inferenceService": "iris", "model": {
            "storageUri": str(models.sklearn_iris(tmp_path / "iris")),
            "framework": "sklearn", "memory": "1Mi",
        }},
    }  # fmt: skip
    result = render.render_documents([isvc, trained], ClusterConfig(), STANDARD)
    assert result.problems == [] and result.warnings == []
    assert_valid(result.objects)
    (deployment,) = (o for o in result.objects if o["kind"] == "Deployment")
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    (config_map,) = (o for o in result.objects if o["kind"] == "ConfigMap")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "models.json").write_text(config_map["data"]["models.json"])

    port, grpc_port = free_port(), free_port()
    here = {
        "--host=0.0.0.0": "--host=127.0.0.1",
        "--http-port=8080": f"--http-port={port}",
        "--grpc-port=8081": f"--grpc-port={grpc_port}",
        "/mnt/configs/models.json": str(tmp_path / "configs" / "models.json"),
    }
    args = [here.get(arg, arg) for arg in main["args"]]
    assert main["command"] == ["ksrv", "serve"] and args != main["args"]
    server = ServerProcess([*KSRV, "serve", *args], port, grpc_port=grpc_port)
    try:
        server.wait_ready()
        response = httpx.post(
            f"{server.url}/v1/models/model1:predict",
            json={"instances": [[6.8, 2.8, 4.8, 1.4]]},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [1]}
        wait_until(lambda: events.exists() and events.read_text().strip() != "", what="an event")
        event = json.loads(events.read_text().splitlines()[0])
        assert event["type"] == "org.kubeflow.serving.inference.request"
        assert (event["inferenceservicename"], event["namespace"]) == ("iris", "ml")
        assert (event["component"], event["endpoint"]) == ("predictor", "default")
    finally:
        server.stop()
