"""`ksrv apply` refuses fields no CRD defines (kubectl's strict validation) with or without a
server, and `apply --wait` stops at once on a failure waiting will not change. The real `ksrv`
CLI in-process (CliRunner) against a real management API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from ksrv.cli.main import cli
from ksrv.control.api_server import ManagementAPI
from ksrv.control.store import Store
from tests.api_server_support import running_api

TYPO_ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    minReplica: 2
    model:
      modelFormat:
        name: sklearn
      storageUrl: gs://kfserving-examples/models/sklearn/1.0/model
"""
GOOD_ISVC = TYPO_ISVC.replace("    minReplica: 2\n", "").replace("storageUrl", "storageUri")
TYPO_LINES = [
    "  * spec.predictor.minReplica: unknown field; did you mean minReplicas?",
    "  * spec.predictor.model.storageUrl: unknown field; did you mean storageUri?",
]
# One misspelt field per kind ksrv serves, and the path the error must name.
TYPOS = [
    (
        "/apis/serving.kserve.io/v1alpha1/namespaces/default/servingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": {"name": "rt"},
            "spec": {
                "supportedModelFormats": [{"name": "sklearn", "autoselect": True}],
                "containers": [{"name": "kserve-container", "image": "x"}],
            },
        },
        "spec.supportedModelFormats[0].autoselect",
        "did you mean autoSelect?",
    ),
    (
        "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ClusterServingRuntime",
            "metadata": {"name": "rt"},
            "spec": {"containers": [{"name": "kserve-container", "image": "x", "agrs": ["a"]}]},
        },
        "spec.containers[0].agrs",
        "did you mean args?",
    ),
    (
        "/apis/serving.kserve.io/v1alpha1/namespaces/default/inferencegraphs",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "InferenceGraph",
            "metadata": {"name": "graph"},
            "spec": {"nodes": {"root": {"routerType": "Sequence", "step": []}}},
        },
        "spec.nodes.root.step",
        "did you mean steps?",
    ),
    (
        "/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "TrainedModel",
            "metadata": {"name": "tm"},
            "spec": {
                "inferenceService": "iris",
                "model": {"storageUri": "gs://b/m", "framework": "sklearn", "memory": "1Gi"},
            },
            "spce": {},
        },
        "spce",
        "did you mean spec?",
    ),
]
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
SERVING_RUNTIMES = "/apis/serving.kserve.io/v1alpha1/namespaces/default/servingruntimes"


def _isvc_with(model: dict[str, Any]) -> dict[str, Any]:
    spec = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m", **model}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "sklearn-iris"},
        "spec": {"predictor": {"model": spec}},
    }


# Typos inside the pod-spec fields KServe inlines, which ksrv's models leave untyped.
DEEP_TYPOS = [
    (
        ISVCS,
        _isvc_with({"readinessProbe": {"httpGet": {"paht": "/ready", "port": 8080}}}),
        "spec.predictor.model.readinessProbe.httpGet.paht",
        "did you mean path?",
    ),
    (
        ISVCS,
        _isvc_with({"volumeMounts": [{"name": "data", "mountPaht": "/data"}]}),
        "spec.predictor.model.volumeMounts[0].mountPaht",
        "did you mean mountPath?",
    ),
    (
        ISVCS,
        _isvc_with(
            {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyref": {"name": "s", "key": "t"}}}]}
        ),
        "spec.predictor.model.env[0].valueFrom.secretKeyref",
        "did you mean secretKeyRef?",
    ),
    (
        SERVING_RUNTIMES,
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": {"name": "rt"},
            "spec": {
                "supportedModelFormats": [{"name": "sklearn"}],
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "x",
                        "livenessProbe": {"exec": {"comand": ["true"]}},
                    }
                ],
            },
        },
        "spec.containers[0].livenessProbe.exec.comand",
        "did you mean command?",
    ),
]
TERMINAL = {
    "conditions": [
        {"type": "PredictorReady", "status": "False", "reason": "ModelLoadFailed",
         "message": "failed to load on 3 tries (still retrying with back-off): no model file"},
        {"type": "Ready", "status": "False", "reason": "ModelLoadFailed",
         "message": "failed to load on 3 tries (still retrying with back-off): no model file"},
    ],
}  # fmt: skip
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


class StatusAfterApply(Store):
    """Each read of the service after its apply turns its status into the next of `statuses`
    (observedGeneration = `generation(spec generation)`), so `apply --wait` sees them in turn."""

    statuses: ClassVar[list[tuple[dict, int]]] = []

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads = 0
        self.is_applied = False

    def apply(self, doc):
        self.is_applied = True
        return super().apply(doc)

    def get(self, kind, namespace, name):
        document = super().get(kind, namespace, name)
        if self.is_applied and self.reads < len(self.statuses):
            status, lag = self.statuses[self.reads]
            generation = document["metadata"]["generation"]
            self.update_status(
                kind, namespace, name, {**status, "observedGeneration": generation - lag}
            )
            self.reads += 1
            document = super().get(kind, namespace, name)
        return document


class TerminalAtOnce(StatusAfterApply):
    statuses: ClassVar = [(TERMINAL, 0)]


class StaleTerminalThenReady(StatusAfterApply):
    # The previous generation's failure must not stop a wait for the new spec.
    statuses: ClassVar = [(TERMINAL, 1), (READY, 0)]


@pytest.fixture
def store(request) -> Store:
    return getattr(request, "param", Store)(":memory:")


@pytest.fixture
def server(store) -> Iterator[str]:
    with running_api(ManagementAPI(store)) as running:
        yield running.url


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "isvc.yaml"
    path.write_text(text)
    return str(path)


def test_dry_run_refuses_unknown_fields_with_did_you_mean(tmp_path):
    result = CliRunner().invoke(cli, ["apply", "--dry-run", "-f", write(tmp_path, TYPO_ISVC)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'error: InferenceService "sklearn-iris" is invalid:',
        *TYPO_LINES,
    ]
    assert result.stdout == ""


def test_apply_refuses_unknown_fields_and_stores_nothing(tmp_path, server, store):
    result = CliRunner().invoke(
        cli, ["apply", "-f", write(tmp_path, TYPO_ISVC), "--server", server]
    )
    assert result.exit_code == 1
    # the same report as --dry-run's, from the server's causes
    assert result.stderr.splitlines() == [
        'Error from server (Invalid): InferenceService "sklearn-iris" is invalid:',
        *TYPO_LINES,
    ]
    assert store.list("InferenceService") == []


@pytest.mark.parametrize(
    ("url", "document", "path", "hint"), TYPOS, ids=[d["kind"] for _, d, _, _ in TYPOS]
)
def test_every_kind_answers_422_naming_the_unknown_field(server, url, document, path, hint):
    response = httpx.post(server + url, json=document, timeout=10)
    assert response.status_code == 422, response.text
    causes = {cause["field"]: cause["message"] for cause in response.json()["details"]["causes"]}
    assert causes == {path: f"unknown field; {hint}"}


@pytest.mark.parametrize(
    ("url", "document", "path", "hint"), DEEP_TYPOS, ids=[p for _, _, p, _ in DEEP_TYPOS]
)
def test_dry_run_refuses_a_typo_deep_in_a_pod_field(tmp_path, url, document, path, hint):
    text = yaml.safe_dump(document, sort_keys=False)
    result = CliRunner().invoke(cli, ["apply", "--dry-run", "-f", write(tmp_path, text)])
    assert result.exit_code == 1
    assert f"  * {path}: unknown field; {hint}" in result.stderr.splitlines()
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("url", "document", "path", "hint"), DEEP_TYPOS, ids=[p for _, _, p, _ in DEEP_TYPOS]
)
def test_the_api_answers_422_for_a_typo_deep_in_a_pod_field(
    server, store, url, document, path, hint
):
    response = httpx.post(server + url, json=document, timeout=10)
    assert response.status_code == 422, response.text
    causes = {cause["field"]: cause["message"] for cause in response.json()["details"]["causes"]}
    assert causes[path] == f"unknown field; {hint}"
    assert store.list(document["kind"]) == []


def apply_and_wait(tmp_path: Path, server: str) -> Result:
    argv = ["apply", "-f", write(tmp_path, GOOD_ISVC), "--wait", "--timeout", "1h"]
    return CliRunner().invoke(cli, [*argv, "--server", server])


@pytest.mark.parametrize("store", [TerminalAtOnce], indirect=True)
def test_apply_wait_stops_at_once_on_a_terminal_failure(tmp_path, server, store):
    result = apply_and_wait(tmp_path, server)
    assert result.exit_code == 1
    assert store.reads == 1
    assert result.stderr.strip() == (
        "Error: inferenceservice.serving.kserve.io/sklearn-iris will not become Ready: "
        "ModelLoadFailed: failed to load on 3 tries (still retrying with back-off): no model file"
    )


@pytest.mark.parametrize("store", [StaleTerminalThenReady], indirect=True)
def test_apply_wait_ignores_the_failure_of_an_older_generation(tmp_path, server, store):
    result = apply_and_wait(tmp_path, server)
    assert result.exit_code == 0, result.output
    assert store.reads == 2
    assert result.stdout.splitlines()[-1] == (
        "inferenceservice.serving.kserve.io/sklearn-iris condition met"
    )
