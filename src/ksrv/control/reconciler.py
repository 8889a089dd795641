"""Stored InferenceServices -> running revisions, routes and KServe-shaped status.

One pass (`reconcile_all`) reads every InferenceService, asks `plan.desired_state` what each
component should run, keeps one `Revision` record per distinct plan (the store holds them, so
a restarted control plane knows which processes are whose), tells the platform which
revisions to run, splits traffic between the latest and the last rolled-out revision, and
writes status back. Passes run when the store changes, when a replica changes phase, and on a
steady tick, so a missed nudge only costs a tick.

Rollout rule: traffic stays on the last rolled-out revision until the latest one has a ready
replica; then the latest takes 100% (or `canaryTrafficPercent`, the rest staying on the
previous one) and older revisions are drained and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.api import default_runtimes, resources
from ksrv.api.serving_runtime import Runtime, parse_runtime
from ksrv.control import plan as planning
from ksrv.control.platforms.base import Platform, RevisionSpec, RevisionState
from ksrv.control.routes import RouteTable
from ksrv.control.store import Store
from ksrv.errors import KsrvError

logger = logging.getLogger(__name__)

ISVC: Final = "InferenceService"
REVISION: Final = "Revision"  # ksrv's own record kind; never served by the management API
RUNTIME_KINDS: Final = ("ServingRuntime", "ClusterServingRuntime")
UNSERVED_KINDS: Final = {
    "InferenceGraph": "InferenceGraph routing",
    "TrainedModel": "multi-model serving (TrainedModel)",
}
STOP_ANNOTATION: Final = "serving.kserve.io/stop"
TICK_S: Final = 1.0
UNROUTED_GRACE_S: Final = 2.0
CONDITION_TYPES: Final = {
    "predictor": "PredictorReady",
    "transformer": "TransformerReady",
    "explainer": "ExplainerReady",
}


class Reconciler:
    """Drives the platform towards the stored resources and reports status."""

    def __init__(
        self,
        store: Store,
        platform: Platform,
        routes: RouteTable,
        *,
        gateway_http: str,
        python: str = sys.executable,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.platform = platform
        self.routes = routes
        self.gateway_http = gateway_http
        self.python = python
        self.now = now
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._is_stopped = False
        self._default_runtimes = list(default_runtimes.default_runtimes())
        self._limitation_cache: dict[tuple[str, Any], list[str]] = {}
        self._unrouted_since: dict[tuple[str, str], float] = {}
        self._draining: dict[tuple[str, str], asyncio.Task[None]] = {}

    def nudge(self) -> None:
        """Ask for a pass soon (a write landed, a replica changed phase)."""
        self._wake.set()

    def stop(self) -> None:
        """End `run` after the current pass (the drain must not race a pass)."""
        self._is_stopped = True
        self._wake.set()

    async def run(self) -> None:
        """Reconcile until `stop`; one failing pass is logged and retried on the next tick."""
        while not self._is_stopped:
            try:
                await self.reconcile_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reconcile pass failed")
            if self._is_stopped:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()

    async def reconcile_all(self) -> None:
        async with self._lock:
            runtimes = self._runtimes()
            services = []
            wanted: set[tuple[str, str]] = set()
            for isvc in self.store.list(ISVC):
                try:
                    route, keep = await self._reconcile(isvc, runtimes)
                except Exception as exc:
                    # Leave a service that failed this pass exactly as it was; others go on.
                    logger.warning("%s: reconcile failed: %r", _key(isvc), exc, exc_info=True)
                    wanted |= self._revisions_of(isvc)
                    previous = self.routes.service(*_key(isvc).split("/", 1))
                    if previous is not None:
                        services.append(previous)
                    continue
                wanted |= keep
                if route is not None:
                    services.append(route)
            await self._collect_garbage(wanted)
            self.routes.publish(services)
            self._report_unserved()

    def _report_unserved(self) -> None:
        """InferenceGraphs and TrainedModels are stored but not run locally yet: say so."""
        for kind, what in UNSERVED_KINDS.items():
            for document in self.store.list(kind):
                metadata = document["metadata"]
                old = _mapping(document.get("status"))
                conditions = [
                    _condition("Ready", False, "NotSupportedLocally", f"{what} is not served by "
                               "the local platform yet; the resource is stored as applied")
                ]  # fmt: skip
                _keep_transition_times(conditions, old.get("conditions") or [], self.now())
                status = {
                    "observedGeneration": metadata.get("generation"),
                    "conditions": conditions,
                }
                if status != old:
                    namespace = metadata.get("namespace") or ""
                    self.store.update_status(kind, namespace, metadata["name"], status)

    def _revisions_of(self, isvc: dict[str, Any]) -> set[tuple[str, str]]:
        namespace, name = _key(isvc).split("/", 1)
        return {
            (namespace, revision["metadata"]["name"])
            for revision in self.store.list(REVISION, namespace)
            if revision["spec"]["isvc"] == name
        }

    def _runtimes(self) -> list[Runtime]:
        runtimes: list[Runtime] = list(self._default_runtimes)
        for kind in RUNTIME_KINDS:
            for document in self.store.list(kind):
                try:
                    runtimes.append(parse_runtime(document))
                except KsrvError as exc:
                    logger.warning("skipping runtime %s: %s", document["metadata"]["name"], exc)
        return runtimes

    async def _reconcile(
        self, isvc: dict[str, Any], runtimes: list[Runtime]
    ) -> tuple[dict[str, Any] | None, set[tuple[str, str]]]:
        metadata = isvc["metadata"]
        namespace, name = metadata.get("namespace") or "default", metadata["name"]
        old_status = _mapping(isvc.get("status"))
        if (metadata.get("annotations") or {}).get(STOP_ANNOTATION) == "true":
            status = self._stopped_status(isvc, old_status)
            self._write_status(namespace, name, old_status, status)
            return None, set()
        desired = planning.desired_state(
            isvc, runtimes, gateway=self.gateway_http, python=self.python
        )
        observed = self.platform.observe()
        keep: set[tuple[str, str]] = set()
        components: dict[str, Any] = {}
        route_components: dict[str, Any] = {}
        component_status: dict[str, dict[str, Any]] = {}
        for component, component_plan in desired.components.items():
            previous = _mapping(_mapping(old_status.get("components")).get(component))
            outcome = await self._reconcile_component(
                namespace, name, component_plan, previous, observed
            )
            keep |= outcome.keep
            components[component] = outcome
            component_status[component] = outcome.status
            # Published even without backends: the gateway answers 503, not 404.
            route_components[component] = {
                "backends": outcome.backends,
                "timeout_s": component_plan.timeout_s,
            }
        status = self._status(isvc, desired, components, component_status, old_status)
        self._write_status(namespace, name, old_status, status)
        route = {
            "namespace": namespace,
            "name": name,
            "timeout_s": desired.components["predictor"].timeout_s
            if "predictor" in desired.components
            else planning.DEFAULT_TIMEOUT_S,
            "entry": desired.entry,
            "components": route_components,
        }
        return route, keep

    async def _reconcile_component(
        self,
        namespace: str,
        name: str,
        component_plan: planning.ComponentPlan,
        previous: dict[str, Any],
        observed: dict[tuple[str, str], RevisionState],
    ) -> _ComponentOutcome:
        component = component_plan.component
        revisions = self._revisions(namespace, name, component)
        outcome = _ComponentOutcome(component_plan)
        if component_plan.error is not None:
            # An invalid spec keeps whatever was rolled out serving.
            latest = None
        else:
            latest = self._latest_revision(namespace, name, component_plan, revisions)
            await self.platform.ensure(self._revision_spec(namespace, name, latest, component_plan))
            observed = self.platform.observe()
        by_name = {revision["metadata"]["name"]: revision for revision in revisions}
        if latest is not None:
            by_name[latest["metadata"]["name"]] = latest
        latest_name = latest["metadata"]["name"] if latest is not None else None
        outcome.latest_state = observed.get((namespace, latest_name or ""))
        latest_ready = _ready_count(outcome.latest_state) > 0
        rolled_out = self._rolled_out(previous, by_name, namespace, latest_name, observed)
        previous_rolled = _known(previous.get("previousRolledoutRevision"), by_name)
        canary = component_plan.canary_percent
        traffic: list[tuple[str, int, str | None]] = []
        if latest_name is None:
            if rolled_out is not None:
                traffic = [(rolled_out, 100, None)]
        elif rolled_out is None or rolled_out == latest_name:
            traffic = [(latest_name, 100, None)]
            if latest_ready and rolled_out is None:
                rolled_out = latest_name  # the first revision is rolled out once it is ready
        elif canary is not None and canary < 100:
            # Only the user promotes a canary: the split holds whatever replicas do (a
            # backend without ready replicas gets no traffic until it has one again).
            traffic = [(latest_name, canary, "latest"), (rolled_out, 100 - canary, "prev")]
        elif latest_ready:
            previous_rolled, rolled_out = rolled_out, latest_name
            traffic = [(latest_name, 100, None)]
        else:
            traffic = [(rolled_out, 100, None)]  # the old revision serves until the new is ready
        outcome.keep = {(namespace, revision) for revision, _, _ in traffic}
        if latest_name is not None:
            outcome.keep.add((namespace, latest_name))
        for revision, percent, tag in traffic:
            state = observed.get((namespace, revision))
            replicas = [
                {"http": f"127.0.0.1:{r.http_port}", "grpc": f"127.0.0.1:{r.grpc_port}"}
                for r in (state.replicas if state else [])
                if r.phase == "Ready"
            ]
            if percent > 0 and replicas:
                backend = {"revision": revision, "percent": percent, "replicas": replicas}
                if tag:
                    backend["tag"] = tag
                outcome.backends.append(backend)
        ready_revisions = [
            revision["metadata"]["name"]
            for revision in revisions
            if _ready_count(observed.get((namespace, revision["metadata"]["name"]))) > 0
        ]
        outcome.is_ready = bool(outcome.backends) and latest_ready
        outcome.status = _drop_none(
            {
                "latestCreatedRevision": latest_name or previous.get("latestCreatedRevision"),
                "latestReadyRevision": ready_revisions[-1] if ready_revisions else None,
                "latestRolledoutRevision": rolled_out,
                "previousRolledoutRevision": previous_rolled,
                "traffic": [
                    _drop_none(
                        {
                            "revisionName": revision,
                            "percent": percent,
                            "latestRevision": revision == latest_name,
                            "tag": tag,
                        }
                    )
                    for revision, percent, tag in traffic
                ],
                "url": f"http://{self.gateway_http}/serving/{namespace}/{name}-{component}",
            }
        )
        return outcome

    def _rolled_out(
        self,
        previous: dict[str, Any],
        by_name: dict[str, dict[str, Any]],
        namespace: str,
        latest_name: str | None,
        observed: dict[tuple[str, str], RevisionState],
    ) -> str | None:
        """The revision last rolled out: as status says, if it names a known revision;
        else (status lost or scribbled over) the newest other revision that has a ready
        replica."""
        named = _known(previous.get("latestRolledoutRevision"), by_name)
        if named is not None:
            return named
        ready = [
            name
            for name in sorted(by_name, key=lambda n: by_name[n]["spec"]["number"])
            if name != latest_name and _ready_count(observed.get((namespace, name))) > 0
        ]
        return ready[-1] if ready else None

    async def _remove(self, key: tuple[str, str]) -> None:
        try:
            await self.platform.remove(*key)
        finally:
            self._draining.pop(key, None)
            self.nudge()

    def _revisions(self, namespace: str, name: str, component: str) -> list[dict[str, Any]]:
        revisions = [
            revision
            for revision in self.store.list(REVISION, namespace)
            if revision["spec"]["isvc"] == name and revision["spec"]["component"] == component
        ]
        return sorted(revisions, key=lambda revision: revision["spec"]["number"])

    def _latest_revision(
        self,
        namespace: str,
        name: str,
        component_plan: planning.ComponentPlan,
        revisions: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The revision running this plan: the newest one if it matches, else a new one."""
        if revisions and revisions[-1]["spec"]["fingerprint"] == component_plan.fingerprint:
            return revisions[-1]
        # Never reuse a name the platform still runs (a deleted and re-created service's
        # old revision may still be draining).
        running = [
            _revision_number(state.spec.revision)
            for state in self.platform.observe().values()
            if (state.spec.namespace, state.spec.isvc, state.spec.component)
            == (namespace, name, component_plan.component)
        ]
        number = max([0, *running, *(r["spec"]["number"] for r in revisions)]) + 1
        revision_name = f"{name}-{component_plan.component}-{number:05d}"
        return self.store.create(
            {
                "apiVersion": "ksrv.io/v1",
                "kind": REVISION,
                "metadata": {"name": revision_name, "namespace": namespace},
                "spec": {
                    "isvc": name,
                    "component": component_plan.component,
                    "number": number,
                    "fingerprint": component_plan.fingerprint,
                    "command": list(component_plan.command),
                    "env": dict(component_plan.env),
                    "workdir": component_plan.workdir,
                    "readinessPath": component_plan.readiness_path,
                },
            }
        )

    def _revision_spec(
        self,
        namespace: str,
        name: str,
        revision: dict[str, Any],
        component_plan: planning.ComponentPlan,
    ) -> RevisionSpec:
        spec = revision["spec"]
        return RevisionSpec(
            namespace=namespace,
            isvc=name,
            component=component_plan.component,
            revision=revision["metadata"]["name"],
            command=tuple(spec["command"]),
            env=dict(spec["env"]),
            replicas=component_plan.replicas,
            readiness_path=spec["readinessPath"],
        )

    async def _collect_garbage(self, wanted: set[tuple[str, str]]) -> None:
        """Stop revisions nothing routes to any more and forget their records.

        Draining can take the whole grace period, so it runs beside the passes. A revision
        is drained only `UNROUTED_GRACE_S` after it left the route table, so the gateway has
        pulled the new table before the old replicas stop listening."""
        now = time.monotonic()
        for key in list(self._unrouted_since):
            if key in wanted:
                del self._unrouted_since[key]
        for key in list(self.platform.observe()):
            if key in wanted or key in self._draining:
                continue
            since = self._unrouted_since.setdefault(key, now)
            if now - since >= UNROUTED_GRACE_S:
                del self._unrouted_since[key]
                logger.info("stopping revision %s/%s", *key)
                task = asyncio.get_running_loop().create_task(self._remove(key))
                self._draining[key] = task
        for revision in self.store.list(REVISION):
            metadata = revision["metadata"]
            key = (metadata.get("namespace") or "default", metadata["name"])
            if key not in wanted:
                self.store.delete(REVISION, key[0], key[1])

    # -- status ------------------------------------------------------------------------
    def _status(
        self,
        isvc: dict[str, Any],
        desired: planning.ServicePlan,
        outcomes: dict[str, _ComponentOutcome],
        component_status: dict[str, dict[str, Any]],
        old_status: dict[str, Any],
    ) -> dict[str, Any]:
        metadata = isvc["metadata"]
        namespace, name = metadata.get("namespace") or "default", metadata["name"]
        conditions: list[dict[str, Any]] = []
        for component, outcome in outcomes.items():
            conditions.append(outcome.condition(CONDITION_TYPES[component]))
        entry = outcomes.get(desired.entry)
        ingress_ready = entry is not None and bool(entry.backends)
        conditions.append(
            _condition("IngressReady", ingress_ready, "", "")
            if ingress_ready
            else _condition("IngressReady", False, "NoReadyBackend", "no ready replica to route to")
        )
        is_ready = all(outcome.is_ready for outcome in outcomes.values()) and ingress_ready
        conditions.append(
            _condition("Ready", is_ready, "", "")
            if is_ready
            else _condition(
                "Ready",
                False,
                next(
                    (c["reason"] for c in conditions if c["status"] != "True" and c.get("reason")),
                    "NotReady",
                ),
                "; ".join(c.get("message", "") for c in conditions if c["status"] != "True"),
            )
        )
        notes = [*self._limitations(isvc), *desired.notes]
        notes += [note for outcome in outcomes.values() for note in outcome.plan.notes]
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
        _keep_transition_times(conditions, old_status.get("conditions") or [], self.now())
        predictor = outcomes.get("predictor")
        status: dict[str, Any] = {
            "observedGeneration": metadata.get("generation"),
            "url": f"http://{self.gateway_http}/serving/{namespace}/{name}",
            "address": {"url": f"http://{name}-{namespace}.{self.routes.domain}"},
            "conditions": conditions,
            "components": component_status,
        }
        if predictor is not None:
            status["modelStatus"] = predictor.model_status(self.now())
            if predictor.plan.runtime:
                field = (
                    "clusterServingRuntimeName"
                    if predictor.plan.is_cluster_runtime
                    else "servingRuntimeName"
                )
                status[field] = predictor.plan.runtime
        return status

    def _limitations(self, isvc: dict[str, Any]) -> list[str]:
        """What `api.resources.local_limitations` says of this generation (cached)."""
        metadata = isvc["metadata"]
        key = (metadata.get("uid", ""), metadata.get("generation"))
        if key not in self._limitation_cache:
            try:
                notes = resources.local_limitations(resources.load(_without_status(isvc)))
            except KsrvError as exc:
                notes = [f"stored resource no longer validates: {exc}"]
            self._limitation_cache[key] = notes
        return self._limitation_cache[key]

    def _stopped_status(self, isvc: dict[str, Any], old_status: dict[str, Any]) -> dict[str, Any]:
        conditions = [
            _condition("PredictorReady", False, "Stopped", "the InferenceService is stopped"),
            _condition("Ready", False, "Stopped", "the InferenceService is stopped"),
            _condition("Stopped", True, "", ""),
        ]
        _keep_transition_times(conditions, old_status.get("conditions") or [], self.now())
        return {
            "observedGeneration": isvc["metadata"].get("generation"),
            "conditions": conditions,
        }

    def _write_status(
        self, namespace: str, name: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        if old != new:
            self.store.update_status(ISVC, namespace, name, new)


class _ComponentOutcome:
    """One component after a pass: its plan, routes, status and readiness."""

    def __init__(self, plan: planning.ComponentPlan) -> None:
        self.plan = plan
        self.backends: list[dict[str, Any]] = []
        self.keep: set[tuple[str, str]] = set()
        self.status: dict[str, Any] = {}
        self.is_ready = False
        self.latest_state: RevisionState | None = None

    def condition(self, condition_type: str) -> dict[str, Any]:
        if self.plan.error is not None:
            return _condition(condition_type, False, self.plan.error_reason or "", self.plan.error)
        if self.is_ready:
            return _condition(condition_type, True, "", "")
        failure = self._failure()
        if failure is not None:
            return _condition(condition_type, False, "ModelLoadFailed", failure)
        return _condition(
            condition_type, False, "Starting", f"revision {self._latest_name()} is starting"
        )

    def model_status(self, now: float) -> dict[str, Any]:
        """KServe's `modelStatus` from the latest revision's replicas."""
        replicas = self.latest_state.replicas if self.latest_state else []
        failed = [r for r in replicas if r.phase == "Failed"]
        if self.plan.error is not None:
            transition, target = "InvalidSpec", "FailedToLoad"
        elif self.is_ready:
            transition, target = "UpToDate", "Loaded"
        elif failed:
            transition, target = "BlockedByFailedLoad", "FailedToLoad"
        else:
            transition, target = "InProgress", "Loading"
        status: dict[str, Any] = {
            "transitionStatus": transition,
            "states": {
                "activeModelState": "Loaded" if self.backends else "Pending",
                "targetModelState": target,
            },
            "copies": {"failedCopies": len(failed), "totalCopies": len(replicas)},
        }
        failure = self._failure()
        if failure is not None or self.plan.error is not None:
            status["lastFailureInfo"] = _drop_none(
                {
                    "location": self._latest_name(),
                    "reason": "InvalidSpec" if self.plan.error else "ModelLoadFailed",
                    "message": self.plan.error or failure,
                    "modelRevisionName": self._latest_name(),
                    "exitCode": failed[0].last_exit_code if failed else None,
                }
            )
        return status

    def _latest_name(self) -> str | None:
        return self.latest_state.spec.revision if self.latest_state else None

    def _failure(self) -> str | None:
        for replica in self.latest_state.replicas if self.latest_state else []:
            if replica.phase == "Failed" and replica.last_failure:
                return str(replica.last_failure)
        return None


def _ready_count(state: RevisionState | None) -> int:
    return sum(replica.phase == "Ready" for replica in state.replicas) if state else 0


def _condition(condition_type: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": condition_type, "status": "True" if ok else "False"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _keep_transition_times(
    conditions: list[dict[str, Any]], old: list[dict[str, Any]], now: float
) -> None:
    """A condition keeps its lastTransitionTime while its status stays the same."""
    before = {
        condition["type"]: condition
        for condition in (old if isinstance(old, list) else [])
        if isinstance(condition, dict) and "type" in condition
    }
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    for condition in conditions:
        previous = before.get(condition["type"])
        if previous is not None and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get("lastTransitionTime", stamp)
        else:
            condition["lastTransitionTime"] = stamp


def _known(value: Any, by_name: dict[str, dict[str, Any]]) -> str | None:
    """`value` if it names one of the component's revisions, else None."""
    return value if isinstance(value, str) and value in by_name else None


def _revision_number(revision: str) -> int:
    suffix = revision.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _mapping(value: Any) -> dict[str, Any]:
    """A status part as a mapping; anything else a client wrote there counts as empty."""
    return value if isinstance(value, dict) else {}


def _without_status(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "status"}


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _key(document: dict[str, Any]) -> str:
    metadata = document["metadata"]
    return f"{metadata.get('namespace') or 'default'}/{metadata['name']}"
