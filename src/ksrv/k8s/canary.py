"""Standard-mode canaries (`spec.canary[]`, KServe v0.20): each is a second predictor.

A canary is the stable predictor overlaid with the canary's own fields (a deep merge where a
set field wins and an empty one does not, as KServe's mergo merge does), with its autoscaling
stripped: it runs a fixed number of replicas, its own `minReplicas` or else
`ceil(stable min x percent / 100)`. It gets its own Deployment and Service
(`{isvc}-{name}-predictor`). Only Ready canaries take traffic (the routes weight them, the
stable predictor gets 100 - their sum) and only Ready canaries shrink the stable predictor's
minimum (never below 1), so capacity never dips while a canary starts.
"""

from __future__ import annotations

import math
from typing import Any, Final

from ksrv.api.inference_service import CanarySpec, InferenceService
from ksrv.k8s import naming
from ksrv.k8s.context import Readiness

# Fields a canary never inherits from the stable predictor: it runs a fixed replica count.
_STRIPPED: Final = ("maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
                    "deploymentStrategy")  # fmt: skip


def replicas(isvc: InferenceService, canary: CanarySpec) -> int:
    """The canary's replica count: its own minReplicas, else its share of the stable minimum."""
    if canary.predictor.min_replicas is not None:
        return canary.predictor.min_replicas
    stable = isvc.spec.predictor.min_replicas
    stable = 1 if stable is None else stable
    return math.ceil(stable * canary.traffic_percent / 100)


def stable_min_replicas(isvc: InferenceService, readiness: Readiness) -> int | None:
    """The stable predictor's minReplicas less the replicas of its Ready canaries (>= 1)."""
    low = isvc.spec.predictor.min_replicas
    canaries = isvc.spec.canary or []
    if low is None or not canaries:
        return low
    taken = sum(
        replicas(isvc, c) for c in canaries if readiness.is_canary_ready(c.predictor.name or "")
    )
    return max(low - taken, 1) if taken > 0 else low


def canary_services(isvc: InferenceService) -> list[InferenceService]:
    """One InferenceService per canary whose predictor is the canary's (overlaid, stripped)."""
    document = isvc.to_dict()
    document.pop("status", None)
    stable = document["spec"]["predictor"]
    found = []
    for canary in isvc.spec.canary or ():
        predictor = overlay(stable, canary.predictor.to_dict())
        for key in _STRIPPED:
            predictor.pop(key, None)
        predictor["minReplicas"] = replicas(isvc, canary)
        spec = {**document["spec"], "predictor": predictor}
        spec.pop("canary", None)
        found.append(InferenceService.model_validate({**document, "spec": spec}))
    return found


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top`'s set fields: objects merge key by key; lists and values replace."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = overlay(merged[key], value)
        elif value:  # mergo: an empty field (0, "", false, []) leaves the base's
            merged[key] = value
    return merged


def weights(isvc: InferenceService, readiness: Readiness) -> list[tuple[str, int]]:
    """`[(service, weight)]`: the stable predictor first, then each Ready canary."""
    name = isvc.metadata.name
    ready = [c for c in isvc.spec.canary or () if readiness.is_canary_ready(c.predictor.name or "")]
    stable = naming.predictor_name(name, isvc.spec.predictor.name)
    return [
        (stable, 100 - sum(c.traffic_percent for c in ready)),
        *((naming.predictor_name(name, c.predictor.name), c.traffic_percent) for c in ready),
    ]
