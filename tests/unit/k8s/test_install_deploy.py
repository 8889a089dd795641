"""deploy/: the kustomize tree is what tools/gen_deploy.py writes from ksrv.k8s.install (so the
two install routes never drift), builds with kubectl's kustomize into the same objects, and
each Dockerfile installs extras pyproject defines and runs a real `ksrv` command.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ksrv.k8s import install
from ksrv.k8s.config import KNATIVE, ClusterConfig
from tests.conftest import KSRV

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def _generator() -> Any:
    """tools/gen_deploy.py: a build script beside the package, loaded by path."""
    spec = importlib.util.spec_from_file_location("gen_deploy", ROOT / "tools" / "gen_deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_deploy = _generator()
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def test_the_committed_deploy_files_are_what_the_generator_writes():
    generated = gen_deploy.generated()
    for name, text in generated.items():
        path = DEPLOY / name
        assert path.is_file(), f"{name} is missing: run make deploy-manifests"
        assert path.read_text() == text, f"{name} is stale: run make deploy-manifests"
    committed = {
        str(p.relative_to(DEPLOY)) for p in (DEPLOY / "kustomize").rglob("*") if p.is_file()
    }
    assert committed == set(generated)


def test_the_crd_kustomization_names_kserves_files_at_the_copied_commit():
    text = (DEPLOY / "kustomize/crds/kustomization.yaml").read_text()
    urls = yaml.safe_load(text)["resources"]
    assert len(urls) == len(install.CRD_PLURALS)
    for url, plural in zip(urls, install.CRD_PLURALS, strict=True):
        assert url.startswith(
            f"https://raw.githubusercontent.com/kserve/kserve/{gen_deploy.KSERVE_COMMIT}/"
        )
        assert url.endswith(f"/serving.kserve.io_{plural}.yaml")


def _kustomize(folder: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kustomize" / folder)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _by_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("base", lambda: install.control_plane(ClusterConfig(), "kserve")),
        ("knative", lambda: install.control_plane(ClusterConfig().with_mode(KNATIVE), "kserve")),
        ("runtimes", lambda: install.cluster_serving_runtimes(ClusterConfig())),
    ],
)
def test_kustomize_builds_the_objects_ksrv_k8s_install_applies(folder, expected):
    assert _by_name(_kustomize(folder)) == _by_name(expected())


def _dockerfile(path: Path) -> tuple[list[str], list[str]]:
    """(extras of the EXTRAS build arg's default, the ENTRYPOINT's argv)."""
    text = path.read_text()
    extras = re.search(r"^ARG EXTRAS=(\S+)$", text, re.MULTILINE)
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)
    assert extras and entrypoint, f"{path.name}: no ARG EXTRAS=... or exec-form ENTRYPOINT"
    assert '"/build[${EXTRAS}]"' in text, f"{path.name} does not install ksrv with its extras"
    return extras.group(1).split(","), json.loads(entrypoint.group(1))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_each_build_context_holds_only_what_its_dockerfile_copies(dockerfile):
    ignore = dockerfile.with_name(f"{dockerfile.name}.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == {"pyproject.toml", "README.md", "src"}
    assert {f"!{source}" for source in sources} <= {rule.rstrip("/") for rule in rules}


def test_there_is_a_dockerfile_per_image_ksrv_k8s_install_names():
    assert [p.name for p in DOCKERFILES] == [
        "operator.Dockerfile", "server.Dockerfile", "storage-initializer.Dockerfile",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "extras", "command"),
    [
        ("server", ["sklearn"], ["ksrv", "serve"]),
        ("storage-initializer", ["s3", "gcs", "azure", "hf"], ["ksrv", "storage", "download"]),
        ("operator", ["k8s"], ["ksrv", "k8s", "operator"]),
    ],
)
def test_each_image_installs_real_extras_and_runs_a_real_ksrv_command(name, extras, command):
    found_extras, entrypoint = _dockerfile(DEPLOY / "docker" / f"{name}.Dockerfile")
    assert found_extras == extras
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(found_extras) <= set(defined["optional-dependencies"])
    assert entrypoint[: len(command)] == command
    assert defined["scripts"]["ksrv"] == "ksrv.cli.main:main"
    result = subprocess.run(
        [*KSRV, *entrypoint[1:], "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage:")
