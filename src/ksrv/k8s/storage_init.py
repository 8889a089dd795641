"""Storage provisioning, as KServe's storage-initializer injection does it (§5.7 of the KServe
reference; `pkg/webhook/admission/pod/storage_initializer_injector.go`).

One `storageUri` (or `storage.path`, or a custom container's `STORAGE_URI`): `pvc://claim/path`
mounts the claim's subPath read-only at /mnt/models with no init container; any other URI gets
the `storage-initializer` init container downloading into the emptyDir
`kserve-provision-location`, mounted read-only at /mnt/models. `storageUris`: PVC URIs mounted
at their mountPath, the rest downloaded by one init container (URI/path argument pairs) into an
emptyDir at their common parent. The init container runs the image's entrypoint with KServe's
arguments only (no `command`): ksrv's storage-initializer image's entrypoint is
`ksrv storage download`, so a ClusterStorageContainer naming KServe's image (or any image
speaking the same `URI DEST ...` contract) works unchanged. Its container spec, when one
matches, is strategic-merged over the default initializer; credentials come from
`storage_credentials`.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ksrv.api import resources
from ksrv.api.inference_service import (
    ArtExplainerSpec,
    ComponentSpec,
    ExplainerSpec,
    FrameworkSpec,
    PredictorSpec,
    StorageSpec,
    TransformerSpec,
)
from ksrv.api.storage_container import ClusterStorageContainer
from ksrv.errors import ResourceInvalid, ResourceNotFound
from ksrv.k8s import storage_credentials
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.podspec import MAIN, MODEL_DIR
from ksrv.k8s.storage_credentials import SCHEME_PLACEHOLDER, StorageSpecRequest, env_value

INIT_NAME: Final = "storage-initializer"
VOLUME: Final = "kserve-provision-location"
PVC_VOLUME: Final = "kserve-pvc-source"
CA_BUNDLE_VOLUME: Final = "cabundle-cert"
GLOBAL_CA_BUNDLE: Final = "global-ca-bundle"
KSERVE_NAMESPACE: Final = "kserve"
READONLY_ANNOTATION: Final = "storage.kserve.io/readonly"
WORKER: Final = "worker-container"
TRANSFORMER: Final = "transformer-container"
# Schemes `ksrv storage download` does not fetch (yet): they need a ClusterStorageContainer.
_NEEDS_STORAGE_CONTAINER: Final = ("oci", "oci+native", "oci+fetch", "hdfs", "webhdfs",
                                   "modelscope")  # fmt: skip
_HF_DEFAULTS: Final = (
    ("HF_HUB_ENABLE_HF_TRANSFER", "1"),
    ("HF_XET_HIGH_PERFORMANCE", "1"),
    ("HF_XET_NUM_CONCURRENT_RANGE_GETS", "8"),
)
# Strategic merge keys of a Container's lists (k8s.io/api core/v1 patchMergeKey).
_MERGE_KEYS: Final = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
                      "volumeDevices": "devicePath"}  # fmt: skip
_SPECS: Final[dict[str, type[ComponentSpec]]] = {
    "predictor": PredictorSpec,
    "transformer": TransformerSpec,
    "explainer": ExplainerSpec,
}


@dataclass(frozen=True, slots=True)
class StorageSource:
    """One URI and where its files appear in the model container."""

    uri: str
    mount_path: str = MODEL_DIR

    @property
    def is_pvc(self) -> bool:
        return self.uri.startswith("pvc://")


@dataclass(frozen=True, slots=True)
class StorageSources:
    """What a component downloads: `is_legacy` for a single `storageUri` (KServe's webhook
    path), False for `storageUris`; `storage` is the model's `storage:` spec."""

    sources: tuple[StorageSource, ...] = ()
    is_legacy: bool = True
    storage: StorageSpec | None = None


def storage_sources(ctx: ComponentContext, uri: str | None = None) -> StorageSources:
    """The component's storage, from its spec; `uri` is the storageUri the plan resolved."""
    spec = _SPECS[ctx.component].model_validate(ctx.raw)
    container = spec.main_container
    storage = container.storage if isinstance(container, FrameworkSpec | ArtExplainerSpec) else None
    if spec.storage_uris:
        found = tuple(StorageSource(e.uri, e.mount_path) for e in spec.storage_uris)
        return StorageSources(found, is_legacy=False, storage=storage)
    uri = uri or spec.storage_uri
    if storage is not None and storage.path:
        if uri:
            raise ResourceInvalid(
                f"spec.{ctx.component}: must provide only one of storageUri and storage.path",
                "InvalidStorageSpec",
            )
        uri = f"{SCHEME_PLACEHOLDER}://{storage.path.lstrip('/')}"
    return StorageSources((StorageSource(uri),) if uri else (), storage=storage)


def provision(pod: dict[str, Any], ctx: ComponentContext, uri: str | None = None) -> dict[str, Any]:
    """`pod` with what makes the component's storage appear in its model container.

    Raises:
        ResourceNotFound: a secret or ClusterStorageContainer it names is not in the cluster.
        ResourceInvalid: the storage cannot be provisioned as written (the message says why).
    """
    found = storage_sources(ctx, uri)
    initializers = pod.get("initContainers") or ()
    if not found.sources or any(c.get("name") == INIT_NAME for c in initializers):
        return pod
    pod = copy.deepcopy(pod)
    is_read_only = _annotations(ctx).get(READONLY_ANNOTATION) != "false"
    targets = _targets(pod)
    csc = storage_container_for(ctx, found.sources[0].uri)
    if found.is_legacy:
        init = _single(pod, targets, found.sources[0], is_read_only, ctx)
    else:
        init = _multiple(pod, targets, found.sources, is_read_only, ctx, csc)
    for var in targets[0].get("env") or ():  # a custom container's STORAGE_URI now points here
        if var.get("name") == "STORAGE_URI" and var.get("value"):
            var["value"] = MODEL_DIR
    if init is not None:
        pod.setdefault("initContainers", []).append(_completed(init, pod, ctx, found, csc))
    return pod


def _completed(
    init: dict[str, Any],
    pod: dict[str, Any],
    ctx: ComponentContext,
    found: StorageSources,
    csc: ClusterStorageContainer | None,
) -> dict[str, Any]:
    """The init container with credentials, the storage container's spec merged over it, the
    CA bundle and KServe's Hugging Face defaults, in KServe's order."""
    if csc is None:
        _check_downloadable(init["args"][::2])
    volumes = pod.setdefault("volumes", [])
    annotations = _annotations(ctx)
    if found.storage is not None:
        request = StorageSpecRequest(found.storage.key or "", found.storage.parameters)
        storage_credentials.add_storage_spec_credentials(init, ctx, annotations, request)
    else:
        account = pod.get("serviceAccountName")
        storage_credentials.add_service_account_credentials(
            init, volumes, ctx, account, annotations
        )
    bundle = _ca_bundle(init, ctx)
    if csc is not None:
        init = merge_container(init, csc.container_spec)
    if bundle is not None:
        _add_ca_bundle(init, volumes, *bundle)
    for name, value in _HF_DEFAULTS:
        if env_value(init, name) is None:
            init.setdefault("env", []).append({"name": name, "value": value})
    return init


def _annotations(ctx: ComponentContext) -> dict[str, str]:
    """The pod's annotations: the InferenceService's, then the component's."""
    return {**ctx.isvc.metadata.annotations, **(ctx.raw.get("annotations") or {})}


def storage_container_for(ctx: ComponentContext, uri: str) -> ClusterStorageContainer | None:
    """KServe's `GetStorageContainerSpec`: the one `storageContainerName` names (which must be
    usable for `uri`), else the first usable one by name, else None (the default initializer)."""
    loaded = [resources.load(document) for document in ctx.cluster.storage_containers()]
    containers = sorted(
        (csc for csc in loaded if isinstance(csc, ClusterStorageContainer)), key=lambda c: c.name
    )
    wanted = ctx.raw.get("storageContainerName")
    if not wanted:
        return next((csc for csc in containers if csc.is_usable_for(uri)), None)
    where = f"spec.{ctx.component}.storageContainerName"
    named = next((csc for csc in containers if csc.name == wanted), None)
    if named is None:
        raise ResourceNotFound(f"{where}: ClusterStorageContainer {wanted!r} not found")
    if not named.is_usable_for(uri):
        why = (
            "is disabled" if named.is_disabled
            else f"has workloadType {named.spec.workload_type!r}, not 'initContainer'"
            if named.spec.workload_type != "initContainer"
            else f"does not support storageUri {uri!r}"
        )  # fmt: skip
        raise ResourceInvalid(
            f"{where}: ClusterStorageContainer {wanted!r} {why}", "InvalidStorageContainer"
        )
    return named


def _targets(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The model container (kserve-container, else worker-container, else the first) and a
    collocated transformer-container: the containers that see the model."""
    containers = pod.get("containers") or []
    if not containers:
        raise ResourceInvalid("the pod has no container to provision the model into")
    by_name = {c.get("name"): c for c in containers}
    main = by_name.get(MAIN) or by_name.get(WORKER) or containers[0]
    transformer = by_name.get(TRANSFORMER)
    return [main, transformer] if transformer is not None and transformer is not main else [main]


def _single(
    pod: dict[str, Any],
    targets: list[dict[str, Any]],
    source: StorageSource,
    is_read_only: bool,
    ctx: ComponentContext,
) -> dict[str, Any] | None:
    if source.is_pvc:
        claim, sub_path = _parse_pvc(source.uri)
        for container in targets:
            _mount(pod, container, PVC_VOLUME, MODEL_DIR, is_read_only, claim, sub_path)
        return None
    init = _new_init(ctx, [source.uri, source.mount_path])
    for container in [*targets, init]:
        _mount(pod, container, VOLUME, MODEL_DIR, is_read_only and container is not init)
    return init


def _multiple(
    pod: dict[str, Any],
    targets: list[dict[str, Any]],
    sources: tuple[StorageSource, ...],
    is_read_only: bool,
    ctx: ComponentContext,
    csc: ClusterStorageContainer | None,
) -> dict[str, Any] | None:
    if csc is not None and not csc.spec.supports_multi_model_download:
        raise ResourceInvalid(
            f"storage container {csc.name!r} does not support multi-model download; use the "
            "default storage initializer or a compatible storage container",
            "InvalidStorageContainer",
        )
    downloads = [source for source in sources if not source.is_pvc]
    for source in sources:
        if source.is_pvc:
            # KServe mounts the whole claim here (it drops the path); the path is its subPath.
            claim, sub_path = _parse_pvc(source.uri)
            name = volume_name(source.mount_path)
            for container in targets:
                _mount(pod, container, name, source.mount_path, is_read_only, claim, sub_path)
    if not downloads:
        return None
    parent = common_parent([source.mount_path for source in downloads])
    init = _new_init(ctx, [arg for s in downloads for arg in (s.uri, s.mount_path)])
    name = volume_name(parent)
    for container in [*targets, init]:
        _mount(pod, container, name, parent, is_read_only and container is not init)
    return init


def _new_init(ctx: ComponentContext, args: list[str]) -> dict[str, Any]:
    """KServe's `CreateInitContainerWithConfig`; `provision` appends it to the pod last."""
    initializer = ctx.config.storage_initializer
    return {
        "name": INIT_NAME,
        "image": initializer.image,
        "args": args,
        "resources": {
            "limits": {"cpu": initializer.cpu_limit, "memory": initializer.memory_limit},
            "requests": {"cpu": initializer.cpu_request, "memory": initializer.memory_request},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _mount(
    pod: dict[str, Any],
    container: dict[str, Any],
    name: str,
    path: str,
    is_read_only: bool,
    claim: str | None = None,
    sub_path: str = "",
) -> None:
    """KServe's `AddModelMount`: the mount once per container, the volume once per pod."""
    mounts = container.setdefault("volumeMounts", [])
    if any(mount.get("name") == name for mount in mounts):
        return
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if is_read_only:  # KServe's `readOnly: false` is left out, as Go's omitempty writes it
        mount["readOnly"] = True
    if sub_path:
        mount["subPath"] = sub_path
    mounts.append(mount)
    volumes = pod.setdefault("volumes", [])
    if all(volume.get("name") != name for volume in volumes):
        source = {"persistentVolumeClaim": {"claimName": claim}} if claim else {"emptyDir": {}}
        volumes.append({"name": name, **source})


def _parse_pvc(uri: str) -> tuple[str, str]:
    claim, _, sub_path = uri.removeprefix("pvc://").partition("/")
    if not claim:
        raise ResourceInvalid(f"{uri!r}: expected pvc://<claim>[/path]", "InvalidStorageUri")
    return claim, sub_path.strip("/")


def common_parent(paths: list[str]) -> str:
    """KServe's `FindCommonParentPath`: one path is its own parent; several, their longest
    common directory."""
    if len(paths) == 1:
        return paths[0]
    return posixpath.commonpath([posixpath.join("/", p.strip("/")) for p in paths])


def volume_name(path: str) -> str:
    """KServe's `GetVolumeNameFromPath` (`/mnt/models/a` -> `mnt-models-a`), kept to a valid
    DNS-1123 label (KServe's would be refused for `/mnt/Models_v1`)."""
    name = path.strip("/").replace("/", "-").lower()
    name = re.sub(r"[^a-z0-9-]", "-", name).strip("-")[:63].strip("-")
    return name or "root"


def _check_downloadable(uris: list[str]) -> None:
    """Refuse, at render time, what ksrv's initializer would only fail on in the pod."""
    for uri in uris:
        scheme = uri.partition("://")[0].lower() if "://" in uri else ""
        what = f"{scheme}:// URIs" if scheme in _NEEDS_STORAGE_CONTAINER else None
        if scheme in ("http", "https") and urlsplit(uri).path.endswith(".git"):
            what = "git repositories"
        if what is not None:
            raise ResourceInvalid(
                f"{uri!r}: ksrv's storage initializer does not download {what}; apply a "
                "ClusterStorageContainer whose supportedUriFormats match it",
                "InvalidStorageUri",
            )


def _ca_bundle(init: dict[str, Any], ctx: ComponentContext) -> tuple[str, str] | None:
    """KServe's CA bundle rule, read before the storage container is merged: the configured
    bundle (copied into each namespace as `global-ca-bundle`), or an S3 secret's own one."""
    initializer = ctx.config.storage_initializer
    configured = initializer.ca_bundle_config_map_name
    from_secret = env_value(init, storage_credentials.AWS_CA_BUNDLE_CONFIGMAP)
    if not configured and from_secret is None:
        return None
    name = configured if ctx.namespace == KSERVE_NAMESPACE else GLOBAL_CA_BUNDLE
    path = initializer.ca_bundle_volume_mount_path or "/etc/ssl/custom-certs"
    if from_secret is not None:
        name = from_secret
    bundle = env_value(init, storage_credentials.AWS_CA_BUNDLE)
    if bundle is not None:
        path = posixpath.dirname(bundle)
    return name, path


def _add_ca_bundle(
    init: dict[str, Any], volumes: list[dict[str, Any]], name: str, path: str
) -> None:
    env = init.setdefault("env", [])
    for var, value in (("CA_BUNDLE_CONFIGMAP_NAME", name), ("CA_BUNDLE_VOLUME_MOUNT_POINT", path)):
        if env_value(init, var) is None:
            env.append({"name": var, "value": value})
    volumes.append({"name": CA_BUNDLE_VOLUME, "configMap": {"name": name}})
    init.setdefault("volumeMounts", []).append(
        {"name": CA_BUNDLE_VOLUME, "mountPath": path, "readOnly": True}
    )


def merge_container(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` strategic-merged over `base`, as `kubectl patch` merges a Container: maps
    merge, keyed lists (env by name, volumeMounts by mountPath, ...) merge by key with the
    overlay's entry winning, other lists and scalars are replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        current = merged.get(key)
        if key in _MERGE_KEYS and isinstance(value, list) and isinstance(current, list):
            merged[key] = _merge_keyed(current, value, _MERGE_KEYS[key], replace=key == "env")
        elif isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge_maps(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    merged["name"] = merged.get("name") or base.get("name")
    return merged


def _merge_keyed(
    base: list[Any], overlay: list[Any], key: str, *, replace: bool
) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = [dict(item) for item in base]
    for item in overlay:
        index = next((i for i, old in enumerate(merged) if old.get(key) == item.get(key)), None)
        if index is None:
            merged.append(copy.deepcopy(item))
        else:
            # An env var's value and valueFrom exclude each other: the overlay's entry wins whole.
            merged[index] = copy.deepcopy(item) if replace else {**merged[index], **item}
    return merged


def _merge_maps(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_maps(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
