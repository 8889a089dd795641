"""ksrv.k8s.install: what `ksrv k8s install` applies, checked object by object.

KServe's CRDs byte for byte, every other object valid for a strict API server, the ConfigMap
read back by the operator's own reader, and an RBAC rule set that grants exactly what the
operator does (a table: each grant it needs, and the writes it must not have).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ksrv.k8s import install
from ksrv.k8s.config import (
    DISALLOWED_ANNOTATIONS,
    DISALLOWED_LABELS,
    KNATIVE,
    STANDARD,
    ClusterConfig,
    Credentials,
    Images,
    Ingress,
    Workloads,
    from_configmap,
)
from tests.k8s_support import SCHEMAS, assert_valid

ROOT = Path(__file__).resolve().parents[3]
IMAGES = Images(
    server="registry.example.com/ksrv-server:1.2",
    storage_initializer="registry.example.com/ksrv-storage-initializer:1.2",
    operator="registry.example.com/ksrv-operator:1.2",
    router="registry.example.com/ksrv-server:1.2",
)


def test_the_crds_are_kserves_published_files_byte_for_byte():
    if not (SCHEMAS / "kserve").is_dir():
        pytest.skip(f"KServe's CRDs are not here ({SCHEMAS})")
    for plural in install.CRD_PLURALS:
        published = (SCHEMAS / "kserve" / f"serving.kserve.io_{plural}.yaml").read_text()
        assert install.crd_text(plural) == published


@functools.cache  # parsing 2.4 MB of CRDs takes a second: once for the tests that need them
def _manifests() -> list[dict[str, Any]]:
    return install.manifests(ClusterConfig())


def test_the_crds_serve_every_kind_ksrv_serves_and_come_first():
    objects = _manifests()
    crds = objects[: len(install.CRD_PLURALS)]
    assert {crd["kind"] for crd in crds} == {"CustomResourceDefinition"}
    assert {crd["spec"]["names"]["kind"] for crd in crds} == {
        "InferenceService", "ServingRuntime", "ClusterServingRuntime", "InferenceGraph",
        "TrainedModel", "ClusterStorageContainer", "LLMInferenceService",
        "LLMInferenceServiceConfig",
    }  # fmt: skip
    assert {crd["spec"]["group"] for crd in crds} == {"serving.kserve.io"}


def test_the_package_ships_the_crds():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ksrv.k8s"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "src/ksrv/k8s").glob(pattern)}
    assert shipped == {f"serving.kserve.io_{plural}.yaml.gz" for plural in install.CRD_PLURALS}


@pytest.mark.parametrize("mode", [STANDARD, KNATIVE])
def test_every_object_after_the_crds_validates_strictly(mode):
    config = ClusterConfig(images=IMAGES).with_mode(mode)
    assert_valid(
        install.control_plane(config, "ml-platform") + install.cluster_serving_runtimes(config)
    )


def test_objects_come_in_the_order_an_api_server_accepts_them():
    kinds = [o["kind"] for o in _manifests()]
    order = ["CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
             "ClusterRoleBinding", "ConfigMap", "Deployment", "ClusterServingRuntime"]  # fmt: skip
    assert sorted(kinds, key=order.index) == kinds


@pytest.mark.parametrize(
    "config",
    [
        ClusterConfig(),
        ClusterConfig(deployment_mode=KNATIVE, images=IMAGES),
        ClusterConfig(
            ingress=Ingress(
                enable_gateway_api=True,
                ingress_domain="models.example.org",
                additional_ingress_domains=("models.example.net",),
                path_template="/serving/{{ .Namespace }}/{{ .Name }}",
                disable_http_route_timeout=True,
            ),
            credentials=Credentials(
                s3_access_key_id_name="KEY_ID", s3={"s3Endpoint": "minio:9000"}
            ),
            propagate_headers=("Authorization", "X-Trace-*"),
        ),
        ClusterConfig(
            workloads=Workloads(
                service_cluster_ip_none=True,
                max_surge="1",
                max_unavailable="0",
                scale_up_window_s=30,
                scale_down_window_s=600,
            ),
            disallowed_annotations=(*DISALLOWED_ANNOTATIONS, "team.example.com/secret"),
            disallowed_labels=(*DISALLOWED_LABELS, "billing"),
        ),
    ],
    ids=["defaults", "knative-own-images", "gateway-api-path-template", "workloads-disallowed"],
)
def test_the_operator_reads_the_configmap_back_as_installed(config):
    data = install.inferenceservice_config(config, "kserve")["data"]
    read = from_configmap(data)
    assert read.deployment_mode == config.deployment_mode
    assert read.images == config.images
    assert read.ingress == config.ingress
    assert read.storage_initializer.image == config.storage_initializer.image
    assert read.storage_initializer == config.storage_initializer
    assert read.propagate_headers == config.propagate_headers
    assert read.workloads == config.workloads
    assert read.disallowed_annotations == config.disallowed_annotations
    assert read.disallowed_labels == config.disallowed_labels
    assert read.credentials.s3_access_key_id_name == config.credentials.s3_access_key_id_name
    assert config.credentials.s3.items() <= read.credentials.s3.items()


def test_mode_sets_kserves_default_deployment_mode_key():
    standard = install.configmap_data(ClusterConfig())
    knative = install.configmap_data(ClusterConfig().with_mode("serverless"))
    assert '"defaultDeploymentMode": "Standard"' in standard["deploy"]
    assert '"defaultDeploymentMode": "Knative"' in knative["deploy"]
    assert {k: v for k, v in standard.items() if k != "deploy"} == {
        k: v for k, v in knative.items() if k != "deploy"
    }


def test_the_storage_initializer_runs_ksrvs_image_by_default():
    data = from_configmap(install.configmap_data(ClusterConfig(images=IMAGES)))
    assert data.storage_initializer.image == Images().storage_initializer


def test_the_operator_runs_ksrv_k8s_operator_from_its_image_under_its_account():
    objects = install.control_plane(ClusterConfig(images=IMAGES), "ml-platform")
    by_kind = {o["kind"]: o for o in objects}
    deployment = by_kind["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGES.operator
    assert container["command"] == ["ksrv", "k8s", "operator"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    account = by_kind["ServiceAccount"]["metadata"]
    assert pod["serviceAccountName"] == account["name"]
    binding = by_kind["ClusterRoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": "ml-platform"}
    ]
    assert binding["roleRef"]["name"] == by_kind["ClusterRole"]["metadata"]["name"]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] in (
        "ServiceAccount", "ConfigMap", "Deployment")} == {"ml-platform"}  # fmt: skip
    assert by_kind["Namespace"]["metadata"]["name"] == "ml-platform"


def _granted() -> set[tuple[str, str, str]]:
    (role,) = [o for o in install.rbac("kserve") if o["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


NEEDED = [
    ("serving.kserve.io", "inferenceservices", "watch"),
    ("serving.kserve.io", "inferenceservices", "patch"),
    ("serving.kserve.io", "inferenceservices/status", "patch"),
    ("serving.kserve.io", "inferenceservices/finalizers", "update"),
    ("serving.kserve.io", "clusterservingruntimes", "list"),
    ("serving.kserve.io", "servingruntimes", "watch"),
    ("serving.kserve.io", "inferencegraphs", "watch"),
    ("serving.kserve.io", "inferencegraphs/status", "patch"),
    ("serving.kserve.io", "trainedmodels", "watch"),
    ("serving.kserve.io", "trainedmodels/status", "patch"),
    ("serving.kserve.io", "clusterstoragecontainers", "list"),
    ("serving.kserve.io", "llminferenceservices", "watch"),
    ("serving.kserve.io", "llminferenceservices/status", "patch"),
    ("serving.kserve.io", "llminferenceserviceconfigs", "watch"),
    ("apps", "deployments", "create"),
    ("apps", "deployments", "delete"),
    ("", "services", "patch"),
    ("", "configmaps", "create"),
    ("", "secrets", "get"),
    ("", "serviceaccounts", "get"),
    ("", "pods", "list"),
    ("autoscaling", "horizontalpodautoscalers", "create"),
    ("keda.sh", "scaledobjects", "create"),
    ("networking.k8s.io", "ingresses", "update"),
    ("gateway.networking.k8s.io", "httproutes", "create"),
    ("serving.knative.dev", "services", "create"),
    ("networking.istio.io", "virtualservices", "create"),
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
]
REFUSED = [
    ("", "secrets", "create"),
    ("", "secrets", "update"),
    ("", "serviceaccounts", "patch"),
    ("serving.kserve.io", "inferenceservices", "create"),
    ("serving.kserve.io", "inferenceservices", "delete"),
    ("serving.kserve.io", "clusterservingruntimes", "delete"),
    ("serving.kserve.io", "llminferenceserviceconfigs", "patch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"),
    ("", "namespaces", "create"),
    ("", "pods", "create"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("*", "*", "*"),
]


@pytest.mark.parametrize(("group", "resource", "verb"), NEEDED)
def test_the_operator_may_do_what_it_needs(group, resource, verb):
    assert (group, resource, verb) in _granted()


@pytest.mark.parametrize(("group", "resource", "verb"), REFUSED)
def test_the_operator_may_not_do_what_it_never_needs(group, resource, verb):
    assert (group, resource, verb) not in _granted()


def test_the_default_runtimes_run_the_configured_server_image():
    runtimes = install.cluster_serving_runtimes(ClusterConfig(images=IMAGES))
    assert len(runtimes) >= 8
    images = {c["image"] for r in runtimes for c in r["spec"]["containers"]}
    assert images == {IMAGES.server}
    assert "ksrv:replace" not in install.to_yaml(runtimes)


def test_to_yaml_keeps_the_configmaps_json_readable_and_round_trips():
    import yaml

    objects = install.control_plane(ClusterConfig(), "kserve")
    text = install.to_yaml(objects)
    assert "  deploy: |-\n    {\n" in text
    assert list(yaml.safe_load_all(text)) == objects
