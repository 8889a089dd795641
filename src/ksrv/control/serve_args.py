"""`ksrv serve`'s flags for what a component plan asks of its server, for both platforms.

The local renderer (`platforms.local_render`) and the Kubernetes renderer (`ksrv.k8s.podspec`,
`ksrv.k8s.components`) start the same `ksrv serve`, once as a process and once as a container:
a `logger` becomes KServe's agent flags (the server logs its own payloads), a multi-model
predictor its models.json and memory budget. One function each, so the two cannot drift.
"""

from __future__ import annotations

from typing import Final

from ksrv.control.logger_plan import PayloadLogger
from ksrv.control.plan import ModelServer

# KServe's `logger.defaultUrl` (inferenceservice-config), for a `logger` without a url.
KSERVE_DEFAULT_LOGGER_URL: Final = "http://default-broker"


def logger_args(logger: PayloadLogger) -> list[str]:
    """KServe's agent flags, which `ksrv serve` takes: the replica logs its own payloads."""
    args = [
        "--log-url", logger.url or KSERVE_DEFAULT_LOGGER_URL,
        "--log-mode", logger.mode,
        "--inference-service", logger.inference_service,
        "--namespace", logger.namespace,
        "--component", logger.component,
        "--endpoint", logger.endpoint,
    ]  # fmt: skip
    if logger.metadata_headers:
        args += ["--log-metadata-headers", ",".join(logger.metadata_headers)]
    if logger.metadata_annotations:
        pairs = (f"{key}={value}" for key, value in logger.metadata_annotations)
        args += ["--log-metadata-annotations", ",".join(pairs)]
    return args


def multi_model_args(server: ModelServer, models_config: str) -> list[str]:
    """A multi-model server's flags: the models.json it watches, and its memory budget."""
    args = ["--models-config", models_config]
    if server.memory_budget_bytes is not None:
        args += ["--memory-budget", str(server.memory_budget_bytes)]
    return args
