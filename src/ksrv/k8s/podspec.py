"""A component's pod spec as KServe's controller builds it (§5.3 of the KServe reference).

For a model on a runtime: the runtime's `kserve-container` merged with the model's container
(the InferenceService wins), KServe's templates (`{{.Name}}`) filled in, ksrv's server image in
place of the runtime's placeholder. For a custom container: the user's containers as written.
Every other pod field of the component passes through. Storage provisioning is added after
this by `storage_init.provision` (KServe does it in a pod webhook).
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.control.plan import CustomContainer, ModelServer
from ksrv.k8s.context import ComponentContext

MAIN: Final = "kserve-container"
MODEL_DIR: Final = "/mnt/models"
PLACEHOLDER_IMAGE: Final = "ksrv:replace"
# KServe's extension fields of a component: not pod fields.
EXTENSION_FIELDS: Final = frozenset({
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy", "storageUris", "name", "model", "storageContainerName",
    "workerSpec", "art",
})  # fmt: skip


def pod_spec(ctx: ComponentContext) -> dict[str, Any]:
    """The pod spec of `ctx`'s replicas (before storage provisioning)."""
    pod = {k: v for k, v in ctx.raw.items() if k not in EXTENSION_FIELDS and k != "containers"}
    workload = ctx.plan.workload
    containers = list(ctx.raw.get("containers") or [])
    if isinstance(workload, ModelServer):
        main = _model_container(ctx, workload)
        containers = [main, *(c for c in containers if c.get("name") != MAIN)]
    elif isinstance(workload, CustomContainer):
        containers = [dict(c) for c in containers]
    pod["containers"] = containers
    return pod


def _model_container(ctx: ComponentContext, server: ModelServer) -> dict[str, Any]:
    model = dict(ctx.raw.get("model") or {})
    for key in ("modelFormat", "runtime", "storageUri", "protocolVersion", "runtimeVersion",
                "storage"):  # fmt: skip
        model.pop(key, None)
    base: dict[str, Any] = {}
    if ctx.runtime is not None:
        for container in ctx.runtime.spec.containers or ():
            if container.name == MAIN:
                base = container.to_dict()
    merged = {**base, **model, "name": MAIN}
    if merged.get("image") in (None, PLACEHOLDER_IMAGE):
        merged["image"] = ctx.config.images.server
    merged["args"] = [_template(str(a), ctx) for a in merged.get("args") or ()]
    return merged


def _template(arg: str, ctx: ComponentContext) -> str:
    return arg.replace("{{.Name}}", ctx.isvc.metadata.name)
