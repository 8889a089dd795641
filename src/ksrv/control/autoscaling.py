"""The autoscaler at work: every routed revision gets a decision each tick and is resized.

The InferenceService reconciler says, on each pass, which revisions may scale and by which
settings (`track`, from the component's plan through `autoscaler_settings.settings_for`) and
asks how many replicas the latest revision should run (`replicas`). `run` ticks every
`TICK_S` (Knative's decider tick, so its rate limits mean the same): it reads each tracked
revision's per-second traffic from the gateways' reports (`TrafficSource`), has
`autoscaler.decide` choose a count and has the platform resize the revision. The last
decision is kept for the status (`status_entry`). `scaleMetric: cpu` is measured here
(`CPUMeter`: each ready replica's CPU time between ticks, in percent of one core, as no
CPU request is set locally), and `memory` too (`resident_bytes`: each ready replica's
resident memory, from /proc as for CPU, in percent of the serving container's memory
request or limit). A revision may go to zero (`minReplicas: 0`); the gateway's activator
then holds its requests and calls `activate`, which starts a replica at once rather than at
the next tick, and keeps it for a stable window as Knative's activation does. A KEDA query
(`autoScaling.metrics`) is evaluated each tick on the ready replicas' own /metrics
(`replica_metrics`): the engine's requests or tokens in flight of an LLM server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from ksrv.control import autoscaler, replica_metrics
from ksrv.control.autoscaler import Decision, Observed, Sample, ScalerState
from ksrv.control.autoscaler_config import AutoscalerConfig
from ksrv.control.autoscaler_settings import ScalingSettings, settings_for
from ksrv.control.plan import ComponentPlan
from ksrv.control.platforms.base import Platform, RevisionKey, RevisionState
from ksrv.protocol.traffic import ActivationDoc

logger = logging.getLogger(__name__)

TICK_S: Final = 2.0
# Decide half a second past the boundary: the gateways report the second that just ended
# within milliseconds of it, so the freshest second is in the window.
TICK_PHASE_S: Final = 0.5


class TrafficSource(Protocol):
    """Per-second traffic of a revision (`control.traffic.TrafficCollector` satisfies it)."""

    def samples(
        self, namespace: str, revision: str, now: float, window_s: float
    ) -> list[Sample]: ...


@dataclass(slots=True)
class _Tracked:
    settings: ScalingSettings
    state: ScalerState
    decision: Decision | None = None
    owner: str = "InferenceService"
    """The kind whose reconciler tracks it: each forgets only its own (`forget_except`)."""


class Autoscalers:
    """One autoscaler per tracked revision, ticking together."""

    def __init__(
        self,
        platform: Platform,
        traffic: TrafficSource,
        config: AutoscalerConfig | None = None,
        *,
        max_replicas: int | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
    ) -> None:
        """`max_replicas`: the platform's own cap, below any `maxReplicas`."""
        self.platform = platform
        self.traffic = traffic
        self.config = config or AutoscalerConfig()
        self.max_replicas = max_replicas
        self.clock = clock
        self.tick_s = tick_s
        self._tracked: dict[RevisionKey, _Tracked] = {}
        self.cpu = CPUMeter()
        self._http: httpx.AsyncClient | None = None

    def settings(
        self, plan: ComponentPlan, deployment_mode: str | None = None
    ) -> ScalingSettings | None:
        """The component's settings as this platform carries them out: at most the
        platform's cap; None when no autoscaler scales it.

        Raises:
            ResourceInvalid: an autoscaling field or annotation is not valid.
        """
        resolved = settings_for(
            self.config, plan.autoscaling, plan.container_concurrency, deployment_mode
        )
        if resolved is None:
            return None
        cap = self.max_replicas or 0
        high = min(resolved.max_scale or cap, cap) if cap else resolved.max_scale
        low = resolved.min_scale
        return dataclasses.replace(
            resolved,
            min_scale=min(low, high) if high else low,
            max_scale=high,
            initial_scale=max(1, resolved.initial_scale),
        )

    def track(
        self, key: RevisionKey, settings: ScalingSettings, owner: str = "InferenceService"
    ) -> None:
        """Scale `key` by `settings` from the next tick on (its state kept if tracked)."""
        tracked = self._tracked.get(key)
        if tracked is None:
            state = self.platform.observe().get(key)
            ready = _ready(state) if state is not None else 0
            initial = autoscaler.initial_state(ready, self.clock())
            self._tracked[key] = _Tracked(settings, initial, owner=owner)
        else:
            tracked.settings = settings

    def forget_except(self, wanted: set[RevisionKey], owner: str = "InferenceService") -> None:
        """Stop scaling the revisions `owner` tracks that are not `wanted`."""
        for key, tracked in list(self._tracked.items()):
            if tracked.owner == owner and key not in wanted:
                del self._tracked[key]

    def replicas(self, key: RevisionKey, settings: ScalingSettings) -> int:
        """How many replicas the revision should run: the last decision; without one, what
        runs (or its initial scale) kept within the bounds, which may have just changed."""
        tracked = self._tracked.get(key)
        decided = tracked.decision.replicas if tracked and tracked.decision else None
        if decided is not None:
            return decided
        state = self.platform.observe().get(key)
        if state is None:
            return autoscaler.initial_replicas(settings)
        return _within(state.spec.replicas, settings)

    def last(self, key: RevisionKey) -> Decision | None:
        tracked = self._tracked.get(key)
        return tracked.decision if tracked else None

    async def activate(self, activation: ActivationDoc) -> bool:
        """A gateway holds requests for a revision with no replica: run one now; True when
        this started one. The revision counts as active from now on, so the next ticks
        keep it for a stable window even before the held requests show in the traffic."""
        key = (activation["namespace"], activation["revision"])
        tracked = self._tracked.get(key)
        state = self.platform.observe().get(key)
        if tracked is None or state is None:
            return False
        now = self.clock()
        tracked.state = dataclasses.replace(tracked.state, active_since=now, inactive_since=None)
        if state.spec.replicas > 0:
            return False
        wanted = max(1, tracked.settings.min_scale)
        if tracked.decision is not None:
            reason = "activated: requests are held for it at the gateway"
            tracked.decision = dataclasses.replace(
                tracked.decision, replicas=wanted, reason=reason, state=tracked.state
            )
        logger.info("revision %s/%s: activated from zero", *key)
        await self.platform.ensure(dataclasses.replace(state.spec, replicas=wanted))
        return True

    async def run(self) -> None:
        """Tick every `tick_s`, `TICK_PHASE_S` past a wall-clock boundary, until cancelled."""
        while True:
            now = self.clock()
            await asyncio.sleep(self.tick_s - math.fmod(now - TICK_PHASE_S, self.tick_s))
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("autoscaler tick failed")

    async def tick(self) -> None:
        """One decision for every tracked revision; resize those whose count changed."""
        self.cpu.forget_except(
            {r.pid for s in self.platform.observe().values() for r in s.replicas if r.pid}
        )
        for key in list(self._tracked):
            tracked = self._tracked.get(key)
            state = self.platform.observe().get(key)
            if tracked is None or state is None:
                continue  # forgotten meanwhile, or not started yet
            now = self.clock()
            window = self.traffic.samples(key[0], key[1], now, tracked.settings.stable_window_s)
            external = await self._external(tracked.settings, state)
            observed = Observed(
                _ready(state), state.spec.replicas, self._usage(tracked, state), external
            )
            decision = autoscaler.decide(window, now, tracked.settings, tracked.state, observed)
            tracked.state, tracked.decision = decision.state, decision
            # No data to decide on: still honour bounds that changed (a new minReplicas).
            wanted = decision.replicas
            if wanted is None:
                wanted = _within(state.spec.replicas, tracked.settings)
            if wanted == state.spec.replicas:
                continue
            logger.info("revision %s/%s: %s", *key, decision.explanation)
            await self.platform.ensure(dataclasses.replace(state.spec, replicas=wanted))

    async def _external(self, settings: ScalingSettings, state: RevisionState) -> float | None:
        """The settings' query over the ready replicas' /metrics (None: none answered)."""
        if settings.query is None:
            return None
        addresses = [
            r.http_address for r in state.replicas if r.phase == "Ready" and r.http_address
        ]
        if not addresses:
            return None
        if self._http is None:
            self._http = httpx.AsyncClient()
        found = await replica_metrics.series(self._http, addresses)
        return None if found is None else settings.query.value(found)

    async def close(self) -> None:
        """Release the connections the metric reads keep open."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _usage(self, tracked: _Tracked, state: RevisionState) -> tuple[float, ...]:
        """Each ready replica's measured use, for the resource metrics (HPA's)."""
        settings = tracked.settings
        pids = [r.pid for r in state.replicas if r.phase == "Ready" and r.pid is not None]
        if settings.metric == "cpu":
            measured = [self.cpu.percent(pid) for pid in pids]
        elif settings.metric == "memory" and settings.memory_base_bytes:
            base = settings.memory_base_bytes
            measured = [
                None if (used := resident_bytes(pid)) is None else 100.0 * used / base
                for pid in pids
            ]
        else:
            return ()
        return tuple(value for value in measured if value is not None)


class CPUMeter:
    """Each process's CPU use since it was last read, in percent of one core (Linux /proc)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[int, tuple[float, float]] = {}

    def percent(self, pid: int) -> float | None:
        """None on the first read of `pid`, or when it is gone."""
        used_s = cpu_seconds(pid)
        if used_s is None:
            self._last.pop(pid, None)
            return None
        now = self.clock()
        last = self._last.get(pid)
        self._last[pid] = (now, used_s)
        if last is None or now <= last[0]:
            return None
        return 100.0 * max(0.0, used_s - last[1]) / (now - last[0])

    def forget_except(self, pids: set[int]) -> None:
        for pid in set(self._last) - pids:
            del self._last[pid]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time `pid` has used (fields 14 and 15 of /proc/PID/stat)."""
    try:
        # The command name may hold spaces and parentheses: split after its closing one.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int) -> float | None:
    """The memory `pid` holds in RAM (VmRSS of /proc/PID/status), as a container's working
    set counts it; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        return None
    return None


def status_entry(decision: Decision, state: RevisionState | None) -> dict[str, Any]:
    """The last decision as `status.components[c].autoscaler` shows it (values rounded so
    the status changes with the decision, not with every digit)."""
    return {
        "mode": decision.mode,
        "metric": decision.metric,
        "observedStable": round(decision.observed_stable, 1),
        "observedPanic": round(decision.observed_panic, 1),
        "target": round(decision.target, 2),
        "desiredReplicas": decision.replicas,
        "actualReplicas": _ready(state) if state is not None else 0,
        "reason": decision.reason,
    }


def _within(replicas: int, settings: ScalingSettings) -> int:
    replicas = max(replicas, settings.min_scale)
    return min(replicas, settings.max_scale) if settings.max_scale else replicas


def _ready(state: RevisionState) -> int:
    return sum(replica.phase == "Ready" for replica in state.replicas)
