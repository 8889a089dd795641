"""`ksrv k8s install` against the strict API emulator (tier 2): the real command, logged in by
KUBECONFIG, applies KServe's CRDs, waits until their kinds are served, then everything else;
running it again updates in place. The emulator starts knowing only built-in kinds, so the
ClusterServingRuntimes can only land if the CRDs did."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from click.testing import CliRunner

from ksrv.cli.main import cli
from ksrv.k8s import install
from ksrv.k8s.config import ClusterConfig, from_configmap
from tests.k8s_cluster import write_kubeconfig
from tests.k8s_emulator import EmulatorThread, StrictEmulator

ALL = {"get", "list", "watch", "create", "update", "patch", "delete"}
BUILT_IN = [
    ("v1/namespaces", "Namespace", False),
    ("v1/serviceaccounts", "ServiceAccount", True),
    ("v1/configmaps", "ConfigMap", True),
    ("apps/v1/deployments", "Deployment", True),
    ("rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False),
]


def _applying_crds(base: Any) -> Any:
    """The emulator, also serving the kinds of a CRD created by server-side apply (it does so
    only for a CRD created by POST; a real API server does it either way)."""

    class Emulator(base):
        async def _apply_create(self, request: Any) -> Any:
            response = await super()._apply_create(request)
            if request.resource.plural == "customresourcedefinitions":
                self._register_crd(request.data)
            return response

    return Emulator


def _declare(emu: Any) -> None:
    """Built-in kinds only (conftest's cluster already serves KServe's: not here)."""
    for resource, kind, namespaced in BUILT_IN:
        emu.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=ALL)


@pytest.fixture
def bare_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's discovery cache
    with EmulatorThread(_declare, cls=_applying_crds(StrictEmulator)) as k8s:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", k8s.url)))
        yield k8s


def _stored(k8s: Any, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
    return dict(k8s.emu.objects[kmock.resource(resource), namespace, name].raw)


def test_install_applies_the_crds_then_everything_that_needs_them(bare_cluster):
    result = CliRunner().invoke(cli, ["k8s", "install", "--mode", "knative"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "customresourcedefinition.apiextensions.k8s.io/inferenceservices.serving.kserve.io "
        "serverside-applied"
    )
    last = install.cluster_serving_runtimes(ClusterConfig())[-1]["metadata"]["name"]
    assert lines[-1] == f"clusterservingruntime.serving.kserve.io/{last} serverside-applied"
    assert len(lines) == len(install.control_plane(ClusterConfig(), "kserve")) + len(
        install.CRD_PLURALS
    ) + len(install.cluster_serving_runtimes(ClusterConfig()))
    runtime = _stored(bare_cluster, "serving.kserve.io/v1alpha1/clusterservingruntimes", None,
                      "ksrv-sklearn")  # fmt: skip
    assert runtime["spec"]["containers"][0]["image"] == ClusterConfig().images.server
    config = _stored(bare_cluster, "v1/configmaps", "kserve", "inferenceservice-config")
    assert from_configmap(config["data"]).deployment_mode == "Knative"
    operator = _stored(bare_cluster, "apps/v1/deployments", "kserve", "ksrv-operator")
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "ksrv-operator"


def test_installing_again_updates_in_place(bare_cluster):
    assert CliRunner().invoke(cli, ["k8s", "install"]).exit_code == 0
    first = _stored(bare_cluster, "v1/configmaps", "kserve", "inferenceservice-config")
    result = CliRunner().invoke(cli, ["k8s", "install", "--mode", "knative"])
    assert result.exit_code == 0, result.output
    again = _stored(bare_cluster, "v1/configmaps", "kserve", "inferenceservice-config")
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert from_configmap(again["data"]).deployment_mode == "Knative"
