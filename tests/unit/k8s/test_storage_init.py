"""Storage provisioning on Kubernetes: what KServe's storage-initializer injection does to a
component's pod (init container, volumes, mounts, ClusterStorageContainers). Every pod is
wrapped in a Deployment and validated strictly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.storage_container import default_storage_container
from ksrv.control.plan import ComponentPlan
from ksrv.errors import ResourceInvalid, ResourceNotFound
from ksrv.k8s import render, storage_init
from ksrv.k8s.config import ClusterConfig
from ksrv.k8s.context import ComponentContext, Documents
from tests.k8s_support import assert_valid

CONFIG = ClusterConfig()
INIT_IMAGE = CONFIG.storage_initializer.image


def isvc(predictor: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ns", "annotations": annotations or {}},
        "spec": {"predictor": predictor},
    }


def model(uri: str, **extra: Any) -> dict[str, Any]:
    return {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}, **extra}


def custom(env: list[dict[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    container = {"name": "kserve-container", "image": "me/server:1", "env": env or []}
    return {"containers": [container], **extra}


def csc(name: str, formats: list[dict[str, str]], **spec: Any) -> dict[str, Any]:
    document = copy.deepcopy(default_storage_container(f"{name}-image:1"))
    document["metadata"]["name"] = name
    document["spec"]["supportedUriFormats"] = formats
    document["spec"].update(spec)
    return document


def rendered_pod(document: dict[str, Any], *cluster: dict[str, Any]) -> dict[str, Any]:
    """The predictor Deployment's pod spec, as `ksrv k8s render` makes it (validated)."""
    result = render.render_documents([document, *cluster], CONFIG)
    assert result.problems == []
    assert_valid(result.objects)
    deployment = next(o for o in result.objects if o["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def provisioned(
    document: dict[str, Any],
    *cluster: dict[str, Any],
    pod: dict[str, Any] | None = None,
    config: ClusterConfig = CONFIG,
) -> dict[str, Any]:
    """`storage_init.provision` alone on a plain pod (specs the local plan refuses, such as a
    model with only `storage:`), wrapped in a Deployment and validated."""
    resource = resources.load(document)
    assert isinstance(resource, InferenceService)
    raw = resource.to_dict()["spec"]["predictor"]
    ctx = ComponentContext(resource, "predictor", "iris-predictor", ComponentPlan("predictor"),
                           raw, None, config, Documents(list(cluster)))  # fmt: skip
    if pod is None:
        pod = {"containers": [{"name": "kserve-container", "image": "server:1"}]}
    pod = {**pod, **{k: v for k, v in raw.items() if k == "serviceAccountName"}}
    result = storage_init.provision(pod, ctx)
    assert_valid([deployment_of(result)])
    return result


def deployment_of(pod: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": "iris"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris-predictor", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }  # fmt: skip


def container(pod: dict[str, Any], name: str = "kserve-container") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == name)
    return found


def init(pod: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in pod.get("initContainers", []) if c["name"] == "storage-initializer"]
    return found


def test_a_remote_uri_is_downloaded_by_the_init_container_into_a_read_only_empty_dir():
    pod = rendered_pod(isvc(model("s3://bucket/iris")))
    assert init(pod) == {
        "name": "storage-initializer",
        "image": INIT_IMAGE,
        "args": ["s3://bucket/iris", "/mnt/models"],  # the image's entrypoint is the command
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                      "requests": {"cpu": "100m", "memory": "100Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}],
        "env": [{"name": "HF_HUB_ENABLE_HF_TRANSFER", "value": "1"},
                {"name": "HF_XET_HIGH_PERFORMANCE", "value": "1"},
                {"name": "HF_XET_NUM_CONCURRENT_RANGE_GETS", "value": "8"}],
    }  # fmt: skip
    assert pod["volumes"] == [{"name": "kserve-provision-location", "emptyDir": {}}]
    assert container(pod)["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True}
    ]


@pytest.mark.parametrize(
    ("uri", "mount"),
    [
        ("pvc://claim/models/iris", {"name": "kserve-pvc-source", "mountPath": "/mnt/models",
                                     "readOnly": True, "subPath": "models/iris"}),
        ("pvc://claim", {"name": "kserve-pvc-source", "mountPath": "/mnt/models",
                         "readOnly": True}),
    ],
)  # fmt: skip
def test_a_pvc_is_mounted_read_only_by_sub_path_without_an_init_container(uri, mount):
    pod = rendered_pod(isvc(model(uri)))
    assert "initContainers" not in pod
    assert pod["volumes"] == [{"name": "kserve-pvc-source",
                               "persistentVolumeClaim": {"claimName": "claim"}}]  # fmt: skip
    assert container(pod)["volumeMounts"] == [mount]


def test_the_readonly_annotation_set_to_false_makes_the_model_mount_writable():
    pod = rendered_pod(isvc(model("gs://b/m"), {"storage.kserve.io/readonly": "false"}))
    assert container(pod)["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/mnt/models"}
    ]


def test_storage_uris_share_one_init_container_and_mount_pvcs_at_their_paths():
    predictor = custom(storageUris=[
        {"uri": "hf://org/base", "mountPath": "/mnt/models/base"},
        {"uri": "pvc://adapters/lora", "mountPath": "/mnt/adapters"},
        {"uri": "s3://b/tokenizer", "mountPath": "/mnt/models/tokenizer"},
    ])  # fmt: skip
    pod = rendered_pod(isvc(predictor))
    assert init(pod)["args"] == ["hf://org/base", "/mnt/models/base",
                                 "s3://b/tokenizer", "/mnt/models/tokenizer"]  # fmt: skip
    assert init(pod)["volumeMounts"] == [{"name": "mnt-models", "mountPath": "/mnt/models"}]
    assert container(pod)["volumeMounts"] == [
        {"name": "mnt-adapters", "mountPath": "/mnt/adapters", "readOnly": True,
         "subPath": "lora"},
        {"name": "mnt-models", "mountPath": "/mnt/models", "readOnly": True},
    ]  # fmt: skip
    assert pod["volumes"] == [
        {"name": "mnt-adapters", "persistentVolumeClaim": {"claimName": "adapters"}},
        {"name": "mnt-models", "emptyDir": {}},
    ]


def test_storage_uris_of_pvcs_only_need_no_init_container():
    predictor = custom(storageUris=[{"uri": "pvc://c/m", "mountPath": "/mnt/models"}])
    pod = rendered_pod(isvc(predictor))
    assert "initContainers" not in pod
    assert container(pod)["volumeMounts"] == [
        {"name": "mnt-models", "mountPath": "/mnt/models", "readOnly": True, "subPath": "m"}
    ]


def test_a_custom_containers_storage_uri_is_provisioned_and_pointed_at_the_mount():
    pod = rendered_pod(isvc(custom([{"name": "STORAGE_URI", "value": "gs://b/model"}])))
    assert init(pod)["args"] == ["gs://b/model", "/mnt/models"]
    assert {"name": "STORAGE_URI", "value": "/mnt/models"} in container(pod)["env"]


def test_a_collocated_transformer_container_sees_the_model_too():
    pod = {"containers": [{"name": "kserve-container", "image": "s:1"},
                          {"name": "transformer-container", "image": "t:1"}]}  # fmt: skip
    pod = provisioned(isvc(model("s3://b/m")), pod=pod)
    for name in ("kserve-container", "transformer-container"):
        assert container(pod, name)["volumeMounts"][0]["mountPath"] == "/mnt/models"


def test_a_pod_that_already_has_the_initializer_is_left_alone():
    pod = {"containers": [{"name": "kserve-container", "image": "s:1"}],
           "initContainers": [{"name": "storage-initializer", "image": "mine:1"}]}  # fmt: skip
    assert provisioned(isvc(model("s3://b/m")), pod=pod) == pod


def test_no_storage_leaves_the_pod_unchanged():
    pod = rendered_pod(isvc(custom()))
    assert "initContainers" not in pod and "volumes" not in pod


def test_the_first_usable_storage_container_by_name_supplies_the_initializer():
    containers = [
        csc("a-disabled", [{"prefix": "s3://"}]) | {"disabled": True},
        csc("b-job", [{"prefix": "s3://"}], workloadType="localModelDownloadJob"),
        csc("c-other", [{"prefix": "gs://"}]),
        csc("d-match", [{"regex": "bucket/i"}]),  # searched anywhere, as Go's MatchString
        csc("e-later", [{"prefix": "s3://"}]),
    ]
    containers[3]["spec"]["container"]["env"] = [
        {"name": "EXTRA", "value": "1"},
        {"name": "HF_XET_HIGH_PERFORMANCE", "value": "0"},
    ]
    containers[3]["spec"]["container"]["resources"] = {"limits": {"memory": "4Gi"}}
    pod = rendered_pod(isvc(model("s3://bucket/iris")), *reversed(containers))
    found = init(pod)
    assert found["image"] == "d-match-image:1"
    assert found["imagePullPolicy"] == "IfNotPresent"
    assert found["args"] == ["s3://bucket/iris", "/mnt/models"]
    assert found["resources"] == {"limits": {"cpu": "1", "memory": "4Gi"},
                                  "requests": {"cpu": "100m", "memory": "100Mi"}}  # fmt: skip
    assert found["env"] == [
        {"name": "EXTRA", "value": "1"},
        {"name": "HF_XET_HIGH_PERFORMANCE", "value": "0"},  # the container's own value stays
        {"name": "HF_HUB_ENABLE_HF_TRANSFER", "value": "1"},
        {"name": "HF_XET_NUM_CONCURRENT_RANGE_GETS", "value": "8"},
    ]


def test_without_a_matching_storage_container_the_configured_initializer_is_used():
    pod = rendered_pod(isvc(model("s3://b/m")), csc("gcs-only", [{"prefix": "gs://"}]))
    assert init(pod)["image"] == INIT_IMAGE


def test_storage_container_name_picks_one_and_says_why_it_cannot_be_used():
    named = model("s3://b/m", storageContainerName="mine")
    pod = provisioned(
        isvc(named), csc("aaa", [{"prefix": "s3://"}]), csc("mine", [{"prefix": "s3"}])
    )
    assert init(pod)["image"] == "mine-image:1"
    with pytest.raises(ResourceNotFound, match=r"storageContainerName.*'mine' not found"):
        provisioned(isvc(named))
    with pytest.raises(ResourceInvalid, match="'mine' is disabled"):
        provisioned(isvc(named), csc("mine", [{"prefix": "s3://"}]) | {"disabled": True})
    with pytest.raises(ResourceInvalid, match="does not support storageUri 's3://b/m'"):
        provisioned(isvc(named), csc("mine", [{"prefix": "gs://"}]))


def test_storage_uris_need_a_storage_container_that_downloads_several():
    predictor = custom(storageUris=[{"uri": "s3://b/a", "mountPath": "/mnt/models/a"},
                                    {"uri": "s3://b/b", "mountPath": "/mnt/models/b"}])  # fmt: skip
    single = csc("single", [{"prefix": "s3://"}], supportsMultiModelDownload=False)
    with pytest.raises(ResourceInvalid, match="does not support multi-model download"):
        provisioned(isvc(predictor), single)


def test_a_scheme_ksrv_cannot_download_needs_a_storage_container():
    with pytest.raises(ResourceInvalid, match="does not download git repositories"):
        provisioned(isvc(model("https://github.com/org/model.git")))
    with pytest.raises(ResourceInvalid, match=r"does not download oci://.*ClusterStorageContainer"):
        provisioned(isvc(model("oci://registry/model:1")))
    pod = provisioned(isvc(model("oci://registry/model:1")), csc("oci", [{"prefix": "oci://"}]))
    assert init(pod)["image"] == "oci-image:1"


def test_storage_uri_and_storage_path_together_are_refused():
    document = isvc(model("s3://b/m"))
    document["spec"]["predictor"]["model"]["storage"] = {"path": "m"}
    with pytest.raises(ResourceInvalid, match=r"only one of storageUri and storage\.path"):
        provisioned(document)


@pytest.mark.parametrize(
    ("paths", "parent"),
    [
        (["/mnt/models"], "/mnt/models"),
        (["/mnt/models/a", "/mnt/models/b"], "/mnt/models"),
        (["/mnt/models/a/x", "/mnt/models/a/y/"], "/mnt/models/a"),
        (["/mnt/a", "/srv/b"], "/"),
    ],
)
def test_common_parent_is_kserves_longest_shared_directory(paths, parent):
    assert storage_init.common_parent(paths) == parent


@pytest.mark.parametrize(
    ("path", "name"),
    [("/mnt/models", "mnt-models"), ("/mnt/models/base/", "mnt-models-base"),
     ("/mnt/Models_v1", "mnt-models-v1"), ("/", "root")],
)  # fmt: skip
def test_volume_names_follow_kserve_and_stay_valid_labels(path, name):
    assert storage_init.volume_name(path) == name


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ({"image": "b"}, {"name": "i", "image": "b", "args": ["u", "d"],
                          "env": [{"name": "A", "value": "1"}]}),
        ({"args": ["x"]}, {"name": "i", "image": "a", "args": ["x"],
                           "env": [{"name": "A", "value": "1"}]}),
        ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                  {"name": "B", "value": "2"}]},
         {"name": "i", "image": "a", "args": ["u", "d"],
          "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                  {"name": "B", "value": "2"}]}),
        ({"name": "", "securityContext": {"runAsUser": 1}},
         {"name": "i", "image": "a", "args": ["u", "d"], "env": [{"name": "A", "value": "1"}],
          "securityContext": {"runAsUser": 1}}),
    ],
)  # fmt: skip
def test_merge_container_is_a_strategic_merge(overlay, expected):
    base = {"name": "i", "image": "a", "args": ["u", "d"], "env": [{"name": "A", "value": "1"}]}
    assert storage_init.merge_container(base, overlay) == expected


def test_the_default_storage_container_validates_and_serves_its_schemes():
    document = default_storage_container("ksrv-storage-initializer:1")
    assert_valid([document])
    pod = rendered_pod(isvc(model("https://host/m.tar.gz")), document)
    assert init(pod)["image"] == "ksrv-storage-initializer:1"


def test_what_cannot_be_provisioned_is_a_render_problem_naming_the_component():
    result = render.render_documents([isvc(model("oci://registry/model:1"))], CONFIG)
    assert result.objects == []
    assert result.problems == [
        "iris: predictor: 'oci://registry/model:1': ksrv's storage initializer does not download "
        "oci:// URIs; apply a ClusterStorageContainer whose supportedUriFormats match it"
    ]
    broken = csc("broken", [{"regex": "("}])
    (problem,) = render.render_documents([isvc(model("s3://b/m")), broken], CONFIG).problems
    assert "ClusterStorageContainer broken is invalid: spec.supportedUriFormats[0].regex" in problem
