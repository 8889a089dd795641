"""LLMInferenceService and LLMInferenceServiceConfig (`serving.kserve.io` v1alpha1, v1alpha2).

KServe's resources for vLLM / llm-d: one model (`spec.model.uri`, `name`, `lora.adapters`)
with its workload (`template`, `replicas`, `worker`, `prefill`, `parallelism`) and routing
(`router`). A config carries the same spec as a preset that services name in `baseRefs`;
`merged_spec` combines them as KServe does. The fields ksrv reads are typed; the rest is kept
as given (the CRD's field tree checks their names at admission). What the local platform does
with a service is `control.llm_plan`'s business.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from ksrv.api.admission import storage_uri_problem
from ksrv.api.meta import ApiModel, ObjectMeta, PodContainer, join

GROUP_VERSIONS: Final = ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2")
MAIN_CONTAINER: Final = "main"  # KServe's name for the serving container of an LLM workload
FieldErrors = list[tuple[str, str]]


class LoRAAdapter(ApiModel):
    """One adapter (`LLMModelSpec` in KServe): where it is and the name it is served as."""

    uri: str
    name: str | None = None


class LoRASpec(ApiModel):
    adapters: list[LoRAAdapter] | None = None
    max_rank: int | None = Field(default=None, ge=1)
    max_adapters: int | None = Field(default=None, ge=1)
    max_cpu_adapters: int | None = Field(default=None, ge=1)


class LLMModelSpec(ApiModel):
    uri: str
    name: str | None = None
    lora: LoRASpec | None = None


class PodTemplate(ApiModel):
    """The pod spec KServe inlines as `template` / `worker`: its `main` container is typed."""

    containers: list[PodContainer] | None = None

    def main(self) -> PodContainer | None:
        for container in self.containers or ():
            if container.name == MAIN_CONTAINER:
                return container
        return None


class WorkloadSpec(ApiModel):
    """What a workload runs (the service's own, or `prefill`'s)."""

    replicas: int | None = Field(default=None, ge=0)
    scaling: dict[str, Any] | None = None
    parallelism: dict[str, Any] | None = None
    template: PodTemplate | None = None
    worker: dict[str, Any] | None = None


class BaseRef(ApiModel):
    name: str


class LLMInferenceServiceSpec(WorkloadSpec):
    model: LLMModelSpec | None = None  # required once the presets are merged
    base_refs: list[BaseRef] | None = None
    router: dict[str, Any] | None = None
    prefill: WorkloadSpec | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class LLMInferenceService(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2"]
    kind: Literal["LLMInferenceService"] = "LLMInferenceService"
    metadata: ObjectMeta
    spec: LLMInferenceServiceSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


class LLMInferenceServiceConfig(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2"]
    kind: Literal["LLMInferenceServiceConfig"] = "LLMInferenceServiceConfig"
    metadata: ObjectMeta
    spec: LLMInferenceServiceSpec = Field(default_factory=LLMInferenceServiceSpec)
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


def llm_errors(resource: LLMInferenceService | LLMInferenceServiceConfig) -> FieldErrors:
    """The CRD's CEL rules and KServe's webhook checks that a schema cannot say."""
    spec = resource.spec
    errors: FieldErrors = []
    for path, workload in (("spec", spec), ("spec.prefill", spec.prefill)):
        if workload is not None and workload.replicas is not None and workload.scaling:
            errors.append((path, "replicas and scaling are mutually exclusive"))
    if isinstance(resource, LLMInferenceService) and spec.model is None and not spec.base_refs:
        errors.append(("spec.model", "required"))
    if spec.model is not None:
        errors += _model_errors(spec.model)
    return errors


def _model_errors(model: LLMModelSpec) -> FieldErrors:
    errors: FieldErrors = []
    problem = storage_uri_problem(model.uri) if model.uri else "required"
    if problem:
        errors.append(("spec.model.uri", problem))
    adapters = model.lora.adapters if model.lora is not None else None
    seen: set[str] = set()
    for index, adapter in enumerate(adapters or ()):
        path = join("spec.model.lora.adapters", index)
        problem = storage_uri_problem(adapter.uri) if adapter.uri else "required"
        if problem:
            errors.append((join(path, "uri"), problem))
        if not adapter.name:
            errors.append((join(path, "name"), "required: the adapter is served under it"))
        elif adapter.name in seen:
            errors.append((join(path, "name"), f"{adapter.name!r} names two adapters"))
        seen.add(adapter.name or "")
    return errors


def merged_spec(spec: dict[str, Any], presets: list[dict[str, Any]]) -> dict[str, Any]:
    """`spec` over its presets, as KServe combines them: each preset in order, then the
    service's own spec, merged field by field (a strategic merge: objects merge, containers
    and env merge by `name`, other lists are replaced)."""
    merged: dict[str, Any] = {}
    for layer in [*presets, spec]:
        merged = _merge(merged, {k: v for k, v in layer.items() if k != "baseRefs"})
    return merged


_MERGE_KEYS: Final = ("containers", "initContainers", "env", "volumes", "volumeMounts", "ports")


def _merge(base: Any, over: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value, key) if key in base else value
        return out
    if field in _MERGE_KEYS and isinstance(base, list) and isinstance(over, list):
        named = {item.get("name"): item for item in base if isinstance(item, dict)}
        out_list = [
            _merge(named[item.get("name")], item) if item.get("name") in named else item
            for item in over
            if isinstance(item, dict)
        ]
        given = {item.get("name") for item in out_list}
        return [item for item in base if item.get("name") not in given] + out_list
    return over
