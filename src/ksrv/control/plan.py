"""InferenceService -> the processes each component needs: pure, no store, no platform.

`desired_state` reads a defaulted InferenceService document (the camelCase dict the store
holds) and the runtimes it may use, and says for each component (predictor, transformer,
explainer) which command a replica runs, with which environment, how many replicas, the
request timeout and the canary share. Two plans with the same `fingerprint` are the same
revision; a changed fingerprint is a new revision.

Local mapping of KServe's containers:
- a `model` (or legacy framework) spec runs `ksrv serve` with the runtime KServe's selection
  rules pick; the replica downloads `storageUri` itself before loading;
- a custom container runs its own `command` + `args` (an image cannot run without a container
  engine), with KServe's injected arguments (`--model_name`, `--http_port`, `--grpc_port`, and
  `--predictor_host` for transformers and explainers); `ksrv` as the command means this ksrv.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ksrv.api import default_runtimes, runtime_selection
from ksrv.api.serving_runtime import Runtime
from ksrv.errors import ResourceInvalid

COMPONENTS: Final = ("predictor", "transformer", "explainer")
LEGACY_FRAMEWORKS: Final = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
    "lightgbm", "paddle",
)  # fmt: skip
DEFAULT_TIMEOUT_S: Final = 60.0
HTTP_PORT: Final = "{http_port}"
GRPC_PORT: Final = "{grpc_port}"
# ClusterServingRuntimes a KServe installation ships (config/runtimes).
KSERVE_RUNTIMES: Final = frozenset({
    "kserve-sklearnserver", "kserve-xgbserver", "kserve-lgbserver", "kserve-mlserver",
    "kserve-pmmlserver", "kserve-tensorflow-serving", "kserve-torchserve", "kserve-tritonserver",
    "kserve-paddleserver", "kserve-huggingfaceserver", "kserve-predictiveserver",
})  # fmt: skip
# Component fields the local platform does not carry out yet (later work), said in status.
NOT_YET_LOCAL: Final = {
    "maxReplicas": "autoscaling is not available locally yet; minReplicas replicas run",
    "scaleTarget": "autoscaling is not available locally yet; minReplicas replicas run",
    "scaleMetric": "autoscaling is not available locally yet; minReplicas replicas run",
    "containerConcurrency": "the concurrency limit is not enforced locally yet",
    "logger": "request/response logging is not available locally yet",
}
# KServe's batcher default when `batcher` is given without `maxBatchSize`.
KSERVE_MAX_BATCH_SIZE: Final = 32
CHDIR_AND_EXEC: Final = (
    "import os, sys; os.chdir(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
)
# More replicas than this on one machine is a typo, not a plan.
LOCAL_MAX_REPLICAS: Final = 16
# The one container of a pod KServe treats as the model server.
MAIN_CONTAINER: Final = "kserve-container"


@dataclass(frozen=True)
class ComponentPlan:
    """What one component's replicas run; `error` set means it cannot run (and why)."""

    component: str
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    canary_percent: int | None = None
    protocol: str = "v1"
    runtime: str | None = None
    is_cluster_runtime: bool = False
    readiness_path: str = "/v2/health/ready"
    workdir: str | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    error_reason: str | None = None

    @property
    def fingerprint(self) -> str:
        """Identity of a revision: what the process runs, not how many of them."""
        payload = json.dumps([self.command, self.env, self.readiness_path, self.workdir])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServicePlan:
    namespace: str
    name: str
    components: dict[str, ComponentPlan] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def entry(self) -> str:
        """The component the service's URL reaches first."""
        return "transformer" if "transformer" in self.components else "predictor"


def desired_state(
    isvc: Mapping[str, Any],
    runtimes: Iterable[Runtime],
    *,
    gateway: str,
    python: str = sys.executable,
) -> ServicePlan:
    """The plan for one InferenceService; `gateway` is the gateway's `host:port`."""
    metadata = isvc.get("metadata") or {}
    name, namespace = metadata["name"], metadata.get("namespace") or "default"
    spec = isvc.get("spec") or {}
    runtimes = list(runtimes)
    plans: dict[str, ComponentPlan] = {}
    for component in COMPONENTS:
        component_spec = spec.get(component)
        if not component_spec:
            continue
        upstream = None
        if component != "predictor":
            # Transformers and explainers reach the predictor through the gateway.
            predictor = plans.get("predictor")
            protocol = predictor.protocol if predictor is not None else "v1"
            upstream = Upstream(f"{gateway}/serving/{namespace}/{name}-predictor", protocol)
        plans[component] = _component_plan(
            component, component_spec, name, upstream, runtimes, python
        )
    notes: tuple[str, ...] = ()
    if spec.get("canary"):
        notes = ("spec.canary: Standard-mode canaries are not available locally yet; use "
                 "canaryTrafficPercent",)  # fmt: skip
    return ServicePlan(namespace, name, plans, notes)


@dataclass(frozen=True)
class Upstream:
    """The predictor as a transformer or explainer sees it."""

    host: str
    protocol: str


def _component_plan(
    component: str,
    spec: Mapping[str, Any],
    name: str,
    upstream: Upstream | None,
    runtimes: list[Runtime],
    python: str,
) -> ComponentPlan:
    bounds = _bounds(component, spec)
    model = _model_spec(spec)
    try:
        if model is not None:
            built = _model_server(model, name, upstream, runtimes, python)
            built = _with_batcher(built, f"spec.{component}", spec.get("batcher"), model)
        else:
            built = _custom_container(component, spec, name, upstream, python)
            if spec.get("batcher"):
                note = f"spec.{component}.batcher: a custom container's requests are not merged"
                built["notes"] += (note,)
    except ResourceInvalid as exc:
        return ComponentPlan(component, error=str(exc), error_reason=exc.reason or "InvalidSpec")
    notes = bounds.pop("notes") + built.pop("notes", ())
    return ComponentPlan(component=component, notes=notes, **bounds, **built)


def _bounds(component: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    min_replicas = spec.get("minReplicas")
    min_replicas = 1 if min_replicas is None else int(min_replicas)
    path = f"spec.{component}"
    notes = [f"{path}.{field}: {why}" for field, why in NOT_YET_LOCAL.items() if spec.get(field)]
    if min_replicas == 0:
        notes.append(f"{path}.minReplicas: 0 (scale to zero) is not available locally yet; "
                     "1 replica runs")  # fmt: skip
    if min_replicas > LOCAL_MAX_REPLICAS:
        notes.append(f"{path}.minReplicas: {min_replicas} replicas on one machine is capped at "
                     f"{LOCAL_MAX_REPLICAS} locally")  # fmt: skip
    return {
        "replicas": min(max(1, min_replicas), LOCAL_MAX_REPLICAS),
        "min_replicas": min_replicas,
        "max_replicas": int(spec.get("maxReplicas") or 0),
        "timeout_s": float(spec.get("timeout") or DEFAULT_TIMEOUT_S),
        "canary_percent": spec.get("canaryTrafficPercent"),
        "notes": tuple(notes),
    }


def _model_spec(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `model` spec, with a legacy `sklearn:`-style spec read as one (KServe's webhook)."""
    if spec.get("model") is not None:
        return dict(spec["model"])
    for framework in LEGACY_FRAMEWORKS:
        if spec.get(framework) is not None:
            legacy = dict(spec[framework])
            legacy.setdefault("modelFormat", {"name": framework})
            return legacy
    return None


def _model_server(
    model: Mapping[str, Any],
    name: str,
    upstream: Upstream | None,
    runtimes: list[Runtime],
    python: str,
) -> dict[str, Any]:
    model_format = model.get("modelFormat") or {}
    if not model_format.get("name"):
        raise ResourceInvalid("spec.predictor.model.modelFormat.name is required", "InvalidSpec")
    wanted = runtime_selection.ModelFormat(model_format["name"], model_format.get("version"))
    protocol = model.get("protocolVersion")
    notes = []
    runtime_name = model.get("runtime")
    if runtime_name and _is_kserve_builtin(runtime_name, runtimes):
        # KServe's own runtimes (kserve-sklearnserver, ...) are images; ksrv's defaults stand
        # in for them, chosen by the model's format as KServe would among its own.
        notes.append(f"runtime {runtime_name} is KServe's image; ksrv's runtime serves it")
        runtime_name = None
    runtime = runtime_selection.select_runtime(
        wanted,
        runtimes,
        runtime_name=runtime_name,
        protocol_version=protocol or "v1",
    )
    ksrv_runtime = default_runtimes.ksrv_runtime(runtime)
    if ksrv_runtime is None:
        notes.append(
            f"runtime {runtime.name} runs a container image; ksrv serves the "
            f"{wanted.name} format with its own runtime instead"
        )
    storage_uri = model.get("storageUri")
    if not storage_uri:
        raise ResourceInvalid("a model needs a storageUri to serve it locally", "InvalidSpec")
    command = [
        python, "-m", "ksrv.cli.main", "serve",
        "--model-name", name,
        "--model-format", str(wanted),
        "--storage-uri", storage_uri,
        "--http-port", HTTP_PORT,
        "--grpc-port", GRPC_PORT,
    ]  # fmt: skip
    if upstream is not None:
        command += ["--predictor-host", upstream.host, "--predictor-protocol", upstream.protocol]
    if model.get("args"):
        notes.append("model args are meant for the runtime's container and are not passed on")
    return {
        "command": tuple(command),
        "env": _env(model),
        "protocol": protocol or "v1",
        "runtime": runtime.name,
        "is_cluster_runtime": runtime.kind == "ClusterServingRuntime",
        "notes": tuple(notes),
    }


def _with_batcher(
    built: dict[str, Any], path: str, batcher: Mapping[str, Any] | None, model: Mapping[str, Any]
) -> dict[str, Any]:
    """KServe's batcher sidecar, carried out by ksrv's own request merging."""
    if not batcher:
        return built
    size = int(batcher.get("maxBatchSize") or KSERVE_MAX_BATCH_SIZE)
    notes = []
    if batcher.get("maxLatency") or batcher.get("timeout"):
        notes.append(
            f"{path}.batcher: ksrv merges the requests that arrive together and never waits "
            "for more, so maxLatency and timeout are not used"
        )
    model_format = str((model.get("modelFormat") or {}).get("name", "")).lower()
    if not default_runtimes.format_merges_requests(model_format):
        notes.append(
            f"{path}.batcher: the {model_format} runtime answers each request on its own "
            "(ksrv merges requests for sklearn, xgboost and lightgbm)"
        )
    command = (*built["command"], "--max-batch-size", str(size))
    return {**built, "command": command, "notes": built["notes"] + tuple(notes)}


def _is_kserve_builtin(runtime_name: str, runtimes: list[Runtime]) -> bool:
    """A runtime KServe installs by default that nobody applied here."""
    return runtime_name in KSERVE_RUNTIMES and all(r.name != runtime_name for r in runtimes)


def _custom_container(
    component: str, spec: Mapping[str, Any], name: str, upstream: Upstream | None, python: str
) -> dict[str, Any]:
    containers = spec.get("containers") or []
    if not containers:
        raise ResourceInvalid(f"spec.{component} has no model and no container", "InvalidSpec")
    container = next((c for c in containers if c.get("name") == MAIN_CONTAINER), containers[0])
    command = list(container.get("command") or [])
    if not command:
        raise ResourceInvalid(
            f"container image {container.get('image')!r} cannot run without a container "
            "engine; give the container a `command` (e.g. [python, model.py]) to run it locally",
            "InvalidSpec",
        )
    if command[0] == "ksrv":
        command = [python, "-m", "ksrv.cli.main", *command[1:]]
    elif command[0] in ("python", "python3"):
        command[0] = python
    args = [str(arg) for arg in container.get("args") or []]
    is_ksrv = command[2:3] == ["ksrv.cli.main"]
    injected = _injected_args(args, name, upstream, is_ksrv)
    notes = []
    if container.get("image"):
        notes.append(f"image {container['image']} is not pulled: its command runs locally")
    argv = command + args + injected
    workdir = container.get("workingDir")
    if workdir:
        # The platform spawns in its own directory: change into the container's first.
        argv = [python, "-c", CHDIR_AND_EXEC, str(workdir), *argv]
    return {
        "command": tuple(argv),
        "env": _env(container),
        "workdir": workdir,
        "notes": tuple(notes),
        "protocol": "v1",
    }


def _injected_args(
    args: list[str], name: str, upstream: Upstream | None, is_ksrv: bool
) -> list[str]:
    """KServe's controller arguments, in the spelling the server understands."""
    spelling = (
        {"name": "--model-name", "http": "--http-port", "grpc": "--grpc-port",
         "predictor": "--predictor-host", "protocol": "--predictor-protocol"}
        if is_ksrv
        else {"name": "--model_name", "http": "--http_port", "grpc": "--grpc_port",
              "predictor": "--predictor_host", "protocol": "--predictor_protocol"}
    )  # fmt: skip
    given = {arg.split("=", 1)[0] for arg in args}
    injected: list[str] = []
    if spelling["name"] not in given:
        injected += [spelling["name"], name]
    if upstream is not None and spelling["predictor"] not in given:
        injected += [spelling["predictor"], upstream.host]
        if spelling["protocol"] not in given:
            injected += [spelling["protocol"], upstream.protocol]
    injected += [spelling["http"], HTTP_PORT, spelling["grpc"], GRPC_PORT]
    if not is_ksrv:
        injected += ["--host", "127.0.0.1"]
    return injected


def _env(container: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Literal env values; `valueFrom` (secrets, field refs) has no local source."""
    return tuple(
        (str(variable["name"]), str(variable.get("value", "")))
        for variable in container.get("env") or []
        if "valueFrom" not in variable
    )
