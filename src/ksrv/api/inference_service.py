"""InferenceService (`serving.kserve.io/v1beta1`) as pydantic models, plus reconciler accessors.

Parsing checks what the CRD schema checks (types, enums, required fields). KServe's webhook
(framework specs -> `model`, replica and canary rules, ...) lives in `admission.py`; `load()` in
`resources.py` runs both. After defaulting a predictor has `model` or custom `containers`,
never a legacy framework spec.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from ksrv.api.meta import (
    ApiModel,
    Container,
    ObjectMeta,
    PodFields,
)

API_VERSION: Final = "serving.kserve.io/v1beta1"

# KServe's legacy predictor specs, in the order its "exactly one of [...]" message lists them.
FRAMEWORKS: Final = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
    "lightgbm", "paddle",
)  # fmt: skip
MAIN_CONTAINER: Final = "kserve-container"
DNS_1035: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class ModelFormat(ApiModel):
    name: str
    version: str | None = None


class StorageSpec(ApiModel):
    """`storage`: a key into the storage-config secret instead of a URI."""

    path: str | None = None
    schema_path: str | None = None
    parameters: dict[str, str] | None = None
    key: str | None = None


class FrameworkSpec(Container):
    """A legacy `sklearn:`/`xgboost:`/... spec: a container plus where the model lives."""

    storage_uri: str | None = None
    runtime_version: str | None = None
    protocol_version: str | None = None
    storage: StorageSpec | None = None


class ModelSpec(FrameworkSpec):
    """`predictor.model`: a format that runtime selection resolves to a ServingRuntime."""

    model_format: ModelFormat | None = None
    runtime: str | None = None


class ArtExplainerSpec(Container):
    type: str | None = None
    storage_uri: str | None = None
    runtime_version: str | None = None
    config: dict[str, str] | None = None
    storage: StorageSpec | None = None


class LoggerSpec(ApiModel):
    """Payload logging: a CloudEvents sink URL and which messages go to it."""

    url: str | None = None
    mode: Literal["all", "request", "response"] | None = None
    metadata_headers: list[str] | None = None
    metadata_annotations: list[str] | None = None
    marshaller_url: str | None = None
    batch_size: int | None = None
    batch_interval: str | None = None


class Batcher(ApiModel):
    max_batch_size: int | None = None
    max_latency: int | None = None  # milliseconds, as KServe's agent reads it
    timeout: int | None = None


class StorageUri(ApiModel):
    uri: str
    mount_path: str = Field(default="/mnt/models", pattern=r"^/.*")


class MetricSpec(ApiModel):
    type: Literal["Resource", "External", "PodMetric"]
    resource: dict[str, Any] | None = None
    external: dict[str, Any] | None = None
    podmetric: dict[str, Any] | None = None


class AutoScalingSpec(ApiModel):
    metrics: list[MetricSpec] | None = None
    behavior: dict[str, Any] | None = None


ScaleMetric = Literal["cpu", "memory", "concurrency", "rps"]


class ComponentSpec(PodFields):
    """What predictor, transformer and explainer share: a pod plus KServe's extension fields."""

    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | None = None
    scale_metric: ScaleMetric | None = None
    scale_metric_type: Literal["Utilization", "Value", "AverageValue"] | None = None
    auto_scaling: AutoScalingSpec | None = None
    container_concurrency: int | None = None
    timeout: int | None = None  # seconds
    canary_traffic_percent: int | None = None
    logger: LoggerSpec | None = None
    batcher: Batcher | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    deployment_strategy: dict[str, Any] | None = None
    storage_uris: list[StorageUri] | None = None

    def implementations(self) -> list[str]:
        """The implementation fields set; the webhook wants exactly one."""
        return ["containers"] if self.containers else []

    @property
    def implementation(self) -> str | None:
        found = self.implementations()
        return found[0] if found else None

    @property
    def model_spec(self) -> ModelSpec | None:
        """The `model` to place on a runtime; None for custom containers."""
        return None

    @property
    def main_container(self) -> Container | None:
        """The container that serves: `kserve-container` when named so, else the first."""
        containers = self.containers or []
        for container in containers:
            if container.name == MAIN_CONTAINER:
                return container
        return containers[0] if containers else None

    @property
    def storage_uri(self) -> str | None:
        """Where the model comes from: the model spec's URI, else the main container's env."""
        container = self.main_container
        if isinstance(container, FrameworkSpec | ArtExplainerSpec):
            return container.storage_uri
        return container.env_value("STORAGE_URI") if container is not None else None


class PredictorSpec(ComponentSpec):
    name: str | None = Field(default=None, pattern=DNS_1035)
    model: ModelSpec | None = None
    sklearn: FrameworkSpec | None = None
    xgboost: FrameworkSpec | None = None
    tensorflow: FrameworkSpec | None = None
    pytorch: FrameworkSpec | None = None
    triton: FrameworkSpec | None = None
    onnx: FrameworkSpec | None = None
    huggingface: FrameworkSpec | None = None
    pmml: FrameworkSpec | None = None
    lightgbm: FrameworkSpec | None = None
    paddle: FrameworkSpec | None = None
    storage_container_name: str | None = None
    worker_spec: dict[str, Any] | None = None

    def implementations(self) -> list[str]:
        # KServe counts custom containers only when no framework is set: with `model`, extra
        # containers are sidecars (a collocated transformer).
        found = [name for name in (*FRAMEWORKS, "model") if getattr(self, name) is not None]
        return found or super().implementations()

    def framework(self, name: str) -> FrameworkSpec | None:
        spec = getattr(self, name)
        return spec if isinstance(spec, FrameworkSpec) else None

    @property
    def model_spec(self) -> ModelSpec | None:
        return self.model

    @property
    def main_container(self) -> Container | None:
        if self.model is not None:
            return self.model
        for name in FRAMEWORKS:
            spec = self.framework(name)
            if spec is not None:
                return spec
        return super().main_container


class TransformerSpec(ComponentSpec):
    pass


class ExplainerSpec(ComponentSpec):
    art: ArtExplainerSpec | None = None

    def implementations(self) -> list[str]:
        return ["art"] if self.art is not None else super().implementations()

    @property
    def main_container(self) -> Container | None:
        return self.art if self.art is not None else super().main_container


Component = ComponentSpec


class CanarySpec(ApiModel):
    """A `spec.canary[]` entry (Standard mode): a named predictor overlay and its traffic share."""

    predictor: PredictorSpec
    traffic_percent: int = Field(ge=0, le=100)


class InferenceServiceSpec(ApiModel):
    predictor: PredictorSpec
    transformer: TransformerSpec | None = None
    explainer: ExplainerSpec | None = None
    canary: list[CanarySpec] | None = None


class InferenceService(ApiModel):
    """One InferenceService; `components()` gives the parts the reconciler runs."""

    api_version: Literal["serving.kserve.io/v1beta1"] = API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    def components(self) -> dict[str, Component]:
        """The components present, predictor first: `{"predictor": ..., "transformer": ...}`."""
        found: dict[str, Component] = {"predictor": self.spec.predictor}
        if self.spec.transformer is not None:
            found["transformer"] = self.spec.transformer
        if self.spec.explainer is not None:
            found["explainer"] = self.spec.explainer
        return found

    @property
    def deployment_mode(self) -> str | None:
        """The deploymentMode annotation (legacy values normalised); None = platform default."""
        return self.metadata.annotations.get(DEPLOYMENT_MODE)


DEPLOYMENT_MODE: Final = "serving.kserve.io/deploymentMode"
