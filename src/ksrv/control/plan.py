"""InferenceService -> what each component should run, in terms any platform can carry out.

`desired_state` reads a typed, defaulted `api` InferenceService and the runtimes it may use,
and says for each component (predictor, transformer, explainer) what its replicas run: a ksrv
model server (format, storageUri, the runtime KServe's selection rules pick) or a custom
container (command, args, image, workingDir); with its protocol, ports by name, env, replica
bounds and autoscaling intent, concurrency, timeout, batcher, logger, canary share and, for a
transformer or explainer, which predictor it talks to. Pure: no store, no platform, no argv and
no local ports. A platform renders a plan its own way (`platforms/local_render.py` for local
processes). Two plans with the same `fingerprint` run the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Final, Protocol

from ksrv.api import default_runtimes, runtime_selection, trained_model
from ksrv.api.inference_service import (
    MAIN_CONTAINER,
    ComponentSpec,
    ExplainerSpec,
    InferenceService,
    ModelSpec,
)
from ksrv.api.kinds import COMPONENTS
from ksrv.api.meta import Container as ContainerSpec
from ksrv.api.meta import quantity_bytes
from ksrv.api.serving_runtime import Runtime
from ksrv.control import art_plan, canaries, metric_query
from ksrv.control.logger_plan import PayloadLogger, payload_logger
from ksrv.control.metric_query import MetricTarget
from ksrv.control.response_cache_plan import ResponseCache, from_annotations
from ksrv.errors import ResourceInvalid

DEFAULT_TIMEOUT_S: Final = 60.0
# KServe's container ports for a model server (the runtime's --http_port / --grpc_port).
MODEL_SERVER_PORTS: Final = (("http", 8080), ("grpc", 8081))
# KServe's batcher defaults when `batcher` is given without `maxBatchSize` / `maxLatency` (ms).
KSERVE_MAX_BATCH_SIZE: Final = 32
KSERVE_MAX_LATENCY_MS: Final = 5000
# ClusterServingRuntimes a KServe installation ships (config/runtimes).
KSERVE_RUNTIMES: Final = frozenset({
    "kserve-sklearnserver", "kserve-xgbserver", "kserve-lgbserver", "kserve-mlserver",
    "kserve-pmmlserver", "kserve-tensorflow-serving", "kserve-torchserve", "kserve-tritonserver",
    "kserve-paddleserver", "kserve-huggingfaceserver", "kserve-predictiveserver",
})  # fmt: skip
# Annotations that carry KServe's / Knative's autoscaling settings (kept as data).
AUTOSCALING_PREFIXES: Final = (
    "autoscaling.knative.dev/",
    "serving.kserve.io/autoscalerClass",
    "serving.kserve.io/metric",
    "serving.kserve.io/targetUtilization",
)
TAG_ROUTING: Final = "serving.kserve.io/enable-tag-routing"
SHADOW_PERCENT: Final = "ksrv.dev/shadow-percent"


@dataclass(frozen=True, slots=True)
class ModelServer:
    """A ksrv model server for one model; `ksrv_runtime` is None when the selected runtime
    is a container image that ksrv's own runtime for the format stands in for."""

    model_format: str
    """`name` or `name:version`, as `ksrv serve --model-format` takes it."""
    storage_uri: str
    runtime: str
    is_cluster_runtime: bool
    ksrv_runtime: str | None
    merges_requests: bool
    args: tuple[str, ...] = ()
    is_multi_model: bool = False
    """No storageUri: the replicas start empty and serve the service's TrainedModels, loaded
    on first request (`storage_uri` is then "")."""
    memory_budget_bytes: int | None = None
    """A multi-model server's budget for loaded models: the container's memory request,
    else its limit (None: no budget)."""


@dataclass(frozen=True, slots=True)
class CustomContainer:
    """A user's own container: what it runs; KServe's injected arguments are the renderer's."""

    command: tuple[str, ...]
    args: tuple[str, ...]
    image: str | None
    working_dir: str | None


@dataclass(frozen=True, slots=True)
class EnvVar:
    """`value` is literal; `value_from` is KServe's secret or field reference, kept as data."""

    name: str
    value: str
    value_from: str | None = None


@dataclass(frozen=True, slots=True)
class Autoscaling:
    """Replica bounds and how to scale between them (KServe's fields and annotations)."""

    min_replicas: int = 1
    max_replicas: int | None = None
    scale_metric: str | None = None
    scale_target: int | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    memory_request_bytes: float | None = None
    """The serving container's memory request (else limit): what `scaleMetric: memory`
    measures utilisation against, as HPA does."""
    metrics: tuple[MetricTarget, ...] = ()
    """`autoScaling.metrics` entries that scale on a query of the model server's metrics."""
    stabilization_s: tuple[float | None, float | None] = (None, None)
    """`autoScaling.behavior`'s scale-up and scale-down stabilisation windows, if set."""


@dataclass(frozen=True, slots=True)
class Batcher:
    max_batch_size: int
    max_latency_ms: int | None = None
    timeout_s: int | None = None


@dataclass(frozen=True, slots=True)
class PredictorLink:
    """Which predictor a transformer or explainer sends to; the platform says where it is."""

    namespace: str
    isvc: str
    protocol: str


@dataclass(frozen=True)
class ComponentPlan:
    """What one component's replicas run; `error` set means it cannot run (and why)."""

    component: str
    workload: ModelServer | CustomContainer | None = None
    protocol: str = "v1"
    ports: tuple[tuple[str, int], ...] = ()
    env: tuple[EnvVar, ...] = ()
    autoscaling: Autoscaling = Autoscaling()
    container_concurrency: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    canary_percent: int | None = None
    """`canaryTrafficPercent`; None in Standard mode, where KServe ignores it."""
    enable_tag_routing: bool = False
    """`serving.kserve.io/enable-tag-routing: "true"` (Knative mode): tag URLs per revision."""
    shadow_percent: float | None = None
    """`ksrv.dev/shadow-percent`: the share of requests copied to the latest revision while
    it is not rolled out (docs/platform.md, shadow traffic); None without the annotation."""
    batcher: Batcher | None = None
    logger: PayloadLogger | None = None
    response_cache: ResponseCache | None = None  # `ksrv.dev/response-cache` (its own module)
    predictor: PredictorLink | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    error_reason: str | None = None

    @property
    def runtime(self) -> str | None:
        return self.workload.runtime if isinstance(self.workload, ModelServer) else None

    @property
    def is_cluster_runtime(self) -> bool:
        return isinstance(self.workload, ModelServer) and self.workload.is_cluster_runtime

    @property
    def fingerprint(self) -> str:
        """Identity of a revision: what the replicas run, not how many or how they scale."""
        identity = [
            asdict(self.workload) if self.workload is not None else None,
            self.protocol,
            [asdict(variable) for variable in self.env],
            asdict(self.predictor) if self.predictor is not None else None,
            asdict(self.batcher) if self.batcher is not None else None,
        ]
        if self.logger is not None:  # appended only when set: other fingerprints stay
            identity.append(asdict(self.logger))
        if self.response_cache is not None:
            identity.append(asdict(self.response_cache))
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CanaryPlan:
    """A Standard-mode canary (`spec.canary[]`): its name, its share, and what it runs."""

    name: str
    traffic_percent: int
    plan: ComponentPlan

    @property
    def revision_set(self) -> str:
        """Its revisions' middle name, as KServe names its objects: `{isvc}-{name}-predictor`."""
        return f"{self.name}-predictor"


@dataclass(frozen=True)
class ServicePlan:
    namespace: str
    name: str
    components: dict[str, ComponentPlan] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    canaries: tuple[CanaryPlan, ...] = ()
    predictor_set: str = "predictor"
    """The stable predictor's revisions' middle name: `{name}-predictor` for a named
    predictor in Standard mode (so promoting a canary by name keeps its revisions)."""

    @property
    def entry(self) -> str:
        """The component the service's URL reaches first."""
        return "transformer" if "transformer" in self.components else "predictor"


def desired_state(isvc: InferenceService, runtimes: Iterable[Runtime]) -> ServicePlan:
    """The plan for one InferenceService."""
    name = isvc.metadata.name
    namespace = isvc.metadata.namespace or "default"
    runtimes = list(runtimes)
    specs = isvc.components()
    plans: dict[str, ComponentPlan] = {}
    for component in COMPONENTS:
        spec = specs.get(component)
        if spec is None:
            continue
        link = None
        if component != "predictor":
            predictor = plans.get("predictor")
            link = PredictorLink(namespace, name, predictor.protocol if predictor else "v1")
        plans[component] = _component_plan(component, spec, isvc, link, runtimes)
    if is_knative_mode(isvc):
        notes: tuple[str, ...] = ()
        if isvc.spec.canary:
            notes = ("spec.canary: KServe carries it out in Standard mode only; this service "
                     "runs in Knative mode (the local default), where canaryTrafficPercent "
                     "splits traffic",)  # fmt: skip
        return ServicePlan(namespace, name, plans, notes)
    stable = isvc.spec.predictor
    planned = tuple(
        CanaryPlan(
            str(canary.predictor.name),
            canary.traffic_percent,
            _as_endpoint(
                _component_plan(
                    "predictor", canaries.overlay(stable, canary), isvc, None, runtimes
                ),
                str(canary.predictor.name),
            ),
        )
        for canary in isvc.spec.canary or ()
    )
    predictor_set = f"{stable.name}-predictor" if stable.name else "predictor"
    return ServicePlan(namespace, name, plans, (), planned, predictor_set)


def _as_endpoint(plan: ComponentPlan, endpoint: str) -> ComponentPlan:
    """A Standard-mode canary's plan: its payload events name the canary as their endpoint."""
    if plan.logger is None:
        return plan
    return replace(plan, logger=replace(plan.logger, endpoint=endpoint))


def is_knative_mode(isvc: InferenceService) -> bool:
    """Whether the service runs Knative-style (revisions, `canaryTrafficPercent`, tags).

    The local platform is serverless by default, as KServe's kustomize and Helm installs
    are: only `serving.kserve.io/deploymentMode: Standard` (or the legacy RawDeployment,
    rewritten by the webhook) opts out."""
    return isvc.deployment_mode != "Standard"


def _component_plan(
    component: str,
    spec: ComponentSpec,
    isvc: InferenceService,
    link: PredictorLink | None,
    runtimes: list[Runtime],
) -> ComponentPlan:
    is_knative = is_knative_mode(isvc)
    annotations = {**isvc.metadata.annotations, **(spec.annotations or {})}
    try:
        shadow_percent = _shadow_percent(annotations)
        response_cache = from_annotations(annotations)
    except ResourceInvalid as exc:
        return ComponentPlan(component, error=str(exc), error_reason=exc.reason or "InvalidSpec")
    base = ComponentPlan(
        component,
        shadow_percent=shadow_percent,
        autoscaling=_autoscaling(spec, isvc),
        container_concurrency=spec.container_concurrency,
        timeout_s=float(spec.timeout or DEFAULT_TIMEOUT_S),
        # KServe ignores canaryTrafficPercent in Standard mode (#5335): spec.canary instead.
        canary_percent=spec.canary_traffic_percent if is_knative else None,
        enable_tag_routing=is_knative and annotations.get(TAG_ROUTING) == "true",
        batcher=_batcher(spec),
        logger=payload_logger(component, spec, isvc, annotations),
        response_cache=response_cache,
        predictor=link,
    )
    model = spec.model_spec
    try:
        if model is not None:
            # KServe's IsMMSPredictor: a predictor's model with no storage serves TrainedModels.
            is_multi_model = component == "predictor" and trained_model.is_multi_model(isvc)
            server, notes = _model_server(model, runtimes, spec.main_container, is_multi_model)
            return replace(
                base,
                workload=server,
                protocol=model.protocol_version or "v1",
                ports=MODEL_SERVER_PORTS,
                env=_env(model),
                notes=notes,
            )
        if isinstance(spec, ExplainerSpec) and spec.art is not None:
            art = spec.art
            workload = CustomContainer(
                art_plan.COMMAND, art_plan.art_args(art), None, art.working_dir
            )
            return replace(base, workload=workload, ports=(("http", 8080),), env=_env(art),
                           notes=art_plan.art_notes(art))  # fmt: skip
        container = _main_container(spec.containers or [])
        if container is None:
            raise ResourceInvalid(f"spec.{component} has no model and no container", "InvalidSpec")
        ports = tuple(
            ("http" if index == 0 else f"port-{index}", port.container_port)
            for index, port in enumerate(container.ports or ())
        )
        return replace(
            base,
            workload=_custom_container(container),
            ports=ports or (("http", 8080),),
            env=_env(container),
        )
    except ResourceInvalid as exc:
        return ComponentPlan(component, error=str(exc), error_reason=exc.reason or "InvalidSpec")


def _shadow_percent(annotations: dict[str, str]) -> float | None:
    """The `ksrv.dev/shadow-percent` annotation: a number in (0, 100], or None when absent."""
    raw = annotations.get(SHADOW_PERCENT)
    if raw is None:
        return None
    try:
        percent = float(raw)
    except ValueError:
        percent = float("nan")
    if not 0 < percent <= 100:  # NaN fails too
        raise ResourceInvalid(
            f'metadata.annotations["{SHADOW_PERCENT}"] must be a number above 0 and at most '
            f"100, got {raw!r}",
            "InvalidSpec",
        )
    return percent


def _main_container(containers: Sequence[ContainerSpec]) -> ContainerSpec | None:
    """The container KServe treats as the model server: `kserve-container`, else the first."""
    named = [c for c in containers if c.name == MAIN_CONTAINER]
    return named[0] if named else (containers[0] if containers else None)


class ScalingFields(Protocol):
    """The replica-bound and scaling fields a component and an InferenceGraph share."""

    @property
    def min_replicas(self) -> int | None: ...
    @property
    def max_replicas(self) -> int | None: ...
    @property
    def scale_metric(self) -> str | None: ...
    @property
    def scale_target(self) -> int | None: ...


def scaling_intent(
    spec: ScalingFields, annotations: Mapping[str, str], memory_request_bytes: float | None = None
) -> Autoscaling:
    """Replica bounds and scaling from the fields and annotations (`minReplicas` unset: 1)."""
    return Autoscaling(
        min_replicas=1 if spec.min_replicas is None else spec.min_replicas,
        max_replicas=spec.max_replicas or None,
        scale_metric=spec.scale_metric,
        scale_target=spec.scale_target,
        annotations=tuple(
            sorted((k, v) for k, v in annotations.items() if k.startswith(AUTOSCALING_PREFIXES))
        ),
        memory_request_bytes=memory_request_bytes,
    )


def _autoscaling(spec: ComponentSpec, isvc: InferenceService) -> Autoscaling:
    annotations = {**isvc.metadata.annotations, **(spec.annotations or {})}
    intent = scaling_intent(spec, annotations, memory_request(spec.main_container))
    if spec.auto_scaling is None:
        return intent
    behavior = spec.auto_scaling.behavior or {}
    windows = tuple(
        (behavior.get(key) or {}).get("stabilizationWindowSeconds")
        for key in ("scaleUp", "scaleDown")
    )
    return replace(
        intent,
        metrics=metric_query.metric_targets(spec.auto_scaling.to_dict()),
        stabilization_s=(windows[0], windows[1]),
    )


def memory_request(container: ContainerSpec | None) -> float | None:
    resources = container.resources if container is not None else None
    if resources is None:
        return None
    for amounts in (resources.requests, resources.limits):
        if amounts and amounts.get("memory") is not None:
            return quantity_bytes(amounts["memory"])
    return None


def _batcher(spec: ComponentSpec) -> Batcher | None:
    """KServe's batcher; a `batcher` without `maxBatchSize` gets KServe's default."""
    batcher = spec.batcher
    if batcher is None:
        return None
    max_latency_ms = KSERVE_MAX_LATENCY_MS if batcher.max_latency is None else batcher.max_latency
    return Batcher(batcher.max_batch_size or KSERVE_MAX_BATCH_SIZE, max_latency_ms, batcher.timeout)


def _model_server(
    model: ModelSpec,
    runtimes: list[Runtime],
    container: ContainerSpec | None,
    is_multi_model: bool,
) -> tuple[ModelServer, tuple[str, ...]]:
    if model.model_format is None or not model.model_format.name:
        raise ResourceInvalid("spec.predictor.model.modelFormat.name is required", "InvalidSpec")
    wanted = runtime_selection.ModelFormat(model.model_format.name, model.model_format.version)
    notes = []
    runtime_name = model.runtime
    if runtime_name and _is_kserve_builtin(runtime_name, runtimes):
        # KServe's own runtimes (kserve-sklearnserver, ...) are images; ksrv's defaults stand
        # in for them, chosen by the model's format as KServe would among its own.
        notes.append(f"runtime {runtime_name} is KServe's image; ksrv's runtime serves it")
        runtime_name = None
    runtime = runtime_selection.select_runtime(
        wanted,
        runtimes,
        runtime_name=runtime_name,
        protocol_version=model.protocol_version or "v1",
        is_multi_model=is_multi_model,
    )
    if not model.storage_uri and not is_multi_model:
        raise ResourceInvalid("a model needs a storageUri to serve it locally", "InvalidSpec")
    budget = memory_request(container) if is_multi_model else None
    server = ModelServer(
        model_format=str(wanted),
        storage_uri=model.storage_uri or "",
        runtime=runtime.name,
        is_cluster_runtime=runtime.kind == "ClusterServingRuntime",
        ksrv_runtime=default_runtimes.ksrv_runtime(runtime),
        merges_requests=default_runtimes.format_merges_requests(wanted.name),
        args=tuple(model.args or ()),
        is_multi_model=is_multi_model,
        memory_budget_bytes=int(budget) if budget is not None else None,
    )
    return server, tuple(notes)


def _is_kserve_builtin(runtime_name: str, runtimes: list[Runtime]) -> bool:
    """A runtime KServe installs by default that nobody applied here."""
    return runtime_name in KSERVE_RUNTIMES and all(r.name != runtime_name for r in runtimes)


def _custom_container(container: ContainerSpec) -> CustomContainer:
    return CustomContainer(
        command=tuple(container.command or ()),
        args=tuple(str(arg) for arg in container.args or ()),
        image=container.image,
        working_dir=container.working_dir,
    )


def _env(container: ContainerSpec) -> tuple[EnvVar, ...]:
    found = []
    for variable in container.env or ():
        value_from = (variable.model_extra or {}).get("valueFrom")
        reference = json.dumps(value_from, sort_keys=True) if value_from is not None else None
        found.append(EnvVar(variable.name, variable.value or "", reference))
    return tuple(found)
