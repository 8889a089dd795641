"""KServe's InferenceGraph status from one pass: url, conditions, and `Stopped`.

Pure, as `service_status` is for InferenceServices. In Knative mode (the local default) the
conditions are those KServe copies from the router's Knative Service (`ConfigurationsReady`,
`RoutesReady`, `Ready`); in Standard mode only `Ready`, as KServe's PropagateRawStatus; both
end with KServe's `Stopped`. A graph waiting for an InferenceService is `Ready=False` with
KServe's reasons (`InferenceServiceNotFound`, `InferenceServiceNotReady`) naming it, while a
router already running keeps serving. The url (and the gateway's path form, `address.url`) is
set while the router is routable, as KServe sets it from a Ready Knative Service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ksrv.control.graph_plan import Waiting, ready_count
from ksrv.control.platforms.base import RevisionState
from ksrv.control.service_status import condition, drop_none, keep_transition_times

Document = dict[str, Any]


@dataclass(frozen=True)
class GraphView:
    """What one pass found for a graph."""

    generation: Any
    url: str
    address_url: str
    is_knative: bool = True
    waiting: Waiting | None = None
    latest: RevisionState | None = None
    """The router revision of the current spec; None while none was made (waiting)."""
    routed: RevisionState | None = None
    """The revision the graph's route sends to."""


def graph_status(view: GraphView, old: Document, now: float) -> Document:
    """The whole status of a graph that is not stopped."""
    configuration = _configuration(view.latest, view.routed)
    routes = _routes(view.routed, configuration)
    conditions = []
    if view.is_knative and view.latest is not None:
        conditions += [configuration, routes]
    if view.waiting is not None:
        ready = condition("Ready", False, view.waiting.reason, view.waiting.message)
    elif configuration["status"] == "True" and routes["status"] == "True":
        ready = condition("Ready", True, "", "")
    else:
        failing = configuration if configuration["status"] != "True" else routes
        ready = {**failing, "type": "Ready"}
    conditions += [ready, condition("Stopped", False, "", "")]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    is_routable = routes["status"] == "True"
    return drop_none(
        {
            "observedGeneration": view.generation,
            "url": view.url if is_routable else None,
            "address": {"url": view.address_url} if is_routable else None,
            "conditions": conditions,
        }
    )


def stopped_status(generation: Any, old: Document, now: float) -> Document:
    """KServe's status for a graph with `serving.kserve.io/stop: "true"`: no router runs."""
    conditions = [
        condition("Ready", False, "Stopped", "the InferenceGraph is stopped"),
        condition("Stopped", True, "", ""),
    ]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    return {"observedGeneration": generation, "conditions": conditions}


def failed_status(
    generation: Any, reason: str, message: str, old: Document, now: float
) -> Document:
    """A graph that runs nothing until its spec (or a name it clashes with) changes."""
    conditions = [condition("Ready", False, reason, message), condition("Stopped", False, "", "")]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    return {"observedGeneration": generation, "conditions": conditions}


def _configuration(latest: RevisionState | None, routed: RevisionState | None) -> Document:
    """Knative's `ConfigurationsReady`: the latest router revision has a ready replica (or
    runs at zero while it is the one routed: the gateway activates it on demand)."""
    if latest is None:
        return condition("ConfigurationsReady", None, "Waiting", "no router revision yet")
    name = latest.spec.revision
    at_zero = latest.spec.replicas == 0 and routed is not None and routed.spec.revision == name
    if ready_count(latest) or at_zero:
        return condition("ConfigurationsReady", True, "", "")
    failed = [r for r in latest.replicas if r.failures_in_a_row > 0]
    if latest.replicas and len(failed) == len(latest.replicas):
        last = next((str(r.last_failure) for r in failed if r.last_failure), "it exited")
        return condition("ConfigurationsReady", False, "RevisionFailed",
                         f"router revision {name} failed: {last}")  # fmt: skip
    return condition(
        "ConfigurationsReady", None, "Deploying", f"router revision {name} is starting"
    )


def _routes(routed: RevisionState | None, configuration: Document) -> Document:
    """Knative's `RoutesReady`: the route sends to a revision with a ready replica (or one
    at zero the gateway activates)."""
    if routed is not None and (ready_count(routed) or routed.spec.replicas == 0):
        return condition("RoutesReady", True, "", "")
    is_failed = configuration["status"] == "False"
    message = "no ready router replica to route to"
    return condition("RoutesReady", False if is_failed else None, "RevisionMissing", message)
