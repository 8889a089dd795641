"""control.autoscaling: the local cap on settings, the status entry, CPU metering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ksrv.control.autoscaler import Decision, ScalerState
from ksrv.control.autoscaling import (
    Autoscalers,
    CPUMeter,
    cpu_seconds,
    resident_bytes,
    status_entry,
)
from ksrv.control.plan import Autoscaling, ComponentPlan
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.traffic import TrafficCollector


class NoPlatform:
    """`settings` and `status_entry` never reach the platform."""


def settings_of(**fields):
    scalers = Autoscalers(NoPlatform(), TrafficCollector(), max_replicas=16)  # type: ignore[arg-type]
    return scalers.settings(ComponentPlan("predictor", autoscaling=Autoscaling(**fields)))


@pytest.mark.parametrize(
    ("fields", "low", "high"),
    [
        ({"min_replicas": 0, "max_replicas": 4}, 0, 4),  # scale to zero: the activator wakes it
        ({"min_replicas": 2}, 2, 16),  # unbounded (Knative's max-scale 0): the local cap
        ({"min_replicas": 1, "max_replicas": 40}, 1, 16),
        ({"min_replicas": 20, "max_replicas": 40}, 16, 16),
    ],
)
def test_local_settings_keep_min_replicas_zero_included_and_the_platform_cap(fields, low, high):
    settings = settings_of(**fields)
    assert (settings.min_scale, settings.max_scale) == (low, high)


def test_the_status_entry_says_the_decision():
    decision = Decision(3, "panic", "concurrency", 1.734, 3.81, 0.7, "6 wanted", ScalerState())
    assert status_entry(decision, None) == {
        "mode": "panic", "metric": "concurrency", "observedStable": 1.7, "observedPanic": 3.8,
        "target": 0.7, "desiredReplicas": 3, "actualReplicas": 0, "reason": "6 wanted",
    }  # fmt: skip


def test_cpu_use_is_measured_between_reads_in_percent_of_a_core():
    times = iter([0.0, 2.0])
    meter = CPUMeter(clock=lambda: next(times))
    pid = os.getpid()
    assert meter.percent(pid) is None  # the first read only sets the mark
    start = cpu_seconds(pid)
    assert start is not None
    spent = 0.0
    while spent < 0.05:  # burn a little CPU in this very process
        sum(i * i for i in range(10_000))
        spent = (cpu_seconds(pid) or 0.0) - start
    measured = meter.percent(pid)
    assert measured is not None and measured >= 100.0 * spent / 2.0 - 1e-6
    meter.forget_except(set())
    assert meter._last == {}


def test_a_process_that_is_gone_has_no_cpu_figure():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    gone = int(child.stdout)
    assert cpu_seconds(gone) is None or gone == os.getpid()
    assert CPUMeter().percent(gone) is None


class RecordingPlatform:
    """What a tick needs of a platform: a snapshot of the revisions, and resizes recorded."""

    def __init__(self, replicas: int, ready: int) -> None:
        spec = RevisionSpec("ns", "iris", "predictor", "iris-predictor-00001", ["x"],
                            replicas=replicas)  # fmt: skip
        states = [
            ReplicaState(
                i,
                None,
                1,
                2,
                "Ready" if i < ready else "Starting",
                0,
                None,
                None,
                Path("log"),
                None,
                "127.0.0.1",
            )
            for i in range(replicas)
        ]
        self.state = RevisionState(spec, states)
        self.ensured: list[int] = []

    def observe(self):
        return {self.state.spec.key: self.state}

    async def ensure(self, spec) -> None:
        self.ensured.append(spec.replicas)


def tick_once(platform, traffic, now: float, **fields) -> Autoscalers:
    scalers = Autoscalers(platform, traffic, max_replicas=16, clock=lambda: now)  # type: ignore[arg-type]
    settings = scalers.settings(ComponentPlan("predictor", autoscaling=Autoscaling(**fields)))
    scalers.track(platform.state.spec.key, settings)
    asyncio.run(scalers.tick())
    return scalers


def test_a_tick_resizes_the_revision_from_the_gateways_traffic():
    T = 1_700_000_000
    traffic = TrafficCollector(clock=lambda: T)
    traffic.record({"reporter": "g", "first": T - 9, "last": T, "samples": [
        {"namespace": "ns", "revision": "iris-predictor-00001", "second": T - s,
         "concurrency": 2.0, "requests": 10} for s in range(10)]})  # fmt: skip
    platform = RecordingPlatform(replicas=1, ready=1)
    scalers = tick_once(platform, traffic, T + 0.5, max_replicas=5, scale_target=1)
    assert platform.ensured == [3]  # 2 in flight / (1 x 70%) = 2.9
    decision = scalers.last(platform.state.spec.key)
    assert decision is not None and decision.replicas == 3


def test_without_traffic_data_a_tick_still_applies_changed_bounds():
    platform = RecordingPlatform(replicas=1, ready=1)
    tick_once(platform, TrafficCollector(), 1_700_000_000.5, min_replicas=3)
    assert platform.ensured == [3]


def test_memory_is_the_resident_set_and_grows_with_what_a_process_holds():
    before = resident_bytes(os.getpid())
    assert before is not None and before > 0
    held = bytearray(64 * 2**20)
    held[::4096] = b"x" * len(held[::4096])  # touch every page so it is resident
    after = resident_bytes(os.getpid())
    assert after is not None and after - before >= 48 * 2**20
    del held


def test_memory_scaling_measures_against_the_containers_memory_request():
    settings = settings_of(scale_metric="memory", memory_request_bytes=2.0 * 2**30)
    assert settings.metric == "memory" and settings.memory_base_bytes == 2.0 * 2**30


class ObservedNothing:
    def observe(self):
        return {}


def test_each_kind_forgets_only_the_revisions_it_tracks():
    scalers = Autoscalers(ObservedNothing(), TrafficCollector(), max_replicas=16)  # type: ignore[arg-type]
    settings = settings_of(min_replicas=1)
    scalers.track(("ns", "iris-predictor-00001"), settings)
    scalers.track(("ns", "chain-router-00001"), settings, owner="InferenceGraph")
    scalers.forget_except(set())  # the InferenceService reconciler's pass
    assert scalers.replicas(("ns", "chain-router-00001"), settings) == 1
    assert set(scalers._tracked) == {("ns", "chain-router-00001")}
    scalers.forget_except(set(), owner="InferenceGraph")
    assert not scalers._tracked
