"""One pass over one InferenceGraph on a cluster: resolve its steps, render the router, apply,
clean up, and write KServe's InferenceGraph status.

As KServe's `inferencegraph` controller: every `serviceName` step needs that InferenceService
to exist and to have an address (`status.address.url`, set once it has been Ready); until then
the pass says which one it waits for and is retried (`Retry`). The router's objects belong to
the graph (controller ownerReference, label `serving.kserve.io/inferencegraph`), so the
cluster's garbage collector removes them with it; the operator also deletes them when it sees
the graph go. Status: `Ready` and `url` from the router's Deployment (Standard mode, by the same
rules as an InferenceService's) or Knative Service (its conditions, its url once Ready), and
KServe's `Stopped` condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.api import conditions as api_conditions
from ksrv.api import resources
from ksrv.api.inference_graph import InferenceGraph
from ksrv.api.inference_service import InferenceService
from ksrv.control.service_status import condition, drop_none, keep_transition_times, mapping
from ksrv.errors import ResourceInvalid
from ksrv.k8s import apply, cluster_view, graph, naming, render, service_endpoint, status
from ksrv.k8s.client import Api, ApiFailure
from ksrv.k8s.config import KNATIVE, ClusterConfig
from ksrv.k8s.outcome import (
    DEPENDENT_VERSION,
    ISVC_VERSION,
    REFUSED,
    Rejected,
    Retry,
    Settings,
    failed_status,
    write_status,
)
from ksrv.k8s.reconcile import KSVC_VERSION, STOP_ANNOTATION

# What the renderer may make for a graph, searched for leftovers.
GRAPH_KINDS: Final = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    (KSVC_VERSION, "Service"),
)
NOT_FOUND: Final = "InferenceServiceNotFound"
NOT_READY: Final = "InferenceServiceNotReady"


class Waiting(Exception):
    """A step's InferenceService is missing or has no address yet."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def reconcile_graph(
    api: Api, namespace: str, name: str, settings: Settings, now: Callable[[], float] = time.time
) -> dict[str, Any] | None:
    """Bring the cluster to what the InferenceGraph says; its new status (None: it is gone)."""
    body = api.get(DEPENDENT_VERSION, "InferenceGraph", name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    old = mapping(body.get("status"))
    generation = body["metadata"].get("generation")
    try:
        resource = resources.load(body)
    except ResourceInvalid as exc:
        new = failed_status(generation, api_conditions.INVALID_SPEC, str(exc), old, now())
        write_status(api, body, new)
        raise Rejected(str(exc)) from None
    assert isinstance(resource, InferenceGraph)
    try:
        return _pass(api, body, resource, settings, now)
    except Waiting as waiting:
        new = failed_status(generation, waiting.reason, str(waiting), old, now())
        write_status(api, body, new)
        # A change of the InferenceService wakes the graph (`is_waiting_for`); this is a backstop.
        raise Retry(str(waiting), settings.slow_retry_delay_s) from None
    except ApiFailure as failure:
        if failure.is_transient:
            raise Retry(str(failure), settings.retry_delay_s) from None
        write_status(api, body, failed_status(generation, "ApplyFailed", failure.message, old,
                                              now()))  # fmt: skip
        if failure.status in REFUSED:
            raise Rejected(failure.message) from None
        raise Retry(failure.message, settings.slow_retry_delay_s) from None
    except ResourceInvalid as exc:  # the configuration, or a graph the renderer refuses
        reason = exc.reason or "InvalidConfig"
        write_status(api, body, failed_status(generation, reason, str(exc), old, now()))
        raise Retry(str(exc), settings.slow_retry_delay_s) from None


def is_waiting_for(body: dict[str, Any], service: str) -> bool:
    """Whether a graph (as listed) is not Ready and has a step sending to `service`."""
    conditions = mapping(body.get("status")).get("conditions") or ()
    if any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
           for c in conditions):  # fmt: skip
        return False
    nodes = mapping(mapping(body.get("spec")).get("nodes"))
    return any(
        isinstance(step, dict) and step.get("serviceName") == service
        for node in nodes.values()
        for step in mapping(node).get("steps") or ()
    )


def delete_graph(api: Api, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Delete the router objects of a graph that is gone (the collector would, in time)."""
    owner = apply.Owner.of(body, naming.GRAPH_LABEL)
    return apply.delete_owned(api, owner, GRAPH_KINDS)


def _pass(
    api: Api,
    body: dict[str, Any],
    ig: InferenceGraph,
    settings: Settings,
    now: Callable[[], float],
) -> dict[str, Any]:
    old = mapping(body.get("status"))
    generation = body["metadata"].get("generation")
    owner = apply.Owner.of(body, naming.GRAPH_LABEL)
    config = cluster_view.cluster_config(api, settings.config_namespace)
    if ig.metadata.annotations.get(STOP_ANNOTATION, "").lower() == "true":
        apply.collect_garbage(api, owner, [], GRAPH_KINDS)
        conditions = [condition("Ready", False, "Stopped", "the InferenceGraph is stopped"),
                      condition("Stopped", True, "", "")]  # fmt: skip
        keep_transition_times(conditions, old.get("conditions") or [], now())
        new = {"observedGeneration": generation, "conditions": conditions}
        write_status(api, body, new)
        return new
    urls = step_urls(api, ig, config)
    objects = graph.graph_objects(ig, config, lambda service, _: urls[service])
    applied = [apply.apply(api, obj, owner) for obj in objects]
    apply.collect_garbage(api, owner, objects, GRAPH_KINDS)
    is_knative = graph.graph_mode(ig, config) == KNATIVE
    kind = "Service" if is_knative else "Deployment"
    api_version = KSVC_VERSION if is_knative else "apps/v1"
    router = next(
        (o for o in applied if o["kind"] == kind and o["apiVersion"] == api_version), None
    )
    new = graph_status(ig, config, router, is_knative, old, now())
    write_status(api, body, new)
    return new


def step_urls(api: Api, ig: InferenceGraph, config: ClusterConfig) -> dict[str, str]:
    """Each `serviceName` step's URL, from the live InferenceServices (KServe's
    GetPredictorEndpoint); `Waiting` names the first one that is missing or has no address."""
    namespace = ig.metadata.namespace or "default"
    urls: dict[str, str] = {}
    for node_name in sorted(ig.spec.nodes):
        for step in ig.spec.nodes[node_name].steps or ():
            service = step.service_name
            if not service or step.service_url or service in urls:
                continue
            found = api.get(ISVC_VERSION, "InferenceService", service, namespace)
            if found is None:
                raise Waiting(NOT_FOUND, f"InferenceService {service} (node {node_name}) is "
                                         "not found")  # fmt: skip
            if not mapping(mapping(found.get("status")).get("address")).get("url"):
                raise Waiting(NOT_READY, f"InferenceService {service} (node {node_name}) is "
                                         "not ready")  # fmt: skip
            try:
                isvc = resources.load(found)
            except ResourceInvalid as exc:
                raise Waiting(NOT_READY, f"InferenceService {service}: {exc}") from None
            assert isinstance(isvc, InferenceService)
            mode = render.deployment_mode(isvc, config)
            urls[service] = service_endpoint.endpoint(isvc, mode, config)
    return urls


def graph_status(
    ig: InferenceGraph,
    config: ClusterConfig,
    router: dict[str, Any] | None,
    is_knative: bool,
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """KServe's InferenceGraph status from the router's workload as read back."""
    url = None
    if is_knative:
        ksvc_status = mapping((router or {}).get("status"))
        conditions = [
            condition(str(c.get("type")), *_knative_state(c))
            for c in ksvc_status.get("conditions") or ()
            if isinstance(c, dict) and c.get("type")
        ]
        if not any(c["type"] == "Ready" for c in conditions):
            creating = "the router's Knative Service is being created"
            conditions.append(condition("Ready", None, "Creating", creating))
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            url = ksvc_status.get("url")
    else:
        ready = status.deployment_readiness(router)
        conditions = [condition("Ready", *ready)]
        if ready[0] is True:
            namespace = ig.metadata.namespace or "default"
            host = naming.domain_name(
                ig.metadata.name, namespace, config.ingress,
                annotations=ig.metadata.annotations, labels=ig.metadata.labels,
            )  # fmt: skip
            url = f"{config.ingress.url_scheme}://{host}"
    conditions.append(condition("Stopped", False, "", ""))
    keep_transition_times(conditions, old.get("conditions") or [], now)
    generation = (ig.metadata.model_extra or {}).get("generation")
    return drop_none({"observedGeneration": generation, "conditions": conditions, "url": url})


def _knative_state(found: dict[str, Any]) -> tuple[bool | None, str, str]:
    value = found.get("status")
    ok = True if value == "True" else False if value == "False" else None
    return ok, str(found.get("reason") or ""), str(found.get("message") or "")
