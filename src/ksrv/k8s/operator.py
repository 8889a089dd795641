"""The operator: kopf handlers that run a reconcile pass when KServe's resources, or the objects
they own, change; and `run`, what `ksrv k8s operator` starts.

Handlers go on a registry that `registry()` builds (nothing registers at import), so tests run
the same registry under `kopf.testing.KopfRunner`. kopf and the operator's own client log in
the same way, from the same kubeconfig or service account. Passes run in threads (the official
client blocks), one at a time per resource (an asyncio lock each), so a Deployment's status
change and a spec change never race. InferenceServices, InferenceGraphs and TrainedModels each
have their handlers (a TrainedModel is served by its InferenceService's pass), and so do
LLMInferenceServices (`reconcile_llm`: re-run when their Deployment or a preset changes).
kopf does the retrying: `Retry` becomes a `TemporaryError` with its delay, `Rejected` a
`PermanentError` (the status already says why); a pass woken by an owned object's event
schedules its own retry, as kopf retries only handlers of the resource itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import kopf

from ksrv.api.kinds import GROUP
from ksrv.k8s import llm, naming, reconcile, reconcile_graph, reconcile_llm, reconcile_trained_model
from ksrv.k8s.client import Api, ApiFailure, connect

logger = logging.getLogger(__name__)

T = TypeVar("T")
PREFIX: Final = "ksrv.dev"
ISVCS: Final = (GROUP, "v1beta1", "inferenceservices")
GRAPHS: Final = (GROUP, "v1alpha1", "inferencegraphs")
TRAINED_MODELS: Final = (GROUP, "v1alpha1", "trainedmodels")
LLM_SERVICES: Final = (GROUP, "v1alpha2", "llminferenceservices")
LLM_CONFIGS: Final = (GROUP, "v1alpha2", "llminferenceserviceconfigs")
# The objects whose changes re-run their InferenceService's pass: found by KServe's label.
OWNED_WATCHES: Final = (
    ("apps", "v1", "deployments"),
    ("serving.knative.dev", "v1", "services"),
    ("", "v1", "pods"),
)


class _Operator:
    """What the handlers share: the API client, the settings, a lock per resource."""

    def __init__(
        self,
        settings: reconcile.Settings,
        kubeconfig: str | None,
        context: str | None,
        namespaces: Sequence[str],
    ) -> None:
        self.settings = settings
        self.namespaces = tuple(namespaces)
        self.kubeconfig, self.context = kubeconfig, context
        self._api: Api | None = None
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        # Resources with a pass waiting for the lock: later events add nothing to it.
        self._waiting: set[tuple[str, str, str]] = set()
        self._retries: set[asyncio.Task[None]] = set()
        # Passes block (the official client); they run here, and shutdown waits for them.
        self._threads = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ksrv-pass")

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(function, *args))

    async def api(self) -> Api:
        if self._api is None:
            self._api = await self.in_thread(connect, self.kubeconfig, self.context)
        return self._api

    async def reconcile(self, namespace: str, name: str, *, is_event: bool = False) -> None:
        """One pass over one InferenceService; kopf's outcomes unless woken by an event."""
        api = await self.api()
        call = functools.partial(
            reconcile.reconcile_inference_service, api, namespace, name, self.settings,
            is_spec_news=not is_event,
        )  # fmt: skip
        await self.run_pass(("InferenceService", namespace, name), call, is_event=is_event)

    async def reconcile_graph(self, namespace: str, name: str, *, is_event: bool = False) -> None:
        """One pass over one InferenceGraph, as `reconcile` for an InferenceService."""
        api = await self.api()
        call = functools.partial(
            reconcile_graph.reconcile_graph, api, namespace, name, self.settings
        )
        await self.run_pass(("InferenceGraph", namespace, name), call, is_event=is_event)

    async def reconcile_llm(self, namespace: str, name: str, *, is_event: bool = False) -> None:
        """One pass over one LLMInferenceService, as `reconcile` for an InferenceService."""
        api = await self.api()
        call = functools.partial(
            reconcile_llm.reconcile_llm_service, api, namespace, name, self.settings,
            is_spec_news=not is_event,
        )  # fmt: skip
        await self.run_pass(("LLMInferenceService", namespace, name), call, is_event=is_event)

    async def reconcile_all_llm(self, namespace: str) -> None:
        """Every LLMInferenceService a preset in `namespace` may be merged into (those of the
        namespace; every one for KServe's system namespace)."""
        api = await self.api()
        where = None if namespace == reconcile_llm.SYSTEM_NAMESPACE else namespace
        found = await self.in_thread(
            api.list, reconcile_llm.LLM_VERSION, "LLMInferenceService", where
        )
        for body in found:
            meta = body["metadata"]
            service_namespace = meta.get("namespace") or "default"
            if in_scope(service_namespace, self.namespaces):
                await self.reconcile_llm(service_namespace, meta["name"], is_event=True)

    async def run_pass(
        self, key: tuple[str, str, str], call: Callable[[], Any], *, is_event: bool
    ) -> None:
        """`call` in a thread, one at a time per resource (`key`: kind, namespace, name).
        Its outcomes become kopf's (retry, give up), or, for a pass woken by an event, a
        retry of its own: kopf retries only the handlers of the resource itself."""
        if is_event and key in self._waiting:
            return  # a pass that has yet to start will see what this event reports
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting.add(key)
        async with lock:
            self._waiting.discard(key)
            try:
                await self.in_thread(call)
            except reconcile.Retry as retry:
                if not is_event:
                    raise kopf.TemporaryError(str(retry), delay=retry.delay_s) from None
                self._retry_later(key, call, retry.delay_s, str(retry))
            except ApiFailure as failure:  # writing the status of a failed pass failed too
                if not is_event:
                    raise kopf.TemporaryError(str(failure), self.settings.retry_delay_s) from None
                self._retry_later(key, call, self.settings.retry_delay_s, str(failure))
            except reconcile.Rejected as rejected:
                if not is_event:
                    raise kopf.PermanentError(str(rejected)) from None

    async def delete(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = ("InferenceService", meta.get("namespace") or "default", meta["name"])
        api = await self.api()
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                await self.in_thread(reconcile.delete_inference_service, api, body)
            except ApiFailure as failure:
                raise kopf.TemporaryError(str(failure), self.settings.retry_delay_s) from None
        self._locks.pop(key, None)

    async def reconcile_all(self, namespace: str | None) -> None:
        """Every InferenceService (in `namespace`): a runtime they may be placed on changed."""
        api = await self.api()
        found = await self.in_thread(
            api.list, reconcile.ISVC_VERSION, "InferenceService", namespace
        )
        for body in found:
            meta = body["metadata"]
            where = meta.get("namespace") or "default"
            if in_scope(where, self.namespaces):
                await self.reconcile(where, meta["name"], is_event=True)

    async def reconcile_waiting_graphs(self, namespace: str, service: str) -> None:
        """A pass for each graph in `namespace` that waits for InferenceService `service`."""
        api = await self.api()
        found = await self.in_thread(api.list, reconcile.DEPENDENT_VERSION, "InferenceGraph",
                                     namespace)  # fmt: skip
        for body in found:
            if reconcile_graph.is_waiting_for(body, service):
                await self.reconcile_graph(namespace, body["metadata"]["name"], is_event=True)

    def _retry_later(
        self, key: tuple[str, str, str], call: Callable[[], Any], delay_s: float, why: str
    ) -> None:
        logger.info("retrying %s %s/%s in %ss: %s", *key, delay_s, why)

        async def again() -> None:
            await asyncio.sleep(delay_s)
            await self.run_pass(key, call, is_event=True)

        task = asyncio.get_running_loop().create_task(again())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def stop(self) -> None:
        for task in list(self._retries):
            task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self._threads.shutdown)
        if self._api is not None:
            self._api.close()


def registry(
    settings: reconcile.Settings | None = None,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: Sequence[str] = (),
) -> kopf.OperatorRegistry:
    """kopf's registry with ksrv's handlers (and login) on it; `namespaces` as given to kopf
    (a cluster-wide runtime change re-runs only the InferenceServices in them)."""
    registry = kopf.OperatorRegistry()
    operator = _Operator(settings or reconcile.Settings(), kubeconfig, context, namespaces)

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # KServe's finalizer name; kopf's bookkeeping under ksrv's prefix, in annotations
        # (KServe's status schema has no room for it).
        settings.persistence.finalizer = naming.FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=PREFIX, key="last-handled-configuration"
        )

    @kopf.on.login(id="login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(**(await operator.api()).connection())

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        await operator.stop()

    _serve_inference_services(registry, operator)
    _serve_graphs(registry, operator)
    _serve_trained_models(registry, operator)
    _serve_llm_services(registry, operator)
    return registry


def _serve_inference_services(registry: kopf.OperatorRegistry, operator: _Operator) -> None:
    """InferenceServices, the objects they own, and the runtimes they are placed on."""

    # Explicit ids: kopf keeps a retried handler's progress in an annotation named after it.
    @kopf.on.resume(*ISVCS, id="reconcile", registry=registry)
    @kopf.on.create(*ISVCS, id="reconcile", registry=registry)
    @kopf.on.update(*ISVCS, id="reconcile", registry=registry)
    async def inference_service(namespace: str | None, name: str, **_: Any) -> None:
        await operator.reconcile(namespace or "default", name)

    @kopf.on.delete(*ISVCS, id="delete", registry=registry)
    async def inference_service_deleted(body: kopf.Body, **_: Any) -> None:
        await operator.delete(dict(body))

    async def owned_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
        name = labels[naming.ISVC_LABEL]
        await operator.reconcile(namespace or "default", name, is_event=True)

    for group, version, plural in OWNED_WATCHES:
        kopf.on.event(
            group,
            version,
            plural,
            id=f"owned-{plural}",
            labels={naming.ISVC_LABEL: kopf.PRESENT},
            registry=registry,
        )(owned_changed)

    @kopf.on.event(GROUP, "v1alpha1", "servingruntimes", id="runtime", registry=registry)
    async def runtime_changed(namespace: str | None, type: str | None, **_: Any) -> None:
        if type is not None:  # None: the first listing, which the resume handlers cover
            await operator.reconcile_all(namespace)

    @kopf.on.event(
        GROUP, "v1alpha1", "clusterservingruntimes", id="cluster-runtime", registry=registry
    )
    async def cluster_runtime_changed(type: str | None, **_: Any) -> None:
        if type is not None:
            await operator.reconcile_all(None)


def _serve_graphs(registry: kopf.OperatorRegistry, operator: _Operator) -> None:
    """InferenceGraphs, their routers, and the InferenceServices their steps wait for."""

    @kopf.on.resume(*GRAPHS, id="reconcile-graph", registry=registry)
    @kopf.on.create(*GRAPHS, id="reconcile-graph", registry=registry)
    @kopf.on.update(*GRAPHS, id="reconcile-graph", registry=registry)
    async def inference_graph(namespace: str | None, name: str, **_: Any) -> None:
        await operator.reconcile_graph(namespace or "default", name)

    @kopf.on.event(*GRAPHS, id="graph-deleted", registry=registry)
    async def inference_graph_deleted(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":  # no finalizer, as in KServe: the collector would do it too
            api = await operator.api()
            try:
                await operator.in_thread(reconcile_graph.delete_graph, api, dict(body))
            except ApiFailure as failure:
                logger.warning("leaving the graph's objects to the garbage collector: %s", failure)

    async def graph_owned_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
        name = labels[naming.GRAPH_LABEL]
        await operator.reconcile_graph(namespace or "default", name, is_event=True)

    for group, version, plural in OWNED_WATCHES[:2]:
        kopf.on.event(
            group, version, plural, id=f"graph-owned-{plural}",
            labels={naming.GRAPH_LABEL: kopf.PRESENT}, registry=registry,
        )(graph_owned_changed)  # fmt: skip

    @kopf.on.event(*ISVCS, id="graph-steps", registry=registry)
    async def service_changed(namespace: str | None, name: str, type: str | None, **_: Any) -> None:
        if type is not None:  # None: the first listing, which the graphs' resume handlers cover
            await operator.reconcile_waiting_graphs(namespace or "default", name)


def _serve_trained_models(registry: kopf.OperatorRegistry, operator: _Operator) -> None:
    """TrainedModels: their InferenceService's pass serves them; the finalizer is theirs."""

    @kopf.on.resume(*TRAINED_MODELS, id="trained-model", registry=registry)
    @kopf.on.create(*TRAINED_MODELS, id="trained-model", registry=registry)
    @kopf.on.update(*TRAINED_MODELS, id="trained-model", registry=registry)
    async def trained_model(namespace: str | None, name: str, **_: Any) -> None:
        # Its InferenceService's pass renders the ConfigMap and writes the model's status.
        api = await operator.api()
        where = namespace or "default"
        try:
            parent = await operator.in_thread(reconcile_trained_model.prepare, api, where, name)
        except reconcile.Rejected as rejected:
            raise kopf.PermanentError(str(rejected)) from None
        except ApiFailure as failure:
            raise kopf.TemporaryError(str(failure), operator.settings.retry_delay_s) from None
        if parent is not None:
            await operator.reconcile(where, parent, is_event=True)

    @kopf.on.event(*TRAINED_MODELS, id="trained-model-deleted", registry=registry)
    async def trained_model_deleted(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        meta = body.get("metadata") or {}
        finalizers = meta.get("finalizers") or ()
        if not meta.get("deletionTimestamp") or reconcile_trained_model.FINALIZER not in finalizers:
            return
        parent = (body.get("spec") or {}).get("inferenceService")
        where = namespace or "default"
        if isinstance(parent, str):  # its ConfigMap loses it first (the pass skips it)
            await operator.reconcile(where, parent, is_event=True)
        api = await operator.api()
        release = functools.partial(reconcile_trained_model.release, api, where, meta["name"])
        await operator.run_pass(("TrainedModel", where, meta["name"]), release, is_event=True)


def _serve_llm_services(registry: kopf.OperatorRegistry, operator: _Operator) -> None:
    """LLMInferenceServices, their Deployments, and the presets they are merged over. No
    finalizer: what they own goes with them (ownerReferences)."""

    @kopf.on.resume(*LLM_SERVICES, id="reconcile-llm", registry=registry)
    @kopf.on.create(*LLM_SERVICES, id="reconcile-llm", registry=registry)
    @kopf.on.update(*LLM_SERVICES, id="reconcile-llm", registry=registry)
    async def llm_service(namespace: str | None, name: str, **_: Any) -> None:
        await operator.reconcile_llm(namespace or "default", name)

    @kopf.on.event(
        "apps", "v1", "deployments", id="llm-owned-deployments",
        labels={llm.PART_OF_LABEL: llm.PART_OF}, registry=registry,
    )  # fmt: skip
    async def llm_owned_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
        name = labels.get(llm.NAME_LABEL)
        if isinstance(name, str):
            await operator.reconcile_llm(namespace or "default", name, is_event=True)

    @kopf.on.event(*LLM_CONFIGS, id="llm-config", registry=registry)
    async def llm_config_changed(namespace: str | None, type: str | None, **_: Any) -> None:
        if type is not None:  # None: the first listing, which the resume handlers cover
            await operator.reconcile_all_llm(namespace or "default")


def in_scope(namespace: str, patterns: Sequence[str]) -> bool:
    """kopf's namespace selection: any pattern matches (none given: all), none negated does."""
    wanted = [p for p in patterns if not p.startswith("!")]
    refused = [p[1:] for p in patterns if p.startswith("!")]
    return (not wanted or any(fnmatch.fnmatchcase(namespace, p) for p in wanted)) and not any(
        fnmatch.fnmatchcase(namespace, p) for p in refused
    )


def run(
    namespaces: Sequence[str] = (),
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    settings: reconcile.Settings | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    """Run the operator until interrupted: in `namespaces` (patterns allowed), else in all."""
    kopf.run(
        registry=registry(settings, kubeconfig=kubeconfig, context=context, namespaces=namespaces),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness_endpoint,
    )
