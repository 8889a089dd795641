"""`ksrv apply --wait` against a real `ksrv up` stops at once, with the reason, on failures that
waiting will not change, long before its timeout; the status says it as KServe does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

# Far beyond what any failure here takes: a wait that reached it would print "timed out".
TIMEOUT = "240s"


def isvc(name: str, model_format: str, storage_uri: str) -> dict[str, Any]:
    model = {"modelFormat": {"name": model_format}, "storageUri": storage_uri}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": model}},
    }


def apply_and_wait(platform: LocalKsrv, document: dict[str, Any]) -> str:
    import yaml

    text = yaml.safe_dump(document)
    return platform.cli("apply", "-f", "-", "--wait", "--timeout", TIMEOUT, stdin=text, check=False)


def test_a_missing_storage_path_stops_the_wait_after_its_tries(ksrv_platform, tmp_path: Path):
    missing = tmp_path / "no-such-model"
    output = apply_and_wait(ksrv_platform, isvc("nomodel", "sklearn", str(missing)))
    assert "timed out" not in output
    assert "inferenceservice.serving.kserve.io/nomodel will not become Ready: ModelLoadFailed: " \
        "failed to load on 3 tries" in output  # fmt: skip
    status = ksrv_platform.isvc("nomodel")["status"]
    model_status = status["modelStatus"]
    assert model_status["transitionStatus"] == "BlockedByFailedLoad"
    assert model_status["states"]["targetModelState"] == "FailedToLoad"
    assert model_status["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    assert str(missing) in model_status["lastFailureInfo"]["message"]


def test_a_format_no_runtime_serves_stops_the_wait_at_once_with_the_closest_format(
    ksrv_platform, tmp_path: Path
):
    output = apply_and_wait(ksrv_platform, isvc("typo", "sklern", str(tmp_path)))
    assert (
        "inferenceservice.serving.kserve.io/typo will not become Ready: NoSupportingRuntime: "
        "no runtime supports modelFormat 'sklern'; did you mean 'sklearn'?"
    ) in output
    model_status = ksrv_platform.isvc("typo")["status"]["modelStatus"]
    assert model_status["transitionStatus"] == "InvalidSpec"
    assert model_status["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
