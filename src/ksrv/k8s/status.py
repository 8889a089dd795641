"""KServe's InferenceService status from what the cluster reports: conditions, URLs,
`components` and `modelStatus`.

Pure. Standard mode reads each component's Deployment the way KServe's raw-deployment
reconciler does (its Available / Progressing / ReplicaFailure conditions; ready replicas when a
Deployment reports no conditions at all), Knative mode each Knative Service's status (Ready,
RoutesReady, ConfigurationsReady, url, revisions, traffic). `modelStatus` follows KServe's
PropagateModelStatus over the predictor's pods, counted from the Deployment's ready replicas
where no pods were listed. As in KServe, `Ready` = PredictorReady ∧ IngressReady, and the
ingress counts as made once the entry component is ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ksrv.api import conditions as api_conditions
from ksrv.api.inference_service import InferenceService
from ksrv.control.plan import ServicePlan
from ksrv.control.service_status import condition, drop_none, keep_transition_times, mapping
from ksrv.k8s import naming
from ksrv.k8s.config import KNATIVE, ClusterConfig

READY_CONDITIONS: Final = {
    "predictor": "PredictorReady",
    "transformer": "TransformerReady",
    "explainer": "ExplainerReady",
}
# Knative mode's per-component conditions, named as KServe names them (sic: ExplainerRoutes).
ROUTE_CONDITIONS: Final = {
    "predictor": "PredictorRouteReady",
    "transformer": "TransformerRouteReady",
    "explainer": "ExplainerRoutesReady",
}
CONFIGURATION_CONDITIONS: Final = {
    "predictor": "PredictorConfigurationReady",
    "transformer": "TransformerConfigurationReady",
    "explainer": "ExplainerConfigurationReady",
}
STORAGE_INITIALIZER: Final = "storage-initializer"
MODEL_CONTAINER: Final = "kserve-container"
# KServe's FailureReason for a spec that cannot run, by the condition reason ksrv gives it.
_FAILURE_REASONS: Final = {api_conditions.INVALID_SPEC: "InvalidPredictorSpec"}

Readiness = tuple[bool | None, str, str]
"""(True/False/None for Unknown, reason, message)."""


@dataclass(frozen=True)
class Observed:
    """What the cluster reports for one component: its Deployment (Standard) or Knative Service
    (Knative) as read back, and the pods of its latest revision."""

    workload: dict[str, Any] | None = None
    pods: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def inference_service_status(
    isvc: InferenceService,
    plan: ServicePlan,
    config: ClusterConfig,
    observed: dict[str, Observed],
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """The whole status of `isvc` in `config.deployment_mode` (KServe's field names)."""
    is_knative = config.deployment_mode == KNATIVE
    old_components = mapping(old.get("components"))
    conditions: list[dict[str, Any]] = []
    components: dict[str, Any] = {}
    for component, component_plan in plan.components.items():
        seen = observed.get(component, Observed())
        previous = mapping(old_components.get(component))
        if component_plan.error is not None:
            reason = component_plan.error_reason or api_conditions.INVALID_SPEC
            ready: Readiness = (False, reason, component_plan.error)
            components[component] = {}
        elif is_knative:
            ready = knative_readiness(seen.workload)
            components[component] = knative_component(seen.workload, previous)
            conditions += _knative_conditions(component, seen.workload)
        else:
            ready = deployment_readiness(seen.workload)
            components[component] = _standard_component(isvc, component, config, ready[0])
        conditions.append(condition(READY_CONDITIONS[component], *ready))
    by_type = {c["type"]: c for c in conditions}
    ingress = _ingress_condition(plan, by_type, is_knative)
    conditions.append(ingress)
    if is_knative:
        conditions += _aggregated(plan, by_type)
    conditions.append(_ready([by_type.get("PredictorReady"), ingress]))
    keep_transition_times(conditions, old.get("conditions") or [], now)
    is_ready = conditions[-1]["status"] == "True"
    status: dict[str, Any] = {
        "observedGeneration": (isvc.metadata.model_extra or {}).get("generation"),
        "deploymentMode": config.deployment_mode,
        "conditions": conditions,
        "components": components,
    }
    if ingress["status"] == "True" or old.get("url"):
        # KServe sets the URLs once the ingress exists and keeps them afterwards.
        status["url"] = _service_url(isvc, plan, config, observed) or old.get("url")
        status["address"] = {"url": _address_url(isvc, plan, is_knative)}
    predictor = plan.components.get("predictor")
    if predictor is not None:
        status["modelStatus"] = model_status(
            predictor.error, predictor.error_reason, observed.get("predictor", Observed()),
            is_ready, is_knative, components.get("predictor") or {},
            mapping(old.get("modelStatus")),
        )  # fmt: skip
        if predictor.runtime:
            key = "clusterServingRuntimeName" if predictor.is_cluster_runtime else (
                "servingRuntimeName")  # fmt: skip
            status[key] = predictor.runtime
    return drop_none(status)


def invalid_status(
    generation: Any, reason: str, message: str, old: dict[str, Any], now: float
) -> dict[str, Any]:
    """The status of a resource that cannot be served as written (it failed to load)."""
    conditions = [
        condition("PredictorReady", False, reason, message),
        condition("Ready", False, reason, message),
    ]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "modelStatus": {
            "transitionStatus": "InvalidSpec",
            "states": {
                "activeModelState": _active(mapping(old.get("modelStatus"))),
                "targetModelState": "FailedToLoad",
            },
            "lastFailureInfo": {"reason": _FAILURE_REASONS.get(reason, reason),
                                "message": message},
        },
    }  # fmt: skip


def deployment_readiness(deployment: dict[str, Any] | None) -> Readiness:
    """A component's readiness from its Deployment, by KServe's PropagateRawStatus rules."""
    if deployment is None:
        return None, "Creating", "the Deployment is being created"
    status = mapping(deployment.get("status"))
    found = {c.get("type"): c for c in status.get("conditions") or () if isinstance(c, dict)}
    if not found:
        # No controller has described it yet: ready replicas are all there is to go by.
        if int(status.get("readyReplicas") or 0) > 0:
            return True, "", ""
        name = deployment["metadata"]["name"]
        return None, "Starting", f"Deployment {name} has no ready replicas yet"
    result: Readiness = (False, "", "")
    available = found.get("Available")
    if available is not None and available.get("status") == "True":
        result = (True, "", "")
    progressing = found.get("Progressing")
    if progressing is not None:
        reason, message = progressing.get("reason", ""), progressing.get("message", "")
        if progressing.get("status") == "False" and message:
            result = (False, reason, message)  # ProgressDeadlineExceeded and the like
        elif progressing.get("status") == "True":
            # Progressing stays True after a rollout completes, with this reason.
            done = reason == "NewReplicaSetAvailable"
            result = (True, "", "") if done else (None, reason, message)
    for kind, bad in (("Available", "False"), ("ReplicaFailure", "True")):
        found_condition = found.get(kind)
        if found_condition is not None and found_condition.get("status") == bad:
            result = (False, found_condition.get("reason", ""), found_condition.get("message", ""))
    return result


def knative_readiness(ksvc: dict[str, Any] | None) -> Readiness:
    """A component's readiness: its Knative Service's `Ready` condition."""
    ready = _knative_condition(ksvc, "Ready")
    if ready is None:
        return None, "Creating", "the Knative Service is being created"
    return _readiness(ready)


def knative_component(ksvc: dict[str, Any] | None, previous: dict[str, Any]) -> dict[str, Any]:
    """`status.components[c]` from a Knative Service, by KServe's PropagateStatus: revisions,
    traffic, and which revision was rolled out last (100% of traffic) and before that."""
    status = mapping((ksvc or {}).get("status"))
    spec = {k: previous.get(k) for k in ("latestRolledoutRevision", "previousRolledoutRevision")}
    latest_ready = status.get("latestReadyRevisionName")
    latest_created = status.get("latestCreatedRevisionName")
    traffic = [t for t in status.get("traffic") or () if isinstance(t, dict)]
    totals: dict[str, int] = {}
    for target in traffic:
        name = str(target.get("revisionName"))
        totals[name] = totals.get(name, 0) + int(target.get("percent") or 0)
    for target in traffic:
        if target.get("revisionName") != latest_ready or not target.get("latestRevision"):
            continue
        percent = int(target.get("percent") or 0)
        if spec["latestRolledoutRevision"] != latest_ready:
            if percent == 100:
                spec["previousRolledoutRevision"] = spec["latestRolledoutRevision"]
                spec["latestRolledoutRevision"] = latest_ready
        elif (
            latest_ready == latest_created
            and percent < 100
            and totals.get(str(latest_ready)) == 100
            and spec["previousRolledoutRevision"]
        ):  # rolled back: the revision rolled out last no longer has all the traffic
            spec["latestRolledoutRevision"] = spec["previousRolledoutRevision"]
    result = {
        **spec,
        "latestCreatedRevision": latest_created,
        "latestReadyRevision": latest_ready,
        "traffic": traffic or None,
    }
    if knative_readiness(ksvc)[0] is True:
        result["url"] = status.get("url")
        result["address"] = status.get("address")
    return drop_none(result)


def model_status(
    error: str | None,
    error_reason: str | None,
    seen: Observed,
    is_ready: bool,
    is_knative: bool,
    component: dict[str, Any],
    old: dict[str, Any],
) -> dict[str, Any]:
    """`modelStatus`: the predictor's model, by KServe's PropagateModelStatus."""
    if error is not None:
        reason = error_reason or api_conditions.INVALID_SPEC
        info = {"reason": _FAILURE_REASONS.get(reason, reason), "message": error}
        return _model_states("InvalidSpec", "FailedToLoad", old, info)
    pods = list(seen.pods)
    ready_copies = sum(1 for pod in pods if _is_pod_ready(pod))
    if not pods and seen.workload is not None and not is_knative:
        ready_copies = int(mapping(seen.workload.get("status")).get("readyReplicas") or 0)
    copies = {"failedCopies": 0, "totalCopies": ready_copies}  # sic: KServe counts ready ones
    if not pods and ready_copies == 0:
        conditions = mapping(mapping((seen.workload or {}).get("status"))).get("conditions")
        failed = is_knative and any(
            isinstance(c, dict) and c.get("status") == "False" for c in conditions or ()
        )
        return _model_state("FailedToLoad" if failed else "Pending", old, None, copies)
    first = pods[0] if pods else {}
    init = _container_status(first, "initContainerStatuses", STORAGE_INITIALIZER)
    if init is not None:
        found = _failure(init)
        if found is not None:
            return _model_state("FailedToLoad", old, found, copies)
        if "running" in mapping(init.get("state")):
            # Running again after a failure may be a crash loop between states: keep the last.
            if "terminated" in mapping(init.get("lastState")) and old:
                return {**old, "copies": copies}
            return _model_state("Loading", old, None, copies)
    if is_ready and (
        not is_knative or component.get("latestCreatedRevision") ==
        component.get("latestReadyRevision")
    ):  # fmt: skip
        return _model_state("Loaded", old, None, copies)
    main = _container_status(first, "containerStatuses", MODEL_CONTAINER)
    found = _failure(main) if main is not None else None
    return _model_state("FailedToLoad" if found else "Pending", old, found, copies)


def _model_state(
    state: str, old: dict[str, Any], info: dict[str, Any] | None, copies: dict[str, Any]
) -> dict[str, Any]:
    """KServe's UpdateModelRevisionStates: the target state, and what it says of the rest."""
    transition = {"Loaded": "UpToDate", "FailedToLoad": "BlockedByFailedLoad"}.get(
        state, "InProgress"
    )
    result = _model_states(transition, state, old, info)
    if state == "Loaded":
        result["states"]["activeModelState"] = "Loaded"
    result["copies"] = copies
    return result


def _model_states(
    transition: str, target: str, old: dict[str, Any], info: dict[str, Any] | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "transitionStatus": transition,
        "states": {"activeModelState": _active(old), "targetModelState": target},
    }
    last = info or mapping(old.get("lastFailureInfo")) or None
    if last:
        result["lastFailureInfo"] = last
    return result


def _active(old: dict[str, Any]) -> str:
    states = mapping(old.get("states"))
    return str(states.get("activeModelState") or "Pending")


def _failure(container_status: dict[str, Any]) -> dict[str, Any] | None:
    """ModelLoadFailed info for a container that ended in Error or is crash-looping."""
    state = mapping(container_status.get("state"))
    terminated = mapping(state.get("terminated"))
    if terminated and terminated.get("reason") == "Error":
        return _failure_info(terminated)
    if mapping(state.get("waiting")).get("reason") == "CrashLoopBackOff":
        return _failure_info(mapping(mapping(container_status.get("lastState")).get("terminated")))
    return None


def _failure_info(terminated: dict[str, Any]) -> dict[str, Any]:
    return drop_none({
        "reason": api_conditions.MODEL_LOAD_FAILED,
        "message": terminated.get("message"),
        "exitCode": terminated.get("exitCode"),
    })  # fmt: skip


def _container_status(pod: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    for found in mapping(pod.get("status")).get(key) or ():
        if isinstance(found, dict) and found.get("name") == name:
            return found
    return None


def _is_pod_ready(pod: dict[str, Any]) -> bool:
    status = mapping(pod.get("status"))
    return status.get("phase") == "Running" and any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def _standard_component(
    isvc: InferenceService, component: str, config: ClusterConfig, is_ready: bool | None
) -> dict[str, Any]:
    if is_ready is not True:
        return {}
    name = naming.component_name(isvc.metadata.name, component)
    namespace = isvc.metadata.namespace or "default"
    return {"url": f"{config.ingress.url_scheme}://{_host(isvc, name, namespace, config)}"}


def _knative_conditions(component: str, ksvc: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = []
    for source, target in (
        ("RoutesReady", ROUTE_CONDITIONS),
        ("ConfigurationsReady", CONFIGURATION_CONDITIONS),
    ):
        seen = _knative_condition(ksvc, source)
        if seen is not None:
            found.append(condition(target[component], *_readiness(seen)))
    return found


def _aggregated(plan: ServicePlan, by_type: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Knative mode's RoutesReady / LatestDeploymentReady over every component."""
    found = []
    for aggregate, per_component in (
        ("RoutesReady", ROUTE_CONDITIONS),
        ("LatestDeploymentReady", CONFIGURATION_CONDITIONS),
    ):
        ok: bool | None = True
        reason = ""
        for component in plan.components:
            seen = by_type.get(per_component[component])
            if seen is not None and seen["status"] == "True":
                continue
            ok = None if seen is None or seen["status"] == "Unknown" else False
            reason = f"{per_component[component]} not ready"
        found.append(condition(aggregate, ok, reason, ""))
    return found  # fmt: skip


def _ingress_condition(
    plan: ServicePlan, by_type: dict[str, dict[str, Any]], is_knative: bool
) -> dict[str, Any]:
    """KServe makes the ingress only once the predictor (and transformer) are ready."""
    for component in ("predictor", "transformer"):
        if component not in plan.components:
            continue
        ready = by_type[READY_CONDITIONS[component]]
        if ready["status"] != "True":
            ok = None if is_knative and ready["status"] == "Unknown" else False
            return condition("IngressReady", ok, f"{component.capitalize()} ingress not created",
                             "")  # fmt: skip
    return condition("IngressReady", True, "", "")


def _ready(dependents: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Knative's living condition set: False if a dependent is, else Unknown, else True."""
    present = [d for d in dependents if d is not None]
    for status in ("False", "Unknown"):
        for dependent in present:
            if dependent["status"] == status:
                ok = False if status == "False" else None
                return condition("Ready", ok, dependent.get("reason", ""),
                                 dependent.get("message", ""))  # fmt: skip
    if len(present) < len(dependents):
        return condition("Ready", None, "", "")
    return condition("Ready", True, "", "")


def _service_url(
    isvc: InferenceService, plan: ServicePlan, config: ClusterConfig, observed: dict[str, Observed]
) -> str | None:
    name, namespace = isvc.metadata.name, isvc.metadata.namespace or "default"
    if config.deployment_mode == KNATIVE:
        # KServe's VirtualService host: the entry Knative Service's host without its suffix.
        ksvc = observed.get(plan.entry, Observed()).workload
        url = str(mapping((ksvc or {}).get("status")).get("url") or "")
        suffix = f"-{plan.entry}."
        if suffix in url:
            return url.replace(suffix, ".", 1)
    if config.ingress.path_template:
        return naming.url(name, namespace, config.ingress)
    return f"{config.ingress.url_scheme}://{_host(isvc, name, namespace, config)}"


def _address_url(isvc: InferenceService, plan: ServicePlan, is_knative: bool) -> str:
    name, namespace = isvc.metadata.name, isvc.metadata.namespace or "default"
    target = name if is_knative else naming.component_name(name, plan.entry)
    return f"http://{naming.cluster_local_host(target, namespace)}"


def _host(isvc: InferenceService, name: str, namespace: str, config: ClusterConfig) -> str:
    return naming.host(
        name, namespace, config.ingress,
        annotations=dict(isvc.metadata.annotations or {}), labels=dict(isvc.metadata.labels or {}),
    )  # fmt: skip


def _knative_condition(ksvc: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for found in mapping(mapping(ksvc or {}).get("status")).get("conditions") or ():
        if isinstance(found, dict) and found.get("type") == kind:
            return found
    return None


def _readiness(found: dict[str, Any]) -> Readiness:
    status = found.get("status")
    ok = True if status == "True" else False if status == "False" else None
    return ok, str(found.get("reason") or ""), str(found.get("message") or "")
