"""The test's side of a cluster for the operator tiers (2: the emulator, 3: a live cluster):
the official client over HTTP only, so the same test bodies run against both, plus what the
emulator needs declared (it serves discovery only for declared resources) and a kubeconfig
that points at it, so the operator logs in exactly as it does on a cluster."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kmock
import kubernetes
import kubernetes.dynamic
import yaml

GROUP = "serving.kserve.io"
SKLEARN_URI = "gs://kfserving-examples/models/sklearn/1.0/model"
SKLEARN_ISVC: dict[str, Any] = {
    "apiVersion": f"{GROUP}/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-iris"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                     "storageUri": SKLEARN_URI}}},
}  # fmt: skip
ALL = {"get", "list", "watch", "create", "update", "patch", "delete"}
# (resource, kind, namespaced, subresources)
_RESOURCES = [
    (f"{GROUP}/v1beta1/inferenceservices", "InferenceService", True, {"status"}),
    (f"{GROUP}/v1alpha1/servingruntimes", "ServingRuntime", True, {"status"}),
    (f"{GROUP}/v1alpha1/clusterservingruntimes", "ClusterServingRuntime", False, {"status"}),
    (f"{GROUP}/v1alpha1/inferencegraphs", "InferenceGraph", True, {"status"}),
    (f"{GROUP}/v1alpha1/trainedmodels", "TrainedModel", True, {"status"}),
    (f"{GROUP}/v1alpha1/clusterstoragecontainers", "ClusterStorageContainer", False, set()),
    (f"{GROUP}/v1alpha2/llminferenceservices", "LLMInferenceService", True, {"status"}),
    (f"{GROUP}/v1alpha2/llminferenceserviceconfigs", "LLMInferenceServiceConfig", True, set()),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False,
     set()),
    ("v1/namespaces", "Namespace", False, set()),
    ("v1/configmaps", "ConfigMap", True, set()),
    ("v1/secrets", "Secret", True, set()),
    ("v1/serviceaccounts", "ServiceAccount", True, set()),
    ("v1/services", "Service", True, {"status"}),
    ("v1/pods", "Pod", True, {"status"}),
    ("v1/events", "Event", True, set()),
    ("apps/v1/deployments", "Deployment", True, {"status"}),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True, {"status"}),
    ("networking.k8s.io/v1/ingresses", "Ingress", True, {"status"}),
    ("serving.knative.dev/v1/services", "Service", True, {"status"}),
    ("networking.istio.io/v1beta1/virtualservices", "VirtualService", True, {"status"}),
    ("gateway.networking.k8s.io/v1/httproutes", "HTTPRoute", True, {"status"}),
    ("keda.sh/v1alpha1/scaledobjects", "ScaledObject", True, {"status"}),
]  # fmt: skip


def declare(emu: Any) -> None:
    """What a cluster with KServe's CRDs, Knative Serving, Istio, the Gateway API and KEDA
    serves."""
    for resource, kind, namespaced, subresources in _RESOURCES:
        emu.resources[resource] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, subresources=subresources, verbs=ALL
        )


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose current context is `server`, without credentials."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "emulator",
    }))  # fmt: skip
    return path


def isvc(name: str = "sklearn-iris", storage_uri: str = SKLEARN_URI) -> dict[str, Any]:
    body = copy.deepcopy(SKLEARN_ISVC)
    body["metadata"]["name"] = name
    body["spec"]["predictor"]["model"]["storageUri"] = storage_uri
    return body


class Cluster:
    """The official client, reached the way a user reaches the cluster (a kubeconfig)."""

    def __init__(self, kubeconfig: Path | None) -> None:
        self.api_client = kubernetes.config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None
        )
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.apps = kubernetes.client.AppsV1Api(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self._dynamic: Any = None

    def close(self) -> None:
        self.api_client.close()

    def create_isvc(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, "v1beta1", namespace, "inferenceservices", body
        )

    def isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._maybe(
            self.custom.get_namespaced_custom_object,
            GROUP, "v1beta1", namespace, "inferenceservices", name,
        )  # fmt: skip

    def patch_isvc(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, "v1beta1", namespace, "inferenceservices", name, patch
        )

    def delete_isvc(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, "v1beta1", namespace, "inferenceservices", name
        )

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
        found = self.isvc(namespace, name) or {}
        for condition in (found.get("status") or {}).get("conditions") or ():
            if condition.get("type") == kind:
                return dict(condition)
        return None

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._maybe(self.apps.read_namespaced_deployment, name, namespace)
        return self.api_client.sanitize_for_serialization(found) if found else None

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._maybe(self.core.read_namespaced_service, name, namespace)
        return self.api_client.sanitize_for_serialization(found) if found else None

    def mark_deployment_ready(self, namespace: str, name: str, replicas: int = 1) -> None:
        """What the deployment controller reports once every replica is available."""
        self.apps.patch_namespaced_deployment_status(name, namespace, {"status": {
            "observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{name}-1" has successfully progressed.'},
            ],
        }})  # fmt: skip

    def custom_object(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """A namespaced custom object (`group/version`), None when absent."""
        group, _, version = api_version.rpartition("/")
        return self._maybe(
            self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    def builtin(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """Any namespaced object, by apiVersion and kind (the client's discovery)."""
        if self._dynamic is None:
            self._dynamic = kubernetes.dynamic.DynamicClient(self.api_client)
        resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            return dict(resource.get(name=name, namespace=namespace).to_dict())
        except kubernetes.dynamic.exceptions.NotFoundError:
            return None

    def set_inference_config(self, data: dict[str, str]) -> None:
        """The operator's `inferenceservice-config` ConfigMap (namespace `kserve`)."""
        self.core.create_namespaced_config_map("kserve", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
            "data": data,
        })  # fmt: skip

    def knative_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._maybe(
            self.custom.get_namespaced_custom_object,
            "serving.knative.dev", "v1", namespace, "services", name,
        )  # fmt: skip

    def mark_knative_service_ready(self, namespace: str, name: str, revision: str) -> None:
        """What Knative Serving reports once a revision is ready and takes all the traffic."""
        host = f"{name}.{namespace}"
        self.custom.patch_namespaced_custom_object_status(
            "serving.knative.dev", "v1", namespace, "services", name, {"status": {
                "observedGeneration": 1,
                "conditions": [{"type": kind, "status": "True"} for kind in
                               ("ConfigurationsReady", "Ready", "RoutesReady")],
                "latestCreatedRevisionName": revision, "latestReadyRevisionName": revision,
                "url": f"http://{host}.example.com",
                "address": {"url": f"http://{host}.svc.cluster.local"},
                "traffic": [{"revisionName": revision, "latestRevision": True, "percent": 100}],
            }},
        )  # fmt: skip

    @staticmethod
    def _maybe(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise
