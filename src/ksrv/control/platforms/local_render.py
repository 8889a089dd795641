"""A component plan -> the argv, env and replica count of local processes, and what is lost.

The local platform's renderer (a Kubernetes platform renders the same plan into objects):
- a model server runs `ksrv serve` for the plan's format and storageUri; the replica downloads
  `storageUri` itself before loading, and logs its own payloads for a `logger` (KServe's
  agent flags, `--log-url` ...), so REST and gRPC are both covered without a proxy; a
  multi-model server gets the `models.json` the control plane writes for the service
  (`--models-config`) and its memory budget instead of a `storageUri`;
- a custom container runs its own `command` + `args` (an image cannot run without a container
  engine), with KServe's injected arguments (`--model_name`, `--http_port`, `--grpc_port`, and
  `--predictor_host` for transformers and explainers); `ksrv` as the command means this ksrv,
  and a `workingDir` is entered before the command runs, so relative paths in it resolve there
  as in Kubernetes (without one, in the directory the control plane runs in:
  `missing_relative_path` explains a failure that comes of it).
A model server's replicas may be forked from a warm process (`is_forkable`); a custom
container's command always runs as its own process, as in Kubernetes.
Ports are placeholders ("{http_port}", "{grpc_port}") that each replica fills with free ports.
Everything the plan asks for that local processes do not carry out is said in `notes`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ksrv.api import default_runtimes
from ksrv.control.plan import ComponentPlan, CustomContainer, ModelServer
from ksrv.control.serve_args import KSERVE_DEFAULT_LOGGER_URL, logger_args, multi_model_args
from ksrv.errors import ResourceInvalid

HTTP_PORT: Final = "{http_port}"
GRPC_PORT: Final = "{grpc_port}"
READINESS_PATH: Final = "/v2/health/ready"
CHDIR_AND_EXEC: Final = (
    "import os, sys; os.chdir(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
)
# More replicas than this on one machine is a typo, not a plan.
LOCAL_MAX_REPLICAS: Final = 16


@dataclass(frozen=True, slots=True)
class LocalRevision:
    """What each replica of a component runs locally, how many, and what is not honoured."""

    command: tuple[str, ...]
    env: dict[str, str]
    replicas: int
    readiness_path: str = READINESS_PATH
    notes: tuple[str, ...] = ()
    is_forkable: bool = False  # `ksrv serve` of a model server: a fork server may start it


def render(
    plan: ComponentPlan,
    name: str,
    predictor_host: str | None,
    python: str,
    models_config: str | None = None,
) -> LocalRevision:
    """The local processes for one component of service `name`.

    Args:
        predictor_host: where a transformer or explainer reaches its predictor (`host:port/path`).
        models_config: the `models.json` a multi-model server watches (its TrainedModels).

    Raises:
        ResourceInvalid: the plan cannot run as a local process (an image without a command).
    """
    if isinstance(plan.workload, ModelServer):
        command, notes = _model_server(plan, plan.workload, name, predictor_host, python)
        if plan.workload.is_multi_model:
            command = _multi_model(command, plan.workload, models_config)
    elif isinstance(plan.workload, CustomContainer):
        command, notes = _custom_container(plan, plan.workload, name, predictor_host, python)
    else:
        raise ResourceInvalid(plan.error or f"spec.{plan.component} has nothing to run")
    replicas, bound_notes = _replicas(plan)
    env = {variable.name: variable.value for variable in plan.env if variable.value_from is None}
    return LocalRevision(
        command=tuple(command),
        env=env,
        replicas=replicas,
        notes=(*bound_notes, *plan.notes, *notes),
        is_forkable=isinstance(plan.workload, ModelServer),
    )


def _replicas(plan: ComponentPlan) -> tuple[int, list[str]]:
    path = f"spec.{plan.component}"
    scaling = plan.autoscaling
    unsupported = {
        # The control plane's autoscaler scales between minReplicas and maxReplicas.
        "scaleMetric": (
            scaling.scale_metric == "memory" and scaling.memory_request_bytes is None,
            "memory utilisation is measured against the serving container's memory request "
            "(or limit), as HPA's is, and it sets none: the replicas are not scaled on memory",
        ),
    }  # fmt: skip
    notes = [f"{path}.{field}: {why}" for field, (value, why) in unsupported.items() if value]
    wanted = scaling.min_replicas
    if wanted > LOCAL_MAX_REPLICAS:
        notes.append(f"{path}.minReplicas: {wanted} replicas on one machine is capped at "
                     f"{LOCAL_MAX_REPLICAS} locally")  # fmt: skip
    return min(max(1, wanted), LOCAL_MAX_REPLICAS), notes


def _model_server(
    plan: ComponentPlan,
    server: ModelServer,
    name: str,
    predictor_host: str | None,
    python: str,
) -> tuple[list[str], list[str]]:
    notes = []
    if server.ksrv_runtime is None:
        format_name = server.model_format.partition(":")[0]
        notes.append(
            f"runtime {server.runtime} runs a container image; ksrv serves the "
            f"{format_name} format with its own runtime instead"
        )
    command = [
        python, "-m", "ksrv.cli.main", "serve",
        "--model-name", name,
        "--model-format", server.model_format,
        "--storage-uri", server.storage_uri,
        "--http-port", HTTP_PORT,
        "--grpc-port", GRPC_PORT,
    ]  # fmt: skip
    if predictor_host is not None and plan.predictor is not None:
        command += ["--predictor-host", predictor_host,
                    "--predictor-protocol", plan.predictor.protocol]  # fmt: skip
    takes_args = default_runtimes.format_takes_args(server.model_format)
    if server.args and not takes_args:
        notes.append("model args are meant for the runtime's container and are not passed on")
    batcher = plan.batcher
    if batcher is not None:
        # KServe's batcher sidecar, carried out by the server's own batcher.
        path = f"spec.{plan.component}.batcher"
        if batcher.timeout_s:
            notes.append(f"{path}: timeout is not used (the component's timeout applies)")
        if not server.merges_requests:
            format_name = server.model_format.partition(":")[0].lower()
            notes.append(
                f"{path}: the {format_name} runtime answers each request on its own "
                "(ksrv batches sklearn, xgboost, lightgbm, onnx, pytorch and tensorflow)"
            )
        command += ["--max-batch-size", str(batcher.max_batch_size)]
        command += ["--max-latency-ms", str(batcher.max_latency_ms)]
    if plan.logger is not None:
        command += logger_args(plan.logger)
        notes += _logger_notes(plan)
    if plan.response_cache is not None:
        command += plan.response_cache.args()
    if server.args and takes_args:
        command += ["--", *server.args]  # KServe appends them to the runtime's own args
    return command, notes


def _logger_notes(plan: ComponentPlan) -> list[str]:
    logger = plan.logger
    assert logger is not None
    path = f"spec.{plan.component}.logger"
    notes = []
    if logger.url is None:
        notes.append(
            f"{path}.url is not set: events go to KServe's default "
            f"{KSERVE_DEFAULT_LOGGER_URL}, which this machine may not resolve"
        )
    notes += [f"{path}.{name}: blob storage of payloads is not available locally; events go "
              "to the logger url" for name in logger.ignored]  # fmt: skip
    return notes


def _multi_model(command: list[str], server: ModelServer, models_config: str | None) -> list[str]:
    """A multi-model server's argv: no storageUri; its models.json and memory budget."""
    at = command.index("--storage-uri")
    del command[at : at + 2]
    if models_config is None:
        raise ResourceInvalid("a multi-model predictor needs the platform's models.json path")
    return command[:at] + multi_model_args(server, models_config) + command[at:]


def _custom_container(
    plan: ComponentPlan,
    container: CustomContainer,
    name: str,
    predictor_host: str | None,
    python: str,
) -> tuple[list[str], list[str]]:
    command = list(container.command)
    if not command:
        raise ResourceInvalid(
            f"container image {container.image!r} cannot run without a container "
            "engine; give the container a `command` (e.g. [python, model.py]) to run it locally",
            "InvalidSpec",
        )
    if command[0] == "ksrv":
        command = [python, "-m", "ksrv.cli.main", *command[1:]]
    elif command[0] in ("python", "python3"):
        command[0] = python
    args = list(container.args)
    is_ksrv = command[2:3] == ["ksrv.cli.main"]
    protocol = plan.predictor.protocol if plan.predictor is not None else "v1"
    injected = _injected_args(args, name, predictor_host, protocol, is_ksrv)
    notes = []
    if container.image:
        notes.append(f"image {container.image} is not pulled: its command runs locally")
    batcher = plan.batcher
    if batcher is not None and is_ksrv and command[3:4] == ["serve"]:
        # `ksrv serve my_model.py:MyModel`: a model that declares `batchable` takes the batcher.
        given = {arg.split("=", 1)[0] for arg in args}
        for flag, value in (("--max-batch-size", batcher.max_batch_size),
                            ("--max-latency-ms", batcher.max_latency_ms)):  # fmt: skip
            if flag not in given:
                injected += [flag, str(value)]
    elif batcher is not None:
        notes.append(
            f"spec.{plan.component}.batcher: a custom container's requests are not merged "
            "(only a `ksrv serve` command takes the batcher)"
        )
    if plan.logger is not None and is_ksrv and "--log-url" not in args:
        injected += logger_args(plan.logger)
        notes += _logger_notes(plan)
    elif plan.logger is not None and not is_ksrv:
        notes.append(f"spec.{plan.component}.logger: payloads are logged by `ksrv serve`; this "
                     "container runs its own server, so nothing is logged")  # fmt: skip
    if plan.response_cache is not None and is_ksrv and "--response-cache-bytes" not in args:
        injected += plan.response_cache.args()
    elif plan.response_cache is not None and not is_ksrv:
        notes.append("ksrv.dev/response-cache: answers are cached by `ksrv serve`; this "
                     "container runs its own server, so nothing is cached")  # fmt: skip
    # Arguments after `--` are the runtime's own (`ksrv serve --explainer art -- ...`).
    at = args.index("--") if is_ksrv and "--" in args else len(args)
    argv = command + args[:at] + injected + args[at:]
    if container.working_dir:
        # The platform spawns in its own directory: change into the container's first.
        argv = [python, "-c", CHDIR_AND_EXEC, container.working_dir, *argv]
    return argv, notes


def _injected_args(
    args: list[str], name: str, predictor_host: str | None, protocol: str, is_ksrv: bool
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
    if predictor_host is not None and spelling["predictor"] not in given:
        injected += [spelling["predictor"], predictor_host]
        if spelling["protocol"] not in given:
            injected += [spelling["protocol"], protocol]
    injected += [spelling["http"], HTTP_PORT, spelling["grpc"], GRPC_PORT]
    if not is_ksrv:
        injected += ["--host", "127.0.0.1"]
    return injected


def missing_relative_path(argv: list[str], cwd: Path) -> str | None:
    """Why a rendered command cannot start when it names a relative path that is not there,
    or a working directory that does not exist; None when neither is the case.

    `argv` is a rendered command (a `workingDir` shows as the chdir trampoline); `cwd` is where
    the platform spawns processes. Looked at when a replica failed, never before: the file may
    appear later, and a spec stays valid without it.
    """
    if argv[1:3] == ["-c", CHDIR_AND_EXEC] and len(argv) > 4:
        folder, command = cwd / argv[3], argv[4:]
        where = f"the container's workingDir {folder}"
        if not folder.is_dir():
            return f"workingDir {argv[3]!r} does not exist (resolved to {folder})"
    else:
        folder, command = cwd, argv
        where = f"{cwd}, the directory ksrv runs in, as the container sets no workingDir"
    program = os.path.basename(command[0])
    paths = [command[0]] if "/" in command[0] else []
    if program.startswith("python") and len(command) > 1 and not command[1].startswith("-"):
        paths.append(command[1])  # `python model.py`: the script is the path that matters
    for path in paths:
        if not os.path.isabs(path) and not (folder / path).exists():
            return (
                f"{path!r} in the container's command is a relative path, resolved against "
                f"{where}, and there is no such file there; give an absolute path or set "
                "the container's workingDir to the folder that holds it"
            )
    return None
