"""`ksrv k8s render` and `ksrv k8s install --dry-run`: the real commands, in-process (click's
CliRunner), on files as a user writes them; and the one-line errors where something is
missing (the k8s extra, a cluster)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from ksrv.cli.main import cli
from ksrv.k8s import install
from ksrv.k8s.config import KNATIVE, ClusterConfig
from tests.conftest import free_port

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""
RUNTIME = """\
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: my-sklearn
spec:
  supportedModelFormats:
    - name: sklearn
      autoSelect: true
      priority: 10
  containers:
    - name: kserve-container
      image: registry.example.com/my-sklearn:1.0
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: inferenceservice-config
  namespace: kserve
data:
  deploy: '{"defaultDeploymentMode": "Serverless"}'
"""


def ksrv(*argv: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(argv), input=stdin)


def write(tmp_path: Path, text: str, name: str = "isvc.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def kinds_and_names(stdout: str) -> list[tuple[str, str, str]]:
    return [
        (d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(stdout) if d
    ]


def test_ksrv_help_offers_kubernetes():
    result = ksrv("--help")
    assert result.exit_code == 0
    assert "locally or on Kubernetes" in result.output
    assert "ksrv k8s install" in result.output
    assert "k8s " in result.output.split("Commands:")[1]


def test_render_prints_the_standard_mode_objects(tmp_path):
    result = ksrv("k8s", "render", "-f", write(tmp_path, ISVC))
    assert result.exit_code == 0, result.stderr
    found = kinds_and_names(result.stdout)
    assert ("apps/v1", "Deployment", "sklearn-iris-predictor") in found
    assert ("v1", "Service", "sklearn-iris-predictor") in found
    assert result.stderr == ""


def test_render_in_knative_mode_prints_a_knative_service_as_json(tmp_path):
    result = ksrv("k8s", "render", "-f", write(tmp_path, ISVC), "--mode", "knative", "-o", "json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["kind"] == "List"
    names = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in listed["items"]]
    assert ("serving.knative.dev/v1", "Service", "sklearn-iris-predictor") in names
    assert not any(kind == "Deployment" for _, kind, _ in names)


def test_render_reads_stdin_and_a_serving_runtime_beside_the_model(tmp_path):
    result = ksrv("k8s", "render", "-f", "-", stdin=f"{RUNTIME}---\n{ISVC}")
    assert result.exit_code == 0, result.stderr
    (deployment,) = [d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "Deployment"]
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.example.com/my-sklearn:1.0"]


def test_render_takes_the_mode_from_the_config_unless_mode_is_given(tmp_path):
    isvc, config = write(tmp_path, ISVC), write(tmp_path, CONFIGMAP, "config.yaml")
    serverless = ksrv("k8s", "render", "-f", isvc, "--config", config)
    assert serverless.exit_code == 0, serverless.stderr
    found = kinds_and_names(serverless.stdout)
    assert ("serving.knative.dev/v1", "Service", "sklearn-iris-predictor") in found
    assert not any(kind == "Deployment" for _, kind, _ in found)
    standard = ksrv("k8s", "render", "-f", isvc, "--config", config, "--mode", "RawDeployment")
    assert ("apps/v1", "Deployment", "sklearn-iris-predictor") in kinds_and_names(standard.stdout)


def test_an_invalid_resource_is_named_with_its_fields_on_stderr(tmp_path):
    bad = ISVC.replace("  predictor:\n", "  predictor:\n    minReplicas: -1\n")
    result = ksrv("k8s", "render", "-f", write(tmp_path, bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith('error: InferenceService "sklearn-iris" is invalid:\n')
    assert "spec.predictor.minReplicas" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_no_runtime_serves_is_a_problem_on_stderr_and_exit_1(tmp_path):
    result = ksrv(
        "k8s", "render", "-f", write(tmp_path, ISVC.replace("name: sklearn\n", "name: paddle\n"))
    )
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: sklearn-iris: predictor:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "/no/such/file.yaml"], 'the path "/no/such/file.yaml" does not exist'),
        (["-f", "-", "--mode", "modelmesh"], "Invalid value for '--mode'"),
    ],
)
def test_bad_arguments_get_one_clear_error(argv, message):
    result = ksrv("k8s", "render", *argv, stdin=ISVC)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_config_names_the_file_and_key(tmp_path):
    config = write(tmp_path, CONFIGMAP.replace('{"defaultDeploymentMode"', "{oops"), "cm.yaml")
    result = ksrv("k8s", "render", "-f", write(tmp_path, ISVC), "--config", config)
    assert result.exit_code == 2
    assert "cm.yaml" in result.stderr and "'deploy' is not valid JSON" in result.stderr


def test_install_dry_run_prints_every_manifest_in_apply_order():
    result = ksrv("k8s", "install", "--dry-run")
    assert result.exit_code == 0, result.stderr
    printed = list(
        yaml.load_all(result.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    )
    assert printed == install.manifests(ClusterConfig())


def test_install_dry_run_in_knative_mode_into_another_namespace_as_json():
    result = ksrv("k8s", "install", "--dry-run", "--mode", "knative", "-n", "ml", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    crds = len(install.CRD_PLURALS)
    assert [o["metadata"]["name"] for o in items[:crds]] == [
        f"{plural}.serving.kserve.io" for plural in install.CRD_PLURALS
    ]
    config = ClusterConfig().with_mode(KNATIVE)
    assert items[crds:] == install.control_plane(config, "ml") + install.cluster_serving_runtimes(
        config
    )
    (configmap,) = [o for o in items if o["kind"] == "ConfigMap"]
    assert configmap["metadata"]["namespace"] == "ml"
    assert json.loads(configmap["data"]["deploy"]) == {"defaultDeploymentMode": "Knative"}


def test_install_takes_images_and_settings_from_a_configmap_file(tmp_path):
    images = (
        '{"images": {"server": "reg.example.com/server:2", "operator": "reg.example.com/op:2"}}'
    )
    config = (
        CONFIGMAP + f"  ksrv: '{images}'\n" + '  ingress: \'{"ingressDomain": "ml.example.org"}\'\n'
    )
    result = ksrv("k8s", "install", "--dry-run", "--config", write(tmp_path, config), "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)["items"][len(install.CRD_PLURALS) :]
    (deployment,) = [o for o in items if o["kind"] == "Deployment"]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example.com/op:2"
    )
    runtimes = [o for o in items if o["kind"] == "ClusterServingRuntime"]
    assert {r["spec"]["containers"][0]["image"] for r in runtimes} == {"reg.example.com/server:2"}
    (configmap,) = [o for o in items if o["kind"] == "ConfigMap"]
    assert json.loads(configmap["data"]["ingress"])["ingressDomain"] == "ml.example.org"
    assert json.loads(configmap["data"]["deploy"]) == {"defaultDeploymentMode": "Knative"}


@pytest.mark.parametrize(
    ("argv", "module"),
    [(["install"], "kubernetes"), (["operator"], "kopf"), (["operator"], "kubernetes")],
)
def test_without_the_k8s_extra_the_command_says_so_in_one_line(monkeypatch, argv, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    result = ksrv("k8s", *argv)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: ksrv k8s {argv[0]} needs the k8s extra ({module} is not installed): "
        "pip install 'ksrv[k8s]'"
    ]


def test_install_without_a_cluster_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", write(tmp_path, "", "kubeconfig"))
    result = ksrv("k8s", "install")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: no cluster to install into (set KUBECONFIG, or run in a pod)")


def test_install_against_a_cluster_that_does_not_answer_says_where(tmp_path, monkeypatch):
    port = free_port()  # nothing listens there
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
    })  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", write(tmp_path, kubeconfig, "kubeconfig"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's discovery cache
    result = ksrv("k8s", "install")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"Error: the cluster at http://127.0.0.1:{port}: cannot reach the cluster"
    )


def test_the_installed_operator_is_started_with_options_ksrv_k8s_operator_takes():
    from ksrv.cli.k8s import operator

    deployment = install.operator_deployment(ClusterConfig(), "ml-platform")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["ksrv", "k8s", "operator"]
    context = operator.make_context("operator", list(container["args"]))
    assert context.params["config_namespace"] == "ml-platform"
    port = container["ports"][0]["containerPort"]
    assert context.params["liveness_endpoint"] == f"http://0.0.0.0:{port}/healthz"
