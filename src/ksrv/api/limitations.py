"""Fields a resource may carry that the local platform accepts but does not honour.

One process tree on one machine has no nodes to select, no GPUs to schedule and no service
accounts; ksrv keeps these fields (so `to_dict()` gives them back) and says so here, one
sentence each, for the reconciler to write to status. Nothing is dropped silently.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.api import default_runtimes
from ksrv.api.field_tree import unknown_fields
from ksrv.api.inference_graph import InferenceGraph
from ksrv.api.inference_service import FRAMEWORKS, InferenceService
from ksrv.api.local_model_cache import LocalModelCache, LocalModelNamespaceCache, cache_notes
from ksrv.api.meta import ApiModel, join
from ksrv.api.serving_runtime import ClusterServingRuntime, ServingRuntime

# Pod-level fields (camelCase) -> why the local platform ignores them.
_POD_FIELDS: Final = {
    "nodeSelector": "node selection has no meaning on one machine",
    "nodeName": "node selection has no meaning on one machine",
    "affinity": "affinity rules have no meaning on one machine",
    "tolerations": "taints and tolerations have no meaning on one machine",
    "topologySpreadConstraints": "topology spreading has no meaning on one machine",
    "serviceAccountName": "replicas run as the ksrv user, not a service account",
    "serviceAccount": "replicas run as the ksrv user, not a service account",
    "imagePullSecrets": "no images are pulled locally",
    "securityContext": "replicas run as the ksrv user; security contexts are not applied",
    "runtimeClassName": "runtime classes are not applied locally",
    "priorityClassName": "pod priority is not applied locally",
    "schedulerName": "there is no scheduler locally",
    "volumes": "volumes are not mounted locally",
    "initContainers": "init containers are not run locally",
    "hostNetwork": "replicas always use the host network locally",
    "workerSpec": "multi-node serving is not available locally",
    "storageContainerName": "ksrv downloads with its own storage layer, not a storage container",
    "deploymentStrategy": "rollouts follow ksrv's own revision handling",
}
_RESOURCE_NOTE: Final = "resource requests and limits are not enforced locally"
_GPU_NOTE: Final = "GPUs are not scheduled locally; the replica sees whatever the machine has"


def local_limitations(resource: ApiModel) -> list[str]:
    """One sentence per accepted-but-ignored field, each starting with the field's path."""
    kind = getattr(resource, "kind", type(resource).__name__)
    api_version = getattr(resource, "api_version", "")
    notes = [
        f"{path}: not a field of {kind} {api_version}; KServe's API server drops it and ksrv "
        "ignores it"
        for path in unknown_fields(type(resource).__name__, resource.to_dict())
    ]
    if isinstance(resource, InferenceService):
        notes += _inference_service_notes(resource)
    elif isinstance(resource, InferenceGraph):
        notes += _pod_notes(resource.spec.to_dict(), "spec")
    elif isinstance(resource, ServingRuntime | ClusterServingRuntime):
        notes += _pod_notes(resource.spec.to_dict(), "spec")
        if resource.spec.is_multi_model and not default_runtimes.ksrv_runtime(resource):
            notes.append(
                "spec.multiModel: ModelMesh's containers do not run locally; ksrv's own "
                "multi-model server serves this runtime's TrainedModels (docs/multi-model.md)"
            )
    elif isinstance(resource, LocalModelCache | LocalModelNamespaceCache):
        notes += cache_notes(resource)
    return notes


def _inference_service_notes(isvc: InferenceService) -> list[str]:
    notes: list[str] = []
    mode = isvc.deployment_mode
    for role, component in isvc.components().items():
        path = f"spec.{role}"
        notes += _pod_notes(component.to_dict(), path)
        if component.canary_traffic_percent is not None and mode == "Standard":
            notes.append(
                f"{path}.canaryTrafficPercent: ignored in Standard mode, as KServe does "
                "(use spec.canary)"
            )
        if component.auto_scaling is not None:
            notes.append(_auto_scaling_note(isvc, component.auto_scaling.to_dict(), path))
    if mode == "ModelMesh":
        notes.append(
            "metadata.annotations[serving.kserve.io/deploymentMode]: ModelMesh is not "
            "available locally"
        )
    return notes


def _auto_scaling_note(isvc: InferenceService, auto: dict[str, Any], path: str) -> str:
    """What becomes of `autoScaling` locally: with KEDA, a Prometheus or OpenTelemetry query
    is read from the replicas' own /metrics (docs/llm.md); nothing else is evaluated."""
    annotations = isvc.metadata.annotations or {}
    kinds = {metric.get("type") for metric in auto.get("metrics") or ()}
    if annotations.get("serving.kserve.io/autoscalerClass") == "keda" and kinds & {
        "External",
        "PodMetric",
    }:
        return (
            f"{path}.autoScaling: KEDA's query is evaluated on the replicas' own /metrics (no "
            "Prometheus): selectors and sum/avg/max/min/count of them, added with +; a query "
            "beyond that, and Resource metrics, are not scaled on"
        )
    return (
        f"{path}.autoScaling: HPA/KEDA metric specs are not evaluated locally without "
        "serving.kserve.io/autoscalerClass: keda and a query; ksrv's autoscaler uses "
        "scaleMetric and scaleTarget"
    )


def _pod_notes(pod: dict[str, Any], path: str) -> list[str]:
    notes = [f"{join(path, field)}: {why}" for field, why in _POD_FIELDS.items() if field in pod]
    containers = [
        (join(path, name), pod[name])
        for name in ("model", "art", *FRAMEWORKS)
        if isinstance(pod.get(name), dict)
    ]
    containers += [
        (join(join(path, "containers"), index), container)
        for index, container in enumerate(pod.get("containers") or [])
    ]
    if isinstance(pod.get("resources"), dict):
        containers.append((path, pod))
    for container_path, container in containers:
        resources = container.get("resources") or {}
        names = {*resources.get("limits", {}), *resources.get("requests", {})}
        if any("gpu" in name for name in names):
            notes.append(f"{join(container_path, 'resources')}: {_GPU_NOTE}")
        elif names:
            notes.append(f"{join(container_path, 'resources')}: {_RESOURCE_NOTE}")
    return notes
