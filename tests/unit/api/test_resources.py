"""Seam 1: documents in, resources out; kinds by name; limitations; update rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ksrv.api import resources
from ksrv.api.inference_graph import InferenceGraph
from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import ClusterServingRuntime, ServingRuntime
from ksrv.api.trained_model import TrainedModel
from ksrv.errors import ResourceInvalid

ISVC: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-iris", "namespace": "default"},
    "spec": {"predictor": {"sklearn": {"storageUri": "gs://b/m"}}},
}
RUNTIME: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "ServingRuntime",
    "metadata": {"name": "rt"},
    "spec": {
        "supportedModelFormats": [{"name": "sklearn", "autoSelect": True}],
        "containers": [{"name": "kserve-container", "image": "i"}],
    },
}
GRAPH: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "InferenceGraph",
    "metadata": {"name": "chain"},
    "spec": {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"serviceName": "a"}, {"nodeName": "split", "data": "$response"}],
            },
            "split": {
                "routerType": "Splitter",
                "steps": [
                    {"serviceName": "b", "weight": 30},
                    {"serviceUrl": "http://c", "weight": 70},
                ],
            },
        }
    },
}
TRAINED: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "TrainedModel",
    "metadata": {"name": "model1"},
    "spec": {
        "inferenceService": "sklearn-iris",
        "model": {"storageUri": "gs://b/m1", "framework": "sklearn", "memory": "256Mi"},
    },
}


def changed(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


# -- parse_documents ----------------------------------------------------------------------


def test_parse_documents_reads_every_yaml_document_and_skips_empty_ones():
    text = "---\napiVersion: v1\nkind: A\n---\n---\n# only a comment\n---\nkind: B\n"
    assert [doc["kind"] for doc in resources.parse_documents(text)] == ["A", "B"]


def test_parse_documents_reads_json_and_unpacks_lists():
    text = json.dumps({"kind": "List", "items": [ISVC, RUNTIME]})
    assert [doc["kind"] for doc in resources.parse_documents(text)] == [
        "InferenceService",
        "ServingRuntime",
    ]


@pytest.mark.parametrize("text", ["a: [unclosed", "a: b\n- c\n", "\tkey: tab"])
def test_parse_documents_rejects_text_that_is_not_yaml(text):
    with pytest.raises(ResourceInvalid, match="not valid YAML"):
        resources.parse_documents(text)


def test_parse_documents_rejects_a_document_that_is_not_a_mapping():
    with pytest.raises(ResourceInvalid, match="document 2: expected a mapping, got list"):
        resources.parse_documents("kind: A\n---\n- 1\n")


# -- load: dispatch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "cls"),
    [
        (ISVC, InferenceService),
        (RUNTIME, ServingRuntime),
        ({**RUNTIME, "kind": "ClusterServingRuntime"}, ClusterServingRuntime),
        (GRAPH, InferenceGraph),
        (TRAINED, TrainedModel),
    ],
)
def test_load_dispatches_on_kind_and_round_trips_through_to_dict(document, cls):
    resource = resources.load(document)
    assert type(resource) is cls
    again = resources.load(resource.to_dict())
    assert again == resource
    assert again.to_dict() == resource.to_dict()


def test_to_dict_is_camel_case_with_defaults_and_without_nones():
    out = resources.load(ISVC).to_dict()
    assert out == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "sklearn-iris", "namespace": "default"},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"},
            }
        },
    }


def test_to_dict_keeps_store_metadata_status_and_fields_ksrv_does_not_type():
    document = changed(
        ISVC, "metadata", {"name": "a", "uid": "u-1", "resourceVersion": "7", "generation": 2}
    )
    document = changed(document, "status", {"url": "http://a.default.example.com"})
    document = changed(document, "spec.predictor.priorityClassName", "high")
    document = changed(document, "spec.predictor.sklearn.securityContext", {"runAsNonRoot": True})
    out = resources.load(document).to_dict()
    assert out["metadata"]["uid"] == "u-1" and out["metadata"]["generation"] == 2
    assert out["status"] == {"url": "http://a.default.example.com"}
    assert out["spec"]["predictor"]["priorityClassName"] == "high"
    assert out["spec"]["predictor"]["model"]["securityContext"] == {"runAsNonRoot": True}


@pytest.mark.parametrize(
    ("document", "match"),
    [
        (
            {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "LocalModelNode"},
            "'LocalModelNode'",
        ),
        (
            {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "LocalModelNodeGroup"},
            "not served by ksrv",
        ),
        ({"apiVersion": "v1", "kind": "Secret"}, "'Secret' \\(v1\\) is not served"),
        (
            {**ISVC, "apiVersion": "serving.kubeflow.org/v1beta1"},
            "'serving.kubeflow.org/v1beta1' is obsolete",
        ),
        (
            {**ISVC, "apiVersion": "serving.kserve.io/v1alpha2"},
            "'serving.kserve.io/v1alpha2' is obsolete",
        ),
        ({**RUNTIME, "apiVersion": "example.com/v1"}, "is unknown"),
    ],
)
def test_load_rejects_unsupported_kinds_and_api_versions_by_name(document, match):
    with pytest.raises(ResourceInvalid, match=match) as caught:
        resources.load(document)
    assert caught.value.field_errors[0][0] in ("kind", "apiVersion")


def test_load_rejects_a_document_that_is_not_a_mapping():
    with pytest.raises(ResourceInvalid, match="expected a mapping"):
        resources.load([1, 2])  # type: ignore[arg-type]


def test_runtime_without_containers_is_rejected_as_the_crd_requires():
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(changed(RUNTIME, "spec", {"supportedModelFormats": []}))
    assert ("spec.containers", "required") in caught.value.field_errors


# -- kind_for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("isvc", "InferenceService"),
        ("inferenceservice", "InferenceService"),
        ("InferenceServices", "InferenceService"),
        ("inferenceservices.serving.kserve.io", "InferenceService"),
        ("ig", "InferenceGraph"),
        ("inferencegraph", "InferenceGraph"),
        ("inferencegraphs", "InferenceGraph"),
        ("tm", "TrainedModel"),
        ("trainedmodel", "TrainedModel"),
        ("trainedmodels", "TrainedModel"),
        ("servingruntime", "ServingRuntime"),
        ("servingruntimes", "ServingRuntime"),
        ("sr", "ServingRuntime"),
        ("clusterservingruntime", "ClusterServingRuntime"),
        ("clusterservingruntimes", "ClusterServingRuntime"),
        ("csr", "ClusterServingRuntime"),
    ],
)
def test_kind_for_resolves_names_plurals_and_short_names(text, kind):
    assert resources.kind_for(text) == kind


def test_kind_for_rejects_an_unknown_type_listing_what_it_serves():
    with pytest.raises(ResourceInvalid, match=r"unknown resource type 'pods'.*isvc"):
        resources.kind_for("pods")


def test_kinds_describe_scope_and_api_version():
    assert resources.KINDS["ClusterServingRuntime"].is_namespaced is False
    assert resources.KINDS["InferenceService"].api_version == "serving.kserve.io/v1beta1"
    assert resources.KINDS["InferenceGraph"].plural == "inferencegraphs"
    assert resources.KINDS["TrainedModel"].singular == "trainedmodel"


# -- local_limitations --------------------------------------------------------------------


def test_local_limitations_name_each_ignored_field_in_one_sentence():
    document = changed(ISVC, "spec.predictor.nodeSelector", {"pool": "gpu"})
    document = changed(document, "spec.predictor.tolerations", [{"key": "gpu"}])
    document = changed(document, "spec.predictor.serviceAccountName", "sa")
    document = changed(
        document, "spec.predictor.sklearn.resources", {"limits": {"nvidia.com/gpu": 1}}
    )
    document = changed(document, "spec.nodeName", "node-1")
    notes = resources.local_limitations(resources.load(document))
    paths = [note.split(":")[0] for note in notes]
    assert paths == [
        "spec.nodeName",
        "spec.predictor.nodeSelector",
        "spec.predictor.tolerations",
        "spec.predictor.serviceAccountName",
        "spec.predictor.model.resources",
    ]
    assert "not a field of InferenceService serving.kserve.io/v1beta1" in notes[0]
    assert "GPUs" in notes[-1]


def test_a_plain_isvc_has_no_local_limitations():
    assert resources.local_limitations(resources.load(ISVC)) == []


def test_canary_traffic_percent_is_reported_as_ignored_in_standard_mode():
    document = changed(
        ISVC, "metadata.annotations", {"serving.kserve.io/deploymentMode": "Standard"}
    )
    document = changed(document, "spec.predictor.canaryTrafficPercent", 10)
    notes = resources.local_limitations(resources.load(document))
    assert any(note.startswith("spec.predictor.canaryTrafficPercent: ignored") for note in notes)


def test_runtime_and_graph_limitations_cover_their_pod_fields():
    runtime = changed(RUNTIME, "spec.nodeSelector", {"a": "b"})
    runtime = changed(runtime, "spec.multiModel", True)
    notes = resources.local_limitations(resources.load(runtime))
    assert [note.split(":")[0] for note in notes] == ["spec.nodeSelector", "spec.multiModel"]
    graph = changed(GRAPH, "spec.affinity", {})
    assert [n.split(":")[0] for n in resources.local_limitations(resources.load(graph))] == [
        "spec.affinity"
    ]


def test_unknown_fields_deep_in_a_component_are_reported_not_dropped():
    document = changed(ISVC, "spec.predictor.sklearn.storageURI", "typo")
    resource = resources.load(document)
    assert resource.to_dict()["spec"]["predictor"]["model"]["storageURI"] == "typo"
    (note,) = resources.local_limitations(resource)
    assert note.startswith("spec.predictor.model.storageURI: not a field of InferenceService")


# -- validate_update ----------------------------------------------------------------------


def loaded(document: dict[str, Any]) -> Any:
    return resources.load(document)


MODE = "metadata.annotations"


def test_update_keeps_the_deployment_mode():
    old = loaded(changed(ISVC, MODE, {"serving.kserve.io/deploymentMode": "Standard"}))
    new = loaded(changed(ISVC, MODE, {"serving.kserve.io/deploymentMode": "Knative"}))
    with pytest.raises(ResourceInvalid) as caught:
        resources.validate_update(old, new)
    assert caught.value.field_errors == [
        ("metadata.annotations[serving.kserve.io/deploymentMode]", "is immutable (was 'Standard')")
    ]
    resources.validate_update(
        old, loaded(changed(ISVC, MODE, {"serving.kserve.io/deploymentMode": "RawDeployment"}))
    )


def test_update_compares_with_the_mode_recorded_in_status():
    old = loaded(changed(ISVC, "status", {"deploymentMode": "Knative"}))
    with pytest.raises(ResourceInvalid, match="immutable"):
        resources.validate_update(
            old, loaded(changed(ISVC, MODE, {"serving.kserve.io/deploymentMode": "Standard"}))
        )
    resources.validate_update(old, loaded(ISVC))


def test_renaming_the_predictor_needs_a_model_change():
    old = loaded(changed(ISVC, "spec.predictor.name", "blue"))
    same_model = loaded(changed(ISVC, "spec.predictor.name", "green"))
    with pytest.raises(ResourceInvalid) as caught:
        resources.validate_update(old, same_model)
    assert caught.value.field_errors[0][0] == "spec.predictor.name"
    new_model = changed(
        changed(ISVC, "spec.predictor.name", "green"),
        "spec.predictor.sklearn.storageUri",
        "gs://b/v2",
    )
    resources.validate_update(old, loaded(new_model))


def test_other_spec_changes_are_allowed():
    resources.validate_update(loaded(ISVC), loaded(changed(ISVC, "spec.predictor.minReplicas", 3)))


def test_update_cannot_change_kind_or_name():
    with pytest.raises(ResourceInvalid, match=r"kind: cannot change"):
        resources.validate_update(loaded(ISVC), loaded(GRAPH))
    with pytest.raises(ResourceInvalid, match=r"metadata\.name: cannot change"):
        resources.validate_update(loaded(ISVC), loaded(changed(ISVC, "metadata.name", "other")))


def test_trained_model_memory_is_immutable():
    with pytest.raises(ResourceInvalid) as caught:
        resources.validate_update(
            loaded(TRAINED), loaded(changed(TRAINED, "spec.model.memory", "1Gi"))
        )
    assert caught.value.field_errors[0][0] == "spec.model.memory"


# -- InferenceGraph and TrainedModel rules ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "spec.nodes",
            {"start": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}},
            "spec.nodes",
            "'root' is required",
        ),
        (
            "spec.nodes.root.steps.0",
            {"serviceName": "a", "serviceUrl": "http://a"},
            "spec.nodes.root.steps[0]",
            "exactly one of [nodeName, serviceName, serviceUrl]",
        ),
        (
            "spec.nodes.root.steps.0",
            {"name": "nothing"},
            "spec.nodes.root.steps[0]",
            "exactly one of",
        ),
        (
            "spec.nodes.root.steps.1.nodeName",
            "missing",
            "spec.nodes.root.steps[1].nodeName",
            "no node named 'missing'",
        ),
        ("spec.nodes.split.steps.0.weight", 20, "spec.nodes.split.steps", "sum to 90, not 100"),
        (
            "spec.nodes.split.steps.0",
            {"serviceName": "b"},
            "spec.nodes.split.steps[0].weight",
            "required in a Splitter",
        ),
        ("spec.nodes.root.routerType", "Broadcast", "spec.nodes.root.routerType", "'Sequence'"),
        (
            "spec.nodes.root.steps.0.dependency",
            "Maybe",
            "spec.nodes.root.steps[0].dependency",
            "'Soft'",
        ),
        ("metadata.name", "Chain", "metadata.name", "is not valid: use at most"),
    ],
)
def test_inference_graph_rules_name_the_field(path, value, field, message):
    assert_refused_at(changed(GRAPH, path, value), field, message)


def assert_refused_at(document: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document)
    errors = dict(caught.value.field_errors)
    assert field in errors, errors
    assert message in errors[field]


def test_inference_graph_steps_expose_their_target():
    graph = resources.load(GRAPH)
    assert isinstance(graph, InferenceGraph)
    assert [step.target for step in graph.spec.nodes["split"].steps or []] == ["b", "http://c"]


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("spec.model.storageUri", "ftp://x/m", "spec.model.storageUri", "must start with one of"),
        ("spec.model.memory", "a lot", "spec.model.memory", "not a quantity"),
        (
            "spec.model",
            {"storageUri": "gs://b/m", "framework": "sklearn"},
            "spec.model.memory",
            "required",
        ),
        ("spec", {"model": TRAINED["spec"]["model"]}, "spec.inferenceService", "required"),
    ],
)
def test_trained_model_rules_name_the_field(path, value, field, message):
    assert_refused_at(changed(TRAINED, path, value), field, message)


def test_yaml_aliases_are_refused_before_they_expand():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    with pytest.raises(ResourceInvalid, match="aliases"):
        resources.parse_documents(bomb)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("{oops", "metadata.annotations.ksrv.dev/step-timeouts"),
        ("[5]", "metadata.annotations.ksrv.dev/step-timeouts"),
        ('{"split[0]": 0}', "metadata.annotations.ksrv.dev/step-timeouts.split[0]"),
    ],
)
def test_a_graph_whose_step_timeouts_the_router_would_refuse_is_refused_at_apply(value, path):
    document = copy.deepcopy(GRAPH)
    document["metadata"]["annotations"] = {"ksrv.dev/step-timeouts": value}
    with pytest.raises(ResourceInvalid) as refused:
        resources.load(document)
    assert path in [field for field, _ in refused.value.field_errors]


def test_a_graph_with_good_step_timeouts_loads():
    document = copy.deepcopy(GRAPH)
    document["metadata"]["annotations"] = {"ksrv.dev/step-timeouts": '{"*": 2, "split[1]": 0.5}'}
    assert isinstance(resources.load(document), InferenceGraph)
