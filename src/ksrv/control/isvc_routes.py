"""An InferenceService's entry in the route table the gateway pulls (docs/platform.md).

The reconciler decides what runs and what traffic each revision takes; this module writes that
down in the table's shape (`ksrv.protocol.routes`): each component's backends with their ready
replicas, a shadow, a terminal failure the gateway answers at once, and whether the service
requires a token (`serving.kserve.io/enable-auth`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ksrv.control import plan as planning
from ksrv.control import rollout
from ksrv.control.platforms.base import RevisionKey, RevisionState
from ksrv.control.service_status import ComponentOutcome
from ksrv.protocol import tokens
from ksrv.protocol.routes import BackendDoc, ComponentDoc, ReplicaDoc, ServiceDoc, ShadowDoc


def service_route(
    desired: planning.ServicePlan,
    outcomes: dict[str, ComponentOutcome],
    annotations: dict[str, str],
) -> ServiceDoc:
    """The service's entry in the route table (docs/platform.md, the route table)."""
    predictor = desired.components.get("predictor")
    route: ServiceDoc = {
        "namespace": desired.namespace,
        "name": desired.name,
        "timeout_s": predictor.timeout_s if predictor else planning.DEFAULT_TIMEOUT_S,
        "entry": desired.entry,
        # Every component, even without backends: the gateway answers 503, not 404.
        "components": {
            component: component_route(outcomes[component]) for component in desired.components
        },
    }
    if tokens.is_auth_enabled(annotations):
        route["enable_auth"] = True
    return route


def component_route(outcome: ComponentOutcome) -> ComponentDoc:
    route: ComponentDoc = {"backends": outcome.backends, "timeout_s": outcome.plan.timeout_s}
    if outcome.plan.container_concurrency:
        route["container_concurrency"] = outcome.plan.container_concurrency
    if outcome.shadow is not None:
        route["shadow"] = outcome.shadow
    workload = outcome.plan.workload
    if isinstance(workload, planning.ModelServer) and workload.is_multi_model:
        route["multi_model"] = True
    # Nothing to route to, and no waiting will change that: the gateway answers at once.
    failure = None if outcome.is_serving else outcome.failure()
    if failure is not None and failure.is_terminal:
        route["failed"] = f"{failure.reason}: {failure.message}"
    return route


def backends(
    namespace: str,
    shares: Iterable[tuple[rollout.Traffic, float]],
    observed: dict[RevisionKey, RevisionState],
) -> list[BackendDoc]:
    """The route table's backends: revisions with a share, with their ready replicas at the
    addresses the platform reports (none while scaled to zero or starting: the gateway holds
    their requests and asks for a replica). A tagged revision is listed whatever its share,
    so its tag URL reaches it alone."""
    backends = []
    for share, percent in shares:
        replicas = ready_replicas(observed.get((namespace, share.revision)))
        if share.tag or percent > 0:
            backend: BackendDoc = {
                "revision": share.revision,
                "percent": percent,
                "replicas": replicas,
            }
            if share.tag:
                backend["tag"] = share.tag
            backends.append(backend)
    return backends


def shadow(
    namespace: str, revision: str, percent: float, observed: dict[RevisionKey, RevisionState]
) -> ShadowDoc:
    """The route's shadow: the latest revision, its share of copies and its ready replicas."""
    replicas = ready_replicas(observed.get((namespace, revision)))
    return {"revision": revision, "percent": percent, "replicas": replicas}


def ready_replicas(state: RevisionState | None) -> list[ReplicaDoc]:
    """A revision's ready replicas at the addresses the platform reports."""
    replicas: list[ReplicaDoc] = []
    for replica in state.replicas if state else []:
        http = replica.http_address
        if replica.phase == "Ready" and http is not None:
            replicas.append({"http": http, "grpc": replica.grpc_address or ""})
    return replicas
