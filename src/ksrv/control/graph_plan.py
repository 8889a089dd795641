"""An InferenceGraph -> what its router runs, where its steps send, and which revision serves.

Pure decisions for `graph_reconciler`. Each `serviceName` step sends to that InferenceService
through the gateway (`address`: its `status.address.url`, the gateway's path form, plus
KServe's predict path), so the service's canaries, autoscaler and activator apply to the
graph's calls as to anyone's, and the router's argv does not change when the service rolls
out a revision. As KServe's controller requeues until each service has an address, a graph
waits (`Waiting`) until every service it names exists and is Ready; the first one it waits
for is named. The router is `ksrv router --graph-json JSON` (`api.graph_steps.graph_json`,
the text the Kubernetes platform hands its router too; with `--step-timeouts` from the graph's
`ksrv.dev/step-timeouts` annotation), probed on `/readyz`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ksrv.api import graph_steps, resources
from ksrv.api.inference_graph import STEP_TIMEOUTS_ANNOTATION, InferenceGraph
from ksrv.api.inference_service import InferenceService
from ksrv.control import revisions
from ksrv.control.plan import Autoscaling, scaling_intent
from ksrv.control.platforms.base import RevisionState
from ksrv.errors import ResourceInvalid

NOT_FOUND: Final = "InferenceServiceNotFound"
NOT_READY: Final = "InferenceServiceNotReady"
READINESS_PATH: Final = "/readyz"
DEPLOYMENT_MODE: Final = "serving.kserve.io/deploymentMode"
# ksrv's per-step timeouts (step name -> seconds, JSON), which the router takes as an argument.
STEP_TIMEOUTS: Final = STEP_TIMEOUTS_ANNOTATION

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why the graph cannot be (or stay) Ready: a service it names is missing or not Ready."""

    reason: str
    message: str
    service: str


@dataclass(frozen=True, slots=True)
class Steps:
    """Each named service's URL (those that exist), and the first service waited for."""

    urls: dict[str, str]
    waiting: Waiting | None


def resolve_steps(
    graph: InferenceGraph, services: Mapping[str, Document], address: Callable[[str], str]
) -> Steps:
    """Each `serviceName` step's URL: `address(service)` plus its predict path.

    Args:
        services: the stored InferenceServices of the graph's namespace, by name.
        address: where the platform reaches a service (`Platform.address_url`).
    """
    urls: dict[str, str] = {}
    waiting: Waiting | None = None
    for node, name in graph_steps.service_names(graph):
        found = services.get(name)
        problem = None
        if found is None:
            problem = Waiting(
                NOT_FOUND, f"InferenceService {name} (node {node}) is not found", name
            )
        else:
            try:
                isvc = resources.load({k: v for k, v in found.items() if k != "status"})
            except ResourceInvalid as exc:
                isvc, problem = None, Waiting(NOT_READY, f"InferenceService {name}: {exc}", name)
            if isinstance(isvc, InferenceService):
                urls[name] = f"{address(name)}{graph_steps.predict_path(isvc)}"
                why = _not_ready(found)
                if why is not None:
                    message = f"InferenceService {name} (node {node}) is not ready{why}"
                    problem = Waiting(NOT_READY, message, name)
        if waiting is None:
            waiting = problem
    return Steps(urls, waiting)


def _not_ready(isvc: Document) -> str | None:
    """None when the service is Ready; else its own reason, as `: reason: message`."""
    status = isvc.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for entry in conditions if isinstance(conditions, list) else ():
        if isinstance(entry, dict) and entry.get("type") == "Ready":
            if entry.get("status") == "True":
                return None
            detail = ": ".join(str(entry[k]) for k in ("reason", "message") if entry.get(k))
            return f": {detail}" if detail else ""
    return ""


def router_command(graph: InferenceGraph, urls: Mapping[str, str]) -> tuple[str, ...]:
    """The router's argv ("{python}" and "{http_port}" filled per replica by the platform).

    Raises:
        KeyError: a `serviceName` without a URL in `urls`.
    """
    text = graph_steps.graph_json(graph, lambda service, _: urls[service])
    command = ("{python}", "-m", "ksrv", "router", "--graph-json", text,
               "--http-port", "{http_port}")  # fmt: skip
    step_timeouts = (graph.metadata.annotations or {}).get(STEP_TIMEOUTS)
    return (*command, "--step-timeouts", step_timeouts) if step_timeouts else command


def router_autoscaling(graph: InferenceGraph) -> Autoscaling:
    """The router's replica bounds and scaling, from the graph's fields and annotations (as
    KServe's Knative reconciler turns them into the router's autoscaling annotations). An unset
    `minReplicas` is 1, as KServe sets the router's `min-scale` (DefaultMinReplicas)."""
    return scaling_intent(graph.spec, graph.metadata.annotations or {})


def deployment_mode(graph: InferenceGraph) -> str | None:
    """`Standard` for the annotation `Standard` or `RawDeployment`; else None (Knative, the
    local platform's default)."""
    mode = (graph.metadata.annotations or {}).get(DEPLOYMENT_MODE)
    return "Standard" if mode in ("Standard", "RawDeployment") else None


def revision_name(graph: str, number: int) -> str:
    return f"{graph}-{revisions.ROUTER}-{number:05d}"


def next_number(running: Sequence[RevisionState]) -> int:
    """The number of a new router revision: past every one still running (or draining)."""
    return max([0, *(revisions.number(state.spec.revision) for state in running)]) + 1


def routed_revision(running: Sequence[RevisionState], latest: str | None) -> str | None:
    """The revision the graph's route sends to: the latest once it has a ready replica (or
    runs at zero, activated on demand), else the newest one that has a ready replica, so a
    changed graph keeps answering while its new router starts; else the latest."""
    by_name = {state.spec.revision: state for state in running}
    latest_state = by_name.get(latest or "")
    if latest_state is not None and (ready_count(latest_state) or latest_state.spec.replicas == 0):
        return latest
    ordered = sorted(running, key=lambda s: revisions.number(s.spec.revision), reverse=True)
    for state in ordered:
        if ready_count(state):
            return state.spec.revision
    if latest is not None:
        return latest
    return ordered[0].spec.revision if ordered else None


def ready_count(state: RevisionState | None) -> int:
    return sum(replica.phase == "Ready" for replica in state.replicas) if state else 0
