"""What `ksrv k8s install` puts on a cluster, and how it gets there.

The manifests, in the order they must be applied: KServe's `serving.kserve.io` CRDs exactly as
KServe publishes them (package data, crds/*.yaml.gz), the namespace, the operator's RBAC, KServe's
`inferenceservice-config` ConfigMap (with ksrv's images), the operator's Deployment and ksrv's
default ClusterServingRuntimes. `manifests` is pure; `apply` sends them with server-side apply
(create-or-update in one call, as `kubectl apply --server-side`, which KServe's own install uses
for these CRDs). Knative mode needs Knative Serving and Istio installed first: this installs
neither.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, Final

import yaml

from ksrv import __version__
from ksrv.api import default_runtimes
from ksrv.errors import UpstreamFailed
from ksrv.k8s.config import (
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    DISALLOWED_ANNOTATIONS,
    DISALLOWED_LABELS,
    ClusterConfig,
)
from ksrv.k8s.podspec import PLACEHOLDER_IMAGE

# The kinds ksrv serves, by CRD plural; each file is KServe v0.20.0's config/crd/full copy.
CRD_PLURALS: Final = (
    "inferenceservices", "servingruntimes", "clusterservingruntimes", "inferencegraphs",
    "trainedmodels", "clusterstoragecontainers", "llminferenceservices",
    "llminferenceserviceconfigs",
)  # fmt: skip
OPERATOR: Final = "ksrv-operator"
FIELD_MANAGER: Final = "ksrv"
_HEALTH_PORT: Final = 8080
_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CRUD: Final = ["create", "delete", "get", "list", "patch", "update", "watch"]
_READ: Final = ["get", "list", "watch"]
# (API group, resources, verbs): what the operator reads, owns and reports.
_RULES: Final = (
    ("serving.kserve.io", ["inferenceservices", "servingruntimes", "clusterservingruntimes",
                           "inferencegraphs", "trainedmodels", "clusterstoragecontainers",
                           "llminferenceservices"],
     ["get", "list", "watch", "patch", "update"]),
    # LLMInferenceServices' presets: read, never written
    ("serving.kserve.io", ["llminferenceserviceconfigs"], _READ),
    # a TrainedModel whose InferenceService is gone is deleted, as KServe's controller does
    ("serving.kserve.io", ["trainedmodels"], ["delete"]),
    ("serving.kserve.io", ["inferenceservices/status", "inferencegraphs/status",
                           "trainedmodels/status", "llminferenceservices/status"],
     ["get", "patch", "update"]),
    # ownerReferences with blockOwnerDeletion need update on the owner's finalizers.
    ("serving.kserve.io", ["inferenceservices/finalizers", "inferencegraphs/finalizers",
                           "trainedmodels/finalizers", "llminferenceservices/finalizers"],
     ["update"]),
    ("apps", ["deployments"], _CRUD),
    # Services per component; ConfigMaps for TrainedModels (modelconfig-<isvc>-0), as KServe.
    ("", ["services", "configmaps"], _CRUD),
    # storage credentials: a ServiceAccount's secrets, or storage-config
    ("", ["secrets", "serviceaccounts"], _READ),
    # modelStatus: the predictor's pods (init container failures, restarts), as KServe reads them
    ("", ["pods"], _READ),
    ("autoscaling", ["horizontalpodautoscalers"], _CRUD),
    ("keda.sh", ["scaledobjects"], _CRUD),
    ("networking.k8s.io", ["ingresses"], _CRUD),
    ("gateway.networking.k8s.io", ["httproutes"], _CRUD),
    ("serving.knative.dev", ["services"], _CRUD),
    ("networking.istio.io", ["virtualservices"], _CRUD),
    ("", ["events"], ["create", "patch"]),
    ("events.k8s.io", ["events"], ["create", "patch"]),
    # kopf: it waits until the watched CRDs are discoverable, and follows namespaces.
    ("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]),
    ("", ["namespaces"], ["list", "watch"]),
)  # fmt: skip


def manifests(config: ClusterConfig, namespace: str = CONFIGMAP_NAMESPACE) -> list[dict[str, Any]]:
    """Everything `ksrv k8s install` applies, CRDs first, runtimes last."""
    return [
        *crds(),
        *control_plane(config, namespace),
        *cluster_serving_runtimes(config),
    ]


def control_plane(config: ClusterConfig, namespace: str) -> list[dict[str, Any]]:
    """The namespace, RBAC, configuration and operator: what runs ksrv on the cluster."""
    return [
        namespace_object(namespace),
        *rbac(namespace),
        inferenceservice_config(config, namespace),
        operator_deployment(config, namespace),
    ]


def crds() -> list[dict[str, Any]]:
    """KServe's CRDs of the kinds ksrv serves, as published."""
    return [yaml.load(crd_text(plural), Loader=_LOADER) for plural in CRD_PLURALS]


def crd_text(plural: str) -> str:
    """One CRD's YAML text, byte for byte KServe's."""
    data = resources.files("ksrv.k8s").joinpath(f"crds/serving.kserve.io_{plural}.yaml.gz")
    return gzip.decompress(data.read_bytes()).decode()


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ksrv",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": __version__,
    }


def _meta(name: str, component: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = _labels(component)
    return meta


def namespace_object(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace, "namespace")}


def rbac(namespace: str) -> list[dict[str, Any]]:
    """The operator's ServiceAccount, ClusterRole (exactly what it reads and owns) and binding."""
    rules = [
        {"apiGroups": [group], "resources": list(names), "verbs": list(verbs)}
        for group, names, verbs in _RULES
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(OPERATOR, "rbac", namespace),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(OPERATOR, "rbac"),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(OPERATOR, "rbac"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR,
            },
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": namespace}],
        },
    ]  # fmt: skip


def configmap_data(config: ClusterConfig) -> dict[str, str]:
    """KServe's `inferenceservice-config` keys, each a JSON text, as `config.from_configmap` reads
    them; `ksrv` is ksrv's own key (its images)."""
    ingress, initializer = config.ingress, config.storage_initializer
    credentials, images = config.credentials, config.images
    ingress_section: dict[str, Any] = {
        "enableGatewayApi": ingress.enable_gateway_api,
        "kserveIngressGateway": ingress.kserve_ingress_gateway,
        "ingressGateway": ingress.ingress_gateway,
        "localGateway": ingress.local_gateway,
        "localGatewayService": ingress.local_gateway_service,
        "ingressDomain": ingress.ingress_domain,
        "additionalIngressDomains": list(ingress.additional_ingress_domains),
        "ingressClassName": ingress.ingress_class_name,
        "domainTemplate": ingress.domain_template,
        "urlScheme": ingress.url_scheme,
        "disableIstioVirtualHost": ingress.disable_istio_virtual_host,
        "disableIngressCreation": ingress.disable_ingress_creation,
        "disableHTTPRouteTimeout": ingress.disable_http_route_timeout,
    }
    if ingress.path_template:
        ingress_section["pathTemplate"] = ingress.path_template
    workloads = config.workloads
    deploy: dict[str, Any] = {"defaultDeploymentMode": config.deployment_mode}
    rollout = {"maxSurge": workloads.max_surge, "maxUnavailable": workloads.max_unavailable}
    if any(rollout.values()):
        deploy["deploymentRolloutStrategy"] = {
            "defaultRollout": {key: value for key, value in rollout.items() if value}
        }
    windows = {
        "scaleUpStabilizationWindowSeconds": workloads.scale_up_window_s,
        "scaleDownStabilizationWindowSeconds": workloads.scale_down_window_s,
    }
    sections: dict[str, Any] = {
        "deploy": deploy,
        "ingress": ingress_section,
        "storageInitializer": {
            "image": initializer.image,
            "memoryRequest": initializer.memory_request,
            "memoryLimit": initializer.memory_limit,
            "cpuRequest": initializer.cpu_request,
            "cpuLimit": initializer.cpu_limit,
            "caBundleConfigMapName": initializer.ca_bundle_config_map_name,
            "caBundleVolumeMountPath": initializer.ca_bundle_volume_mount_path,
            "enableDirectPvcVolumeMount": True,
            "enableModelcar": initializer.enable_modelcar,
            "cpuModelcar": "10m",
            "memoryModelcar": "15Mi",
        },
        "credentials": {
            "storageSpecSecretName": credentials.storage_spec_secret_name,
            "storageSecretNameAnnotation": "serving.kserve.io/storageSecretName",
            "gcs": {"gcsCredentialFileName": credentials.gcs_credential_file_name},
            "s3": {
                **credentials.s3,
                "s3AccessKeyIDName": credentials.s3_access_key_id_name,
                "s3SecretAccessKeyName": credentials.s3_secret_access_key_name,
            },
        },
        "service": {"serviceClusterIPNone": workloads.service_cluster_ip_none},
        # KServe writes KEDA's stabilization windows as strings
        "autoscaler": {key: str(value) for key, value in windows.items() if value is not None},
        "inferenceService": {
            "serviceAnnotationDisallowedList": _added(
                config.disallowed_annotations, DISALLOWED_ANNOTATIONS
            ),
            "serviceLabelDisallowedList": _added(config.disallowed_labels, DISALLOWED_LABELS),
        },
        "router": {
            "image": images.router,
            "memoryRequest": "100Mi",
            "memoryLimit": "1Gi",
            "cpuRequest": "100m",
            "cpuLimit": "1",
            "headers": {"propagate": list(config.propagate_headers)},
        },
        "ksrv": {
            "images": {
                "server": images.server,
                "storageInitializer": images.storage_initializer,
                "operator": images.operator,
                "router": images.router,
            }
        },
    }
    return {key: json.dumps(value, indent=2) for key, value in sections.items()}


def _added(values: tuple[str, ...], built_in: tuple[str, ...]) -> list[str]:
    """The entries the ConfigMap adds to KServe's built-in list."""
    return [value for value in values if value not in built_in]


def inferenceservice_config(config: ClusterConfig, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(CONFIGMAP_NAME, "config", namespace),
        "data": configmap_data(config),
    }


def operator_deployment(config: ClusterConfig, namespace: str) -> dict[str, Any]:
    """One operator replica: kopf without peering must never run twice, hence Recreate."""
    labels = _labels("operator")
    selector = {
        key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/component")
    }
    container = {
        "name": "operator",
        "image": config.images.operator,
        "command": ["ksrv", "k8s", "operator"],
        # its inferenceservice-config lives beside it; kopf answers the liveness probe
        "args": ["--config-namespace", namespace,
                 "--liveness", f"http://0.0.0.0:{_HEALTH_PORT}/healthz"],
        "ports": [{"name": "health", "containerPort": _HEALTH_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"},
                          "periodSeconds": 20, "timeoutSeconds": 5},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(OPERATOR, "operator", namespace),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": OPERATOR,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
        },
    }


def cluster_serving_runtimes(config: ClusterConfig) -> list[dict[str, Any]]:
    """ksrv's default ClusterServingRuntimes, running `config.images.server`."""
    text = default_runtimes.default_runtimes_yaml().replace(PLACEHOLDER_IMAGE, config.images.server)
    return [document for document in yaml.safe_load_all(text) if document]


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings (the ConfigMap's JSON sections, CRD descriptions) as `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML text, as `kubectl apply -f` takes it."""
    text: str = yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True)
    return text


# -- applying ---------------------------------------------------------------------------------
def apply(
    objects: list[dict[str, Any]], echo: Callable[[str], None], *, timeout_s: float = 60.0
) -> None:
    """Server-side apply each object in order, waiting (up to `timeout_s`) for the kinds a CRD
    just applied serves to appear in discovery. KUBECONFIG (or ~/.kube/config), else the
    pod's in-cluster account.

    Raises:
        UpstreamFailed: no cluster configured, or the API server refused an object.
    """
    kubernetes = _kubernetes()
    api_client = _api_client(kubernetes)
    unreachable = importlib.import_module("urllib3").exceptions.HTTPError
    where = f"the cluster at {api_client.configuration.host}"
    try:
        client = kubernetes.dynamic.DynamicClient(api_client)
        for obj in objects:
            where = _label(obj)
            resource = _resource(client, obj, time.monotonic() + timeout_s)
            client.server_side_apply(
                resource,
                body=obj,
                namespace=obj["metadata"].get("namespace") if resource.namespaced else None,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            echo(f"{where} serverside-applied")
    except kubernetes.client.exceptions.ApiException as exc:
        raise UpstreamFailed(f"{where}: the API server refused it: {_reason(exc)}") from None
    except unreachable as exc:
        host = api_client.configuration.host
        raise UpstreamFailed(f"{where}: cannot reach the cluster at {host}: {exc}") from None
    finally:
        api_client.close()


def _kubernetes() -> Any:
    """The official client, imported on first use (untyped: Any from here on)."""
    return importlib.import_module("kubernetes")


def _api_client(kubernetes: Any) -> Any:
    config = kubernetes.config
    configuration = kubernetes.client.Configuration()
    try:
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
            # KUBECONFIG read now: the library reads its default once, at import
            config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as exc:
        raise UpstreamFailed(
            f"no cluster to install into (set KUBECONFIG, or run in a pod): {exc}"
        ) from None
    return kubernetes.client.ApiClient(configuration)


def _resource(client: Any, obj: dict[str, Any], deadline: float) -> Any:
    """The API resource serving `obj`'s kind, rediscovered until a fresh CRD's kind shows up."""
    missing = _kubernetes().dynamic.exceptions.ResourceNotFoundError
    for _ in _polls(deadline):
        try:
            return client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except missing:
            client.resources.invalidate_cache()
    raise UpstreamFailed(
        f"{_label(obj)}: the cluster serves no {obj['kind']} in {obj['apiVersion']} "
        "(is its CRD installed and established?)"
    )


def _polls(deadline: float, interval_s: float = 0.5) -> Iterator[None]:
    yield
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        yield


def _label(obj: dict[str, Any]) -> str:
    """kubectl's `kind.group/name`."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    kind = str(obj["kind"]).lower()
    return (
        f"{kind}.{group}/{obj['metadata']['name']}"
        if group
        else f"{kind}/{obj['metadata']['name']}"
    )


def _reason(exc: Any) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
