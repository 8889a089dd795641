"""control.autoscaling: the local floor and cap on settings, the status entry, CPU metering."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ksrv.control.autoscaler import Decision, ScalerState
from ksrv.control.autoscaling import Autoscalers, CPUMeter, cpu_seconds, status_entry
from ksrv.control.plan import Autoscaling, ComponentPlan
from ksrv.control.traffic import TrafficCollector


class NoPlatform:
    """`settings` and `status_entry` never reach the platform."""


def settings_of(**fields):
    scalers = Autoscalers(NoPlatform(), TrafficCollector(), max_replicas=16)  # type: ignore[arg-type]
    return scalers.settings(ComponentPlan("predictor", autoscaling=Autoscaling(**fields)))


@pytest.mark.parametrize(
    ("fields", "low", "high"),
    [
        ({"min_replicas": 0, "max_replicas": 4}, 1, 4),  # no scale to zero locally yet
        ({"min_replicas": 2}, 2, 16),  # unbounded (Knative's max-scale 0): the local cap
        ({"min_replicas": 1, "max_replicas": 40}, 1, 16),
        ({"min_replicas": 20, "max_replicas": 40}, 16, 16),
    ],
)
def test_local_settings_keep_one_replica_and_the_platform_cap(fields, low, high):
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
