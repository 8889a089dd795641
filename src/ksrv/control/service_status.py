"""KServe-shaped status from one pass's outcome: conditions, `components`, `modelStatus`.

Pure: the reconciler hands in what it decided and observed, this module only says it the way
KServe's controller does. A condition keeps its `lastTransitionTime` while its status stays.
A revision still starting is `Unknown` (Knative's "in progress"), not `False`: `Ready` is False
only for a failure, so `kubectl get isvc` shows READY Unknown while a rollout is under way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ksrv.api import conditions as api_conditions
from ksrv.control.plan import ComponentPlan
from ksrv.control.platforms.base import RevisionState
from ksrv.control.rollout import Rollout, Traffic
from ksrv.protocol.routes import BackendDoc, ShadowDoc

CONDITION_TYPES: Final = {
    "predictor": "PredictorReady",
    "transformer": "TransformerReady",
    "explainer": "ExplainerReady",
}


@dataclass
class ComponentOutcome:
    """One component after a pass: its plan, what the platform cannot honour, routes, status."""

    plan: ComponentPlan
    notes: tuple[str, ...] = ()
    backends: list[BackendDoc] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    is_ready: bool = False
    latest_state: RevisionState | None = None
    traffic: tuple[Traffic, ...] = ()
    """The rollout's split among the component's own revisions."""
    shadow: ShadowDoc | None = None
    """The revision copies of the requests go to (`ksrv.dev/shadow-percent`), if any."""

    @property
    def is_serving(self) -> bool:
        """A backend with a share of the traffic has a ready replica (one reached only by
        its tag does not count)."""
        return any(b["percent"] > 0 and b["replicas"] for b in self.backends)

    @property
    def is_routable(self) -> bool:
        """A replica to route to, or a revision at zero the gateway activates on demand."""
        return self.is_ready or self.is_serving

    def condition(self, condition_type: str) -> dict[str, Any]:
        if self.is_ready and self.plan.error is None:
            return condition(condition_type, True, "", "")
        failure = self.failure()
        if failure is not None:
            return condition(condition_type, False, failure.reason, failure.message)
        return condition(
            condition_type, None, "Starting", f"revision {self._latest_name()} is starting"
        )

    def failure(self) -> Failure | None:
        """Why the component is not ready when something failed, and whether it is terminal:
        a plan that cannot run, or loads of the latest revision that failed on every try."""
        if self.plan.error is not None:
            reason = self.plan.error_reason or api_conditions.INVALID_SPEC
            return Failure(reason, self.plan.error, is_terminal=True)
        replicas = self.latest_state.replicas if self.latest_state else []
        failed = [r for r in replicas if r.phase != "Ready" and r.failures_in_a_row > 0]
        if self.is_ready or not failed:
            return None
        last = next((str(r.last_failure) for r in failed if r.last_failure), "it failed")
        tries = api_conditions.LOAD_ATTEMPTS
        if len(failed) == len(replicas) and all(r.failures_in_a_row >= tries for r in failed):
            message = f"failed to load on {tries} tries (still retrying with back-off): {last}"
            return Failure(api_conditions.MODEL_LOAD_FAILED, message, is_terminal=True)
        attempt = max(r.failures_in_a_row for r in failed)
        message = f"try {attempt} of {tries} failed, retrying: {last}"
        return Failure(api_conditions.MODEL_LOAD_RETRYING, message, is_terminal=False)

    def model_status(self) -> dict[str, Any]:
        """KServe's `modelStatus` from the latest revision's replicas."""
        replicas = self.latest_state.replicas if self.latest_state else []
        # A replica restarting after a failed load still counts as a failed copy.
        failed = [r for r in replicas if r.phase != "Ready" and r.failures_in_a_row > 0]
        failure = self.failure()
        if self.plan.error is not None:
            transition, target = "InvalidSpec", "FailedToLoad"
        elif self.is_ready:
            transition, target = "UpToDate", "Loaded"
        elif failure is not None and failure.is_terminal:
            transition, target = "BlockedByFailedLoad", "FailedToLoad"
        else:
            transition, target = "InProgress", "Loading"
        status: dict[str, Any] = {
            "transitionStatus": transition,
            "states": {
                "activeModelState": "Loaded" if self.is_routable else "Pending",
                "targetModelState": target,
            },
            "copies": {"failedCopies": len(failed), "totalCopies": len(replicas)},
        }
        if failure is not None:
            exit_codes = [r.last_exit_code for r in failed]
            status["lastFailureInfo"] = drop_none(
                {
                    "location": self._latest_name(),
                    # KServe's failure reasons: a load that failed is ModelLoadFailed, retried
                    # or not; the condition's reason says whether tries are left.
                    "reason": (
                        api_conditions.MODEL_LOAD_FAILED
                        if failure.reason == api_conditions.MODEL_LOAD_RETRYING
                        else failure.reason
                    ),
                    "message": failure.message,
                    "modelRevisionName": self._latest_name(),
                    "exitCode": exit_codes[0] if exit_codes else None,
                }
            )
        return status

    def _latest_name(self) -> str | None:
        return self.latest_state.spec.revision if self.latest_state else None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a component is not ready; `is_terminal`: no waiting will change it (a new spec,
    runtime or model file may)."""

    reason: str
    message: str
    is_terminal: bool


@dataclass(frozen=True, slots=True)
class ComponentURLs:
    """Where a component is reached: its host form, its address, and each tag's host."""

    url: str
    address_url: str
    tags: dict[str, str] = field(default_factory=dict)


def component_status(
    decided: Rollout,
    latest: str | None,
    previous: dict[str, Any],
    ready_revisions: list[str],
    urls: ComponentURLs,
) -> dict[str, Any]:
    """`status.components[c]`: revisions created, ready and rolled out, traffic (a tagged
    entry with its own `url`, as Knative's route status has it), URLs."""
    return drop_none(
        {
            "latestCreatedRevision": latest or previous.get("latestCreatedRevision"),
            "latestReadyRevision": ready_revisions[-1] if ready_revisions else None,
            "latestRolledoutRevision": decided.rolled_out,
            "previousRolledoutRevision": decided.previous_rolled_out,
            "traffic": [
                drop_none(
                    {
                        "revisionName": share.revision,
                        "percent": share.percent,
                        "latestRevision": share.revision == latest,
                        "tag": share.tag,
                        "url": urls.tags.get(share.tag) if share.tag else None,
                    }
                )
                for share in decided.traffic
            ],
            "url": urls.url,
            "address": {"url": urls.address_url},
        }
    )


@dataclass(frozen=True)
class ServiceView:
    """What the service-level status says besides its components."""

    generation: Any
    url: str
    """KServe's host form, `http://{name}-{namespace}.{domain}`."""
    address_url: str
    """Where the service is reached directly (locally: the gateway's path form)."""
    entry: str
    notes: list[str]


def service_status(
    view: ServiceView,
    outcomes: dict[str, ComponentOutcome],
    old_status: dict[str, Any],
    now: float,
    canaries: Sequence[tuple[str, int, ComponentOutcome]] = (),
) -> dict[str, Any]:
    """The whole InferenceService status: conditions, URLs, components, modelStatus, and for
    Standard-mode canaries (name, trafficPercent, outcome) `CanaryPredictorReady` and
    `canaryStatuses`."""
    conditions = [outcome.condition(CONDITION_TYPES[c]) for c, outcome in outcomes.items()]
    entry = outcomes.get(view.entry)
    ingress_ready = entry is not None and entry.is_routable
    # No backend yet while the first revision starts is progress, not a failure.
    is_starting = (
        entry is not None and entry.condition(CONDITION_TYPES[view.entry])["status"] == "Unknown"
    )
    conditions.append(
        condition("IngressReady", ingress_ready, "", "")
        if ingress_ready
        else condition(
            "IngressReady",
            None if is_starting else False,
            "NoReadyBackend",
            "no ready replica to route to",
        )
    )
    is_ready = all(outcome.is_ready for outcome in outcomes.values()) and ingress_ready
    conditions.append(condition("Ready", True, "", "") if is_ready else _not_ready(conditions))
    if canaries:
        waiting = [name for name, _, outcome in canaries if not outcome.is_ready]
        conditions.append(
            condition("CanaryPredictorReady", True, "", "")
            if not waiting
            else condition(
                "CanaryPredictorReady", False, "CanaryNotReady",
                f"canary {', '.join(waiting)} not ready: the stable predictor takes its share",
            )
        )  # fmt: skip
    notes = [*view.notes, *(note for outcome in outcomes.values() for note in outcome.notes)]
    if notes:
        conditions.append(
            {
                "type": "LocalLimitations",
                "status": "True",
                "severity": "Info",
                "reason": "NotHonouredLocally",
                "message": "; ".join(notes),
            }
        )
    keep_transition_times(conditions, old_status.get("conditions") or [], now)
    status: dict[str, Any] = {
        "observedGeneration": view.generation,
        "url": view.url,
        "address": {"url": view.address_url},
        "conditions": conditions,
        "components": {component: outcome.status for component, outcome in outcomes.items()},
    }
    if canaries:
        status["canaryStatuses"] = [
            {"name": name, "ready": outcome.is_ready, "trafficPercent": percent,
             "modelStatus": outcome.model_status()}
            for name, percent, outcome in canaries
        ]  # fmt: skip
    predictor = outcomes.get("predictor")
    if predictor is not None:
        status["modelStatus"] = predictor.model_status()
        if predictor.plan.runtime:
            key = (
                "clusterServingRuntimeName"
                if predictor.plan.is_cluster_runtime
                else "servingRuntimeName"
            )
            status[key] = predictor.plan.runtime
    return status


def _not_ready(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """`Ready` False when a condition is False, else Unknown (still in progress); the first
    such condition's reason and every message that is not True."""
    failing = [c for c in conditions if c["status"] != "True"]
    # A terminal reason wins (`apply --wait` reads it to stop at once); Ready is False when a
    # condition is False, else Unknown (still in progress).
    is_failed = any(c["status"] == "False" for c in failing)
    first = [c for c in failing if c["status"] == "False"] if is_failed else failing
    reasons = [c["reason"] for c in first if c.get("reason")]
    terminal = [reason for reason in reasons if api_conditions.is_terminal(reason)]
    reason = (terminal or reasons or ["NotReady"])[0]
    message = "; ".join(c.get("message", "") for c in failing)
    return condition("Ready", False if is_failed else None, reason, message)


def stopped_status(generation: Any, old_status: dict[str, Any], now: float) -> dict[str, Any]:
    """KServe's status for a service with the `serving.kserve.io/stop` annotation."""
    conditions = [
        condition("PredictorReady", False, "Stopped", "the InferenceService is stopped"),
        condition("Ready", False, "Stopped", "the InferenceService is stopped"),
        condition("Stopped", True, "", ""),
    ]
    keep_transition_times(conditions, old_status.get("conditions") or [], now)
    return {"observedGeneration": generation, "conditions": conditions}


def not_supported_status(
    generation: Any, what: str, old_status: dict[str, Any], now: float, message: str = ""
) -> dict[str, Any]:
    """The status of a kind the local platform stores but does not serve (`message` says why
    when the general sentence does not fit)."""
    message = message or (
        f"{what} is not served by the local platform yet; the resource is stored as applied"
    )
    conditions = [condition("Ready", False, "NotSupportedLocally", message)]
    keep_transition_times(conditions, old_status.get("conditions") or [], now)
    return {"observedGeneration": generation, "conditions": conditions}


def condition(condition_type: str, ok: bool | None, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes condition; `ok` None is status Unknown."""
    status = "Unknown" if ok is None else str(ok)
    found: dict[str, Any] = {"type": condition_type, "status": status}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def keep_transition_times(conditions: list[dict[str, Any]], old: Any, now: float) -> None:
    """A condition keeps its lastTransitionTime while its status stays the same."""
    before = {
        condition["type"]: condition
        for condition in (old if isinstance(old, list) else [])
        if isinstance(condition, dict) and "type" in condition
    }
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    for found in conditions:
        previous = before.get(found["type"])
        if previous is not None and previous.get("status") == found["status"]:
            found["lastTransitionTime"] = previous.get("lastTransitionTime", stamp)
        else:
            found["lastTransitionTime"] = stamp


def mapping(value: Any) -> dict[str, Any]:
    """A status part as a mapping; anything else a client wrote there counts as empty."""
    return value if isinstance(value, dict) else {}


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
