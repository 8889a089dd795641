"""Standard-mode canaries in an InferenceService's status: `canaryStatuses[]` and the
`CanaryPredictorReady` condition, from each canary's Deployment (KServe v0.20+).

Pure. A canary is ready by the same rules as a component (`status.deployment_readiness`); the
renderer reads `canaryStatuses[].ready` back (`context.Readiness`), so only Ready canaries get
traffic and shrink the stable predictor. As in KServe, canaries do not count towards `Ready`.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.api.inference_service import InferenceService
from ksrv.control.service_status import condition, keep_transition_times, mapping
from ksrv.k8s import naming, status

CONDITION: Final = "CanaryPredictorReady"
ALL_READY: Final = "AllCanariesReady"


def deployment_names(isvc: InferenceService) -> dict[str, str]:
    """Each canary's name -> its Deployment's name (`{isvc}-{name}-predictor`)."""
    return {
        c.predictor.name or "": naming.predictor_name(isvc.metadata.name, c.predictor.name)
        for c in isvc.spec.canary or ()
    }


def with_canaries(
    found: dict[str, Any],
    isvc: InferenceService,
    deployments: dict[str, dict[str, Any]],
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """`found` (the status without canaries) with `canaryStatuses` and `CanaryPredictorReady`
    added when the service has canaries; `deployments` by name as read back."""
    names = deployment_names(isvc)
    if not names:
        return found
    old_models = {
        str(c.get("name")): mapping(c.get("modelStatus"))
        for c in old.get("canaryStatuses") or ()
        if isinstance(c, dict)
    }
    entries = []
    waiting: list[str] = []
    failed: list[tuple[str, str, str]] = []
    for spec in isvc.spec.canary or ():
        name = spec.predictor.name or ""
        workload = deployments.get(names[name])
        ok, reason, message = status.deployment_readiness(workload)
        if ok is False:
            failed.append((name, reason, message))
        elif ok is None:
            waiting.append(name)
        model = status.model_status(
            None, None, status.Observed(workload), ok is True, False, {}, old_models.get(name, {})
        )
        entries.append({"name": name, "ready": ok is True,
                        "trafficPercent": spec.traffic_percent, "modelStatus": model})  # fmt: skip
    if failed:
        name, reason, message = failed[0]
        ready = condition(CONDITION, False, reason or "CanaryNotReady", f"{name}: {message}")
    elif waiting:
        ready = condition(CONDITION, None, "CanaryNotReady", f"not ready: {', '.join(waiting)}")
    else:
        ready = condition(CONDITION, True, ALL_READY, "")
    keep_transition_times([ready], old.get("conditions") or [], now)
    conditions = [*found.get("conditions", []), ready]
    return {**found, "conditions": conditions, "canaryStatuses": entries}
