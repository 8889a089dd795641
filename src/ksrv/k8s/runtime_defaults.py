"""What KServe's controller adds to a ServingRuntime's container for one model.

- Server-type defaults (`serving.kserve.io/server-type`, else KServe's runtime name): mlserver
  gets v2 and `MLSERVER_MODEL_NAME` / `MLSERVER_MODEL_URI`, torchserve `PROTOCOL_VERSION`,
  triton v2 and explicit model control without a storageUri (`SetRuntimeDefaults`).
- The runtime's Go templates over the InferenceService's metadata (`{{.Name}}`,
  `{{.Labels.modelClass}}`): only field references, as KServe's runtimes use; a missing
  label or annotation gives "" (Go would print "<no value>"), anything else is an error.
- The image tag: `runtimeVersion` replaces it, a GPU picks the `-gpu` (or vLLM's `-cpu`) build,
  a digest is left alone (`UpdateImageTag`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ksrv.api.serving_runtime import PROTOCOL_VERSIONS, Runtime
from ksrv.errors import ResourceInvalid

SERVER_TYPE: Final = "serving.kserve.io/server-type"
MODEL_DIR: Final = "/mnt/models"
# KServe's `GetServerTypeFromRuntimeName`: the runtimes that predate the annotation.
_SERVER_TYPE_BY_NAME: Final = {
    "kserve-mlserver": "mlserver",
    "kserve-torchserve": "torchserve",
    "kserve-tritonserver": "tritonserver",
    "kserve-tensorflow-serving": "tensorflow-serving",
    "kserve-huggingfaceserver": "huggingfaceserver",
    "kserve-vllmserver": "vllmserver",
}
_MLSERVER_CLASSES: Final = {
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "lightgbm": "mlserver_lightgbm.LightGBMModel",
    "mlflow": "mlserver_mlflow.MLflowRuntime",
}
_MLSERVER_DEFAULT_CLASS: Final = "mlserver_sklearn.SKLearnModel"
_GPU_SUFFIXED: Final = frozenset({"tensorflow-serving", "torchserve", "huggingfaceserver"})
_TAG: Final = re.compile(r":[\w.\-]*$")
_TEMPLATE: Final = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_FIELD: Final = re.compile(r"^\.(Name|Namespace)$")
_MAP_KEY: Final = re.compile(
    r'^\.(Labels|Annotations)\.(\w+)$|^index \.(Labels|Annotations) "([^"]+)"$'
)


@dataclass(frozen=True, slots=True)
class ServerDefaults:
    """What a server type adds: the protocol, env vars (unless set), args and ISVC labels."""

    protocol: str
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def server_type(runtime: Runtime) -> str:
    """The runtime's server type: its annotation, else KServe's name for it, else ""."""
    return runtime.metadata.annotations.get(SERVER_TYPE) or _SERVER_TYPE_BY_NAME.get(
        runtime.metadata.name, ""
    )


def server_defaults(runtime: Runtime, model: Mapping[str, Any], isvc_name: str) -> ServerDefaults:
    """KServe's `SetRuntimeDefaults` plus its protocol rule, for `model` (raw `predictor.model`)."""
    kind = server_type(runtime)
    given = model.get("protocolVersion")
    has_storage = bool(model.get("storageUri") or model.get("storage"))
    if kind == "mlserver":
        env = (
            (("MLSERVER_MODEL_NAME", isvc_name), ("MLSERVER_MODEL_URI", MODEL_DIR))
            if has_storage
            else (("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"),)
        )
        model_format = str((model.get("modelFormat") or {}).get("name", "")).lower()
        model_class = _MLSERVER_CLASSES.get(model_format, _MLSERVER_DEFAULT_CLASS)
        return ServerDefaults(given or "v2", env, labels={"modelClass": model_class})
    if kind == "torchserve":
        protocol = given or "v1"
        envelope = "kservev2" if protocol in ("v2", "grpc-v2") else "kserve"
        return ServerDefaults(
            protocol, (("PROTOCOL_VERSION", protocol),), labels={"serviceEnvelope": envelope}
        )
    if kind == "tritonserver":
        args = () if has_storage else ("--model-control-mode=explicit",)
        return ServerDefaults(given or "v2", args=args)
    return ServerDefaults(given or lowest_protocol(runtime.spec.protocol_versions))


def lowest_protocol(protocols: Sequence[str]) -> str:
    """KServe's `GetProtocolVersionPriority`: v1 < v2 < grpc-v1 < grpc-v2; none listed = v1."""
    known = [p for p in PROTOCOL_VERSIONS if p in protocols]
    return known[0] if known else "v1"


def fill_templates(
    container: dict[str, Any], name: str, namespace: str, labels: Mapping[str, str],
    annotations: Mapping[str, str], where: str,
) -> dict[str, Any]:  # fmt: skip
    """`container` with KServe's `{{.Name}}`-style templates filled in.

    Raises:
        ResourceInvalid: a template that is not a field of the InferenceService's metadata.
    """
    maps = {"Labels": labels, "Annotations": annotations}
    fields = {"Name": name, "Namespace": namespace}

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1)
        if found := _FIELD.match(expression):
            return fields[found.group(1)]
        if found := _MAP_KEY.match(expression):
            source = found.group(1) or found.group(3)
            return maps[source].get(found.group(2) or found.group(4), "")
        raise ResourceInvalid(
            f"{where}: template {match.group(0)!r} is not a field of the InferenceService's "
            "metadata (.Name, .Namespace, .Labels.key, .Annotations.key)",
            "InvalidPredictorSpec",
        )

    def fill(item: Any) -> Any:
        if isinstance(item, str):
            return _TEMPLATE.sub(substitute, item)
        if isinstance(item, list):
            return [fill(element) for element in item]
        if isinstance(item, dict):
            return {key: fill(element) for key, element in item.items()}
        return item

    filled: dict[str, Any] = fill(container)
    return filled


def image_tag(image: str, runtime_version: str | None, kind: str, is_gpu: bool) -> str:
    """KServe's `UpdateImageTag`: the image the runtime's container runs for this model."""
    if "@sha256:" in image:
        return image
    if runtime_version:
        if _TAG.search(image):
            return _TAG.sub(f":{runtime_version}", image)
        return f"{image}:{runtime_version}"
    tag = _TAG.search(image)
    if not kind or tag is None:
        return image
    if is_gpu:
        if kind in _GPU_SUFFIXED and not image.endswith("-gpu"):
            return f"{image}-gpu"
        return image
    repository = image[: tag.start()]
    if kind == "vllmserver" and not repository.endswith("-cpu"):
        return f"{repository}-cpu{tag.group(0)}"
    return image


def is_gpu(container: Mapping[str, Any]) -> bool:
    """KServe's `IsGPUEnabled`: an NVIDIA GPU (or MIG slice) among the container's limits."""
    limits = (container.get("resources") or {}).get("limits") or {}
    return any(name == "nvidia.com/gpu" or name.startswith("nvidia.com/mig") for name in limits)
