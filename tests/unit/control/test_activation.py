"""control.autoscaling: scale to zero and the activator's call, on an injected clock.

A revision with `minReplicas: 0` and no traffic goes to zero after the stable window and the
grace period; a gateway's activation starts a replica at once (not at the next tick) and the
next ticks keep it for a stable window even before the held requests show in the traffic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ksrv.control.autoscaler_config import AutoscalerConfig
from ksrv.control.autoscaling import Autoscalers
from ksrv.control.plan import Autoscaling, ComponentPlan
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.traffic import TrafficCollector
from ksrv.errors import ResourceInvalid

T = 1_700_000_000
REVISION = "iris-predictor-00001"
KEY = ("ns", REVISION)


class ResizingPlatform:
    """Runs what it is asked at once: every replica asked for is ready."""

    def __init__(self, replicas: int) -> None:
        self.spec = RevisionSpec("ns", "iris", "predictor", REVISION, ["x"], replicas=replicas)
        self.ensured: list[int] = []

    def observe(self):
        replicas = [
            ReplicaState(i, None, 1, 2, "Ready", 0, None, None, Path("log"), None, "127.0.0.1")
            for i in range(self.spec.replicas)
        ]
        return {KEY: RevisionState(self.spec, replicas)}

    async def ensure(self, spec) -> None:
        self.ensured.append(spec.replicas)
        self.spec = spec


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def idle_seconds(traffic: TrafficCollector, first: int, last: int) -> None:
    """A gateway reported these seconds with no request to the revision."""
    traffic.record({"reporter": "g", "first": first, "last": last, "samples": []})


def scalers_at_zero_grace(clock: Clock, platform: ResizingPlatform) -> Autoscalers:
    config = AutoscalerConfig(stable_window_s=6.0, scale_to_zero_grace_period_s=1.0)
    traffic = TrafficCollector(clock=clock)
    scalers = Autoscalers(platform, traffic, config, max_replicas=16, clock=clock)  # type: ignore[arg-type]
    plan = ComponentPlan("predictor", autoscaling=Autoscaling(min_replicas=0, max_replicas=4))
    settings = scalers.settings(plan)
    assert settings is not None and settings.min_scale == 0
    scalers.track(KEY, settings)
    return scalers


def tick_until_zero(scalers: Autoscalers, clock: Clock, platform: ResizingPlatform) -> float:
    """Tick every 2 s on idle seconds; the time the revision went to zero."""
    start = clock.now
    traffic = scalers.traffic
    assert isinstance(traffic, TrafficCollector)
    while platform.spec.replicas:
        clock.now += 2.0
        idle_seconds(traffic, int(start), int(clock.now))
        asyncio.run(scalers.tick())
        assert clock.now - start < 60, platform.ensured
    return clock.now - start


def test_an_idle_revision_goes_to_zero_after_the_stable_window_and_the_grace_period():
    clock = Clock(T + 0.5)
    platform = ResizingPlatform(replicas=1)
    scalers = scalers_at_zero_grace(clock, platform)
    idle_s = tick_until_zero(scalers, clock, platform)
    # Active for a stable window (6 s), then inactive for the grace period (1 s), on 2 s ticks.
    assert 7.0 <= idle_s <= 10.0
    assert platform.ensured == [0]
    decision = scalers.last(KEY)
    assert decision is not None and "no traffic for a stable window" in decision.reason


def test_an_activation_starts_a_replica_at_once_and_the_ticks_keep_it_for_a_stable_window():
    clock = Clock(T + 0.5)
    platform = ResizingPlatform(replicas=1)
    scalers = scalers_at_zero_grace(clock, platform)
    tick_until_zero(scalers, clock, platform)
    clock.now += 0.3
    assert asyncio.run(scalers.activate({"namespace": "ns", "revision": REVISION})) is True
    assert platform.spec.replicas == 1 and platform.ensured == [0, 1]
    decision = scalers.last(KEY)
    assert decision is not None and decision.replicas == 1 and "activated" in decision.reason
    # The held requests have not reached the traffic yet: the ticks still keep the replica
    # for a stable window, then the grace period.
    assert tick_until_zero(scalers, clock, platform) >= 7.0
    assert platform.ensured == [0, 1, 0]


def test_an_activation_of_a_running_or_unknown_revision_changes_nothing():
    clock = Clock(T + 0.5)
    platform = ResizingPlatform(replicas=2)
    scalers = scalers_at_zero_grace(clock, platform)
    assert asyncio.run(scalers.activate({"namespace": "ns", "revision": REVISION})) is False
    assert asyncio.run(scalers.activate({"namespace": "ns", "revision": "other"})) is False
    assert platform.ensured == []


def test_a_grace_period_from_the_platform_config_is_used_for_every_revision():
    config = AutoscalerConfig(scale_to_zero_grace_period_s=1.0)
    scalers = Autoscalers(ResizingPlatform(1), TrafficCollector(), config)  # type: ignore[arg-type]
    plan = ComponentPlan("predictor", autoscaling=Autoscaling(min_replicas=0))
    settings = scalers.settings(plan)
    assert settings is not None
    assert settings.scale_to_zero_grace_period_s == 1.0
    assert settings.scale_to_zero_pod_retention_period_s == 0.0


MIN_SCALE = "autoscaling.knative.dev/min-scale"


@pytest.mark.parametrize(
    ("min_replicas", "annotation", "low"),
    [
        (0, None, 0),  # minReplicas: 0 scales to zero
        (0, "0", 0),
        (0, "2", 2),  # KServe leaves min-scale to Knative when minReplicas is 0
        (1, "0", 1),  # ...and sets it from minReplicas (default 1) otherwise
        (3, "0", 3),
    ],
)
def test_min_scale_follows_kserve_min_replicas_then_knatives_annotation(
    min_replicas, annotation, low
):
    annotations = ((MIN_SCALE, annotation),) if annotation is not None else ()
    scaling = Autoscaling(min_replicas=min_replicas, max_replicas=4, annotations=annotations)
    scalers = Autoscalers(ResizingPlatform(1), TrafficCollector())  # type: ignore[arg-type]
    settings = scalers.settings(ComponentPlan("predictor", autoscaling=scaling))
    assert settings is not None and settings.min_scale == low


def test_a_negative_min_scale_annotation_is_refused_naming_it():
    scaling = Autoscaling(min_replicas=0, annotations=((MIN_SCALE, "-1"),))
    scalers = Autoscalers(ResizingPlatform(1), TrafficCollector())  # type: ignore[arg-type]
    with pytest.raises(ResourceInvalid, match="min-scale"):
        scalers.settings(ComponentPlan("predictor", autoscaling=scaling))
