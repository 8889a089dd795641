"""KServe's runtime selection rules, as tables; and every KServe default format finds ksrv."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv.api import default_runtimes
from ksrv.api.runtime_selection import (
    ModelFormat,
    default_ksrv_runtime,
    select_runtime,
    supporting_runtimes,
)
from ksrv.api.serving_runtime import (
    ClusterServingRuntime,
    ServingRuntime,
    ServingRuntimeSpec,
    parse_runtimes,
)
from ksrv.errors import ResourceInvalid
from ksrv.runtimes import registry

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
KSERVE_RUNTIMES = sorted((SHARED / "examples-kserve").glob("kserve__config__runtimes__*.yaml"))
needs_kserve_runtimes = pytest.mark.skipif(
    not KSERVE_RUNTIMES, reason=f"no KServe runtimes under {SHARED}"
)


def runtime(name, *formats, scope="cluster", protocols=(), created=None, **spec):
    """formats: (name, version, auto_select, priority) tuples."""
    cls = ClusterServingRuntime if scope == "cluster" else ServingRuntime
    return cls(
        metadata={"name": name, "creation_timestamp": created},
        spec=ServingRuntimeSpec(
            supported_model_formats=[
                {"name": f, "version": v, "auto_select": a, "priority": p} for f, v, a, p in formats
            ],
            protocol_versions=list(protocols),
            containers=[{"name": "kserve-container"}],
            **spec,
        ),
    )


SK1 = ("sklearn", "1", True, 1)
SK9 = ("sklearn", "1", True, 9)
OLD, NEW = "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"

TABLE = [
    # (case, runtimes, model format, keyword arguments, expected runtime name)
    ("name-must-match", [runtime("a", ("xgboost", "1", True, 1)), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("name-matches-exactly", [runtime("a", ("SKLearn", "1", True, 9)), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("version-must-match", [runtime("a", ("sklearn", "0", True, 9)), runtime("b", SK1)],
     ModelFormat("sklearn", "1"), {}, "b"),
    ("version-is-an-exact-string", [runtime("a", ("sklearn", "1.0", True, 9)), runtime("b", SK1)],
     ModelFormat("sklearn", "1"), {}, "b"),
    ("no-version-matches-any", [runtime("a", ("sklearn", "0", True, 1))],
     ModelFormat("sklearn"), {}, "a"),
    ("autoselect-required", [runtime("a", ("sklearn", "1", False, 9)), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("autoselect-unset-is-false", [runtime("a", ("sklearn", "1", None, 9)), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("highest-priority-wins", [runtime("a", SK1), runtime("b", ("sklearn", "1", True, 3))],
     ModelFormat("sklearn"), {}, "b"),
    ("priority-beats-none", [runtime("a", ("sklearn", "1", True, None)), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("protocol-must-be-listed",
     [runtime("a", SK9, protocols=["v2"]), runtime("b", SK1, protocols=["v1"])],
     ModelFormat("sklearn"), {"protocol_version": "v1"}, "b"),
    ("empty-protocols-speak-all", [runtime("a", SK1)],
     ModelFormat("sklearn"), {"protocol_version": "grpc-v2"}, "a"),
    ("disabled-skipped", [runtime("a", SK9, disabled=True), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("multi-model-skipped",
     [runtime("a", ("sklearn", "1", True, 9), multi_model=True), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("multi-node-only-for-multi-node",
     [runtime("a", ("sklearn", "1", True, 9), worker_spec={}), runtime("b", SK1)],
     ModelFormat("sklearn"), {}, "b"),
    ("multi-node-model-needs-worker-spec",
     [runtime("a", SK1, worker_spec={}), runtime("b", ("sklearn", "1", True, 9))],
     ModelFormat("sklearn"), {"is_multi_node": True}, "a"),
    ("namespaced-wins-a-tie", [runtime("a", SK1), runtime("b", SK1, scope="namespace")],
     ModelFormat("sklearn"), {}, "b"),
    # KServe lists every namespaced runtime before any cluster runtime, whatever the priority.
    ("namespaced-wins-over-higher-cluster-priority",
     [runtime("a", ("sklearn", "1", True, 9)), runtime("b", SK1, scope="namespace")],
     ModelFormat("sklearn"), {}, "b"),
    ("tie-lowest-protocol-first",
     [runtime("a", SK1, protocols=["v2"]), runtime("b", SK1, protocols=["v1", "v2"])],
     ModelFormat("sklearn"), {}, "b"),
    ("tie-newest-first",
     [runtime("a", SK1, created=OLD), runtime("b", SK1, created=NEW)],
     ModelFormat("sklearn"), {}, "b"),
    ("tie-then-name", [runtime("b", SK1), runtime("a", SK1)], ModelFormat("sklearn"), {}, "a"),
    ("named-runtime-ignores-autoselect",
     [runtime("a", ("sklearn", "1", False, None)), runtime("b", ("sklearn", "1", True, 9))],
     ModelFormat("sklearn"), {"runtime_name": "a"}, "a"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("runtimes", "model_format", "kwargs", "expected"),
    [case[1:] for case in TABLE],
    ids=[case[0] for case in TABLE],
)
def test_selection_follows_kserve_rules(runtimes, model_format, kwargs, expected):
    assert select_runtime(model_format, runtimes, **kwargs).name == expected


@pytest.mark.parametrize(
    ("runtimes", "model_format", "kwargs", "reason", "message"),
    [
        ([runtime("a", SK1)], ModelFormat("sklearn", "2"), {},
         "NoSupportingRuntime", "a [sklearn:1]: no autoSelect format sklearn:2"),
        ([runtime("a", SK1, disabled=True)], ModelFormat("sklearn"), {},
         "NoSupportingRuntime", "a [sklearn:1]: disabled"),
        ([runtime("a", SK1, protocols=["v2"])], ModelFormat("sklearn"), {"protocol_version": "v1"},
         "NoSupportingRuntime", "a [sklearn:1]: protocols v2 lack v1"),
        ([], ModelFormat("sklearn"), {}, "NoSupportingRuntime", "Considered: no runtimes"),
        ([runtime("a", SK1)], ModelFormat("sklearn"), {"runtime_name": "zzz"},
         "RuntimeNotRecognized", "known runtimes: a"),
        ([runtime("a", SK1, disabled=True)], ModelFormat("sklearn"), {"runtime_name": "a"},
         "RuntimeDisabled", "'a' is disabled"),
        ([runtime("a", SK1)], ModelFormat("onnx"), {"runtime_name": "a"},
         "NoSupportingRuntime", "does not support specified framework/version onnx"),
    ],
    ids=["no-version", "all-disabled", "no-protocol", "none-at-all", "unknown-name",
         "named-disabled", "named-without-format"],
)  # fmt: skip
def test_no_runtime_raises_resource_invalid_listing_candidates(
    runtimes, model_format, kwargs, reason, message
):
    with pytest.raises(ResourceInvalid) as caught:
        select_runtime(model_format, runtimes, **kwargs)
    assert caught.value.reason == reason
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("sklearn", ModelFormat("sklearn")), ("sklearn:1", ModelFormat("sklearn", "1")),
     ("huggingface:1.2.3", ModelFormat("huggingface", "1.2.3"))],
)  # fmt: skip
def test_model_format_parses_name_and_optional_version(text, expected):
    assert ModelFormat.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", ":1", "sklearn:"])
def test_a_malformed_model_format_is_resource_invalid(text):
    with pytest.raises(ResourceInvalid, match="NAME or NAME:VERSION"):
        ModelFormat.parse(text)


def kserve_defaults():
    return [r for path in KSERVE_RUNTIMES for r in parse_runtimes(path.read_text())]


KSERVE_CHOICES = [
    # KServe's own defaults choose as its controller would (an InferenceService defaults to v1).
    ("sklearn", "1", "v1", "kserve-sklearnserver"),
    ("sklearn", "1", "v2", "kserve-mlserver"),
    ("sklearn", "0", "v2", "kserve-mlserver"),
    ("xgboost", "2", "v1", "kserve-xgbserver"),
    ("lightgbm", "4", "v1", "kserve-lgbserver"),
    ("pytorch", "1", "v1", "kserve-torchserve"),
    ("pytorch", "1", "grpc-v2", "kserve-torchserve"),
    ("onnx", "1", "v2", "kserve-openvino"),
    ("tensorflow", "2", "v1", "kserve-tensorflow-serving"),
    ("tensorflow", "1", "v1", "kserve-openvino"),
    ("tensorflow", "2", "grpc-v2", "kserve-tritonserver"),
    ("huggingface", "1", "v2", "kserve-huggingfaceserver"),
    ("huggingface", None, "v1", "kserve-huggingfaceserver"),
    ("vLLM", "1", "v1", "kserve-vllmserver"),
]


@needs_kserve_runtimes
@pytest.mark.parametrize(("name", "version", "protocol", "expected"), KSERVE_CHOICES)
def test_kserve_default_runtimes_choose_as_kserve_does(name, version, protocol, expected):
    chosen = select_runtime(
        ModelFormat(name, version), kserve_defaults(), protocol_version=protocol
    )
    assert chosen.name == expected


def kserve_supported_formats():
    return sorted(
        {
            (entry.name, entry.version)
            for r in kserve_defaults()
            for entry in r.spec.supported_model_formats
        },
        key=lambda pair: (pair[0], pair[1] or ""),
    )


@needs_kserve_runtimes
def test_every_format_ksrv_serves_appears_in_kserve_defaults():
    # `detector` is ksrv's own (KServe runs alibi-detect's server as a plain Knative service).
    ksrv_only = {"detector"}
    assert set(registry.known_formats()) - ksrv_only <= {n for n, _ in kserve_supported_formats()}


@needs_kserve_runtimes
@pytest.mark.parametrize(
    ("name", "version"),
    [pair for pair in kserve_supported_formats() if pair[0] in registry.known_formats()]
    if KSERVE_RUNTIMES
    else [],
)
@pytest.mark.parametrize("protocol", [None, "v1", "v2", "grpc-v2"])
def test_every_supported_kserve_format_selects_a_ksrv_runtime(name, version, protocol):
    for model_format in (ModelFormat(name, version), ModelFormat(name)):
        chosen = select_runtime(
            model_format, default_runtimes.default_runtimes(), protocol_version=protocol
        )
        assert default_runtimes.ksrv_runtime(chosen) == name
        assert name in registry.RUNTIMES


def test_ksrv_runtimes_rank_after_kserve_mirrors_never_clash_in_priority():
    # KServe's webhook rejects equal priorities for one format within a scope: one ksrv runtime
    # per format keeps the default set valid by construction.
    runtimes = default_runtimes.default_runtimes()
    for name in registry.known_formats():
        serving = supporting_runtimes(ModelFormat(name), runtimes)
        assert [default_runtimes.ksrv_runtime(r) for r in serving] == [name]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("sklearn", "sklearn"), ("SKLearn", "sklearn"), ("sklearn:1", "sklearn"),
     ("sklearn:0", "sklearn"), ("xgboost:2", "xgboost"), ("lightgbm:4", "lightgbm"),
     ("onnx:1", "onnx"), ("pytorch", "pytorch"), ("tensorflow:2", "tensorflow")],
)  # fmt: skip
def test_serve_model_format_maps_to_a_registry_runtime(text, expected):
    assert default_ksrv_runtime(text) == expected


def test_serve_model_format_without_a_runtime_names_the_candidates():
    with pytest.raises(ResourceInvalid, match=r"sklearn:3.*ksrv-sklearn \[sklearn:0, sklearn:1\]"):
        default_ksrv_runtime("sklearn:3")


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("sklern", "no runtime supports modelFormat 'sklern'; did you mean 'sklearn'?"),
        ("SKLearn", "no runtime supports modelFormat 'SKLearn'; did you mean 'sklearn'?"),
        ("tensorflw", "no runtime supports modelFormat 'tensorflw'; did you mean 'tensorflow'?"),
        ("cobol", "no runtime supports modelFormat 'cobol'; the runtimes support detector, "),
    ],
)
def test_a_format_no_runtime_lists_suggests_the_closest_one(wanted, message):
    with pytest.raises(ResourceInvalid) as caught:
        select_runtime(ModelFormat(wanted), default_runtimes.default_runtimes())
    assert caught.value.reason == "NoSupportingRuntime"
    assert str(caught.value).startswith(message)
