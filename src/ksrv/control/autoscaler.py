"""How many replicas a revision should run: Knative's KPA (and HPA's formula), as a pure function.

`decide(window, now, settings, state, observed)` reads per-second traffic samples (the
gateway's, `Sample`: average requests in flight and arrivals in each second), the revision's
resolved settings (`autoscaler_settings.ScalingSettings`), what the platform runs now
(`Observed`) and the state the previous decision left (`ScalerState`), and returns a
`Decision`: the replica count, why (stable or panic, the observed values, the target), and
the next state. The caller keeps the state between ticks; time is a parameter, so tests
drive it with a clock of their own.

KPA, as Knative's `autoscaler.Scale` + the KPA scaler: average the metric over the stable
window (60 s) and the panic window (6 s) of one-second buckets (a partial window when data
starts late; seconds without a sample inside it count as 0, trailing ones not at all); want
ceil(average / target) replicas, at most `max-scale-up-rate` x and at least 1 /
`max-scale-down-rate` of the ready ones per decision; panic when the panic window wants
`panic-threshold` x the ready replicas, and while panicking never scale down, until a stable
window has passed since demand was last that high; hold a scale-down for `scale-down-delay`;
bound by min/max (and `initial-scale` until it was reached once); go to zero only with
min 0 and scale to zero enabled, after a stable window with no traffic and then
max(grace period, pod retention) more. cpu/memory follow HPA: ceil(ready x utilisation /
target) outside a 10% tolerance, scale-down stabilised over 5 minutes. `external` (a KEDA
query on the replicas' own metrics, `Observed.external`) follows the HPA KEDA makes: an
AverageValue target, stabilisation windows, and KEDA's cooldown to zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from ksrv.control.autoscaler_settings import HPA_DOWNSCALE_STABILIZATION_S, ScalingSettings

# Knative ticks its deciders every 2 s; the scale-down delay keeps maxima per tick.
DELAY_GRANULARITY_S: Final = 2.0
HPA_TOLERANCE: Final = 0.1

Mode = Literal["stable", "panic", "external"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of one revision's traffic, as the gateway counted it."""

    second: int
    """The wall-clock second (`int(time.time())`) the sample was taken at: it covers the
    second before (Knative files a scrape at time t under t)."""
    concurrency: float
    """Requests in flight, averaged over that second."""
    requests: int
    """Requests that arrived in that second."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What the platform runs for the revision now."""

    ready_replicas: int
    replicas: int
    """Replicas asked for (ready or not)."""
    utilization: tuple[float, ...] = ()
    """cpu or memory use of each ready replica, in percent of its target base (HPA)."""
    external: float | None = None
    """`external`: the query's value over the ready replicas (None: none answered)."""


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What one decision leaves for the next (Knative keeps the same in its autoscaler and
    PodAutoscaler status)."""

    panic_since: float | None = None
    """When demand last crossed the panic threshold; None when not panicking."""
    max_panic_replicas: int = 0
    delay_window: tuple[tuple[int, int], ...] = ()
    """(tick index, replicas) maxima for the scale-down delay / HPA stabilisation."""
    is_initialized: bool = False
    """`initial-scale` replicas were ready once."""
    active_since: float | None = None
    inactive_since: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A replica count (None: no data yet, leave it as it is), why, and the next state."""

    replicas: int | None
    mode: Mode
    metric: str
    observed_stable: float
    observed_panic: float
    target: float
    reason: str
    state: ScalerState

    @property
    def explanation(self) -> str:
        """One line for `ksrv describe`."""
        if self.metric in ("cpu", "memory"):
            observed = f"{self.metric} {self.observed_stable:.1f}% (target {self.target:g}%)"
        elif self.mode == "external":
            observed = (
                f"{self.metric} = {self.observed_stable:g} (target {self.target:g} per replica)"
            )
        else:
            observed = (
                f"{self.metric} {self.observed_stable:.2f} stable / {self.observed_panic:.2f} "
                f"panic (target {self.target:.2f} per replica)"
            )
        wanted = "no change" if self.replicas is None else f"{self.replicas} replica(s)"
        return f"{self.mode}: {observed} -> {wanted}: {self.reason}"


def initial_state(ready_replicas: int, now: float) -> ScalerState:
    """The state a (re)started autoscaler begins with: panicking when more than one replica
    runs, so lost metric history never scales a busy revision down (Knative does the same)."""
    if ready_replicas > 1:
        return ScalerState(panic_since=now, max_panic_replicas=ready_replicas)
    return ScalerState()


def initial_replicas(settings: ScalingSettings) -> int:
    """How many replicas a new revision starts with: `initial-scale` within min and max."""
    return _bounded(max(settings.min_scale, settings.initial_scale), settings)


def window_average(
    samples: Sequence[Sample], now: float, window_s: float, metric: str
) -> float | None:
    """The metric's average over the `window_s` seconds up to `now`, as Knative's
    `TimedFloat64Buckets.WindowAverage` (None when no sample falls in the window)."""
    last_second = math.floor(now)
    first_allowed = last_second - math.ceil(window_s) + 1
    inside = [s for s in samples if first_allowed <= s.second <= last_second]
    if not inside:
        return None
    first = min(s.second for s in inside)
    last = max(s.second for s in inside)
    total = sum(s.requests if metric == "rps" else s.concurrency for s in inside)
    return round(total / (last - first + 1), 6)


def decide(
    window: Sequence[Sample],
    now: float,
    settings: ScalingSettings,
    state: ScalerState,
    observed: Observed,
) -> Decision:
    """The revision's replica count now, why, and the state for the next call."""
    if settings.query is not None:
        return _decide_external(now, settings, state, observed)
    if not settings.is_kpa:
        return _decide_hpa(now, settings, state, observed)
    stable = window_average(window, now, settings.stable_window_s, settings.metric)
    panic = window_average(window, now, settings.panic_window_s, settings.metric)
    mode: Mode = "panic" if state.panic_since is not None else "stable"
    if stable is None:
        return Decision(None, mode, settings.metric, 0.0, 0.0, settings.target,
                        "no traffic data yet", state)  # fmt: skip
    panic = panic or 0.0
    ready = max(1, observed.ready_replicas)
    max_up = math.ceil(settings.max_scale_up_rate * ready)
    max_down = math.floor(ready / settings.max_scale_down_rate)
    want_stable = math.ceil(stable / settings.target)
    want_panic = math.ceil(panic / settings.target)
    desired_stable = min(max(want_stable, max_down), max_up)
    desired_panic = min(max(want_panic, max_down), max_up)
    state, desired, mode = _panic(now, settings, state, desired_stable, desired_panic,
                                  want_panic / ready >= settings.panic_threshold)  # fmt: skip
    reason = _why(want_stable if mode == "stable" else max(want_stable, want_panic), desired,
                  max_up, max_down, mode)  # fmt: skip
    if settings.scale_down_delay_s > 0:
        state, delayed = _delay(state, now, desired, settings.scale_down_delay_s)
        if delayed != desired:
            reason = f"scale-down to {desired} delayed by scale-down-delay"
            desired = delayed
    replicas, state, reason = _bounds_and_zero(now, settings, state, observed, desired, reason)
    return Decision(replicas, mode, settings.metric, stable, panic, settings.target, reason, state)


def _panic(
    now: float,
    settings: ScalingSettings,
    state: ScalerState,
    desired_stable: int,
    desired_panic: int,
    is_over_threshold: bool,
) -> tuple[ScalerState, int, Mode]:
    """Enter, extend or leave panic mode; while in it, only ever scale up."""
    panic_since = state.panic_since
    max_panic = state.max_panic_replicas
    if is_over_threshold:
        panic_since = now  # entering, or still over the threshold: the panic goes on
    elif panic_since is not None and panic_since + settings.stable_window_s < now:
        panic_since, max_panic = None, 0  # the surge has made its way into the stable window
    if panic_since is None:
        return replace(state, panic_since=None, max_panic_replicas=0), desired_stable, "stable"
    max_panic = max(max_panic, desired_stable, desired_panic)
    return replace(state, panic_since=panic_since, max_panic_replicas=max_panic), max_panic, "panic"


def _why(wanted: int, desired: int, max_up: int, max_down: int, mode: Mode) -> str:
    if desired == max_up and wanted > max_up:
        return f"{wanted} wanted, capped by max-scale-up-rate"
    if desired == max_down and wanted < max_down:
        return f"{wanted} wanted, held by max-scale-down-rate"
    if mode == "panic" and desired > wanted:
        return f"{wanted} wanted, no scale-down while panicking"
    return f"{wanted} wanted"


def _delay(state: ScalerState, now: float, desired: int, delay_s: float) -> tuple[ScalerState, int]:
    """Knative's scale-down delay: the largest count wanted over the last `delay_s`."""
    size = math.ceil(delay_s / DELAY_GRANULARITY_S)
    index = int(now // DELAY_GRANULARITY_S)
    kept = [(i, v) for i, v in state.delay_window if index - i < size]
    if kept and kept[-1][0] == index:
        desired_here = max(desired, kept[-1][1])
        kept.pop()
    else:
        desired_here = desired
    # Descending maxima: an entry no larger than a newer one can never be the maximum again.
    while kept and kept[-1][1] <= desired_here:
        kept.pop()
    kept.append((index, desired_here))
    return replace(state, delay_window=tuple(kept)), kept[0][1]


def _bounds_and_zero(
    now: float,
    settings: ScalingSettings,
    state: ScalerState,
    observed: Observed,
    desired: int,
    reason: str,
) -> tuple[int, ScalerState, str]:
    """Knative's KPA scaler: min/max (and initial scale), then the rules for reaching 0."""
    low = settings.min_scale
    if not state.is_initialized and observed.ready_replicas >= max(1, settings.initial_scale):
        state = replace(state, is_initialized=True)
    if not state.is_initialized:
        # Until initial-scale replicas were ready once, keep them (Knative's activation).
        low = max(low, settings.initial_scale)
    bounded = _bounded(max(desired, low), settings)
    if bounded != desired:
        reason = f"{reason}; kept within min {low} / max {settings.max_scale or 'unbounded'}"
    # Active (Knative's PodAutoscaler condition): ready replicas, and demand or never idle.
    is_wanted = bounded > 0 or state.inactive_since is None
    if observed.ready_replicas > 0 and state.active_since is None and is_wanted:
        state = replace(state, active_since=now, inactive_since=None)
    if bounded > 0:
        return bounded, state, reason
    if not settings.enable_scale_to_zero:
        return 1, state, f"{reason}; scale to zero is disabled"
    if state.active_since is not None:
        active_s = now - state.active_since
        if active_s < settings.stable_window_s:
            return 1, state, f"{reason}; active for {active_s:.0f}s, under the stable window"
        state = replace(state, active_since=None, inactive_since=now)
    inactive_since = state.inactive_since if state.inactive_since is not None else now
    state = replace(state, inactive_since=inactive_since)
    wait_s = max(settings.scale_to_zero_grace_period_s,
                 settings.scale_to_zero_pod_retention_period_s)  # fmt: skip
    idle_s = now - inactive_since
    if idle_s >= wait_s:
        return 0, state, f"{reason}; no traffic for a stable window and {wait_s:g}s more"
    keep = max(1, observed.replicas) if observed.replicas else 0
    return keep, state, f"{reason}; inactive for {idle_s:.0f}s of the {wait_s:g}s grace period"


def _bounded(replicas: int, settings: ScalingSettings) -> int:
    if settings.max_scale and replicas > settings.max_scale:
        return settings.max_scale
    return max(replicas, settings.min_scale)


def _decide_hpa(
    now: float, settings: ScalingSettings, state: ScalerState, observed: Observed
) -> Decision:
    """HPA's resource formula on measured utilisation, with its 5-minute scale-down
    stabilisation; HPA never scales to zero."""
    metric = settings.metric
    if not observed.utilization or observed.ready_replicas == 0:
        return Decision(None, "stable", metric, 0.0, 0.0, settings.target,
                        f"no {metric} measurement yet", state)  # fmt: skip
    average = sum(observed.utilization) / len(observed.utilization)
    ratio = average / settings.target
    current = observed.replicas
    if abs(ratio - 1.0) <= HPA_TOLERANCE:
        wanted, reason = current, f"within the {HPA_TOLERANCE:.0%} tolerance"
    else:
        wanted = math.ceil(ratio * observed.ready_replicas)
        reason = f"{wanted} wanted"
    floor = max(1, settings.min_scale)
    wanted = min(max(wanted, floor), settings.max_scale or max(wanted, floor))
    # The largest recommendation of the stabilisation window, on one-second ticks.
    size = int(HPA_DOWNSCALE_STABILIZATION_S)
    index = int(now)
    kept = tuple((i, v) for i, v in state.delay_window if index - i < size)
    recommendations = (*kept, (index, wanted))
    stabilised = max(v for _, v in recommendations)
    if stabilised > wanted:
        reason = f"{reason}; scale-down stabilised at {stabilised} over 5 minutes"
    state = replace(state, delay_window=recommendations)
    return Decision(stabilised, "stable", metric, average, average, settings.target, reason, state)


def _decide_external(
    now: float, settings: ScalingSettings, state: ScalerState, observed: Observed
) -> Decision:
    """KEDA's ScaledObject as its HPA runs it. KServe writes a Prometheus trigger without a
    metricType, so KEDA's AverageValue: ceil(value / target) replicas, unless the value per
    replica is within HPA's 10% tolerance of the target. The recommendation is stabilised
    (HPA: the lowest of the scale-up window, the highest of the scale-down window). With min
    0, KEDA deactivates once the value has been 0 for its cooldown; a revision at zero is
    woken by the gateway's activator (no replica, no metrics)."""
    assert settings.query is not None
    name, value = settings.query.text, observed.external
    current = observed.replicas
    if value is None or current == 0:
        why = "at zero until a request wakes it" if current == 0 else "no metrics read yet"
        return Decision(None, "external", name, 0.0, 0.0, settings.target, why, state)
    if abs(value / (settings.target * current) - 1.0) <= HPA_TOLERANCE:
        wanted, reason = current, f"within the {HPA_TOLERANCE:.0%} tolerance"
    else:
        wanted = math.ceil(value / settings.target)
        reason = f"{wanted} wanted"
    floor = max(1, settings.min_scale)
    wanted = min(max(wanted, floor), settings.max_scale or max(wanted, floor))
    index = int(now)
    up_s, down_s = settings.scale_up_window_s, settings.scale_down_window_s
    kept = tuple((i, v) for i, v in state.delay_window if index - i < max(up_s, down_s))
    lowest_up = min([v for i, v in kept if index - i < up_s] + [wanted])
    highest_down = max([v for i, v in kept if index - i < down_s] + [wanted])
    replicas = min(max(current, lowest_up), highest_down)
    if replicas != wanted:
        reason = f"{reason}; stabilised at {replicas}"
    last_active = now if value > 0 or state.active_since is None else state.active_since
    state = replace(state, delay_window=(*kept, (index, wanted)), active_since=last_active)
    if settings.min_scale == 0 and value <= 0 and now - last_active >= settings.cooldown_s:
        replicas, reason = 0, f"{name} has been 0 for the {settings.cooldown_s:g}s cooldown"
    return Decision(replicas, "external", name, value, value, settings.target, reason, state)
