"""KServe's `inferenceservice-config` ConfigMap, read into typed settings with KServe's defaults.

The renderer needs the cluster's choices (deployment mode, ingress domain and gateways, the
storage initializer's image and resources, where credentials live) and ksrv's images. KServe
keeps each section as a JSON string under one key of the ConfigMap; `from_configmap` reads that
shape, so a ConfigMap written for KServe works unchanged. Unknown keys are ignored (KServe's
controller ignores them too); a value of the wrong type is an error naming the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from ksrv import __version__
from ksrv.errors import ResourceInvalid

STANDARD: Final = "Standard"
KNATIVE: Final = "Knative"
# KServe's legacy and current spellings of the two modes ksrv renders.
_MODES: Final = {
    "standard": STANDARD,
    "rawdeployment": STANDARD,
    "raw": STANDARD,
    "knative": KNATIVE,
    "serverless": KNATIVE,
}
CONFIGMAP_NAME: Final = "inferenceservice-config"
CONFIGMAP_NAMESPACE: Final = "kserve"
IMAGE_REPOSITORY: Final = "ghcr.io/ksrv-dev"


def normalise_mode(value: str) -> str:
    """`Standard` or `Knative` from any spelling KServe accepts (RawDeployment, Serverless...)."""
    mode = _MODES.get(value.strip().lower())
    if mode is None:
        raise ResourceInvalid(
            f"deployment mode {value!r} is not one of Standard (RawDeployment) or Knative "
            "(Serverless)",
            "InvalidDeploymentMode",
        )
    return mode


@dataclass(frozen=True, slots=True)
class Images:
    """ksrv's images (deploy/docker builds them): model server, storage initializer, operator."""

    server: str = f"{IMAGE_REPOSITORY}/ksrv-server:{__version__}"
    storage_initializer: str = f"{IMAGE_REPOSITORY}/ksrv-storage-initializer:{__version__}"
    operator: str = f"{IMAGE_REPOSITORY}/ksrv-operator:{__version__}"
    router: str = f"{IMAGE_REPOSITORY}/ksrv-server:{__version__}"


@dataclass(frozen=True, slots=True)
class Ingress:
    """`ingress`: hosts, gateways and what to create for them."""

    ingress_gateway: str = "knative-serving/knative-ingress-gateway"
    kserve_ingress_gateway: str = "kserve/kserve-ingress-gateway"
    local_gateway: str = "knative-serving/knative-local-gateway"
    local_gateway_service: str = "knative-local-gateway.istio-system.svc.cluster.local"
    # Knative's own local gateway, when KServe runs its own (KServe: unset = localGatewayService).
    knative_local_gateway_service: str = ""
    ingress_domain: str = "example.com"
    additional_ingress_domains: tuple[str, ...] = ()
    ingress_class_name: str = "istio"
    domain_template: str = "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"
    url_scheme: str = "http"
    enable_gateway_api: bool = False
    disable_istio_virtual_host: bool = False
    disable_ingress_creation: bool = False
    disable_http_route_timeout: bool = False
    path_template: str | None = None


@dataclass(frozen=True, slots=True)
class StorageInitializer:
    """`storageInitializer`: the init container that downloads a model into /mnt/models."""

    image: str = Images().storage_initializer
    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "100Mi"
    memory_limit: str = "1Gi"
    ca_bundle_config_map_name: str = ""
    ca_bundle_volume_mount_path: str = "/etc/ssl/custom-certs"
    enable_modelcar: bool = True


@dataclass(frozen=True, slots=True)
class Credentials:
    """`credentials`: the storage-config secret and the S3/GCS key names KServe reads."""

    storage_spec_secret_name: str = "storage-config"
    storage_secret_name_annotation: str = "serving.kserve.io/storageSecretName"
    gcs_credential_file_name: str = "gcloud-application-credentials.json"
    s3_access_key_id_name: str = "AWS_ACCESS_KEY_ID"
    s3_secret_access_key_name: str = "AWS_SECRET_ACCESS_KEY"
    s3: dict[str, str] = field(default_factory=dict)


# Never copied from an InferenceService onto its workloads (KServe's built-in lists; the
# ConfigMap's `inferenceService.service{Annotation,Label}DisallowedList` add to them).
DISALLOWED_ANNOTATIONS: Final = (
    "autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/max-scale",
    "internal.serving.kserve.io/storage-initializer-sourceuri",
    "kubectl.kubernetes.io/last-applied-configuration", "modelFormat",
)  # fmt: skip
DISALLOWED_LABELS: Final = ("networking.knative.dev/visibility",)


@dataclass(frozen=True, slots=True)
class Workloads:
    """Standard mode's Deployment, Service and KEDA settings (`deploy`, `service`, `autoscaler`)."""

    service_cluster_ip_none: bool = False
    # `deploy.deploymentRolloutStrategy.defaultRollout`; KServe reads it only when the default
    # deployment mode is Standard.
    max_surge: str | None = None
    max_unavailable: str | None = None
    scale_up_window_s: int | None = 0
    scale_down_window_s: int | None = 300


@dataclass(frozen=True, slots=True)
class Router:
    """`router`: the InferenceGraph router's resources and pulls (its image is ksrv's own)."""

    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "100Mi"
    memory_limit: str = "1Gi"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything the renderer reads from the cluster's configuration."""

    deployment_mode: str = STANDARD
    ingress: Ingress = Ingress()
    storage_initializer: StorageInitializer = StorageInitializer()
    credentials: Credentials = field(default_factory=Credentials)
    images: Images = Images()
    propagate_headers: tuple[str, ...] = ()
    workloads: Workloads = Workloads()
    disallowed_annotations: tuple[str, ...] = DISALLOWED_ANNOTATIONS
    disallowed_labels: tuple[str, ...] = DISALLOWED_LABELS
    router: Router = Router()

    def with_mode(self, mode: str) -> ClusterConfig:
        return replace(self, deployment_mode=normalise_mode(mode))


def from_configmap(data: dict[str, str]) -> ClusterConfig:
    """Settings from the ConfigMap's `data` (each section a JSON string, as KServe writes it)."""
    deploy = _section(data, "deploy")
    ingress = _section(data, "ingress")
    initializer = _section(data, "storageInitializer")
    credentials = _section(data, "credentials")
    router = _section(data, "router")
    s3 = credentials.get("s3") or {}
    gcs = credentials.get("gcs") or {}
    images = _section(data, "ksrv")  # ksrv's own key: image overrides
    mode = (
        normalise_mode(deploy["defaultDeploymentMode"])
        if deploy.get("defaultDeploymentMode")
        else STANDARD
    )
    isvc = _section(data, "inferenceService")
    return ClusterConfig(
        deployment_mode=mode,
        ingress=_build(Ingress, ingress, "ingress"),
        storage_initializer=_build(
            StorageInitializer,
            {
                "image": initializer.get("image"),
                "cpu_request": initializer.get("cpuRequest"),
                "cpu_limit": initializer.get("cpuLimit"),
                "memory_request": initializer.get("memoryRequest"),
                "memory_limit": initializer.get("memoryLimit"),
                "ca_bundle_config_map_name": initializer.get("caBundleConfigMapName"),
                "ca_bundle_volume_mount_path": initializer.get("caBundleVolumeMountPath"),
                "enable_modelcar": initializer.get("enableModelcar"),
            },
            "storageInitializer",
            camel=False,
        ),
        credentials=Credentials(
            storage_spec_secret_name=credentials.get("storageSpecSecretName", "storage-config"),
            storage_secret_name_annotation=credentials.get(
                "storageSecretNameAnnotation", Credentials().storage_secret_name_annotation
            ),
            gcs_credential_file_name=gcs.get(
                "gcsCredentialFileName", Credentials().gcs_credential_file_name
            ),
            s3_access_key_id_name=s3.get("s3AccessKeyIDName", "AWS_ACCESS_KEY_ID"),
            s3_secret_access_key_name=s3.get("s3SecretAccessKeyName", "AWS_SECRET_ACCESS_KEY"),
            s3={str(k): str(v) for k, v in s3.items()},
        ),
        images=_build(Images, images.get("images") or {}, "ksrv.images"),
        propagate_headers=tuple((router.get("headers") or {}).get("propagate") or ()),
        workloads=_workloads(deploy, data, mode),
        disallowed_annotations=DISALLOWED_ANNOTATIONS
        + tuple(isvc.get("serviceAnnotationDisallowedList") or ()),
        disallowed_labels=DISALLOWED_LABELS + tuple(isvc.get("serviceLabelDisallowedList") or ()),
        router=_build(Router, router, "router"),
    )


def _workloads(deploy: dict[str, Any], data: dict[str, str], mode: str) -> Workloads:
    rollout = (deploy.get("deploymentRolloutStrategy") or {}).get("defaultRollout") or {}
    if mode != STANDARD:
        rollout = {}
    windows = _section(data, "autoscaler")
    return Workloads(
        service_cluster_ip_none=_section(data, "service").get("serviceClusterIPNone") is True,
        max_surge=rollout.get("maxSurge") or None,
        max_unavailable=rollout.get("maxUnavailable") or None,
        scale_up_window_s=_seconds(windows, "scaleUpStabilizationWindowSeconds", 0),
        scale_down_window_s=_seconds(windows, "scaleDownStabilizationWindowSeconds", 300),
    )


def _seconds(section: dict[str, Any], key: str, default: int) -> int | None:
    """KServe writes the KEDA windows as strings ("300"); one that is not a number is unset."""
    if key not in section:
        return default
    try:
        return int(section[key])
    except (TypeError, ValueError):
        return None


def _section(data: dict[str, str], key: str) -> dict[str, Any]:
    raw = data.get(key)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ResourceInvalid(
            f"{CONFIGMAP_NAME}: key {key!r} is not valid JSON: {exc}", "InvalidConfig"
        ) from None
    if not isinstance(value, dict):
        raise ResourceInvalid(
            f"{CONFIGMAP_NAME}: key {key!r} must be a JSON object", "InvalidConfig"
        )
    return value


def _build(cls: Any, values: dict[str, Any], where: str, *, camel: bool = True) -> Any:
    """`cls` with the given fields (camelCase keys when `camel`), defaults for the rest."""
    kwargs: dict[str, Any] = {}
    for spec in fields(cls):
        key = _camel(spec.name) if camel else spec.name
        if key not in values or values[key] is None:
            continue
        value = values[key]
        default = getattr(cls(), spec.name)
        if isinstance(default, tuple):
            value = tuple(value) if isinstance(value, list) else value
        expected = type(default) if default is not None else str
        if not isinstance(value, expected):
            raise ResourceInvalid(
                f"{CONFIGMAP_NAME}: {where}.{key} must be {expected.__name__}, got {value!r}",
                "InvalidConfig",
            )
        kwargs[spec.name] = value
    return cls(**kwargs)


# KServe's keys that are not the plain camelCase of the field's name.
_KEYS: Final = {"disable_http_route_timeout": "disableHTTPRouteTimeout"}


def _camel(name: str) -> str:
    if name in _KEYS:
        return _KEYS[name]
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
