"""Resources -> the Kubernetes objects KServe's controller would make for them.

The second renderer of the neutral plan (`control.plan.desired_state`), next to the local one:
the plan decides what each component runs (runtime selection, protocol, autoscaling intent);
this module decides the objects, by deployment mode (`serving.kserve.io/deploymentMode`
annotation, else the cluster's configured default). Pure: the same resources, runtimes,
configuration and cluster view always give the same objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ksrv.api import default_runtimes, resources
from ksrv.api.inference_graph import InferenceGraph
from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import ClusterServingRuntime, Runtime, ServingRuntime
from ksrv.api.trained_model import TrainedModel
from ksrv.control import llm_plan
from ksrv.control.plan import ComponentPlan, desired_state
from ksrv.errors import ResourceInvalid, ResourceNotFound
from ksrv.k8s import (
    canary,
    graph,
    knative,
    llm,
    naming,
    podspec,
    service_endpoint,
    standard,
    storage_init,
    trained_model,
    unenforced,
)
from ksrv.k8s.config import KNATIVE, ClusterConfig, normalise_mode
from ksrv.k8s.context import ClusterView, ComponentContext, Documents, Readiness


@dataclass
class Rendered:
    """The objects to apply, why any part could not be rendered, and what they apply
    without carrying out (`unenforced`)."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def deployment_mode(isvc: InferenceService, config: ClusterConfig) -> str:
    """KServe's rule: the mode the status recorded, else the annotation, else the config."""
    recorded = (isvc.status or {}).get("deploymentMode")
    chosen = recorded or isvc.deployment_mode
    return normalise_mode(chosen) if chosen else config.deployment_mode


def render_inference_service(
    isvc: InferenceService,
    runtimes: Sequence[Runtime],
    config: ClusterConfig,
    cluster: ClusterView | None = None,
    readiness: Readiness | None = None,
) -> Rendered:
    """The objects of one InferenceService, in its deployment mode.

    `readiness` is what the operator has seen Ready (`Readiness.from_status`); left out, the
    steady state where every component and canary is Ready."""
    config = config.with_mode(deployment_mode(isvc, config))
    cluster = cluster if cluster is not None else Documents()
    readiness = readiness if readiness is not None else Readiness()
    plan = desired_state(isvc, runtimes)
    mode_module = knative if config.deployment_mode == KNATIVE else standard
    rendered = Rendered(warnings=unenforced.service_warnings(isvc))
    contexts = []
    for component, component_plan in plan.components.items():
        if component_plan.error:
            rendered.problems.append(f"{component}: {component_plan.error}")
            continue
        ctx = _context(isvc, component, component_plan, runtimes, config, cluster, readiness)
        contexts.append(ctx)
        _add_component(rendered, component, ctx, mode_module)
    if config.deployment_mode != KNATIVE:
        # Standard-mode canaries: more predictors, rendered through the same steps.
        for overlaid in canary.canary_services(isvc):
            where = f"canary {overlaid.spec.predictor.name}"
            canary_plan = desired_state(overlaid, runtimes).components["predictor"]
            if canary_plan.error:
                rendered.problems.append(f"{where}: {canary_plan.error}")
                continue
            ctx = _context(overlaid, "predictor", canary_plan, runtimes, config, cluster, readiness)
            _add_component(rendered, where, ctx, mode_module)
    if not rendered.problems:
        rendered.objects.extend(mode_module.ingress_objects(contexts))
    return rendered


def _add_component(
    rendered: Rendered, where: str, ctx: ComponentContext, mode_module: ModuleType
) -> None:
    """The component's objects, or a problem naming it (a missing secret or storage container,
    a runtime KServe could not build a pod from, a scaler ksrv cannot render)."""
    try:
        pod = storage_init.provision(podspec.pod_spec(ctx), ctx, _storage_uri(ctx.plan))
        objects = mode_module.component_objects(ctx, pod)
    except (ResourceInvalid, ResourceNotFound) as exc:
        rendered.problems.append(f"{where}: {exc}")
        return
    rendered.objects.extend(objects)
    rendered.warnings.extend(f"{where}: {w}" for w in unenforced.component_warnings(ctx, pod))


def render_llm_service(
    document: dict[str, Any],
    lookup: llm_plan.Lookup,
    runtimes: Sequence[Runtime],
    config: ClusterConfig,
    cluster: ClusterView | None = None,
    readiness: Readiness | None = None,
) -> tuple[InferenceService, Rendered]:
    """The InferenceService an LLMInferenceService becomes (`llm`) and its objects, with
    warnings naming what KServe's LLM controller would make besides.

    Raises:
        ResourceInvalid: the document is invalid, a baseRef is missing, or there is no model.
    """
    isvc = llm.as_inference_service(document, lookup)
    rendered = render_inference_service(isvc, runtimes, config, cluster, readiness)
    merged = llm.merged(document, lookup)
    rendered.warnings.extend(llm.cluster_warnings(merged, isvc.metadata.name))
    return isvc, rendered


def render_documents(
    documents: Iterable[dict[str, Any]], config: ClusterConfig, mode: str | None = None
) -> Rendered:
    """What the operator would apply for these documents (`ksrv k8s render -f`): the objects of
    InferenceServices and InferenceGraphs and the TrainedModels' ConfigMaps; runtimes,
    ServiceAccounts, Secrets and ClusterStorageContainers among them are read, not rendered.
    `mode` replaces the configured default (an annotation on a resource still wins)."""
    documents = list(documents)
    if mode is not None:
        config = config.with_mode(mode)
    runtimes = _runtimes(documents)
    cluster = Documents(documents)
    rendered = Rendered()
    loaded = [resource for resource in map(_load, documents) if resource is not None]
    services = [r for r in loaded if isinstance(r, InferenceService)]
    for resource in services:
        one = render_inference_service(resource, runtimes, config, cluster)
        rendered.objects.extend(one.objects)
        rendered.problems.extend(f"{resource.metadata.name}: {p}" for p in one.problems)
        rendered.warnings.extend(f"{resource.metadata.name}: {w}" for w in one.warnings)
    resolve = service_endpoint.resolver(services, lambda s: deployment_mode(s, config), config)
    for ig in (r for r in loaded if isinstance(r, InferenceGraph)):
        try:
            rendered.objects.extend(graph.graph_objects(ig, config, resolve))
        except ResourceInvalid as exc:
            rendered.problems.append(f"{ig.metadata.name}: {exc}")
    models = [r for r in loaded if isinstance(r, TrainedModel)]
    rendered.objects.extend(trained_model.model_configs(services, models))
    _render_llm_documents(rendered, documents, runtimes, config, cluster)
    return rendered


def _render_llm_documents(
    rendered: Rendered,
    documents: list[dict[str, Any]],
    runtimes: Sequence[Runtime],
    config: ClusterConfig,
    cluster: ClusterView,
) -> None:
    """Each LLMInferenceService's objects, its presets read from the documents' configs."""
    lookup = llm.config_lookup(documents)
    for document in documents:
        if document.get("kind") not in llm_plan.KINDS:
            continue
        name = (document.get("metadata") or {}).get("name")
        try:
            resources.load(document, is_strict=True)  # as `ksrv apply` checks them, presets too
            if document["kind"] != llm_plan.LLMISVC:
                continue
            _, one = render_llm_service(document, lookup, runtimes, config, cluster)
        except ResourceInvalid as exc:
            rendered.problems.append(f"{name}: {exc}")
            continue
        rendered.objects.extend(one.objects)
        rendered.problems.extend(f"{name}: {p}" for p in one.problems)
        rendered.warnings.extend(f"{name}: {w}" for w in one.warnings)


def _load(document: dict[str, Any]) -> resources.Resource | None:
    """The resource a document holds, if it is one of the kinds rendered here."""
    if document.get("kind") in ("InferenceService", "InferenceGraph", "TrainedModel"):
        return resources.load(document)
    return None


def _runtimes(documents: list[dict[str, Any]]) -> list[Runtime]:
    applied: list[Runtime] = []
    for document in documents:
        if document.get("kind") in ("ServingRuntime", "ClusterServingRuntime"):
            resource = resources.load(document)
            assert isinstance(resource, ServingRuntime | ClusterServingRuntime)
            applied.append(resource)
    names = {r.metadata.name for r in applied if isinstance(r, ClusterServingRuntime)}
    return [*applied, *default_runtimes.unreplaced(default_runtimes.default_runtimes(), names)]


def _context(
    isvc: InferenceService,
    component: str,
    plan: ComponentPlan,
    runtimes: Sequence[Runtime],
    config: ClusterConfig,
    cluster: ClusterView,
    readiness: Readiness,
) -> ComponentContext:
    raw = isvc.to_dict()["spec"][component]
    runtime = None
    if plan.runtime is not None:
        kind = "ClusterServingRuntime" if plan.is_cluster_runtime else "ServingRuntime"
        runtime = next(
            (r for r in runtimes if r.metadata.name == plan.runtime and r.kind == kind), None
        )
    name = naming.component_name(isvc.metadata.name, component)
    if component == "predictor":
        name = naming.predictor_name(isvc.metadata.name, isvc.spec.predictor.name)
    return ComponentContext(isvc, component, name, plan, raw, runtime, config, cluster, readiness)


def _storage_uri(plan: ComponentPlan) -> str | None:
    workload = plan.workload
    return getattr(workload, "storage_uri", None)
