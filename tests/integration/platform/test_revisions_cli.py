"""`ksrv get revisions` and `ksrv describe isvc` against a real `ksrv up`: a canary's two
revisions with their traffic, replicas and conditions, and a crash-looping one's exit code."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.conftest import KSRV, wait_until
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

REVISIONS = "/apis/ksrv.dev/v1/namespaces/default/revisions"


def iris_isvc(name: str, storage_uri: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                **predictor,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri},
            }
        },
    }


def served(platform: LocalKsrv, isvc: str) -> dict[str, dict[str, Any]]:
    """name -> revision of `isvc`, as the management API serves them."""
    items = platform.http.get(f"{platform.api}{REVISIONS}").json()["items"]
    label = "serving.kserve.io/inferenceservice"
    return {r["metadata"]["name"]: r for r in items if r["metadata"]["labels"][label] == isvc}


def conditions(revision: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in revision["status"]["conditions"]}


def test_a_canary_shows_both_revisions_with_traffic_replicas_and_conditions(
    ksrv_platform, model_dirs
):
    tagged = {"serving.kserve.io/enable-tag-routing": "true"}  # the latest is tagged too
    stable = iris_isvc("canary", str(model_dirs["sklearn"]))
    stable["metadata"]["annotations"] = tagged
    ksrv_platform.apply([stable], "--wait")
    canary = iris_isvc("canary", str(model_dirs["sklearn-v2"]), canaryTrafficPercent=20)
    canary["metadata"]["annotations"] = tagged
    ksrv_platform.apply([canary])
    first, second = "canary-predictor-00001", "canary-predictor-00002"

    def split_and_ready() -> bool:
        found = served(ksrv_platform, "canary")
        return set(found) == {first, second} and all(
            r["status"]["actualReplicas"] == 1 and r["status"]["traffic"]["percent"] > 0
            for r in found.values()
        )

    wait_until(split_and_ready, what="both revisions ready and split")
    listed = json.loads(ksrv_platform.cli("get", "revisions", "-o", "json"))
    assert listed["kind"] == "List"
    found = {r["metadata"]["name"]: r for r in listed["items"]}
    assert set(found) == {first, second}
    for name, percent, tag in ((first, 80, "prev"), (second, 20, "latest")):
        revision = found[name]
        assert revision["apiVersion"] == "ksrv.dev/v1"
        assert revision["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "canary"
        assert revision["metadata"]["labels"]["component"] == "predictor"
        assert revision["status"]["traffic"]["percent"] == percent
        assert revision["status"]["traffic"]["tag"] == tag
        assert (revision["status"]["actualReplicas"], revision["status"]["desiredReplicas"]) == (
            1,
            1,
        )
        assert conditions(revision) == {
            "Active": ("True", None),
            "ContainerHealthy": ("True", None),
            "Ready": ("True", None),
            "ResourcesAvailable": ("True", None),
        }

    table = ksrv_platform.cli("get", "rev").splitlines()
    assert table[0].split()[:6] == ["NAME", "INFERENCESERVICE", "COMPONENT", "TRAFFIC", "TAGS",
                                    "ACTUAL"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[first][1:8] == ["canary", "predictor", "80%", "prev", "1", "1", "True"]
    assert rows[second][1:8] == ["canary", "predictor", "20%", "latest", "1", "1", "True"]
    everywhere = ksrv_platform.cli("get", "revision", "-A").splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]

    percent = ksrv_platform.cli(
        "get", f"revisions.ksrv.dev/{second}", "-o", "jsonpath={.status.traffic.percent}"
    )
    assert percent == "20"
    names = ksrv_platform.cli("get", "rev", first, second, "-o", "name").split()
    assert names == [f"revision.ksrv.dev/{first}", f"revision.ksrv.dev/{second}"]

    described = ksrv_platform.cli("describe", "isvc", "canary").splitlines()
    section = described[described.index("Revisions:") + 1 : described.index("Events:")]
    assert section[0].split() == ["NAME", "COMPONENT", "TRAFFIC", "TAG", "ACTUAL", "DESIRED",
                                  "READY", "REASON"]  # fmt: skip
    described_rows = {line.split()[0]: line.split() for line in section[1:3]}
    assert described_rows[first][1:] == ["predictor", "80%", "prev", "1", "1", "True"]
    assert described_rows[second][1:] == ["predictor", "20%", "latest", "1", "1", "True"]
    assert section[3].strip() == "Autoscaler (last decision):"

    refused = subprocess.run(
        [*KSRV, "delete", "rev", first], capture_output=True, text=True, env=ksrv_platform.env
    )
    assert refused.returncode == 1
    assert "read-only" in refused.stderr
    assert first in served(ksrv_platform, "canary")
    applied = ksrv_platform.cli("apply", "-f", "-", stdin=json.dumps(found[first]), check=False)
    assert "a Revision is read-only" in applied


def test_a_crash_looping_revision_is_not_container_healthy_and_says_its_exit_code(
    ksrv_platform, tmp_path
):
    ksrv_platform.apply([iris_isvc("broken", str(tmp_path / "no-model-here"))])

    def crash_looping() -> bool:
        revision = served(ksrv_platform, "broken").get("broken-predictor-00001")
        if revision is None:
            return False
        healthy = conditions(revision)["ContainerHealthy"]
        return healthy[0] == "False"

    wait_until(crash_looping, what="the revision to crash-loop")
    revision = json.loads(ksrv_platform.cli("get", "rev", "broken-predictor-00001", "-o", "json"))
    found = conditions(revision)
    assert found["ContainerHealthy"][1].startswith("ExitCode")
    assert found["Ready"] == ("False", found["ContainerHealthy"][1])
    assert revision["status"]["actualReplicas"] == 0
    assert revision["status"]["desiredReplicas"] == 1
    assert revision["status"]["traffic"]["percent"] == 100
