"""Standard-mode canaries (`spec.canary[]`, KServe v0.20): what each runs and what share it gets.

Pure rules from KServe's Standard-mode controller, kept apart from the Knative-style rollout
(`rollout.py`): each canary is the stable predictor overlaid with the canary's fields, with
autoscaling stripped; it runs its own min replicas, else `ceil(stableMin * pct / 100)`; a
Ready canary takes its `trafficPercent` and the stable predictor the rest; the stable's
minimum shrinks by the Ready canaries' replicas, never below 1. The plans themselves are
built by `plan.desired_state`; the reconciler runs each canary as a revision set of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from ksrv.api.inference_service import CanarySpec, PredictorSpec
from ksrv.control.rollout import Traffic

# Fields a canary never takes from the stable predictor (KServe strips autoscaling; the
# name is the canary's own).
_STRIPPED: Final = (
    "name", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
    "autoScaling",
)  # fmt: skip


def overlay(stable: PredictorSpec, canary: CanarySpec) -> PredictorSpec:
    """The canary's predictor: the stable one's fields, each replaced by the canary's where it
    gives one (one level into a mapping, so `model: {storageUri}` keeps the model format)."""
    merged: dict[str, Any] = {
        key: value for key, value in stable.to_dict().items() if key not in _STRIPPED
    }
    for key, value in canary.predictor.to_dict().items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    spec = PredictorSpec.model_validate(merged)
    spec.min_replicas = replicas(canary, stable.min_replicas)
    spec.max_replicas = spec.min_replicas
    return spec


def replicas(canary: CanarySpec, stable_min: int | None) -> int:
    """A canary's replicas: its own `minReplicas`, else its share of the stable minimum."""
    if canary.predictor.min_replicas is not None:
        return canary.predictor.min_replicas
    return math.ceil((1 if stable_min is None else stable_min) * canary.traffic_percent / 100)


def stable_min(stable: int, ready_canary_replicas: int) -> int:
    """The stable predictor's minimum while canaries are Ready: what they run comes off it."""
    return max(1, stable - ready_canary_replicas) if stable > 0 else stable


def weighted(
    stable: Sequence[Traffic], canaries: Sequence[tuple[int, Sequence[Traffic]]]
) -> list[tuple[Traffic, float]]:
    """Each revision's share of the component's traffic: a Ready canary's own split scaled
    to its `trafficPercent`, the stable split to what is left."""
    left = 100 - sum(percent for percent, _ in canaries)
    shares = [(share, share.percent * left / 100) for share in stable]
    for percent, split in canaries:
        shares += [(share, share.percent * percent / 100) for share in split]
    return shares
