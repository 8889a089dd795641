"""`ksrv apply|get|describe|delete|logs` run in-process (click's CliRunner) against a real
management API on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ksrv.cli import tables
from ksrv.cli.main import cli
from ksrv.control.api_server import ManagementAPI
from ksrv.control.store import Store
from tests.api_server_support import running_api
from tests.conftest import free_port

ISVC_YAML = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: {uri}
"""
RUNTIME_YAML = """\
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: my-runtime
spec:
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
  containers:
    - name: kserve-container
      image: ksrv
"""
INVALID_YAML = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: broken
spec: {}
"""
READY_STATUS = {
    "url": "http://sklearn-iris.default.example.com",
    "address": {"url": "http://127.0.0.1:8080/serving/default/sklearn-iris"},
    "conditions": [
        {"type": "PredictorReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "IngressReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ],
    "components": {
        "predictor": {
            "latestCreatedRevision": "sklearn-iris-predictor-00002",
            "latestReadyRevision": "sklearn-iris-predictor-00002",
            "traffic": [
                {"revisionName": "sklearn-iris-predictor-00002", "percent": 90,
                 "latestRevision": True, "tag": "latest"},
                {"revisionName": "sklearn-iris-predictor-00001", "percent": 10,
                 "latestRevision": False, "tag": "prev"},
            ],
        }
    },
    "modelStatus": {
        "transitionStatus": "UpToDate",
        "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
        "copies": {"failedCopies": 0, "totalCopies": 1},
    },
}  # fmt: skip
FAILING_STATUS = {
    "conditions": [
        {"type": "PredictorReady", "status": "False", "reason": "ModelLoadFailed",
         "message": "no model file in /models"},
        {"type": "Ready", "status": "False", "reason": "ModelLoadFailed"},
    ],
    "modelStatus": {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "location": "sklearn-iris-predictor-00001",
                            "message": "no model file in /models", "exitCode": 1},
    },
}  # fmt: skip


class FakeLogSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    def log_paths(self, namespace: str, name: str, component: str) -> list[Path]:
        return (
            [self.path]
            if (namespace, name, component) == ("default", "sklearn-iris", "predictor")
            else []
        )


class ReadyAfterTheFirstPoll(Store):
    """sklearn-iris turns Ready right after the first read that follows its apply: that read
    is `apply --wait`'s first poll, which so sees it not Ready and must wait for a later one."""

    is_applied = False
    is_made_ready = False

    def apply(self, doc):
        self.is_applied = True
        return super().apply(doc)

    def get(self, kind, namespace, name):
        document = super().get(kind, namespace, name)
        if self.is_applied and not self.is_made_ready:
            self.is_made_ready = True
            set_status(self, READY_STATUS)
        return document


@pytest.fixture
def store(request) -> Store:
    """A fresh store; a test may name a Store subclass with `indirect` parametrization."""
    return getattr(request, "param", Store)(":memory:")


@pytest.fixture
def server(store, tmp_path) -> Iterator[str]:
    log = tmp_path / "replica-0.log"
    log.write_text("starting\nloaded model\nready\n")
    with running_api(ManagementAPI(store, logs=FakeLogSource(log))) as running:
        yield running.url


@pytest.fixture
def ksrv(server):
    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, [*args, "--server", server], input=input)

    return run


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "isvc.yaml"
    path.write_text(ISVC_YAML.format(uri="gs://a"))
    return path


def set_status(store: Store, status: dict, name: str = "sklearn-iris") -> None:
    store.update_status("InferenceService", "default", name, status)


def test_apply_prints_created_unchanged_configured(ksrv, manifest):
    first = ksrv("apply", "-f", str(manifest))
    assert first.exit_code == 0, first.output
    assert first.stdout == "inferenceservice.serving.kserve.io/sklearn-iris created\n"
    assert ksrv("apply", "-f", str(manifest)).stdout.endswith(" unchanged\n")
    manifest.write_text(ISVC_YAML.format(uri="gs://b"))
    assert ksrv("apply", "-f", str(manifest)).stdout.endswith(" configured\n")


def test_apply_a_directory_takes_its_manifests_in_name_order(ksrv, tmp_path, store):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "b.yaml").write_text(ISVC_YAML.format(uri="gs://b").replace("sklearn-iris", "b-isvc"))
    (folder / "a.yml").write_text(RUNTIME_YAML)
    (folder / "c.json").write_text(json.dumps(yaml.safe_load(ISVC_YAML.format(uri="gs://c"))))
    (folder / "notes.txt").write_text("not a manifest")
    result = ksrv("apply", "-f", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "clusterservingruntime.serving.kserve.io/my-runtime created",
        "inferenceservice.serving.kserve.io/b-isvc created",
        "inferenceservice.serving.kserve.io/sklearn-iris created",
    ]
    assert "namespace" not in store.get("ClusterServingRuntime", "", "my-runtime")["metadata"]


def test_apply_reads_multi_document_yaml_from_stdin_into_the_given_namespace(ksrv, store):
    text = ISVC_YAML.format(uri="gs://a") + "---\n" + RUNTIME_YAML
    result = ksrv("apply", "-f", "-", "-n", "prod", input=text)
    assert result.exit_code == 0, result.output
    assert store.get("InferenceService", "prod", "sklearn-iris")["metadata"]["namespace"] == "prod"


def test_apply_refuses_a_namespace_that_contradicts_the_document(ksrv, tmp_path):
    path = tmp_path / "isvc.yaml"
    path.write_text(
        ISVC_YAML.format(uri="gs://a").replace(
            "  name: sklearn-iris", "  name: sklearn-iris\n  namespace: team-a"
        )
    )
    result = ksrv("apply", "-f", str(path), "-n", "team-b")
    assert result.exit_code == 1
    assert "does not match" in result.stderr


def test_apply_of_an_invalid_resource_fails_with_the_server_message(ksrv, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID_YAML)
    result = ksrv("apply", "-f", str(path))
    assert result.exit_code == 1
    assert "Error from server (Invalid)" in result.stderr
    assert "Traceback" not in result.output


def test_apply_of_a_missing_path_or_unparsable_file_is_one_line(ksrv, tmp_path):
    missing = ksrv("apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1
    assert "does not exist" in missing.stderr
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("a: [unclosed")
    result = ksrv("apply", "-f", str(garbage))
    assert result.exit_code == 1
    assert "error parsing" in result.stderr


def test_dry_run_defaults_locally_without_a_server(manifest):
    dead = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["apply", "--dry-run", "-f", str(manifest), "--server", dead])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["metadata"]["name"] == "sklearn-iris"
    assert shown["metadata"]["namespace"] == "default"
    assert shown["spec"]["predictor"]["model"]["storageUri"] == "gs://a"


def test_dry_run_of_an_invalid_resource_lists_field_errors_and_exits_1(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID_YAML)
    result = CliRunner().invoke(cli, ["apply", "--dry-run", "-f", str(path)])
    assert result.exit_code == 1
    assert 'error: InferenceService "broken" is invalid:' in result.stderr
    assert "  * spec.predictor" in result.stderr


def test_a_down_server_is_one_clear_line_and_exit_1(manifest):
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["get", "isvc"],
        ["apply", "-f", str(manifest)],
        ["delete", "isvc", "x"],
        ["logs", "x"],
    ):
        result = CliRunner().invoke(cli, [*args, "--server", dead])
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: cannot reach the ksrv control plane at {dead}: is `ksrv up` running?\n"
        )


def test_the_server_comes_from_KSRV_SERVER(server, manifest):
    result = CliRunner().invoke(cli, ["apply", "-f", str(manifest)], env={"KSRV_SERVER": server})
    assert result.exit_code == 0, result.output


def test_get_isvc_shows_kubectl_columns_before_and_after_status(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    before = ksrv("get", "isvc").stdout.splitlines()
    assert before[0].split() == [
        "NAME",
        "URL",
        "READY",
        "PREV",
        "LATEST",
        "PREVROLLEDOUTREVISION",
        "LATESTREADYREVISION",
        "ADDRESS",
        "AGE",
    ]
    assert before[1].split()[0] == "sklearn-iris"
    set_status(store, READY_STATUS)
    after = ksrv("get", "inferenceservices").stdout.splitlines()
    assert after[1].split()[:5] == [
        "sklearn-iris",
        "http://sklearn-iris.default.example.com",
        "True",
        "10",
        "90",
    ]
    assert after[1].split()[5:8] == [
        "sklearn-iris-predictor-00001",
        "sklearn-iris-predictor-00002",
        "http://127.0.0.1:8080/serving/default/sklearn-iris",
    ]


def test_get_across_namespaces_adds_a_namespace_column(ksrv, manifest):
    ksrv("apply", "-f", str(manifest))
    ksrv("apply", "-f", str(manifest), "-n", "prod")
    lines = ksrv("get", "isvc", "-A").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "prod"]


def test_get_by_name_as_yaml_or_json(ksrv, manifest):
    ksrv("apply", "-f", str(manifest))
    shown = yaml.safe_load(ksrv("get", "isvc", "sklearn-iris", "-o", "yaml").stdout)
    assert shown["kind"] == "InferenceService"
    assert shown["metadata"]["resourceVersion"] == "1"
    as_list = json.loads(ksrv("get", "isvc", "-o", "json").stdout)
    assert as_list["kind"] == "List"
    assert [item["metadata"]["name"] for item in as_list["items"]] == ["sklearn-iris"]
    slash = yaml.safe_load(ksrv("get", "isvc/sklearn-iris", "-o", "yaml").stdout)
    assert slash["metadata"]["name"] == "sklearn-iris"


def test_get_nothing_says_so_on_stderr(ksrv):
    result = ksrv("get", "isvc")
    assert result.exit_code == 0
    assert result.stderr == "No resources found in default namespace.\n"


def test_get_missing_name_is_a_not_found_error(ksrv):
    result = ksrv("get", "isvc", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Error from server (NotFound):")


def test_get_runtimes_shows_formats_and_containers(ksrv, tmp_path):
    path = tmp_path / "rt.yaml"
    path.write_text(RUNTIME_YAML)
    ksrv("apply", "-f", str(path))
    lines = ksrv("get", "csr").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISABLED", "MODELTYPE", "CONTAINERS", "AGE"]
    assert lines[-1].split()[:3] == ["my-runtime", "sklearn", "kserve-container"]
    long_name = ksrv("get", "clusterservingruntimes").stdout.splitlines()
    assert [line.split()[:-1] for line in long_name] == [line.split()[:-1] for line in lines]


def test_get_an_unknown_type_is_a_usage_error(ksrv):
    result = ksrv("get", "pods")
    assert result.exit_code == 2
    assert 'resource type "pods"' in result.stderr


def test_describe_shows_status_conditions_and_traffic(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    set_status(store, READY_STATUS)
    text = ksrv("describe", "isvc", "sklearn-iris").stdout
    assert "Name:          sklearn-iris" in text
    assert "Predictor:  model sklearn, storageUri=gs://a" in text
    assert "URL:       http://sklearn-iris.default.example.com" in text
    assert "PredictorReady" in text and "LAST TRANSITION" in text
    assert "sklearn-iris-predictor-00002   90%" in text
    assert "Transition Status:   UpToDate" in text


def test_describe_shows_the_last_failure_as_an_event(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    set_status(store, FAILING_STATUS)
    text = ksrv("describe", "isvc", "sklearn-iris").stdout
    events = text.split("Events:")[1]
    assert (
        "ModelLoadFailed in sklearn-iris-predictor-00001: no model file in /models (exit code 1)"
        in events
    )


def test_describe_before_any_status(ksrv, manifest):
    ksrv("apply", "-f", str(manifest))
    text = ksrv("describe", "isvc", "sklearn-iris").stdout
    assert "<none yet" in text


def test_delete_by_name_and_by_file(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    result = ksrv("delete", "isvc", "sklearn-iris")
    assert result.exit_code == 0
    assert result.stdout == 'inferenceservice.serving.kserve.io "sklearn-iris" deleted\n'
    assert store.list("InferenceService") == []
    ksrv("apply", "-f", str(manifest))
    assert ksrv("delete", "-f", str(manifest)).stdout.endswith('"sklearn-iris" deleted\n')
    assert store.list("InferenceService") == []


def test_delete_missing_fails_unless_ignored(ksrv):
    missing = ksrv("delete", "isvc", "nope")
    assert missing.exit_code == 1
    assert "NotFound" in missing.stderr
    assert ksrv("delete", "isvc", "nope", "--ignore-not-found").exit_code == 0


def test_logs_print_the_replica_log(ksrv):
    assert ksrv("logs", "sklearn-iris").stdout == "starting\nloaded model\nready\n"
    assert ksrv("logs", "sklearn-iris", "--tail", "1").stdout == "ready\n"
    missing = ksrv("logs", "sklearn-iris", "--component", "explainer")
    assert missing.exit_code == 1
    assert "NotFound" in missing.stderr


@pytest.mark.parametrize("store", [ReadyAfterTheFirstPoll], indirect=True)
def test_apply_wait_returns_once_ready(ksrv, manifest, store):
    result = ksrv("apply", "-f", str(manifest), "--wait", "--timeout", "20s")
    assert result.exit_code == 0, result.output
    assert store.is_made_ready
    assert result.stdout.splitlines() == [
        "inferenceservice.serving.kserve.io/sklearn-iris created",
        "inferenceservice.serving.kserve.io/sklearn-iris condition met",
    ]


def test_apply_wait_times_out_with_the_conditions(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    retrying = {  # a load that failed with tries left: waiting may still help
        "conditions": [
            {"type": "PredictorReady", "status": "False", "reason": "ModelLoadRetrying",
             "message": "no model file in /models"},
            {"type": "Ready", "status": "False", "reason": "ModelLoadRetrying"},
        ],
    }  # fmt: skip
    set_status(store, retrying)
    started = time.monotonic()
    result = ksrv("apply", "-f", str(manifest), "--wait", "--timeout", "1s")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert (
        "timed out waiting for inferenceservice.serving.kserve.io/sklearn-iris to be Ready"
        in result.stderr
    )
    assert "PredictorReady=False (ModelLoadRetrying: no model file in /models)" in result.stderr


def test_a_bad_timeout_is_a_usage_error(ksrv, manifest):
    assert ksrv("apply", "-f", str(manifest), "--wait", "--timeout", "soon").exit_code == 2


@pytest.mark.parametrize(
    "seconds, shown",
    [(0, "0s"), (5, "5s"), (119, "119s"), (200, "3m20s"), (180, "3m"), (45 * 60, "45m"),
     (3 * 3600 + 60, "3h1m"), (2 * 3600 * 5, "10h"), (3 * 86400, "3d"), (3 * 86400 + 3600, "3d1h"),
     (30 * 86400, "30d"), (3 * 365 * 86400, "3y"), (10 * 365 * 86400, "10y")],
)  # fmt: skip
def test_age_rounds_like_kubectl(seconds, shown):
    assert tables.human_duration(seconds) == shown


def test_apply_wait_ignores_a_ready_status_of_the_previous_generation(ksrv, manifest, store):
    ksrv("apply", "-f", str(manifest))
    set_status(store, {**READY_STATUS, "observedGeneration": 1})
    manifest.write_text(ISVC_YAML.format(uri="gs://b"))
    result = ksrv("apply", "-f", str(manifest), "--wait", "--timeout", "1s")
    assert result.exit_code == 1
    assert "the status still describes generation 1, the spec is generation 2" in result.stderr
