"""InferenceServices -> running revisions, the route table and KServe-shaped status.

One pass (`reconcile_all`) reads every InferenceService, asks `plan.desired_state` what each
component should run and the platform how it runs that (`Platform.render`), keeps one
revision per distinct rendering (`revisions`), has the platform run it, lets `rollout` split
traffic between the latest and the last rolled-out revision (Standard-mode canaries run as
revision sets of their own beside the predictor's, `canaries` weighs them), publishes the
ready replicas' addresses (as the platform reports them) to the route table, writes status back
(`service_status`), and stops what nothing routes to any more. With `autoscalers`, each
revision it keeps is autoscaled (`autoscaling`): the latest runs the count last decided, and
the decision shows in the component's status. With `ksrv.dev/shadow-percent`, the latest
revision, while not rolled out, is the route's shadow (it gets copies of requests) and its
status shows the copies the gateways counted (`shadows`). A service whose pass fails stays
exactly as it was; the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from ksrv.api import default_runtimes, local_model_cache, names, resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import Runtime, parse_runtime
from ksrv.control import autoscaling, revisions, rollout, service_status
from ksrv.control import canaries as canary_rules
from ksrv.control import plan as planning
from ksrv.control.autoscaler_settings import ScalingSettings
from ksrv.control.model_copies import ModelCopies, stored_caches
from ksrv.control.platforms.base import Platform, RevisionKey, RevisionState
from ksrv.control.routes import RoutePublisher
from ksrv.control.service_status import ComponentOutcome, mapping
from ksrv.control.store import Store
from ksrv.errors import KsrvError, ResourceInvalid
from ksrv.protocol.routes import BackendDoc, ComponentDoc, ReplicaDoc, ServiceDoc, ShadowDoc

logger = logging.getLogger(__name__)

ISVC: Final = "InferenceService"
RUNTIME_KINDS: Final = ("ServingRuntime", "ClusterServingRuntime")
STOP_ANNOTATION: Final = "serving.kserve.io/stop"

Document = dict[str, Any]


class ShadowCounts(Protocol):
    """The gateways' shadow-copy counts (`control.traffic.TrafficCollector` satisfies it)."""

    def shadow_counts(self, namespace: str, revision: str) -> tuple[int, int, int]:
        """(sent, errors, skipped) copies for `revision`, summed over the gateways."""
        ...


class InferenceServiceReconciler:
    """Drives the platform towards the stored InferenceServices and reports their status."""

    # A cache's copy becoming complete (its status) changes where a predictor reads its model.
    kinds: Final = (ISVC, *RUNTIME_KINDS, *local_model_cache.KINDS)
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
        copies: ModelCopies | None = None,
        shadows: ShadowCounts | None = None,
    ) -> None:
        self.store = store
        self.platform = platform
        self.routes = routes
        self.now = now
        self.autoscalers = autoscalers
        self.records = revisions.RevisionRecords(store)
        self.collector = revisions.Collector(platform, on_removed)
        self._default_runtimes = list(default_runtimes.default_runtimes())
        self.copies = copies
        self.shadows = shadows
        self._caches: list[local_model_cache.CacheRef] = []
        # uid -> (resourceVersion, typed resource, local limitations) of the last load
        self._loaded: dict[str, tuple[str, InferenceService, list[str]]] = {}

    async def reconcile_all(self) -> None:
        runtimes = self._runtimes()
        self._caches = [cache.ref for cache in stored_caches(self.store)] if self.copies else []
        services: list[ServiceDoc] = []
        wanted: set[RevisionKey] = set()
        seen: set[str] = set()
        for isvc in self.store.list(ISVC):
            namespace, name = _key(isvc)
            seen.add(isvc["metadata"].get("uid", ""))
            if self._refuse_bad_name(isvc):
                continue
            try:
                route, keep = await self._reconcile(isvc, runtimes)
            except Exception as exc:
                # Leave a service that failed this pass exactly as it was; others go on.
                logger.warning("%s/%s: reconcile failed: %r", namespace, name, exc, exc_info=True)
                wanted |= self.records.of_service(namespace, name)
                previous = self.routes.service(namespace, name)
                if previous is not None:
                    services.append(previous)
                continue
            wanted |= keep
            if route is not None:
                services.append(route)
        self.collector.collect(wanted)
        self.records.forget_except(wanted)
        if self.autoscalers is not None:
            self.autoscalers.forget_except(wanted)
        self.routes.publish(services)
        for uid in set(self._loaded) - seen:
            del self._loaded[uid]

    def _refuse_bad_name(self, isvc: Document) -> bool:
        """True for a service stored under older, looser rules with a name or namespace that
        would reach paths and argv (`..`, a NUL): it runs nothing and its status says why."""
        namespace, name = _key(isvc)
        problem = names.namespace_problem(namespace)
        what = "namespace" if problem else "name"
        problem = problem or names.service_name_problem(name)
        if problem is None:
            return False
        message = f"{what} {problem}; delete this InferenceService and apply it under a valid one"
        old = mapping(isvc.get("status"))
        status = {
            "observedGeneration": isvc["metadata"].get("generation"),
            "conditions": [service_status.condition("Ready", False, "InvalidSpec", message)],
        }
        service_status.keep_transition_times(
            status["conditions"], old.get("conditions"), self.now()
        )
        self._write_status(namespace, name, old, status)
        return True

    def _runtimes(self) -> list[Runtime]:
        applied: list[Runtime] = []
        for kind in RUNTIME_KINDS:
            for document in self.store.list(kind):
                try:
                    applied.append(parse_runtime(document))
                except KsrvError as exc:
                    logger.warning("skipping runtime %s: %s", document["metadata"]["name"], exc)
        cluster = {r.metadata.name for r in applied if r.kind == "ClusterServingRuntime"}
        return [*default_runtimes.unreplaced(self._default_runtimes, cluster), *applied]

    def _load(self, isvc: Document) -> tuple[InferenceService, list[str]]:
        """The typed resource and what it asks for that no local platform honours (parsed
        again only when the stored document changed)."""
        metadata = isvc["metadata"]
        uid, version = metadata.get("uid", ""), metadata.get("resourceVersion", "")
        cached = self._loaded.get(uid)
        if cached is None or cached[0] != version:
            body = {key: value for key, value in isvc.items() if key != "status"}
            resource = resources.load(body)
            if not isinstance(resource, InferenceService):
                raise ResourceInvalid(f"stored {ISVC} loads as a {resource.kind}")
            cached = self._loaded[uid] = (version, resource, resources.local_limitations(resource))
        return cached[1], cached[2]

    async def _reconcile(
        self, isvc: Document, runtimes: list[Runtime]
    ) -> tuple[ServiceDoc | None, set[RevisionKey]]:
        namespace, name = _key(isvc)
        generation = isvc["metadata"].get("generation")
        old_status = mapping(isvc.get("status"))
        if (isvc["metadata"].get("annotations") or {}).get(STOP_ANNOTATION) == "true":
            status = service_status.stopped_status(generation, old_status, self.now())
            self._write_status(namespace, name, old_status, status)
            return None, set()
        resource, limitations = self._load(isvc)
        desired = planning.desired_state(resource, runtimes)
        if self.copies is not None:
            annotations = resource.metadata.annotations or {}
            desired = self.copies.with_copies(desired, annotations, self._caches)
        keep: set[RevisionKey] = set()
        canaries, keep = await self._reconcile_canaries(
            namespace, name, desired, resource.deployment_mode
        )
        outcomes: dict[str, ComponentOutcome] = {}
        for component, component_plan in desired.components.items():
            previous = mapping(mapping(old_status.get("components")).get(component))
            revision_set = desired.predictor_set if component == "predictor" else component
            if component == "predictor" and canaries:
                component_plan = _shrunk(component_plan, canaries)
            outcomes[component], component_keep = await self._reconcile_component(
                namespace, name, component_plan, previous, revision_set, resource.deployment_mode
            )
            keep |= component_keep
        if canaries:
            self._weigh_canaries(namespace, outcomes["predictor"], canaries)
        view = service_status.ServiceView(
            generation=generation,
            url=self.platform.service_url(namespace, name),
            address_url=self.platform.address_url(namespace, name),
            entry=desired.entry,
            notes=[*limitations, *desired.notes],
        )
        status = service_status.service_status(
            view,
            outcomes,
            old_status,
            self.now(),
            [(c.name, c.traffic_percent, o) for c, o in canaries],
        )
        self._write_status(namespace, name, old_status, status)
        return _route(desired, outcomes), keep

    async def _reconcile_canaries(
        self, namespace: str, name: str, desired: planning.ServicePlan, deployment_mode: str | None
    ) -> tuple[list[tuple[planning.CanaryPlan, ComponentOutcome]], set[RevisionKey]]:
        """Run each Standard-mode canary as a revision set of its own (`{isvc}-{name}-predictor-N`);
        a changed canary rolls within its set as any component does."""
        found: list[tuple[planning.CanaryPlan, ComponentOutcome]] = []
        keep: set[RevisionKey] = set()
        for canary in desired.canaries:
            outcome, canary_keep = await self._reconcile_component(
                namespace, name, canary.plan, {}, canary.revision_set, deployment_mode
            )
            found.append((canary, outcome))
            keep |= canary_keep
        return found, keep

    def _weigh_canaries(
        self,
        namespace: str,
        stable: ComponentOutcome,
        canaries: list[tuple[planning.CanaryPlan, ComponentOutcome]],
    ) -> None:
        """The predictor's route: Ready canaries at their `trafficPercent`, the stable the rest."""
        ready = [(c.traffic_percent, o.traffic) for c, o in canaries if o.is_ready]
        shares = canary_rules.weighted(stable.traffic, ready)
        stable.backends = _backends(namespace, shares, self.platform.observe())

    async def _reconcile_component(
        self,
        namespace: str,
        name: str,
        component_plan: planning.ComponentPlan,
        previous: dict[str, Any],
        revision_set: str,
        deployment_mode: str | None = None,
    ) -> tuple[ComponentOutcome, set[RevisionKey]]:
        component = component_plan.component
        outcome = ComponentOutcome(component_plan)
        scaling = self._scaling(outcome, deployment_mode)
        latest = await self._run_latest(namespace, name, outcome, revision_set, scaling)
        observed = self.platform.observe()
        records = self.records.of_component(namespace, name, revision_set)
        names = [record["metadata"]["name"] for record in records]
        ready = {n for n in names if _ready_count(observed.get((namespace, n))) > 0}
        decided = rollout.rollout(
            names,
            latest,
            ready,
            previous.get("latestRolledoutRevision"),
            previous.get("previousRolledoutRevision"),
            _canary_percent(component_plan),
            component_plan.enable_tag_routing,
        )
        outcome.latest_state = observed.get((namespace, latest or ""))
        outcome.traffic = decided.traffic
        outcome.backends = _backends(namespace, [(t, t.percent) for t in decided.traffic], observed)
        # A rolled-out revision scaled to zero stays Ready, as in Knative: the activator
        # holds its requests while a replica starts.
        at_zero = outcome.latest_state is not None and outcome.latest_state.spec.replicas == 0
        outcome.is_ready = (outcome.is_serving and latest in ready) or (
            at_zero and latest == decided.rolled_out
        )
        if component_plan.shadow_percent is not None and latest not in (None, decided.rolled_out):
            outcome.shadow = _shadow(namespace, latest, component_plan.shadow_percent, observed)
        tags = {share.tag for share in decided.traffic if share.tag}
        outcome.status = service_status.component_status(
            decided,
            latest,
            previous,
            [n for n in names if n in ready],
            service_status.ComponentURLs(
                self.platform.service_url(namespace, name, component),
                self.platform.address_url(namespace, name, component),
                # Knative's tag template `{{.Tag}}-{{.Name}}` on the component's host.
                {tag: self.platform.service_url(namespace, f"{tag}-{name}", component)
                 for tag in tags},
            ),
        )  # fmt: skip
        keep = {(namespace, revision) for revision in decided.routed}
        if latest is not None:
            keep.add((namespace, latest))
        if self.autoscalers is not None and scaling is not None:
            for key in keep:
                self.autoscalers.track(key, scaling)
            decision = self.autoscalers.last((namespace, latest or ""))
            if decision is not None:
                entry = autoscaling.status_entry(decision, outcome.latest_state)
                outcome.status["autoscaler"] = {"revisionName": latest, **entry}
        if outcome.shadow is not None:
            outcome.status["shadow"] = self._shadow_status(namespace, outcome.shadow)
        return outcome, keep

    def _shadow_status(self, namespace: str, shadow: ShadowDoc) -> dict[str, Any]:
        """`status.components.<c>.shadow`: the copies the gateways sent the shadow revision
        (since it became the shadow: a new latest is a new revision, counted from 0)."""
        revision = shadow["revision"]
        counts = self.shadows.shadow_counts(namespace, revision) if self.shadows else (0, 0, 0)
        sent, errors, skipped = counts
        percent = shadow["percent"]
        return {
            "revisionName": revision,
            "percent": int(percent) if percent == int(percent) else percent,
            "sent": sent,
            "errors": errors,
            "skipped": skipped,
        }

    def _scaling(
        self, outcome: ComponentOutcome, deployment_mode: str | None
    ) -> ScalingSettings | None:
        """The component's autoscaling settings; None without autoscalers or an autoscaler
        class that scales it, or when they are not valid (then `outcome.plan.error` says why,
        as Knative's webhook would refuse)."""
        if self.autoscalers is None or outcome.plan.error is not None:
            return None
        try:
            return self.autoscalers.settings(outcome.plan, deployment_mode)
        except ResourceInvalid as exc:
            outcome.plan = dataclasses.replace(
                outcome.plan, error=str(exc), error_reason=exc.reason or "InvalidSpec"
            )
            return None

    async def _run_latest(
        self,
        namespace: str,
        name: str,
        outcome: ComponentOutcome,
        revision_set: str,
        scaling: ScalingSettings | None,
    ) -> str | None:
        """Render the plan, find or make its revision, have the platform run it; its name.

        None when the plan cannot run (`outcome.plan.error` says why): as with an invalid
        spec, whatever was rolled out keeps serving."""
        component_plan = outcome.plan
        if component_plan.error is not None:
            return None
        try:
            rendering = self.platform.render(namespace, name, component_plan)
        except ResourceInvalid as exc:
            reason = exc.reason or "InvalidSpec"
            outcome.plan = dataclasses.replace(component_plan, error=str(exc), error_reason=reason)
            return None
        outcome.notes = rendering.notes
        identity = revisions.fingerprint(component_plan.fingerprint, rendering.spec.fingerprint)
        running = [
            state.spec.revision
            for state in self.platform.observe().values()
            if (state.spec.namespace, state.spec.isvc, state.spec.component)
            == (namespace, name, revision_set)
        ]
        record = self.records.latest(namespace, name, revision_set, identity, running)
        latest: str = record["metadata"]["name"]
        spec = dataclasses.replace(rendering.spec, component=revision_set).named(latest)
        if self.autoscalers is not None and scaling is not None:
            spec = dataclasses.replace(spec, replicas=self.autoscalers.replicas(spec.key, scaling))
        await self.platform.ensure(spec)
        return latest

    def _write_status(self, namespace: str, name: str, old: Document, new: Document) -> None:
        if old != new:
            self.store.update_status(ISVC, namespace, name, new)


def _route(desired: planning.ServicePlan, outcomes: dict[str, ComponentOutcome]) -> ServiceDoc:
    """The service's entry in the route table (docs/platform.md, the route table)."""
    predictor = desired.components.get("predictor")
    return {
        "namespace": desired.namespace,
        "name": desired.name,
        "timeout_s": predictor.timeout_s if predictor else planning.DEFAULT_TIMEOUT_S,
        "entry": desired.entry,
        # Every component, even without backends: the gateway answers 503, not 404.
        "components": {
            component: _component_route(outcomes[component]) for component in desired.components
        },
    }


def _component_route(outcome: ComponentOutcome) -> ComponentDoc:
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


def _shrunk(
    stable: planning.ComponentPlan, canaries: list[tuple[planning.CanaryPlan, ComponentOutcome]]
) -> planning.ComponentPlan:
    """The stable predictor's plan with what its Ready canaries run taken off its minimum."""
    ready = sum(c.plan.autoscaling.min_replicas for c, o in canaries if o.is_ready)
    low = canary_rules.stable_min(stable.autoscaling.min_replicas, ready)
    return dataclasses.replace(
        stable, autoscaling=dataclasses.replace(stable.autoscaling, min_replicas=low)
    )


def _backends(
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
        replicas = _ready_replicas(observed.get((namespace, share.revision)))
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


def _canary_percent(component_plan: planning.ComponentPlan) -> int | None:
    """`canaryTrafficPercent`; with `ksrv.dev/shadow-percent` and none, 0: the latest gets
    only copies until the annotation goes, then the normal rollout promotes it."""
    if component_plan.canary_percent is None and component_plan.shadow_percent is not None:
        return 0
    return component_plan.canary_percent


def _shadow(
    namespace: str, revision: str, percent: float, observed: dict[RevisionKey, RevisionState]
) -> ShadowDoc:
    """The route's shadow: the latest revision, its share of copies and its ready replicas."""
    replicas = _ready_replicas(observed.get((namespace, revision)))
    return {"revision": revision, "percent": percent, "replicas": replicas}


def _ready_replicas(state: RevisionState | None) -> list[ReplicaDoc]:
    """A revision's ready replicas at the addresses the platform reports."""
    replicas: list[ReplicaDoc] = []
    for replica in state.replicas if state else []:
        http = replica.http_address
        if replica.phase == "Ready" and http is not None:
            replicas.append({"http": http, "grpc": replica.grpc_address or ""})
    return replicas


def _ready_count(state: RevisionState | None) -> int:
    return sum(replica.phase == "Ready" for replica in state.replicas) if state else 0


def _key(document: Document) -> tuple[str, str]:
    metadata = document["metadata"]
    return metadata.get("namespace") or "default", metadata["name"]
