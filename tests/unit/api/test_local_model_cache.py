"""LocalModelCache and LocalModelNamespaceCache as resources: parsed and checked strictly
against KServe's CRDs, KServe's immutability rule, and KServe's rule for which
InferenceService a cache serves."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from ksrv.api import resources
from ksrv.api.local_model_cache import CacheRef, cache_for, matches, storage_key
from ksrv.api.meta import quantity_bytes
from ksrv.errors import ResourceInvalid
from tests.k8s_support import assert_valid

# KServe's documented example (docs: model-serving/generative-inference/modelcache).
KSERVE_EXAMPLE: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "LocalModelCache",
    "metadata": {"name": "meta-llama3-8b-instruct"},
    "spec": {
        "sourceModelUri": "hf://meta-llama/meta-llama-3-8b-instruct",
        "modelSize": "10Gi",
        "nodeGroups": ["workers"],
    },
}


def namespaced(document: dict[str, Any], namespace: str = "team") -> dict[str, Any]:
    found = copy.deepcopy(document)
    found["kind"] = "LocalModelNamespaceCache"
    found["metadata"]["namespace"] = namespace
    return found


@pytest.mark.parametrize("document", [KSERVE_EXAMPLE, namespaced(KSERVE_EXAMPLE)])
def test_kserves_example_loads_round_trips_and_is_valid_against_the_crd(document):
    resource = resources.load(document, is_strict=True)
    assert resource.to_dict() == document
    assert_valid([document])


def test_every_spec_field_kserve_defines_is_accepted():
    document = copy.deepcopy(KSERVE_EXAMPLE)
    document["spec"] |= {
        "serviceAccountName": "hf-reader",
        "storage": {"key": "hf", "parameters": {"type": "hf"}},
        "modelSize": 10_000_000,
    }
    assert resources.load(document, is_strict=True).to_dict() == document
    assert_valid([document])


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"sourceModelUri": None}, "spec.sourceModelUri", "required"),
        ({"modelSize": None}, "spec.modelSize", "required"),
        ({"nodeGroups": None}, "spec.nodeGroups", "required"),
        ({"nodeGroups": []}, "spec.nodeGroups", "at least 1"),
        ({"nodeGroups": [""]}, "spec.nodeGroups[0]", "must not be empty"),
        ({"modelSize": "ten gigs"}, "spec.modelSize", "is not a quantity"),
        ({"sourceModelUri": ""}, "spec.sourceModelUri", "required"),
        ({"sourceModelUri": "ftp://host/model"}, "spec.sourceModelUri", "must start with"),
        ({"storageUri": "s3://b/m"}, "spec.storageUri", "unknown field"),
    ],
)
def test_a_bad_spec_names_the_field(change, path, message):
    document = copy.deepcopy(KSERVE_EXAMPLE)
    for key, value in change.items():
        if value is None:
            del document["spec"][key]
        else:
            document["spec"][key] = value
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document, is_strict=True)
    assert any(p == path and message in m for p, m in caught.value.field_errors), caught.value


def test_the_source_uri_is_immutable_as_the_crd_says():
    old = resources.load(KSERVE_EXAMPLE)
    changed = copy.deepcopy(KSERVE_EXAMPLE)
    changed["spec"]["sourceModelUri"] = "hf://meta-llama/other"
    with pytest.raises(ResourceInvalid, match="StorageUri is immutable"):
        resources.validate_update(old, resources.load(changed))
    bigger = copy.deepcopy(KSERVE_EXAMPLE)
    bigger["spec"]["modelSize"] = "20Gi"
    resources.validate_update(old, resources.load(bigger))


@pytest.mark.parametrize(
    ("typed", "kind"),
    [("lmc", "LocalModelCache"), ("localmodelcaches", "LocalModelCache"),
     ("lmnc", "LocalModelNamespaceCache"), ("localmodelnamespacecache", "LocalModelNamespaceCache"),
     ("LocalModelCache.serving.kserve.io", "LocalModelCache")],
)  # fmt: skip
def test_kind_names_resolve(typed, kind):
    assert resources.kind_for(typed) == kind


def test_the_storage_key_is_kserves():
    uri = "hf://meta-llama/meta-llama-3-8b-instruct"
    assert storage_key(uri) == hashlib.sha256(uri.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("cached", "wanted", "expected"),
    [
        ("s3://b/iris", "s3://b/iris", True),
        ("s3://b/iris/", "s3://b/iris", True),
        ("s3://b/iris", "s3://b/iris/", True),
        ("s3://b/iris", "s3://b/iris/v1", True),
        ("s3://b/iris", "s3://b/iris-v2", False),
        ("s3://b/iris/v1", "s3://b/iris", False),
        ("s3://b/iris", "gs://b/iris", False),
    ],
)
def test_a_uri_matches_itself_and_what_sits_under_it_as_a_folder(cached, wanted, expected):
    assert matches(cached, wanted) is expected


CLUSTER = CacheRef("LocalModelCache", "", "iris", "s3://b/iris", ("workers", "gpus"))
TEAM = CacheRef("LocalModelNamespaceCache", "team", "iris-team", "s3://b/iris", ("workers",))
OTHER = CacheRef("LocalModelCache", "", "bert", "hf://org/bert", ("workers",))


@pytest.mark.parametrize(
    ("uri", "namespace", "annotations", "expected"),
    [
        ("s3://b/iris/v1", "default", {}, CLUSTER),
        ("s3://b/iris", "team", {}, TEAM),  # the namespace's own cache comes first
        ("s3://b/iris", "team", {"serving.kserve.io/nodegroup": "gpus"}, CLUSTER),
        ("s3://b/iris", "default", {"serving.kserve.io/nodegroup": "cpus"}, None),
        ("s3://b/iris", "team", {"serving.kserve.io/disable-localmodel": "true"}, None),
        ("s3://b/iris", "team", {"serving.kserve.io/disable-localmodel": "false"}, TEAM),
        ("s3://b/iris-v2", "default", {}, None),
        (None, "default", {}, None),
    ],
)
def test_which_cache_serves_a_predictor_follows_kserves_rule(uri, namespace, annotations, expected):
    assert cache_for(uri, namespace, annotations, [OTHER, CLUSTER, TEAM]) == expected


def test_credentials_fields_are_reported_as_not_honoured_locally():
    document = copy.deepcopy(KSERVE_EXAMPLE)
    assert resources.local_limitations(resources.load(document)) == []
    document["spec"] |= {"serviceAccountName": "hf-reader", "storage": {"key": "hf"}}
    notes = resources.local_limitations(resources.load(document))
    assert [note.split(":")[0] for note in notes] == ["spec.serviceAccountName", "spec.storage"]
    assert all("ksrv's own environment" in note for note in notes)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(10, 10), ("10Gi", 10 * 2**30), ("1.5G", 1.5e9), ("1e3", 1000), ("1E3", 1000),
     ("2E", 2e18), ("500m", 0.5), ("3Ki", 3072), ("7", 7)],
)  # fmt: skip
def test_model_size_quantities_read_as_kubernetes_reads_them(quantity, expected):
    assert quantity_bytes(quantity) == pytest.approx(expected)
