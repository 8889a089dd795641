"""A component's pod spec as KServe's controller builds it (§5.3 of the KServe reference).

For a model on a runtime: the runtime's `kserve-container` strategic-merged with the model's
container (the InferenceService wins; args are the runtime's followed by the model's, as in
KServe 0.20), the server type's defaults, the templates filled in, the image tag set, ksrv's
server image in place of the `ksrv:replace` placeholder; then the runtime's pod fields under
the component's, a collocated `transformer-container`, the runtime's other containers and the
component's own. Custom containers (and KServe's ART explainer) get the arguments KServe's
controller injects (`components.py`). Every other pod field of the component passes through;
KServe's extension fields never do. Storage provisioning comes after this
(`storage_init.provision`, KServe's pod webhook); `with_readiness_probes` is Standard mode's
touch, and Knative's one port is `knative.one_port`.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from ksrv.api.inference_service import FRAMEWORKS
from ksrv.control import serve_args
from ksrv.control.plan import ModelServer
from ksrv.errors import ResourceInvalid
from ksrv.k8s import components, merge, runtime_defaults, trained_model
from ksrv.k8s.components import MAIN, PLACEHOLDER_IMAGE, TRANSFORMER_CONTAINER, set_env
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.runtime_defaults import MODEL_DIR

__all__ = [
    "MAIN",
    "MODEL_DIR",
    "PLACEHOLDER_IMAGE",
    "pod_spec",
    "with_readiness_probes",
]

ISVC_NAME_ENV: Final = "INFERENCE_SERVICE_NAME"
# KServe's extension fields of a component (and its implementations): not pod fields.
EXTENSION_FIELDS: Final = frozenset({
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy", "storageUris", "name", "model", "storageContainerName",
    "workerSpec", "art", *FRAMEWORKS,
})  # fmt: skip
# The fields of `predictor.model` that are not container fields.
MODEL_FIELDS: Final = frozenset({
    "modelFormat", "runtime", "storageUri", "protocolVersion", "runtimeVersion", "storage",
    "confidential",
})  # fmt: skip
# KServe's `MergePodSpec`: the runtime's pod fields that reach the pod.
RUNTIME_POD_FIELDS: Final = (
    "nodeSelector", "affinity", "tolerations", "volumes", "imagePullSecrets", "schedulerName",
    "resourceClaims",
)  # fmt: skip
# KServe's multi-model constants: where the modelconfig ConfigMap is mounted (its agent's puller
# reads it there; ksrv's server watches it itself).
MODEL_CONFIG_VOLUME: Final = "model-config"
MODEL_CONFIG_DIR: Final = "/mnt/configs"
# KServe's raw-deployment readiness probe (`setDefaultPodSpec`).
_PROBE_TIMING: Final = {
    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
}  # fmt: skip


def pod_spec(ctx: ComponentContext) -> dict[str, Any]:
    """The pod spec of `ctx`'s replicas (before storage provisioning).

    Raises:
        ResourceInvalid: the runtime has no `kserve-container`, a template is not KServe's, or
            the component has nothing to run.
    """
    pod = {k: copy.deepcopy(v) for k, v in ctx.raw.items() if k not in EXTENSION_FIELDS}
    if ctx.component == "explainer" and ctx.raw.get("art"):
        return components.art_pod(ctx, pod)
    workload = ctx.plan.workload
    if isinstance(workload, ModelServer):
        return _model_pod(ctx, workload, pod)
    if workload is None or not pod.get("containers"):
        raise ResourceInvalid(
            ctx.plan.error or f"spec.{ctx.component} has nothing to run", "InvalidSpec"
        )
    pod = components.custom_pod(ctx, pod)
    if ctx.component == "predictor":
        for container in pod["containers"]:
            set_env(container, ISVC_NAME_ENV, ctx.isvc.metadata.name)
    elif ctx.component == "transformer":
        set_env(pod["containers"][0], ISVC_NAME_ENV, ctx.isvc.metadata.name)
    return pod


def with_readiness_probes(pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` with KServe's Standard-mode readiness probe on the model container (and a
    collocated transformer) where the user gave none: TCP on its first port, else 8080."""
    pod = copy.deepcopy(pod)
    for container in pod.get("containers") or ():
        if container.get("name") not in (MAIN, TRANSFORMER_CONTAINER):
            continue
        if container.get("readinessProbe") is not None:
            continue
        ports = container.get("ports") or ()
        port = int(ports[0]["containerPort"]) if ports else components.HTTP_PORT
        container["readinessProbe"] = {"tcpSocket": {"port": port}, **_PROBE_TIMING}
    return pod


def _model_pod(ctx: ComponentContext, server: ModelServer, pod: dict[str, Any]) -> dict[str, Any]:
    runtime = ctx.runtime
    if runtime is None:
        raise ResourceInvalid(f"runtime {server.runtime} is not known", "RuntimeNotRecognized")
    spec = runtime.spec.to_dict()
    runtime_containers: list[dict[str, Any]] = spec.get("containers") or []
    base = next((c for c in runtime_containers if c.get("name") == MAIN), None)
    if base is None:
        raise ResourceInvalid(
            f"failed to find {MAIN} in ServingRuntime {runtime.name} containers",
            "InvalidPredictorSpec",
        )
    main = _model_container(ctx, server, base)
    containers = [main]
    given = list(pod.pop("containers", None) or [])
    transformer = _collocated_transformer(ctx, runtime_containers, given)
    if transformer is not None:
        containers.append(transformer)
    skipped = (MAIN, TRANSFORMER_CONTAINER)
    containers += [copy.deepcopy(c) for c in runtime_containers if c.get("name") not in skipped]
    containers += [c for c in given if c.get("name") != TRANSFORMER_CONTAINER]
    for container in containers:
        set_env(container, ISVC_NAME_ENV, ctx.isvc.metadata.name)
    runtime_pod: dict[str, Any] = {k: spec[k] for k in RUNTIME_POD_FIELDS if k in spec}
    merged = {**merge.merge_pod(runtime_pod, pod), "containers": containers}
    if server.is_multi_model and server.ksrv_runtime is not None:
        _mount_model_config(ctx, merged, main)
    return merged


def _mount_model_config(ctx: ComponentContext, pod: dict[str, Any], main: dict[str, Any]) -> None:
    """KServe's `model-config` volume (the ConfigMap `modelconfig-{isvc}-0`) at /mnt/configs,
    in the model container: ksrv's server watches models.json there (`--models-config`)."""
    config_map = trained_model.config_map_name(ctx.isvc.metadata.name)
    volume = {"name": MODEL_CONFIG_VOLUME, "configMap": {"name": config_map}}
    pod["volumes"] = [*(pod.get("volumes") or ()), volume]
    mount = {"name": MODEL_CONFIG_VOLUME, "mountPath": MODEL_CONFIG_DIR, "readOnly": True}
    main["volumeMounts"] = [*(main.get("volumeMounts") or ()), mount]


def _model_container(
    ctx: ComponentContext, server: ModelServer, base: dict[str, Any]
) -> dict[str, Any]:
    assert ctx.runtime is not None
    model = ctx.raw.get("model") or {}
    defaults = runtime_defaults.server_defaults(ctx.runtime, model, ctx.isvc.metadata.name)
    overlay = {k: copy.deepcopy(v) for k, v in model.items() if k not in MODEL_FIELDS}
    for name, value in defaults.env:
        if all(v.get("name") != name for v in overlay.get("env") or ()):
            overlay.setdefault("env", []).append({"name": name, "value": value})
    is_ksrv = server.ksrv_runtime is not None
    overlay["args"] = [*(overlay.get("args") or ()), *defaults.args]
    if is_ksrv:
        overlay["args"] = components.ksrv_spelling(overlay["args"])
    main = _merge_runtime_container(base, overlay)
    main["name"] = MAIN
    if is_ksrv:
        main["args"] = [
            *(main.get("args") or ()),
            *_ksrv_model_args(ctx, server, main.get("args") or []),
        ]
    main = _fill(ctx, main)
    image = main.get("image") or PLACEHOLDER_IMAGE
    if image == PLACEHOLDER_IMAGE:
        image = ctx.config.images.server
    main["image"] = runtime_defaults.image_tag(
        image,
        model.get("runtimeVersion"),
        runtime_defaults.server_type(ctx.runtime),
        runtime_defaults.is_gpu(main),
    )
    if not main.get("ports"):
        main["ports"] = components.default_ports(main.get("args") or (), has_grpc=is_ksrv)
    return main


def _ksrv_model_args(ctx: ComponentContext, server: ModelServer, args: list[str]) -> list[str]:
    """What ksrv's server needs in a pod: to listen beyond loopback, KServe's batcher carried
    out by its own (`--max-batch-size`, `--max-latency-ms`), the mounted models.json of a
    multi-model predictor, and a `logger`'s flags (`components.logger_args`)."""
    added = []
    if not components.has_arg(args, "--host"):
        added.append("--host=0.0.0.0")
    batcher = ctx.plan.batcher
    if batcher is not None and not components.has_arg(args, "--max-batch-size"):
        added.append(f"--max-batch-size={batcher.max_batch_size}")
    if batcher is not None and not components.has_arg(args, "--max-latency-ms"):
        added.append(f"--max-latency-ms={batcher.max_latency_ms}")
    if server.is_multi_model and not components.has_arg(args, "--models-config"):
        models_json = f"{MODEL_CONFIG_DIR}/{trained_model.MODELS_KEY}"
        added += serve_args.multi_model_args(server, models_json)
    return added + components.logger_args(ctx, args)


def _collocated_transformer(
    ctx: ComponentContext, runtime_containers: list[dict[str, Any]], given: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """KServe's collocated `transformer-container`: the runtime's and the component's merged
    (args concatenated), templates filled in."""
    ours = next((c for c in runtime_containers if c.get("name") == TRANSFORMER_CONTAINER), None)
    theirs = next((c for c in given if c.get("name") == TRANSFORMER_CONTAINER), None)
    if ours is None and theirs is None:
        return None
    if ours is not None and theirs is not None:
        return _fill(ctx, _merge_runtime_container(ours, theirs))
    return _fill(ctx, copy.deepcopy(ours if ours is not None else theirs or {}))


def _merge_runtime_container(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """KServe's `MergeRuntimeContainers`: a strategic merge, but args are the runtime's
    followed by the InferenceService's (the model's extend the runtime's flags)."""
    merged = merge.merge_container(base, overlay)
    args = [*(base.get("args") or ()), *(overlay.get("args") or ())]
    merged.pop("args", None)
    if args:
        merged["args"] = args
    return merged


def _fill(ctx: ComponentContext, container: dict[str, Any]) -> dict[str, Any]:
    assert ctx.runtime is not None
    where = f"ServingRuntime {ctx.runtime.name} container {container.get('name')}"
    return runtime_defaults.fill_templates(
        container, ctx.isvc.metadata.name, ctx.namespace, isvc_labels(ctx),
        ctx.isvc.metadata.annotations, where,
    )  # fmt: skip


def isvc_labels(ctx: ComponentContext) -> dict[str, str]:
    """The InferenceService's labels with those KServe's server-type defaults add
    (`modelClass` for mlserver, `serviceEnvelope` for torchserve)."""
    labels = dict(ctx.isvc.metadata.labels)
    if isinstance(ctx.plan.workload, ModelServer) and ctx.runtime is not None:
        model = ctx.raw.get("model") or {}
        defaults = runtime_defaults.server_defaults(ctx.runtime, model, ctx.isvc.metadata.name)
        labels.update(defaults.labels)
    return labels
