"""load() accepts exactly the KServe example documents that KServe would accept.

The verdict comes from KServe's own CRD schemas (shared/schemas/kserve), checked here with
jsonschema, plus a short, explained list of documents the CRD accepts but KServe's webhook
rejects. Unknown fields: the API server prunes them, so a stored document valid only after
pruning loads, and `local_limitations` must name every pruned field (nothing silently dropped);
admission (`is_strict`) refuses exactly those fields, as kubectl's strict validation does,
at any depth: each example again with a stray key in every mapping (probes, volumes, env
`valueFrom` ... included) is refused exactly where the CRD's schema would prune it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ksrv.api import resources
from ksrv.errors import ResourceInvalid

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
EXAMPLES = SHARED / "examples-kserve"
CRDS = SHARED / "schemas" / "kserve"
SERVED = {
    "InferenceService",
    "ServingRuntime",
    "ClusterServingRuntime",
    "InferenceGraph",
    "TrainedModel",
}
GROUPS = ("serving.kserve.io/", "serving.kubeflow.org/")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# (file, document index) -> the field KServe's webhook rejects although the CRD accepts it.
WEBHOOK_REJECTS = {
    # `container:` is not a PredictorSpec field: pruned, the predictor has no implementation.
    ("kserve__docs__samples__bentoml__bentoml.yaml", 0): "spec.predictor",
    # `custom:` is not a TransformerSpec field: pruned, the transformer has no containers.
    (
        "website__docs__model-serving__predictive-inference__rollout-strategies__"
        "rollout-strategy-standard__block01.yaml",
        0,
    ): "spec.transformer",
    # A bare `apiVersion` + `kind` snippet: the API server itself requires metadata.name.
    ("website__docs__developer-guide__contribution__block01.yaml", 0): "metadata",
}
# Accepted by KServe only with a ClusterStorageContainer for `model-registry://` installed
# (block02 of the same page defines one); ksrv serves no such kind and cannot fetch the URI.
NEEDS_STORAGE_CONTAINER = {
    "website__docs__model-serving__storage__storage-containers__storage-containers__"
    "block03.yaml": "spec.predictor.model.storageUri",
}


def _documents() -> list[Any]:
    params = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = [doc for doc in yaml.load_all(path.read_text(), Loader=_LOADER) if doc]
        for index, doc in enumerate(documents):
            if (
                isinstance(doc, dict)
                and doc.get("kind") in SERVED
                # serving.kubeflow.org: KServe's obsolete group, which load() must name
                and str(doc.get("apiVersion", "")).startswith(GROUPS)
            ):
                params.append(pytest.param(path.name, index, doc, id=f"{path.stem}#{index}"))
    return params


def _schema_node(node: Any, strict: bool) -> Any:
    """A CRD schema node as JSON Schema: nullable, int-or-string, and (strict) no unknown keys."""
    if isinstance(node, list):
        return [_schema_node(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _schema_node(value, strict) for key, value in node.items() if key != "properties"}
    out.pop("description", None)
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _schema_node(v, strict) for k, v in node["properties"].items()}
    if out.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        strict
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_LOADER)
        spec = crd["spec"]
        for version in spec["versions"]:
            api_version = f"{spec['group']}/{version['name']}"
            schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


@functools.cache
def _validator(api_version: str, kind: str, strict: bool) -> jsonschema.Draft7Validator | None:
    raw = _crd_schemas().get((api_version, kind))
    if raw is None:
        return None
    schema = _schema_node(copy.deepcopy(raw), strict)
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}  # the API server's job
    return jsonschema.Draft7Validator(schema)


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else f"{text}.{part}" if text else part
    return text


def _crd_verdict(doc: dict[str, Any]) -> tuple[list[str], set[str]] | None:
    """(paths of errors after pruning, pruned field paths); None when no CRD has the apiVersion."""
    pruning = _validator(doc["apiVersion"], doc["kind"], False)
    strict = _validator(doc["apiVersion"], doc["kind"], True)
    if pruning is None or strict is None:
        return None
    errors = []
    for error in pruning.iter_errors(doc):
        path = list(error.absolute_path)
        if error.validator == "required":  # reported on the parent; name the missing field
            path += [name for name in error.validator_value if name not in error.instance][:1]
        errors.append(_path(path))
    pruned = set()
    for error in strict.iter_errors(doc):
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for key in set(error.instance) - set(known):
                pruned.add(_path([*error.absolute_path, key]))
    return errors, pruned


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS}")
@pytest.mark.parametrize(("file", "index", "doc"), _documents())
def test_load_agrees_with_kserve(file: str, index: int, doc: dict[str, Any]) -> None:
    verdict = _crd_verdict(doc)
    if verdict is None:
        with pytest.raises(ResourceInvalid, match="apiVersion"):
            resources.load(doc)
        return
    crd_errors, pruned = verdict
    if crd_errors:
        with pytest.raises(ResourceInvalid) as caught:
            resources.load(doc)
        ours = {path for path, _ in caught.value.field_errors}
        assert set(crd_errors) <= ours, f"the CRD rejects {crd_errors}, load() names {ours}"
        return
    rejected_at = WEBHOOK_REJECTS.get((file, index)) or NEEDS_STORAGE_CONTAINER.get(file)
    if rejected_at is not None:
        with pytest.raises(ResourceInvalid) as caught:
            resources.load(doc)
        assert rejected_at in [path for path, _ in caught.value.field_errors]
        return
    try:
        resource = resources.load(doc)
    except ResourceInvalid as exc:
        pytest.fail(f"the CRD accepts this document but load() says: {exc}")
    reported = {note.split(":")[0] for note in resources.local_limitations(resource)}
    assert pruned <= reported, f"pruned fields not reported: {pruned - reported}"
    unknown = {n.split(":")[0] for n in resources.local_limitations(resource) if "not a field" in n}
    assert unknown == pruned
    again = resources.load(resource.to_dict())
    assert again.to_dict() == resource.to_dict()
    if pruned:  # kubectl's strict validation refuses what the API server would prune
        with pytest.raises(ResourceInvalid) as caught:
            resources.load(doc, is_strict=True)
        refused = {path for path, text in caught.value.field_errors if "unknown field" in text}
        assert refused == pruned
    else:
        assert resources.load(doc, is_strict=True).to_dict() == resource.to_dict()


def test_every_served_example_is_checked() -> None:
    assert len(_documents()) > 150


def _typed(cls: Any) -> set[str]:
    return {field.alias or name for name, field in cls.model_fields.items()}


def _crd_properties(api_version: str, kind: str, path: str) -> set[str]:
    node = _crd_schemas()[(api_version, kind)]
    for part in path.split("."):
        if part == "[]":
            node = node["items"]
        elif part == "additionalProperties":
            node = node["additionalProperties"]
        else:
            node = node["properties"][part]
    return set(node["properties"])


V1BETA1, V1ALPHA1 = "serving.kserve.io/v1beta1", "serving.kserve.io/v1alpha1"
KNOWN_FIELD_SETS = [
    ("InferenceService", V1BETA1, "spec", "InferenceServiceSpec"),
    ("InferenceService", V1BETA1, "spec.predictor", "PredictorSpec"),
    ("InferenceService", V1BETA1, "spec.transformer", "TransformerSpec"),
    ("InferenceService", V1BETA1, "spec.explainer", "ExplainerSpec"),
    ("InferenceService", V1BETA1, "spec.explainer.art", "ArtExplainerSpec"),
    ("InferenceService", V1BETA1, "spec.predictor.model", "ModelSpec"),
    ("InferenceService", V1BETA1, "spec.predictor.model.modelFormat", "ModelFormat"),
    ("InferenceService", V1BETA1, "spec.predictor.model.storage", "StorageSpec"),
    ("InferenceService", V1BETA1, "spec.predictor.model.env.[]", "EnvVar"),
    ("InferenceService", V1BETA1, "spec.predictor.model.ports.[]", "ContainerPort"),
    ("InferenceService", V1BETA1, "spec.predictor.model.resources", "ResourceRequirements"),
    ("InferenceService", V1BETA1, "spec.predictor.model.volumeMounts.[]", "VolumeMount"),
    ("InferenceService", V1BETA1, "spec.predictor.containers.[]", "PodContainer"),
    ("InferenceService", V1BETA1, "spec.predictor.logger", "LoggerSpec"),
    ("InferenceService", V1BETA1, "spec.predictor.batcher", "Batcher"),
    ("InferenceService", V1BETA1, "spec.predictor.storageUris.[]", "StorageUri"),
    ("InferenceService", V1BETA1, "spec.predictor.autoScaling", "AutoScalingSpec"),
    ("InferenceService", V1BETA1, "spec.predictor.autoScaling.metrics.[]", "MetricSpec"),
    ("InferenceService", V1BETA1, "spec.canary.[]", "CanarySpec"),
    ("InferenceGraph", V1ALPHA1, "spec", "InferenceGraphSpec"),
    ("InferenceGraph", V1ALPHA1, "spec.nodes.additionalProperties", "InferenceRouter"),
    ("InferenceGraph", V1ALPHA1, "spec.nodes.additionalProperties.steps.[]", "InferenceStep"),
    ("InferenceGraph", V1ALPHA1, "spec.routerTimeouts", "RouterTimeouts"),
    ("TrainedModel", V1ALPHA1, "spec", "TrainedModelSpec"),
    ("TrainedModel", V1ALPHA1, "spec.model", "TrainedModelSpecModel"),
    ("ServingRuntime", V1ALPHA1, "spec", "ServingRuntimeSpec"),
    ("ServingRuntime", V1ALPHA1, "spec.containers.[]", "Container"),
    ("InferenceService", V1BETA1, "spec.predictor", "PodFields"),
]


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS}")
@pytest.mark.parametrize(("kind", "api_version", "path", "model"), KNOWN_FIELD_SETS)
def test_each_typed_field_is_one_its_crd_defines(kind, api_version, path, model):
    from ksrv.api import inference_graph, inference_service, meta, serving_runtime, trained_model

    modules = (inference_service, inference_graph, trained_model, serving_runtime, meta)
    cls = next(getattr(module, model) for module in modules if hasattr(module, model))
    assert _typed(cls) <= _crd_properties(api_version, kind, path)


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS}")
@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "triton", "pytorch", "huggingface"])
def test_framework_specs_type_only_crd_fields(framework):
    from ksrv.api.inference_service import FrameworkSpec

    expected = _crd_properties(V1BETA1, "InferenceService", f"spec.predictor.{framework}")
    assert _typed(FrameworkSpec) <= expected


TYPO = "zzTypo"


def _with_typos(node: Any, path: str = "") -> Any:
    """`node` with a key no schema defines added to every mapping, at every depth."""
    if isinstance(node, list):
        return [_with_typos(item, path) for item in node]
    # the API server ignores status when the resource itself is written; ksrv does not check it
    if not isinstance(node, dict) or path == ".status":
        return node
    return {**{key: _with_typos(value, f"{path}.{key}") for key, value in node.items()}, TYPO: "x"}


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS}")
@pytest.mark.parametrize(("file", "index", "doc"), _documents())
def test_strict_loading_refuses_exactly_what_the_crd_prunes_at_any_depth(file, index, doc):
    """Probes, volumes, env valueFrom, affinity, ...: whatever the example holds, a key added
    to each of its mappings is refused exactly where the CRD's schema would prune it."""
    typed = _with_typos(doc)
    verdict = _crd_verdict(typed)
    if verdict is None:
        return  # an apiVersion no CRD serves: test_load_agrees_with_kserve covers it
    _, pruned = verdict
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(typed, is_strict=True)
    refused = {path for path, text in caught.value.field_errors if "unknown field" in text}
    assert refused == pruned


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS}")
def test_the_examples_reach_the_pod_fields_kserve_inlines():
    """The test above means something for the untyped pod-spec fields: the examples hold them."""
    pruned: set[str] = set()
    for param in _documents():
        verdict = _crd_verdict(_with_typos(param.values[2]))
        pruned |= verdict[1] if verdict else set()
    for inside in (
        "Probe.httpGet.",
        "volumeMounts[0].",
        "valueFrom.",
        "volumes[0].",
        "workerSpec.",
    ):
        assert any(inside in path for path in pruned), inside
