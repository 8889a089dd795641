"""ClusterStorageContainer as a resource: parsed, checked strictly against its CRD, matched
against storage URIs as KServe matches them, and served under KServe's names."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from ksrv.api import resources
from ksrv.api.storage_container import ClusterStorageContainer, default_storage_container
from ksrv.errors import ResourceInvalid
from tests.k8s_support import assert_valid

# KServe's own `default` ClusterStorageContainer (config/storagecontainers/default.yaml).
KSERVE_DEFAULT = yaml.safe_load("""
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterStorageContainer
metadata:
  name: default
spec:
  container:
    name: storage-initializer
    image: kserve/storage-initializer:latest
    imagePullPolicy: IfNotPresent
    resources:
      requests: {memory: 100Mi, cpu: 100m}
      limits: {memory: 1Gi, cpu: "1"}
  supportedUriFormats:
    - prefix: gs://
    - prefix: s3://
    - prefix: hdfs://
    - prefix: hf://
    - prefix: modelscope://
    - prefix: webhdfs://
    - regex: "https://(.+?).blob.core.windows.net/(.+)"
    - regex: "https://(.+?).file.core.windows.net/(.+)"
    - regex: "https?://(.+)/(.+)"
  workloadType: initContainer
  supportsMultiModelDownload: true
""")


def load(document: dict[str, Any]) -> ClusterStorageContainer:
    resource = resources.load(document, is_strict=True)
    assert isinstance(resource, ClusterStorageContainer)
    return resource


def test_kserves_default_storage_container_loads_and_round_trips():
    resource = load(KSERVE_DEFAULT)
    assert resource.to_dict() == KSERVE_DEFAULT
    assert_valid([KSERVE_DEFAULT, default_storage_container("ksrv:1")])


@pytest.mark.parametrize(
    ("uri", "is_supported"),
    [
        ("s3://bucket/model", True),
        ("hf://org/model", True),
        ("https://acct.blob.core.windows.net/c/m", True),
        ("http://host/model.tar.gz", True),
        ("pvc://claim/model", False),
        ("oci://registry/model:1", False),
        ("/local/model", False),
    ],
)
def test_supported_uri_formats_match_by_prefix_or_regex(uri, is_supported):
    assert load(KSERVE_DEFAULT).is_usable_for(uri) is is_supported


def test_a_regex_matches_anywhere_in_the_uri_as_gos_match_string_does():
    document = copy.deepcopy(KSERVE_DEFAULT)
    document["spec"]["supportedUriFormats"] = [{"regex": "models/v[0-9]+"}]
    assert load(document).is_usable_for("s3://bucket/models/v2/x")


@pytest.mark.parametrize(
    ("change", "uri"),
    [({"disabled": True}, "s3://b/m"), ({"spec": {"workloadType": "localModelDownloadJob"}}, "s3://b/m")],
)  # fmt: skip
def test_a_disabled_or_download_job_container_is_not_used_for_pods(change, uri):
    document = copy.deepcopy(KSERVE_DEFAULT)
    document["disabled"] = change.get("disabled")
    document["spec"].update(change.get("spec", {}))
    assert load({k: v for k, v in document.items() if v is not None}).is_usable_for(uri) is False


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["spec"].update(supportedUriFormats=[{"regex": "(unclosed"}]),
         "spec.supportedUriFormats[0].regex"),
        (lambda d: d["spec"].update(workloadType="InitContainer"), "spec.workloadType"),
        (lambda d: d["spec"]["container"].update(imagePullPolcy="Always"),
         "spec.container.imagePullPolcy"),
        (lambda d: d["spec"].pop("supportedUriFormats"), "spec.supportedUriFormats"),
        (lambda d: d["spec"]["container"].pop("name"), "spec.container.name"),
    ],
)  # fmt: skip
def test_a_bad_storage_container_is_refused_naming_the_field(edit, field):
    document = copy.deepcopy(KSERVE_DEFAULT)
    edit(document)
    with pytest.raises(ResourceInvalid) as caught:
        load(document)
    assert field in [path for path, _ in caught.value.field_errors]


def test_the_kind_is_served_by_its_crd_names_and_ksrvs_short_name():
    for typed in ("csc", "clusterstoragecontainer", "clusterstoragecontainers",
                  "ClusterStorageContainer.serving.kserve.io"):  # fmt: skip
        assert resources.kind_for(typed) == "ClusterStorageContainer"
    kind = resources.KINDS["ClusterStorageContainer"]
    assert (kind.api_version, kind.is_namespaced) == ("serving.kserve.io/v1alpha1", False)


def test_a_stored_status_is_accepted_back_although_the_crd_has_none():
    document = {**KSERVE_DEFAULT, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert load(document).status == document["status"]
