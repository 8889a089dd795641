"""A component's revisions as the management API serves them: Knative-shaped and read-only.

`revision_document` is pure: a `Revision` record from the store, the InferenceService it
belongs to (whose status holds the rollout's traffic split) and the platform's observed state
of the revision in; a `ksrv.dev/v1` Revision out, with Knative's status fields and conditions.
`desiredReplicas` is what the platform was last asked to run (`RevisionSpec.replicas`, which an
autoscaler sets); `status.autoscaler` is the autoscaler's last decision when one was reported.
`RevisionView` builds the documents on each read; none of this is stored. An InferenceGraph's
router revisions have no records: they are served from what the platform runs
(`router_revision_document`), labelled with the graph, their traffic the graph's route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from ksrv import errors
from ksrv.control import api_paths, graph_plan
from ksrv.control.platforms.base import ReplicaState, RevisionKey, RevisionState
from ksrv.control.revisions import REVISION, ROUTER, is_router, number
from ksrv.control.service_status import condition, mapping
from ksrv.control.store import Store

Document = dict[str, Any]

ISVC: Final = "InferenceService"
ISVC_API_VERSION: Final = "serving.kserve.io/v1beta1"
# KServe labels a component's Knative revisions with these; Knative adds its own.
ISVC_LABEL: Final = "serving.kserve.io/inferenceservice"
GRAPH: Final = "InferenceGraph"
GRAPH_LABEL: Final = "serving.kserve.io/inferencegraph"
COMPONENT_LABEL: Final = "component"
CONFIGURATION_LABEL: Final = "serving.knative.dev/configuration"
GENERATION_LABEL: Final = "serving.knative.dev/configurationGeneration"
ROUTING_STATE_LABEL: Final = "serving.knative.dev/routingState"
# Knative's reasons and messages, so `kubectl describe revision` habits carry over.
NO_TRAFFIC_MESSAGE: Final = "The target is not receiving traffic."


class ReplicaSource(Protocol):
    """What the platform runs (`Platform.observe`)."""

    def observe(self) -> dict[RevisionKey, RevisionState]: ...


class RevisionView:
    """Serves revisions for the management API (`api_server.RevisionSource`)."""

    def __init__(self, store: Store, platform: ReplicaSource) -> None:
        self.store = store
        self.platform = platform

    def list(self, namespace: str | None) -> list[Document]:
        """The revisions of one namespace (None: every namespace), by namespace and name."""
        observed = self.platform.observe()
        services = {_key(isvc): isvc for isvc in self.store.list(ISVC, namespace)}
        documents = []
        for record in self.store.list(REVISION, namespace):
            key = _key(record)
            isvc = services.get((key[0], record["spec"]["isvc"]))
            documents.append(revision_document(record, isvc, observed.get(key)))
        graphs = {_key(graph): graph for graph in self.store.list(GRAPH, namespace)}
        routers = _routers(observed, namespace)
        for (graph_namespace, graph_name), states in routers.items():
            graph = graphs.get((graph_namespace, graph_name))
            documents += [router_revision_document(state, states, graph) for state in states]
        return sorted(documents, key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))

    def get(self, namespace: str, name: str) -> Document:
        """One revision. Raises: ResourceNotFound."""
        observed = self.platform.observe()
        state = observed.get((namespace, name))
        if state is not None and is_router(state.spec):
            states = _routers(observed, namespace)[(namespace, state.spec.isvc)]
            try:
                graph: Document | None = self.store.get(GRAPH, namespace, state.spec.isvc)
            except errors.ResourceNotFound:
                graph = None
            return router_revision_document(state, states, graph)
        record = self.store.get(REVISION, namespace, name)
        try:
            isvc: Document | None = self.store.get(ISVC, namespace, record["spec"]["isvc"])
        except errors.ResourceNotFound:
            isvc = None
        return revision_document(record, isvc, observed.get((namespace, name)))


def _routers(
    observed: dict[RevisionKey, RevisionState], namespace: str | None
) -> dict[tuple[str, str], list[RevisionState]]:
    """The router revisions the platform runs, by graph."""
    found: dict[tuple[str, str], list[RevisionState]] = {}
    for state in observed.values():
        spec = state.spec
        if is_router(spec) and namespace in (None, spec.namespace):
            found.setdefault((spec.namespace, spec.isvc), []).append(state)
    return found


def router_revision_document(
    state: RevisionState, states: Sequence[RevisionState], graph: Document | None
) -> Document:
    """A graph's router revision as served: the graph's route sends all its traffic to one of
    its revisions (`graph_plan.routed_revision`, the newest taken as the latest)."""
    spec = state.spec
    latest = max((s.spec.revision for s in states), key=number)
    routed = graph_plan.routed_revision(states, latest) == spec.revision
    metadata: Document = {
        "name": spec.revision,
        "namespace": spec.namespace,
        "labels": {
            GRAPH_LABEL: spec.isvc,
            COMPONENT_LABEL: ROUTER,
            CONFIGURATION_LABEL: f"{spec.isvc}-{ROUTER}",
            GENERATION_LABEL: str(number(spec.revision)),
            ROUTING_STATE_LABEL: "active" if routed else "reserve",
        },
    }
    if graph is not None and graph["metadata"].get("uid"):
        metadata["ownerReferences"] = [_owner(graph)]
    traffic: Document = {"percent": 100 if routed else 0}
    if routed and spec.revision == latest:
        traffic["latestRevision"] = True
    return {
        "apiVersion": api_paths.REVISION.api_version,
        "kind": api_paths.REVISION.kind,
        "metadata": metadata,
        "spec": {"fingerprint": spec.fingerprint},
        "status": {
            "actualReplicas": _ready_count(state.replicas),
            "desiredReplicas": spec.replicas,
            "traffic": traffic,
            "replicas": [_replica(replica) for replica in state.replicas],
            "conditions": conditions(state),
        },
    }


def revision_document(
    record: Document, isvc: Document | None, state: RevisionState | None
) -> Document:
    """The served Revision: the record's identity, the service's traffic for it and the
    platform's replicas."""
    metadata = record["metadata"]
    spec = record["spec"]
    name, isvc_name, component = metadata["name"], spec["isvc"], spec["component"]
    components = mapping(mapping((isvc or {}).get("status")).get("components"))
    component_status = mapping(components.get(component))
    traffic = _traffic(component_status, name)
    labels = {
        ISVC_LABEL: isvc_name,
        COMPONENT_LABEL: component,
        CONFIGURATION_LABEL: f"{isvc_name}-{component}",
        GENERATION_LABEL: str(spec.get("number", "")),
        # Knative's: a revision some route names is active; others are kept in reserve.
        ROUTING_STATE_LABEL: "active" if traffic is not None else "reserve",
    }
    served_metadata: Document = {
        "name": name,
        "namespace": metadata.get("namespace") or "default",
        "uid": metadata.get("uid"),
        "creationTimestamp": metadata.get("creationTimestamp"),
        "labels": labels,
    }
    if isvc is not None and isvc["metadata"].get("uid"):
        served_metadata["ownerReferences"] = [_owner(isvc)]
    replicas = state.replicas if state is not None else []
    status: Document = {
        "actualReplicas": _ready_count(replicas),
        "desiredReplicas": state.spec.replicas if state is not None else 0,
        "traffic": traffic or {"percent": 0},
        "replicas": [_replica(replica) for replica in replicas],
        "conditions": conditions(state),
    }
    autoscaler = _autoscaler(record, component_status, name)
    if autoscaler is not None:
        status["autoscaler"] = autoscaler
    return {
        "apiVersion": api_paths.REVISION.api_version,
        "kind": api_paths.REVISION.kind,
        "metadata": {key: value for key, value in served_metadata.items() if value is not None},
        "spec": {"fingerprint": spec.get("fingerprint")},
        "status": status,
    }


def conditions(state: RevisionState | None) -> list[Document]:
    """Knative's revision conditions (sorted by type, as Knative lists them) from the replicas.

    `ContainerHealthy` is False while a replica fails and restarts (reason `ExitCode{n}` as
    Knative's, or `CrashLoopBackOff` without an exit code); `ResourcesAvailable` is Unknown
    while no replica is ready yet; `Active` is False at zero replicas. `Ready` is True when
    both of the first are, False when either is False, else Unknown.
    """
    if state is None:
        message = "the platform runs no replica of this revision"
        return [condition(kind, None, "NotRunning", message) for kind in _TYPES]
    replicas = state.replicas
    desired = state.spec.replicas
    ready = _ready_count(replicas)
    starting = sum(replica.phase == "Starting" for replica in replicas)
    at_zero = desired == 0 and ready == 0
    progress = f"{ready} of {desired} replicas ready, {starting} starting"
    healthy = _container_healthy(replicas, is_serving=ready > 0 or at_zero)
    resources = (
        condition("ResourcesAvailable", True, "", "")
        if ready > 0 or at_zero
        else condition("ResourcesAvailable", None, "Deploying", progress)
    )
    if ready > 0:
        active = condition("Active", True, "", "")
    elif at_zero:
        active = condition("Active", False, "NoTraffic", NO_TRAFFIC_MESSAGE)
    else:
        active = condition("Active", None, "Activating", progress)
    return [active, healthy, _ready(healthy, resources), resources]


_TYPES: Final = ("Active", "ContainerHealthy", "Ready", "ResourcesAvailable")


def _container_healthy(replicas: Sequence[ReplicaState], is_serving: bool) -> Document:
    failing = [r for r in replicas if r.phase != "Ready" and r.failures_in_a_row > 0]
    if failing:
        worst = max(failing, key=lambda replica: replica.failures_in_a_row)
        code = worst.last_exit_code
        # A signal is a negative code locally; Kubernetes reports it as 128 + the signal.
        reason = (
            "CrashLoopBackOff" if code is None else f"ExitCode{128 - code if code < 0 else code}"
        )
        what = _one_line(worst.last_failure or "it failed")
        message = (
            f"Container failed with: {what} (replica {worst.index}, "
            f"{worst.failures_in_a_row} failures in a row, restarting with back-off)"
        )
        return condition("ContainerHealthy", False, reason, message)
    if is_serving:
        return condition("ContainerHealthy", True, "", "")
    return condition("ContainerHealthy", None, "Deploying", "no replica is ready yet")


def _one_line(failure: str) -> str:
    """A replica's failure (what happened, then its log's tail) as one line: what happened and
    the log's last line, where the error usually is."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    head = lines[0].removesuffix("; log tail:")
    return f"{head}: {lines[-1]}" if len(lines) > 1 else head


def _ready(healthy: Document, resources: Document) -> Document:
    parts = (healthy, resources)
    failed = [part for part in parts if part["status"] == "False"]
    if failed:
        return condition("Ready", False, failed[0]["reason"], failed[0]["message"])
    pending = [part for part in parts if part["status"] == "Unknown"]
    if pending:
        return condition("Ready", None, pending[0]["reason"], pending[0]["message"])
    return condition("Ready", True, "", "")


def _traffic(component_status: Document, name: str) -> Document | None:
    """This revision's entry of the component's `status.traffic` (the rollout's decision)."""
    for entry in component_status.get("traffic") or []:
        if isinstance(entry, dict) and entry.get("revisionName") == name:
            found = {"percent": entry.get("percent", 0)}
            if entry.get("tag"):
                found["tag"] = entry["tag"]
            if entry.get("latestRevision") is True:
                found["latestRevision"] = True
            return found
    return None


def _autoscaler(record: Document, component_status: Document, name: str) -> Document | None:
    """The autoscaler's last decision for this revision: on the record's own status, else the
    component's `status.autoscaler` when it names this revision."""
    own = mapping(record.get("status")).get("autoscaler")
    if isinstance(own, dict):
        return own
    reported = component_status.get("autoscaler")
    if isinstance(reported, dict) and reported.get("revisionName") == name:
        return {key: value for key, value in reported.items() if key != "revisionName"}
    return None


def _replica(replica: ReplicaState) -> Document:
    found: Document = {"index": replica.index, "phase": replica.phase, "restarts": replica.restarts}
    if replica.http_address is not None:
        found["address"] = replica.http_address
    if replica.last_exit_code is not None:
        found["lastExitCode"] = replica.last_exit_code
    return found


def _ready_count(replicas: Sequence[ReplicaState]) -> int:
    return sum(replica.phase == "Ready" for replica in replicas)


def _owner(owner: Document) -> Document:
    """The owner reference to an InferenceService (or an InferenceGraph)."""
    return {
        "apiVersion": owner.get("apiVersion", ISVC_API_VERSION),
        "kind": owner.get("kind", ISVC),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _key(document: Document) -> RevisionKey:
    metadata = document["metadata"]
    return metadata.get("namespace") or "default", metadata["name"]
