"""`ksrv k8s install` against the strict API emulator (tier 2): the real command, logged in by
KUBECONFIG, applies KServe's CRDs, waits until their kinds are served, then everything else;
running it again updates in place. The emulator starts knowing only built-in kinds, so the
ClusterServingRuntimes can only land if the CRDs did."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from click.testing import CliRunner

from ksrv.cli.main import cli
from ksrv.k8s import install
from ksrv.k8s.config import ClusterConfig, from_configmap
from tests.k8s_support import SHARED

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


def _emulator() -> Any:
    """The project's emulator module (tests/k8s_emulator.py) if present, else the prototype."""
    try:
        from tests import k8s_emulator
    except ImportError:
        path = SHARED / "k8s" / "strict_emulator.py"
        if not path.exists():
            pytest.skip(f"no strict emulator here ({path})")
        spec = importlib.util.spec_from_file_location("strict_emulator", path)
        assert spec is not None and spec.loader is not None
        k8s_emulator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(k8s_emulator)
    return k8s_emulator


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
    for resource, kind, namespaced in BUILT_IN:
        emu.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=ALL)


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's discovery cache
    module = _emulator()
    thread = module.EmulatorThread(_declare, cls=_applying_crds(module.StrictEmulator))
    with thread as k8s:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": k8s.url}}],
            "users": [{"name": "tester", "user": {}}],
            "contexts": [{"name": "emulator",
                          "context": {"cluster": "emulator", "user": "tester"}}],
        }))  # fmt: skip
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield k8s
    if not thread.loop.is_closed():
        thread.loop.close()  # the prototype leaves its loop (and the loop's sockets) open


def _stored(k8s: Any, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
    return dict(k8s.emu.objects[kmock.resource(resource), namespace, name].raw)


def test_install_applies_the_crds_then_everything_that_needs_them(emulator):
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
    runtime = _stored(emulator, "serving.kserve.io/v1alpha1/clusterservingruntimes", None,
                      "ksrv-sklearn")  # fmt: skip
    assert runtime["spec"]["containers"][0]["image"] == ClusterConfig().images.server
    config = _stored(emulator, "v1/configmaps", "kserve", "inferenceservice-config")
    assert from_configmap(config["data"]).deployment_mode == "Knative"
    operator = _stored(emulator, "apps/v1/deployments", "kserve", "ksrv-operator")
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "ksrv-operator"


def test_installing_again_updates_in_place(emulator):
    assert CliRunner().invoke(cli, ["k8s", "install"]).exit_code == 0
    first = _stored(emulator, "v1/configmaps", "kserve", "inferenceservice-config")
    result = CliRunner().invoke(cli, ["k8s", "install", "--mode", "knative"])
    assert result.exit_code == 0, result.output
    again = _stored(emulator, "v1/configmaps", "kserve", "inferenceservice-config")
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert from_configmap(again["data"]).deployment_mode == "Knative"
