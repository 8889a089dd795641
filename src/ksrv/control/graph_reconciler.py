"""InferenceGraphs -> running routers, their routes, and KServe's InferenceGraph status.

One pass (`reconcile_all`) reads every InferenceGraph and the InferenceServices of its
namespace, resolves its steps (`graph_plan.resolve_steps`), and once every service it names is
Ready has the platform run `ksrv router --graph-json ...` as supervised replicas: a revision
`{graph}-router-{n:05d}` per distinct router command (a changed graph gets a new one, and the
previous keeps answering until the new one is ready), sized by the autoscaler when the control
plane has one (`minReplicas`, `maxReplicas`, `scaleMetric`, `scaleTarget` and Knative's
annotations, as for a component). The route table gets the graph as a one-component service
(`router`), so the gateway serves `{graph}.{ns}.{domain}`, `{graph}-{ns}.{domain}` and
`/serving/{ns}/{graph}`, and holds calls for a router at zero. A service that goes away (or
stops being Ready) makes the graph not Ready, naming it, while its router keeps running; a
deleted or stopped graph's routers are stopped (`revisions.Collector`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

from ksrv.api import resources
from ksrv.api.inference_graph import InferenceGraph
from ksrv.control import autoscaling, graph_plan, revisions
from ksrv.control.autoscaler_settings import ScalingSettings
from ksrv.control.graph_status import GraphView, failed_status, graph_status, stopped_status
from ksrv.control.plan import DEFAULT_TIMEOUT_S, ComponentPlan
from ksrv.control.platforms.base import Platform, RevisionKey, RevisionSpec, RevisionState
from ksrv.control.routes import RoutePublisher
from ksrv.control.service_status import mapping
from ksrv.control.store import Store
from ksrv.errors import ResourceInvalid
from ksrv.protocol.routes import ComponentDoc, ReplicaDoc, ServiceDoc

logger = logging.getLogger(__name__)

IG: Final = "InferenceGraph"
ISVC: Final = "InferenceService"
STOP_ANNOTATION: Final = "serving.kserve.io/stop"

Document = dict[str, Any]


class InferenceGraphReconciler:
    """Runs a router per InferenceGraph and reports the graphs' status."""

    # A service becoming Ready, changing or going away changes the graphs that name it.
    kinds: Final = (IG, ISVC)
    follows_platform: Final = True

    def __init__(
        self,
        store: Store,
        platform: Platform,
        routes: RoutePublisher,
        *,
        on_removed: Callable[[], None],
        now: Callable[[], float] = time.time,
        autoscalers: autoscaling.Autoscalers | None = None,
    ) -> None:
        self.store = store
        self.platform = platform
        self.routes = routes
        self.now = now
        self.autoscalers = autoscalers
        self.collector = revisions.Collector(platform, on_removed, owns=revisions.is_router)
        # uid -> (resourceVersion, typed graph) of the last load
        self._loaded: dict[str, tuple[str, InferenceGraph]] = {}

    async def reconcile_all(self) -> None:
        services: dict[str, dict[str, Document]] = defaultdict(dict)
        for isvc in self.store.list(ISVC):
            namespace, name = _key(isvc)
            services[namespace][name] = isvc
        published: list[ServiceDoc] = []
        wanted: set[RevisionKey] = set()
        seen: set[str] = set()
        for document in self.store.list(IG):
            namespace, name = _key(document)
            seen.add(document["metadata"].get("uid", ""))
            try:
                route, keep = await self._reconcile(document, services[namespace])
            except Exception as exc:
                # Leave a graph that failed this pass as it was; the others go on.
                logger.warning("%s/%s: reconcile failed: %r", namespace, name, exc, exc_info=True)
                wanted |= {state.spec.key for state in self._running(namespace, name)}
                route = self.routes.service(namespace, name, part=IG)
                keep = set()
            wanted |= keep
            if route is not None:
                published.append(route)
        self.collector.collect(wanted)
        if self.autoscalers is not None:
            self.autoscalers.forget_except(wanted, owner=IG)
        self.routes.publish(published, part=IG)
        for uid in set(self._loaded) - seen:
            del self._loaded[uid]

    async def _reconcile(
        self, document: Document, services: dict[str, Document]
    ) -> tuple[ServiceDoc | None, set[RevisionKey]]:
        namespace, name = _key(document)
        generation = document["metadata"].get("generation")
        old = mapping(document.get("status"))
        annotations = document["metadata"].get("annotations") or {}
        if annotations.get(STOP_ANNOTATION, "").lower() == "true":
            self._write(namespace, name, old, stopped_status(generation, old, self.now()))
            return None, set()
        try:
            graph = self._load(document)
        except ResourceInvalid as exc:
            new = failed_status(generation, exc.reason or "InvalidSpec", str(exc), old, self.now())
            self._write(namespace, name, old, new)
            return None, set()
        if name in services:
            message = (f"InferenceService {name} in namespace {namespace} has this name, and "
                       "with it the URLs; rename the graph or the service")  # fmt: skip
            self._write(namespace, name, old, failed_status(generation, "NameConflict", message,
                                                            old, self.now()))  # fmt: skip
            return None, set()
        steps = graph_plan.resolve_steps(
            graph, services, lambda service: self.platform.address_url(namespace, service)
        )
        latest: str | None = None
        scaling = None
        if steps.waiting is None:
            try:
                latest, scaling = await self._run_latest(namespace, name, graph, steps.urls)
            except ResourceInvalid as exc:
                reason = exc.reason or "InvalidSpec"
                new = failed_status(generation, reason, str(exc), old, self.now())
                self._write(namespace, name, old, new)
                return None, set()
        running = self._running(namespace, name)
        routed = graph_plan.routed_revision(running, latest)
        if steps.waiting is not None and routed is None:
            logger.info("%s/%s waits: %s", namespace, name, steps.waiting.message)
        by_name = {state.spec.revision: state for state in running}
        keep = {(namespace, revision) for revision in (latest, routed) if revision is not None}
        if self.autoscalers is not None and scaling is not None:
            for key in keep:
                self.autoscalers.track(key, scaling, owner=IG)
        view = GraphView(
            generation=generation,
            url=self.platform.service_url(namespace, name),
            address_url=self.platform.address_url(namespace, name),
            is_knative=graph_plan.deployment_mode(graph) is None,
            waiting=steps.waiting,
            latest=by_name.get(latest or routed or ""),
            routed=by_name.get(routed or ""),
        )
        self._write(namespace, name, old, graph_status(view, old, self.now()))
        return _route(graph, view), keep

    async def _run_latest(
        self, namespace: str, name: str, graph: InferenceGraph, urls: dict[str, str]
    ) -> tuple[str, ScalingSettings | None]:
        """Find or make the revision running this graph's router and have the platform run
        it; its name and its autoscaling settings (None without an autoscaler).

        Raises:
            ResourceInvalid: an autoscaling field or annotation is not valid.
        """
        command = graph_plan.router_command(graph, urls)
        spec = RevisionSpec(
            namespace=namespace,
            isvc=name,
            component=revisions.ROUTER,
            revision="",
            command=command,
            readiness_path=graph_plan.READINESS_PATH,
        )
        running = self._running(namespace, name)
        same = [s.spec.revision for s in running if s.spec.fingerprint == spec.fingerprint]
        revision = (
            max(same, key=revisions.number)
            if same
            else graph_plan.revision_name(name, graph_plan.next_number(running))
        )
        spec = spec.named(revision)
        bounds = graph_plan.router_autoscaling(graph)
        scaling: ScalingSettings | None = None
        replicas = max(1, bounds.min_replicas)
        if self.autoscalers is not None:
            plan = ComponentPlan(revisions.ROUTER, autoscaling=bounds)
            scaling = self.autoscalers.settings(plan, graph_plan.deployment_mode(graph))
            if scaling is not None:
                replicas = self.autoscalers.replicas(spec.key, scaling)
        await self.platform.ensure(dataclasses.replace(spec, replicas=replicas))
        return revision, scaling

    def _running(self, namespace: str, name: str) -> list[RevisionState]:
        """The graph's router revisions the platform runs (or still drains)."""
        return [
            state
            for state in self.platform.observe().values()
            if revisions.is_router(state.spec)
            and (state.spec.namespace, state.spec.isvc) == (namespace, name)
        ]

    def _load(self, document: Document) -> InferenceGraph:
        metadata = document["metadata"]
        uid, version = metadata.get("uid", ""), metadata.get("resourceVersion", "")
        cached = self._loaded.get(uid)
        if cached is None or cached[0] != version:
            body = {key: value for key, value in document.items() if key != "status"}
            graph = resources.load(body)
            if not isinstance(graph, InferenceGraph):
                raise ResourceInvalid(f"stored {IG} loads as a {graph.kind}")
            cached = self._loaded[uid] = (version, graph)
        return cached[1]

    def _write(self, namespace: str, name: str, old: Document, new: Document) -> None:
        if old != new:
            self.store.update_status(IG, namespace, name, new)


def _route(graph: InferenceGraph, view: GraphView) -> ServiceDoc:
    """The graph in the route table: a service whose one component is its router."""
    timeout_s = float(graph.spec.timeout or DEFAULT_TIMEOUT_S)
    routed = view.routed
    component: ComponentDoc = {"backends": [], "timeout_s": timeout_s}
    if routed is not None:
        replicas: list[ReplicaDoc] = [
            {"http": replica.http_address, "grpc": ""}
            for replica in routed.replicas
            if replica.phase == "Ready" and replica.http_address is not None
        ]
        component["backends"] = [
            {"revision": routed.spec.revision, "percent": 100, "replicas": replicas}
        ]
    elif view.waiting is not None:
        # No router, and none until the service is there: the gateway answers 503 at once.
        component["failed"] = f"{view.waiting.reason}: {view.waiting.message}"
    return {
        "namespace": graph.metadata.namespace or "default",
        "name": graph.metadata.name,
        "timeout_s": timeout_s,
        "entry": revisions.ROUTER,
        "components": {revisions.ROUTER: component},
    }


def _key(document: Document) -> tuple[str, str]:
    metadata = document["metadata"]
    return metadata.get("namespace") or "default", metadata["name"]
