"""canaries: KServe's Standard-mode canary rules (overlay, replicas, weights) as tables."""

from __future__ import annotations

import pytest

from ksrv.api.inference_service import CanarySpec, PredictorSpec
from ksrv.control import canaries
from ksrv.control.rollout import Traffic

STABLE = PredictorSpec.model_validate({
    "minReplicas": 4, "maxReplicas": 8, "scaleTarget": 5, "scaleMetric": "rps",
    "timeout": 30,
    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/v1"},
})  # fmt: skip


def canary(percent: int, **predictor) -> CanarySpec:
    return CanarySpec.model_validate(
        {"predictor": {"name": "c1", **predictor}, "trafficPercent": percent}
    )


def test_a_canary_is_the_stable_predictor_overlaid_without_its_autoscaling():
    spec = canaries.overlay(STABLE, canary(20, model={"storageUri": "/v2"}))
    assert spec.name == "c1"
    assert spec.model is not None and spec.model.storage_uri == "/v2"
    assert spec.model.model_format is not None and spec.model.model_format.name == "sklearn"
    assert spec.timeout == 30  # taken from the stable one
    assert (spec.scale_target, spec.scale_metric) == (None, None)
    assert (spec.min_replicas, spec.max_replicas) == (1, 1)  # ceil(4 * 20 / 100)


@pytest.mark.parametrize(
    ("percent", "own", "stable_min", "expected"),
    [(20, None, 4, 1), (50, None, 4, 2), (60, None, 4, 3), (10, None, None, 1), (20, 3, 4, 3),
     (0, None, 4, 0)],
)  # fmt: skip
def test_canary_replicas_are_its_own_min_else_its_share_of_the_stable_min(
    percent, own, stable_min, expected
):
    spec = canary(percent, **({"minReplicas": own} if own is not None else {}))
    assert canaries.replicas(spec, stable_min) == expected


@pytest.mark.parametrize(
    ("stable", "ready", "expected"), [(4, 1, 3), (4, 0, 4), (2, 3, 1), (1, 1, 1), (0, 1, 0)]
)
def test_the_stable_minimum_shrinks_by_ready_canaries_never_below_one(stable, ready, expected):
    assert canaries.stable_min(stable, ready) == expected


def test_ready_canaries_take_their_percent_and_the_stable_split_the_rest():
    stable = [Traffic("s-2", 0, None), Traffic("s-1", 100, "prev")]  # the stable mid-rollout
    shares = canaries.weighted(stable, [(20, [Traffic("c1-1", 100)]), (10, [Traffic("c2-1", 100)])])
    assert [(t.revision, p) for t, p in shares] == [
        ("s-2", 0.0), ("s-1", 70.0), ("c1-1", 20.0), ("c2-1", 10.0)
    ]  # fmt: skip
    assert [(t.revision, p) for t, p in canaries.weighted(stable, [])] == [
        ("s-2", 0.0), ("s-1", 100.0)
    ]  # fmt: skip
