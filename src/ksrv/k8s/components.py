"""Custom containers and KServe's ART explainer: the arguments KServe's controller injects.

A custom transformer gets `--model_name {isvc} --predictor_host {isvc}-predictor.{ns}
--http_port 8080` and `--workers {containerConcurrency}` unless its args already say so
(`CustomTransformer.GetContainer`); a custom explainer the same, with `--http_port` always
appended (`CustomExplainer`); the ART explainer runs KServe's `kserve/art-explainer` image with
`--adversary_type` and its config as flags. The first container is renamed `kserve-container`
and gets KServe's default resources (1 CPU, 2Gi) where it sets neither request nor limit.
A container that runs `ksrv` is ksrv's own server: it gets the same arguments in its spelling
(`--model-name`), plus `--predictor-protocol` and `--host=0.0.0.0` (it binds loopback by
default, which a pod's Service cannot reach), so one YAML runs alike locally and on a cluster.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any, Final

from ksrv.control import serve_args
from ksrv.k8s import naming
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.runtime_defaults import MODEL_DIR

MAIN: Final = "kserve-container"
TRANSFORMER_CONTAINER: Final = "transformer-container"
PLACEHOLDER_IMAGE: Final = "ksrv:replace"
HTTP_PORT: Final = 8080
GRPC_PORT: Final = 8081
# KServe's `explainers.art` in inferenceservice-config.
ART_IMAGE: Final = "kserve/art-explainer"
ART_DEFAULT_VERSION: Final = "latest"
ART_FIELDS: Final = frozenset({"type", "storageUri", "runtimeVersion", "config", "storage"})
# KServe's `inferenceService.resource` defaults (its shipped ConfigMap).
DEFAULT_RESOURCES: Final = {"cpu": "1", "memory": "2Gi"}
# KServe's model-server flags -> `ksrv serve`'s spelling of the same flag.
_KSRV_SPELLING: Final = {
    "--model_name": "--model-name", "--model_dir": "--model-dir", "--http_port": "--http-port",
    "--grpc_port": "--grpc-port", "--max_threads": "--max-threads",
    "--predictor_host": "--predictor-host", "--predictor_protocol": "--predictor-protocol",
}  # fmt: skip


def custom_pod(ctx: ComponentContext, pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` (the component's own containers) with KServe's names, arguments and defaults."""
    containers: list[dict[str, Any]] = pod["containers"]
    for container in containers:
        if container.get("image") == PLACEHOLDER_IMAGE:
            container["image"] = ctx.config.images.server
    if ctx.component != "predictor" or len(containers) == 1:
        containers[0]["name"] = MAIN
    main = next((c for c in containers if c.get("name") == MAIN), containers[0])
    is_ksrv = _is_ksrv(main)
    args = list(main.get("args") or ())
    if is_ksrv:
        args = ksrv_spelling(args)
    if ctx.component == "predictor":
        # KServe injects nothing into a custom predictor; ksrv's server still needs a name
        # (the one the local platform gives it) and an address the Service reaches.
        args += _ksrv_predictor_args(ctx, args) if is_ksrv else []
    else:
        args += _injected_args(ctx, args, is_ksrv, always_http=ctx.component == "explainer")
    if is_ksrv:
        args += logger_args(ctx, args)
    if args:
        main["args"] = args
    _default_resources(containers[0])
    if not main.get("ports"):
        # Declared from the --http_port it was given (KServe declares none): the Service then
        # targets the port the server really listens on.
        main["ports"] = default_ports(args, has_grpc=is_ksrv)
    return pod


def art_pod(ctx: ComponentContext, pod: dict[str, Any]) -> dict[str, Any]:
    """The pod of KServe's ART explainer (`explainer.art`), as its `GetContainer` builds it."""
    art: dict[str, Any] = ctx.raw["art"]
    container = {k: copy.deepcopy(v) for k, v in art.items() if k not in ART_FIELDS}
    given = list(container.get("args") or ())
    args = ["--model_name", ctx.isvc.metadata.name, "--http_port", str(HTTP_PORT)]
    if not has_arg(given, "--predictor_host"):
        args += ["--predictor_host", _predictor_host(ctx)]
    # Read from the spec, as KServe's GetContainer does (the plan's ART workload is ksrv's
    # local stand-in for this image).
    concurrency = ctx.raw.get("containerConcurrency")
    if concurrency and not has_arg(given, "--workers"):
        args += ["--workers", str(concurrency)]
    if art.get("storageUri"):
        args += ["--storage_uri", MODEL_DIR]
    args += ["--adversary_type", str(art.get("type") or "SquareAttack")]
    for key, value in sorted((art.get("config") or {}).items()):
        args += [f"--{key}", str(value)]
    container["args"] = args + given
    container["name"] = MAIN
    version = art.get("runtimeVersion") or ART_DEFAULT_VERSION
    container.setdefault("image", f"{ART_IMAGE}:{version}")
    _default_resources(container)
    container.setdefault("ports", default_ports(container["args"], has_grpc=False))
    containers = list(pod.get("containers") or [{}])
    containers[0] = container
    return {**pod, "containers": containers}


def set_env(container: dict[str, Any], name: str, value: str) -> None:
    """Set env var `name` to `value` in `container` (replacing a value or reference)."""
    variables = container.setdefault("env", [])
    for variable in variables:
        if variable.get("name") == name:
            variable.pop("valueFrom", None)
            variable["value"] = value
            return
    variables.append({"name": name, "value": value})


def logger_args(ctx: ComponentContext, args: Sequence[str]) -> list[str]:
    """The component's `logger` as `ksrv serve`'s flags (it logs its own payloads, in place
    of KServe's agent sidecar), unless its args already say where to log."""
    if ctx.plan.logger is None or has_arg(args, "--log-url"):
        return []
    return serve_args.logger_args(ctx.plan.logger)


def has_arg(args: Sequence[str], flag: str) -> bool:
    """KServe's `IncludesArg`: some argument is `flag` or starts with it."""
    return any(arg.startswith(flag) for arg in args)


def ksrv_spelling(args: Sequence[str]) -> list[str]:
    """`args` with KServe's underscore flags in `ksrv serve`'s spelling."""
    spelled = []
    for arg in args:
        flag, sep, value = arg.partition("=")
        spelled.append(f"{_KSRV_SPELLING.get(flag, flag)}{sep}{value}")
    return spelled


def default_ports(args: Sequence[str], *, has_grpc: bool) -> list[dict[str, Any]]:
    """The ports a server started with `args` listens on: HTTP (`http1`), and gRPC (`h2c`)
    for ksrv's server unless `--grpc-port=0` turns it off."""
    ports = [http_port(_arg_value(args, ("--http-port", "--http_port")) or HTTP_PORT)]
    grpc = _arg_value(args, ("--grpc-port", "--grpc_port"))
    if has_grpc and grpc != 0:
        ports.append({"name": "h2c", "containerPort": grpc or GRPC_PORT, "protocol": "TCP"})
    return ports


def http_port(number: int) -> dict[str, Any]:
    """An HTTP container port, named as Knative wants it (`http1`)."""
    return {"name": "http1", "containerPort": number, "protocol": "TCP"}


def is_grpc_port(port: dict[str, Any]) -> bool:
    """KServe's rule (`isGrpcPort`): a port whose name says grpc or h2c."""
    name = str(port.get("name") or "")
    return "grpc" in name or "h2c" in name


def _injected_args(
    ctx: ComponentContext, args: list[str], is_ksrv: bool, *, always_http: bool
) -> list[str]:
    """KServe's arguments for a custom transformer or explainer, in the container's spelling."""
    model, predictor, http = (
        _KSRV_SPELLING[flag] if is_ksrv else flag
        for flag in ("--model_name", "--predictor_host", "--http_port")
    )
    added = []
    if not has_arg(args, model):
        added += [model, ctx.isvc.metadata.name]
    if not has_arg(args, predictor):
        added += [predictor, _predictor_host(ctx)]
    if is_ksrv and ctx.plan.predictor is not None and not has_arg(args, "--predictor-protocol"):
        added += ["--predictor-protocol", ctx.plan.predictor.protocol]
    if always_http or not has_arg(args, http):
        added += [http, str(HTTP_PORT)]
    concurrency = ctx.plan.container_concurrency
    if concurrency and not has_arg(args, "--workers"):
        added += ["--workers", str(concurrency)]
    if is_ksrv and not has_arg(args, "--host"):
        added.append("--host=0.0.0.0")
    return added


def _ksrv_predictor_args(ctx: ComponentContext, args: list[str]) -> list[str]:
    added = []
    if not has_arg(args, "--model-name"):
        added += ["--model-name", ctx.isvc.metadata.name]
    if not has_arg(args, "--host"):
        added.append("--host=0.0.0.0")
    return added


def _predictor_host(ctx: ComponentContext) -> str:
    """KServe's `{predictor service}.{namespace}` (`PredictorServiceName`)."""
    isvc = ctx.isvc.metadata.name
    named = ctx.isvc.spec.predictor.name
    service = f"{isvc}-{named}-predictor" if named else naming.component_name(isvc, "predictor")
    return f"{service}.{ctx.namespace}"


def _is_ksrv(container: dict[str, Any]) -> bool:
    command = container.get("command") or [""]
    return os.path.basename(str(command[0])) == "ksrv"


def _default_resources(container: dict[str, Any]) -> None:
    """KServe's `setResourceRequirementDefaults`, for each resource the container leaves open
    (a default beside a user's request or limit could make request > limit)."""
    resources = container.setdefault("resources", {})
    requests = resources.setdefault("requests", {})
    limits = resources.setdefault("limits", {})
    for name, quantity in DEFAULT_RESOURCES.items():
        if name not in requests and name not in limits:
            requests[name] = quantity
            limits[name] = quantity


def _arg_value(args: Sequence[str], flags: Sequence[str]) -> int | None:
    """The last integer value given to any of `flags` (`--flag=N` or `--flag N`)."""
    found = None
    for position, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag not in flags:
            continue
        if not sep:
            value = args[position + 1] if position + 1 < len(args) else ""
        if value.isdigit():
            found = int(value)
    return found
