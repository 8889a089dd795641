"""autoscaler.decide: Knative's KPA (and HPA's formula) driven by an injected clock.

Each test replays per-second traffic through `decide`, one decision per tick, with the
platform following every decision at once (ready = asked), and compares the replica counts
and modes it chose at chosen moments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from ksrv.control.autoscaler import (
    Decision,
    Observed,
    Sample,
    ScalerState,
    decide,
    initial_replicas,
    initial_state,
    window_average,
)
from ksrv.control.autoscaler_config import AutoscalerConfig
from ksrv.control.autoscaler_settings import ScalingSettings, settings_for
from ksrv.control.plan import Autoscaling

T0 = 1_000_000


def settings(
    min_replicas: int = 1,
    max_replicas: int | None = None,
    target: int | None = 10,
    metric: str | None = None,
    annotations: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
    container_concurrency: int | None = None,
) -> ScalingSettings:
    autoscaling = Autoscaling(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_metric=metric,
        scale_target=target,
        annotations=tuple(sorted((annotations or {}).items())),
    )
    return settings_for(
        AutoscalerConfig.from_configmap(config or {}), autoscaling, container_concurrency
    )


Traffic = Callable[[int], tuple[float, int]]
"""Seconds since T0 -> (average in flight, arrivals) in that second."""


def replay(
    scaling: ScalingSettings,
    traffic: Traffic,
    seconds: int,
    start_replicas: int = 1,
    state: ScalerState | None = None,
) -> dict[int, Decision]:
    """One decision per second for `seconds`; the platform follows each at once."""
    samples: list[Sample] = []
    state = state or ScalerState()
    replicas = start_replicas
    decisions = {}
    for t in range(seconds):
        concurrency, requests = traffic(t)
        samples.append(Sample(T0 + t, concurrency, requests))
        decision = decide(samples, T0 + t + 0.5, scaling, state, Observed(replicas, replicas))
        state = decision.state
        if decision.replicas is not None:
            replicas = decision.replicas
        decisions[t] = decision
    return decisions


def steady(concurrency: float, requests: int = 0) -> Traffic:
    return lambda t: (concurrency, requests)


def counts(decisions: dict[int, Decision], *ticks: int) -> list[int | None]:
    return [decisions[t].replicas for t in ticks]


def test_steady_load_scales_to_average_over_target_in_stable_mode():
    # target 10 x 70% = 7 in flight per replica; 20 in flight -> ceil(20 / 7) = 3.
    decisions = replay(settings(), steady(20.0), 90, start_replicas=3)
    assert {d.replicas for d in decisions.values()} == {3}
    assert {d.mode for d in decisions.values()} == {"stable"}
    last = decisions[89]
    assert (last.observed_stable, last.observed_panic, last.target) == (20.0, 20.0, 7.0)
    assert last.explanation.startswith("stable: concurrency 20.00 stable / 20.00 panic")


def test_a_burst_panics_on_the_panic_window_and_scales_up_at_once():
    # 60 s at 5 in flight (1 replica), then 70 in flight: the 6 s panic window sees it first.
    scaling = settings()
    decisions = replay(scaling, lambda t: (5.0, 0) if t < 60 else (70.0, 0), 66)
    assert counts(decisions, 59) == [1]
    burst = decisions[60]
    assert burst.mode == "panic"
    # The panic window (6 s) averages 5,5,5,5,5,70 = 15.83 -> 3 replicas, over 2x the one ready.
    assert burst.replicas == 3 and burst.observed_panic == pytest.approx(95 / 6, abs=1e-6)
    assert decisions[63].replicas == 7  # 5,5,70,70,70,70 -> 48.3 in flight
    assert decisions[65].replicas == 10  # 70 / 7: the whole panic window is in the burst
    assert decisions[65].mode == "panic"


def test_panic_never_scales_down_and_ends_a_stable_window_after_the_last_surge():
    traffic = lambda t: (70.0, 0) if 60 <= t < 70 else (5.0, 0)  # noqa: E731
    decisions = replay(settings(), traffic, 200)
    peak = max(d.replicas or 0 for d in decisions.values())
    assert peak == 10
    # Demand fell at 70 s; the panic window still saw it over 2x the ready replicas until the
    # window emptied, then panic holds the peak for a stable window (60 s) after that.
    last_over = max(t for t, d in decisions.items() if d.state.panic_since == T0 + t + 0.5)
    for t in range(70, last_over + 61):
        assert decisions[t].mode == "panic" and decisions[t].replicas == 10, t
    leaving = decisions[last_over + 61]
    assert leaving.mode == "stable"
    # Then stable mode with the scale-down rate: at most halving per decision.
    assert leaving.replicas == 5
    assert decisions[last_over + 62].replicas in (3, 2)


def test_scale_down_is_limited_to_halving_per_decision():
    scaling = settings()
    state = ScalerState()
    samples = [Sample(T0 + t, 1.0, 0) for t in range(60)]
    decision = decide(samples, T0 + 59.5, scaling, state, Observed(8, 8))
    assert decision.replicas == 4
    assert "max-scale-down-rate" in decision.reason
    decision = decide(samples, T0 + 59.5, scaling, state, Observed(5, 5))
    assert decision.replicas == 2  # floor(5 / 2)


def test_scale_up_is_limited_by_max_scale_up_rate():
    scaling = settings(config={"max-scale-up-rate": "2"})
    samples = [Sample(T0 + t, 70.0, 0) for t in range(60)]
    decision = decide(samples, T0 + 59.5, scaling, ScalerState(), Observed(1, 1))
    assert decision.replicas == 2
    assert "max-scale-up-rate" in decision.reason


def test_scale_to_zero_after_the_stable_window_and_the_grace_period():
    # min 0: the last busy second is 19; the 60 s window holds only idle seconds from 79 on;
    # active for over 60 s already, it goes inactive then and reaches 0 after the 30 s grace.
    scaling = settings(min_replicas=0)
    decisions = replay(scaling, lambda t: (3.0, 3) if t < 20 else (0.0, 0), 130)
    assert counts(decisions, 10, 78) == [1, 1]
    inactive = min(t for t, d in decisions.items() if d.state.inactive_since is not None)
    assert inactive == 79
    assert all(decisions[t].replicas == 1 for t in range(inactive, inactive + 30))
    assert decisions[inactive + 30].replicas == 0
    assert "no traffic for a stable window" in decisions[inactive + 30].reason


def test_scale_to_zero_waits_for_the_pod_retention_period_when_longer():
    scaling = settings(min_replicas=0, annotations={
        "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "45s"})  # fmt: skip
    decisions = replay(scaling, lambda t: (3.0, 3) if t < 20 else (0.0, 0), 140)
    assert decisions[79 + 44].replicas == 1
    assert decisions[79 + 45].replicas == 0


def test_a_revision_active_for_less_than_a_stable_window_keeps_one_replica():
    # No traffic at all: the first replica became ready at 0 s; it stays a stable window
    # (60 s), then the grace period (30 s), then goes.
    decisions = replay(settings(min_replicas=0), steady(0.0), 100)
    assert counts(decisions, 0, 59, 60, 89, 90) == [1, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("config", "min_replicas", "expected"),
    [
        ({"enable-scale-to-zero": "false"}, 0, 1),
        ({}, 1, 1),
        ({}, 2, 2),
    ],
    ids=["scale-to-zero disabled", "min 1", "min 2"],
)
def test_never_below_min_nor_to_zero_when_not_allowed(config, min_replicas, expected):
    decisions = replay(settings(min_replicas=min_replicas, config=config), steady(0.0), 200)
    assert decisions[199].replicas == expected


def test_never_above_max():
    decisions = replay(settings(max_replicas=4), steady(700.0), 10)
    assert {d.replicas for d in decisions.values()} == {4}
    assert "max 4" in decisions[9].reason


def test_rps_metric_scales_on_arrivals_per_second():
    # rps target 10 x 70% = 7 req/s per replica; 30 req/s -> 5 replicas.
    scaling = settings(metric="rps")
    decisions = replay(scaling, steady(0.5, 30), 70, start_replicas=5)
    assert decisions[69].replicas == 5
    assert decisions[69].observed_stable == 30.0
    assert decisions[69].explanation.startswith("stable: rps 30.00")


def test_container_concurrency_caps_the_target():
    # scaleTarget 10 but containerConcurrency 2: 2 x 70% = 1.4 in flight per replica.
    scaling = settings(container_concurrency=2)
    assert scaling.target == pytest.approx(1.4)
    decisions = replay(scaling, steady(7.0), 70, start_replicas=5)
    assert decisions[69].replicas == 5  # ceil(7 / 1.4)


def test_scale_down_delay_holds_the_highest_count_of_the_delay():
    scaling = settings(annotations={"autoscaling.knative.dev/scale-down-delay": "20s"})
    traffic = lambda t: (70.0, 0) if t < 60 else (7.0, 0)  # noqa: E731
    with_delay = replay(scaling, traffic, 260, start_replicas=10)
    without = replay(settings(), traffic, 260, start_replicas=10)
    first_down = min(t for t, d in without.items() if (d.replicas or 0) < 10)
    delayed_down = min(t for t, d in with_delay.items() if (d.replicas or 0) < 10)
    # Maxima are kept per 2 s tick (Knative's), so the delay is 18-20 s on 1 s decisions.
    assert 18 <= delayed_down - first_down <= 20


def test_initial_scale_is_kept_until_reached_once():
    scaling = settings(min_replicas=0, annotations={"autoscaling.knative.dev/initial-scale": "3"})
    assert initial_replicas(scaling) == 3
    samples = [Sample(T0, 0.0, 0)]
    starting = decide(samples, T0 + 0.5, scaling, ScalerState(), Observed(1, 3))
    assert starting.replicas == 3 and not starting.state.is_initialized
    reached = decide(samples, T0 + 0.5, scaling, ScalerState(), Observed(3, 3))
    assert reached.state.is_initialized and reached.replicas == 1  # halving from 3, min 0


def test_no_data_in_the_window_leaves_the_count_alone():
    decision = decide([Sample(T0 - 300, 50.0, 9)], T0, settings(), ScalerState(), Observed(2, 2))
    assert decision.replicas is None
    assert "no traffic data" in decision.explanation


def test_a_restarted_autoscaler_begins_in_panic_to_keep_a_busy_revision():
    state = initial_state(ready_replicas=6, now=T0)
    samples = [Sample(T0 + t, 1.0, 0) for t in range(5)]
    decision = decide(samples, T0 + 4.5, settings(), state, Observed(6, 6))
    assert (decision.mode, decision.replicas) == ("panic", 6)
    assert initial_state(1, T0) == ScalerState()


@pytest.mark.parametrize(
    ("samples", "window_s", "expected"),
    [
        ([(0, 4.0), (1, 6.0)], 60, 5.0),  # a partial window: only the seconds since data began
        ([(-1, 4.0), (1, 6.0)], 60, 10 / 3),  # a gap inside counts as 0
        ([(0, 4.0), (1, 6.0)], 1, 6.0),  # only the last second
        ([(-100, 50.0), (0, 3.0)], 60, 3.0),  # older than the window: left out
        ([], 60, None),
    ],
    ids=["partial", "gap", "one second", "old sample", "no data"],
)
def test_window_average_follows_knatives_buckets(samples, window_s, expected):
    found = window_average(
        [Sample(T0 + s, c, 0) for s, c in samples], T0 + 1.5, window_s, "concurrency"
    )
    assert found == (pytest.approx(expected, abs=1e-6) if expected is not None else None)


def test_window_average_excludes_trailing_seconds_without_data():
    # The last sample is 3 s old (the gateway stopped reporting): average what is known.
    samples = [Sample(T0 + s, 6.0, 0) for s in range(5)]
    assert window_average(samples, T0 + 7.2, 60, "concurrency") == 6.0


@pytest.mark.parametrize(
    ("utilization", "ready", "expected"),
    [
        ((160.0, 160.0), 2, 4),  # 160% of an 80% target: twice the replicas
        ((85.0, 85.0), 2, 2),  # within the 10% tolerance: no change
        ((20.0, 20.0, 20.0, 20.0), 4, 1),  # ceil(4 x 20 / 80)
        ((400.0,), 1, 5),
    ],
    ids=["double", "tolerance", "scale down", "one busy replica"],
)
def test_cpu_metric_uses_hpas_formula(utilization, ready, expected):
    scaling = settings(metric="cpu", target=None)
    assert scaling.target == 80.0
    decision = decide([], T0, scaling, ScalerState(), Observed(ready, ready, utilization))
    assert decision.replicas == expected
    assert decision.metric == "cpu"


def test_hpa_scale_down_is_stabilised_over_five_minutes():
    scaling = settings(metric="memory", target=50)
    state = ScalerState()
    busy = decide([], T0, scaling, state, Observed(2, 2, (100.0, 100.0)))
    assert busy.replicas == 4
    calm = decide([], T0 + 60, scaling, busy.state, Observed(4, 4, (10.0,) * 4))
    assert calm.replicas == 4 and "stabilised" in calm.reason
    later = decide([], T0 + 301, scaling, calm.state, Observed(4, 4, (10.0,) * 4))
    assert later.replicas == 1


def test_hpa_never_goes_to_zero_and_waits_for_a_measurement():
    scaling = settings(metric="cpu", min_replicas=0, target=None)
    assert decide([], T0, scaling, ScalerState(), Observed(1, 1)).replicas is None
    idle = decide([], T0, scaling, ScalerState(), Observed(1, 1, (0.0,)))
    assert idle.replicas == 1


def test_settings_object_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings().target = 1.0  # type: ignore[misc]


# -- KEDA on the replicas' own metrics (autoScaling.metrics, KServe's LLM autoscaling guide) --


def keda(min_replicas: int = 1, max_replicas: int = 5, target: str = "2",
         behavior: dict[str, object] | None = None) -> ScalingSettings:  # fmt: skip
    auto: dict[str, object] = {"metrics": [{"type": "External", "external": {
        "metric": {"backend": "prometheus", "serverAddress": "http://prometheus:9090",
                   "query": "sum(vllm:num_requests_running) + sum(vllm:num_requests_waiting)"},
        "target": {"type": "Value", "value": target}}}]}  # fmt: skip
    if behavior is not None:
        auto["behavior"] = behavior
    from ksrv.control import metric_query

    up, down = ((behavior or {}).get(k, {}).get("stabilizationWindowSeconds")  # type: ignore[union-attr]
                for k in ("scaleUp", "scaleDown"))  # fmt: skip
    intent = Autoscaling(
        min_replicas=min_replicas, max_replicas=max_replicas,
        annotations=(("serving.kserve.io/autoscalerClass", "keda"),),
        metrics=metric_query.metric_targets(auto), stabilization_s=(up, down),
    )  # fmt: skip
    resolved = settings_for(AutoscalerConfig(), intent, None)
    assert resolved is not None
    return resolved


def external(
    values: dict[int, float | None], until: int, scaling: ScalingSettings, replicas: int = 1
) -> dict[int, int]:
    """Tick every second over [0, until]: the query's value at each second (the last one
    given holds), the platform following at once; the replica counts decided."""
    state, chosen, value = ScalerState(), {}, None
    for second in range(until + 1):
        value = values.get(second, value)
        observed = Observed(replicas, replicas, external=value if replicas else None)
        decision = decide((), T0 + second, scaling, state, observed)
        state = decision.state
        if decision.replicas is not None:
            replicas = decision.replicas
        chosen[second] = replicas
    return chosen


def test_keda_query_scales_to_ceil_of_value_over_target_at_once() -> None:
    chosen = external({0: 1.0, 5: 4.0, 9: 9.0}, 12, keda(max_replicas=4))
    assert (chosen[4], chosen[5], chosen[9]) == (1, 2, 4)  # 4/2 = 2; 9/2 capped by max 4


def test_keda_scale_down_is_stabilised_for_the_scale_down_window() -> None:
    chosen = external({0: 6.0, 10: 0.0}, 320, keda())
    # 3 was last wanted at 9 s: kept for KServe's default 300 s window
    assert chosen[10] == 3 and chosen[308] == 3 and chosen[309] == 1


def test_keda_behavior_windows_replace_kserves_defaults() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 10},
                "scaleUp": {"stabilizationWindowSeconds": 5}}  # fmt: skip
    chosen = external({0: 2.0, 10: 6.0, 30: 2.0}, 45, keda(behavior=behavior))
    assert (chosen[13], chosen[14]) == (1, 3)  # up once 3 was all that was wanted for 5 s
    assert (chosen[38], chosen[39]) == (3, 1)


def test_keda_value_within_tolerance_keeps_the_count() -> None:
    assert external({0: 4.3}, 3, keda(), replicas=2)[3] == 2  # 2.15 per replica of 2: < 10%


def test_keda_min_zero_goes_to_zero_after_the_cooldown_and_no_data_changes_nothing() -> None:
    chosen = external({0: 1.0, 5: 0.0}, 320, keda(min_replicas=0))
    assert chosen[303] == 1 and chosen[304] == 0  # last active at 4 s
    assert external({0: None}, 5, keda())[5] == 1  # no replica answered: no decision


def test_keda_decision_explains_itself() -> None:
    decision = decide((), T0, keda(), ScalerState(), Observed(1, 1, external=5.0))
    assert decision.replicas == 3 and decision.mode == "external"
    assert decision.explanation.startswith(
        "external: sum(vllm:num_requests_running) + sum(vllm:num_requests_waiting) = 5 "
        "(target 2 per replica) -> 3 replica(s)"
    )


def test_keda_without_a_local_query_has_no_local_autoscaler() -> None:
    intent = Autoscaling(annotations=(("serving.kserve.io/autoscalerClass", "keda"),))
    assert settings_for(AutoscalerConfig(), intent, None) is None


def test_keda_threshold_that_is_not_positive_is_refused_naming_the_field():
    from ksrv.errors import ResourceInvalid

    with pytest.raises(ResourceInvalid, match=r"autoScaling.metrics\[0\].external.target.value"):
        keda(target="0")
