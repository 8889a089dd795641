"""ServingRuntime / ClusterServingRuntime (`serving.kserve.io/v1alpha1`) as pydantic models.

Only the fields runtime selection reads are typed; every other field (pod spec, ModelMesh
settings, ...) is kept as given, so any runtime KServe accepts parses here too.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from ksrv.api.meta import ApiModel, ObjectMeta
from ksrv.errors import ResourceInvalid

API_VERSION: Final = "serving.kserve.io/v1alpha1"

# KServe's constants.InferenceServiceProtocol values, in its order of preference. The CRD
# itself allows any string, so the spec does too; unknown ones sort last.
PROTOCOL_VERSIONS = ("v1", "v2", "grpc-v1", "grpc-v2")


_Resource = ApiModel

__all__ = [
    "API_VERSION",
    "PROTOCOL_VERSIONS",
    "ClusterServingRuntime",
    "Container",
    "ObjectMeta",
    "Runtime",
    "ServingRuntime",
    "ServingRuntimeSpec",
    "SupportedModelFormat",
    "parse_runtime",
    "parse_runtimes",
]


class SupportedModelFormat(_Resource):
    """One `supportedModelFormats` entry: a format name, its version, and how it is chosen."""

    name: str = Field(min_length=1)
    version: str | None = None
    auto_select: bool | None = None
    # KServe's webhook: priority must be > 0, and only means something with autoSelect.
    priority: int | None = Field(default=None, ge=1)

    @property
    def is_auto_select(self) -> bool:
        return self.auto_select is True


class Container(_Resource):
    name: str | None = None
    image: str | None = None
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)


class ServingRuntimeSpec(_Resource):
    supported_model_formats: list[SupportedModelFormat] = Field(default_factory=list)
    protocol_versions: list[str] = Field(default_factory=list)
    containers: list[Container] = Field(min_length=1)
    disabled: bool | None = None
    multi_model: bool | None = None
    worker_spec: dict[str, Any] | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_priority_per_format(self) -> ServingRuntimeSpec:
        # KServe's webhook rejects a runtime that lists different priorities for one format.
        seen: dict[str, int] = {}
        for entry in self.supported_model_formats:
            if entry.priority is None:
                continue
            if seen.setdefault(entry.name, entry.priority) != entry.priority:
                raise ValueError(
                    f"format {entry.name!r} is listed with different priorities "
                    f"({seen[entry.name]} and {entry.priority})"
                )
        return self

    @property
    def is_disabled(self) -> bool:
        return self.disabled is True

    @property
    def is_multi_model(self) -> bool:
        return self.multi_model is True

    @property
    def is_multi_node(self) -> bool:
        return self.worker_spec is not None

    def priority(self, format_name: str) -> int | None:
        """KServe's `GetPriority`: the first entry with this format name decides."""
        for entry in self.supported_model_formats:
            if entry.name == format_name:
                return entry.priority
        return None


class _RuntimeResource(_Resource):
    """What both runtime kinds hold: the same spec under a different scope."""

    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    metadata: ObjectMeta
    spec: ServingRuntimeSpec

    @property
    def name(self) -> str:
        return self.metadata.name


class ServingRuntime(_RuntimeResource):
    """A namespaced runtime: it wins over every ClusterServingRuntime in its namespace."""

    kind: Literal["ServingRuntime"] = "ServingRuntime"


class ClusterServingRuntime(_RuntimeResource):
    """A cluster-scoped runtime, such as the defaults KServe installs."""

    kind: Literal["ClusterServingRuntime"] = "ClusterServingRuntime"


Runtime = ServingRuntime | ClusterServingRuntime

_KINDS: dict[str, type[ServingRuntime] | type[ClusterServingRuntime]] = {
    "ServingRuntime": ServingRuntime,
    "ClusterServingRuntime": ClusterServingRuntime,
}


def parse_runtimes(yaml_text: str) -> list[Runtime]:
    """Every ServingRuntime / ClusterServingRuntime in a (multi-document) YAML text.

    Raises:
        ResourceInvalid: a document is not YAML, not one of the two kinds, or breaks the schema;
            the message names the document, the resource and each bad field.
    """
    try:
        documents = [doc for doc in yaml.safe_load_all(yaml_text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ResourceInvalid(f"not valid YAML: {exc}") from exc
    return [parse_runtime(document, index) for index, document in enumerate(documents, 1)]


def parse_runtime(document: Any, index: int = 1) -> Runtime:
    """One decoded document -> its resource; see `parse_runtimes`."""
    if not isinstance(document, dict):
        raise ResourceInvalid(
            f"document {index}: expected a mapping, got {type(document).__name__}"
        )
    kind = document.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ResourceInvalid(
            f"document {index}: kind {kind!r} is not one of {', '.join(sorted(_KINDS))}"
        )
    try:
        return cls.model_validate(document)
    except ValidationError as exc:
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ResourceInvalid(
            f"document {index}: {kind} {name or '(unnamed)'}: {problems}"
        ) from exc
