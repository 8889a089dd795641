"""ServingRuntime / ClusterServingRuntime parse as KServe writes them, and bad ones say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv.api import default_runtimes
from ksrv.api.serving_runtime import ClusterServingRuntime, ServingRuntime, parse_runtimes
from ksrv.errors import ResourceInvalid
from ksrv.protocol import status

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
KSERVE_RUNTIMES = sorted((SHARED / "examples-kserve").glob("kserve__config__runtimes__*.yaml"))

SKLEARN_SR = """\
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: my-sklearn
  namespace: team-a
spec:
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
      priority: 5
  protocolVersions: [v1, v2]
  containers:
    - name: kserve-container
      image: example/sklearn:1
      securityContext: {runAsNonRoot: true}
  nodeSelector: {pool: cpu}
"""


@pytest.mark.skipif(not KSERVE_RUNTIMES, reason=f"no KServe runtimes under {SHARED}")
@pytest.mark.parametrize("path", KSERVE_RUNTIMES, ids=lambda path: path.stem.split("__")[-1])
def test_every_kserve_default_runtime_parses(path):
    runtimes = parse_runtimes(path.read_text())
    assert runtimes
    for runtime in runtimes:
        assert isinstance(runtime, ClusterServingRuntime)
        assert runtime.name.startswith("kserve-")
        assert runtime.spec.supported_model_formats
        assert runtime.spec.containers


def test_fields_are_snake_case_in_python_and_camel_case_on_the_wire():
    (runtime,) = parse_runtimes(SKLEARN_SR)
    assert isinstance(runtime, ServingRuntime)
    entry = runtime.spec.supported_model_formats[0]
    assert (entry.name, entry.version, entry.auto_select, entry.priority) == (
        "sklearn",
        "1",
        True,
        5,
    )
    assert runtime.spec.protocol_versions == ["v1", "v2"]
    dumped = runtime.model_dump(by_alias=True, exclude_none=True)
    assert dumped["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert dumped["spec"]["supportedModelFormats"][0]["autoSelect"] is True


def test_unknown_fields_are_kept_so_nothing_kserve_accepts_is_lost():
    (runtime,) = parse_runtimes(SKLEARN_SR)
    dumped = runtime.model_dump(by_alias=True)
    assert dumped["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert dumped["spec"]["containers"][0]["securityContext"] == {"runAsNonRoot": True}


def test_several_documents_parse_in_order_and_empty_ones_are_skipped():
    text = (
        SKLEARN_SR
        + "---\n---\n"
        + SKLEARN_SR.replace("kind: ServingRuntime", "kind: ClusterServingRuntime")
    )
    kinds = [runtime.kind for runtime in parse_runtimes(text)]
    assert kinds == ["ServingRuntime", "ClusterServingRuntime"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: [unclosed", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        (SKLEARN_SR.replace("kind: ServingRuntime", "kind: Isvc"), "kind 'Isvc'"),
        (SKLEARN_SR.replace("v1alpha1", "v1beta1"), "apiVersion"),
        (SKLEARN_SR.replace("  name: my-sklearn\n", ""), "metadata.name: Field required"),
        (SKLEARN_SR.replace("priority: 5", "priority: 0"), "Formats.0.priority"),
        (SKLEARN_SR.replace("autoSelect: true", "autoSelect: maybe"), "Formats.0.autoSelect"),
        (SKLEARN_SR.split("  containers:")[0], "spec.containers: Field required"),
        (
            SKLEARN_SR.replace(
                "      priority: 5\n",
                "      priority: 5\n    - {name: sklearn, version: '0', priority: 2}\n",
            ),
            "different priorities",
        ),
    ],
    ids=[
        "not-yaml", "not-a-mapping", "wrong-kind", "wrong-api-version", "no-name",
        "priority-below-one", "bad-auto-select", "no-containers", "two-priorities-for-one-format",
    ],
)  # fmt: skip
def test_an_invalid_document_raises_resource_invalid_naming_the_problem(text, expected):
    with pytest.raises(ResourceInvalid) as caught:
        parse_runtimes(text)
    assert expected in str(caught.value)


def test_resource_invalid_names_the_document_and_the_runtime():
    text = SKLEARN_SR + "---\n" + SKLEARN_SR.replace("priority: 5", "priority: -1")
    with pytest.raises(ResourceInvalid, match=r"document 2: ServingRuntime my-sklearn: "):
        parse_runtimes(text)


def test_resource_invalid_is_422_and_invalid_argument():
    error = ResourceInvalid("bad")
    assert (status.http_status(error), status.grpc_code(error)) == (422, "INVALID_ARGUMENT")


def test_ksrv_default_runtimes_parse_and_each_names_a_ksrv_runtime():
    runtimes = default_runtimes.default_runtimes()
    assert [default_runtimes.ksrv_runtime(r) for r in runtimes] == [
        "sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "pmml", "mlflow",
        "huggingface", "detector",
    ]  # fmt: skip
    for runtime in runtimes:
        formats = {entry.name for entry in runtime.spec.supported_model_formats}
        assert formats == {default_runtimes.ksrv_runtime(runtime)}
        assert f"--model-format={default_runtimes.ksrv_runtime(runtime)}" in (
            runtime.spec.containers[0].args
        )
