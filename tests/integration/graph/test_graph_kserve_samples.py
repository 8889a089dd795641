"""KServe's graph samples (docs/samples/graph/sequence.yaml and ensemble.yaml) handed to the
router exactly as the control plane hands them: `ksrv.k8s.graph.graph_json` resolves each
`serviceName` to the service's predict URL, here a real `ksrv serve` of sklearn iris (standing
in for both sklearn-iris and xgboost-iris), and the router answers what KServe's does."""

from __future__ import annotations

import httpx
import yaml

from ksrv.api import resources
from ksrv.k8s import graph as k8s_graph
from tests.conftest import KSRV, ServerProcess, free_port

IRIS_INPUT = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}

SEQUENCE = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: model-chainer
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceName: sklearn-iris
        - serviceName: xgboost-iris
          data: $request
"""
ENSEMBLE = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: ensemble-model
spec:
  nodes:
    root:
      routerType: Ensemble
      steps:
        - serviceName: sklearn-iris
          name: sklearn-iris
        - serviceName: xgboost-iris
          name: xgboost-iris
"""


def _router(sample: str, iris_url: str) -> ServerProcess:
    graph = resources.load(yaml.safe_load(sample), is_strict=True)
    graph_json = k8s_graph.graph_json(graph, lambda name, namespace: iris_url)
    port = free_port()
    command = [*KSRV, "router", "--graph-json", graph_json, "--http-port", str(port)]
    return ServerProcess(command, port).wait_ready(path="/readyz")


def test_kserves_sequence_sample_answers_the_last_steps_predictions(iris_server):
    router = _router(SEQUENCE, f"{iris_server.url}/v1/models/iris:predict")
    try:
        response = httpx.post(router.url, json=IRIS_INPUT)
        assert response.json() == {"predictions": [1, 1]}
        assert response.headers["ksrv-graph-steps"] == "root/0=200,root/1=200"
    finally:
        assert router.stop() == 0


def test_kserves_ensemble_sample_answers_each_step_under_its_name(iris_server):
    router = _router(ENSEMBLE, f"{iris_server.url}/v1/models/iris:predict")
    try:
        response = httpx.post(router.url, json=IRIS_INPUT)
        assert response.json() == {
            "sklearn-iris": {"predictions": [1, 1]},
            "xgboost-iris": {"predictions": [1, 1]},
        }
    finally:
        assert router.stop() == 0
