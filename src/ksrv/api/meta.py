"""What every resource shares: the pydantic base, ObjectMeta, and the Kubernetes pod pieces.

Models are strict, as the API server is: `"1"` is not an integer and `0.1` is not a quantity.
Fields ksrv does not read are kept as given (`extra="allow"`); which of them the CRD defines
is `api.field_tree`'s question, answered from the CRDs themselves.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from ksrv.api import names

# Kubernetes' resource.Quantity syntax, as the CRDs spell it for int-or-string quantities.
_QUANTITY = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity(value: object) -> int | str:
    # bool is an int in Python but not in JSON; a float (`cpu: 0.1`) is rejected by the API server.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"must be an integer or a quantity string such as '100m' or '1Gi', got {value!r}"
        )
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a quantity (such as '100m', '1Gi' or '2')")
    return value


_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: Final = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                   "P": 1e15, "E": 1e18}  # fmt: skip


def quantity_bytes(value: int | str) -> float:
    """A Kubernetes quantity (already checked against the CRD's pattern) as a number:
    `10Gi` -> 10 * 2**30, `1.5G` -> 1.5e9, `1e3` -> 1000."""
    if isinstance(value, int):
        return float(value)
    if value[-2:] in _BINARY:
        return float(value[:-2]) * _BINARY[value[-2:]]
    try:
        return float(value)  # plain numbers and the exponent form (`1e3`, `1E3`)
    except ValueError:
        return float(value[:-1]) * _DECIMAL[value[-1]]


def _int_or_string(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an integer or a string, got {value!r}")
    return value


Quantity = Annotated[int | str, PlainValidator(_quantity)]
IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]


class ApiModel(BaseModel):
    """Base of every resource model: camelCase on the wire, strict types, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        strict=True,
        # KServe's field names (`modelFormat` -> model_format) collide with pydantic's prefix.
        protected_namespaces=(),
    )

    def to_dict(self) -> dict[str, Any]:
        """KServe's camelCase document: what `load()` reads back to an equal resource."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def join(path: str, key: str | int) -> str:
    """`spec` + `predictor` -> `spec.predictor`; `containers` + 0 -> `containers[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_MAPS: Final = ("labels", "annotations")


class ObjectMeta(ApiModel):
    # Kubernetes' rules (`api.names`): namespaces name directories and URLs. A name's rule is
    # checked at admission (`resources.load(is_strict=True)`), so a runtime stored before it
    # was checked still loads.
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: Any = None

    @field_validator("namespace")
    @classmethod
    def _valid_namespace(cls, value: str | None) -> str | None:
        problem = names.namespace_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_serializer(mode="wrap")
    def _without_empty_maps(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # labels/annotations default to {} for readers; the document leaves them out when empty.
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value != {} or key not in _MAPS}


class EnvVar(ApiModel):
    name: str
    value: str | None = None


class ContainerPort(ApiModel):
    container_port: int


class ResourceRequirements(ApiModel):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None


class VolumeMount(ApiModel):
    name: str
    mount_path: str


class Container(ApiModel):
    """A Kubernetes container as KServe inlines it (framework and model specs are containers)."""

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] | None = None
    working_dir: str | None = None

    def env_value(self, name: str) -> str | None:
        """The literal value of env var `name`, if the container sets one."""
        for var in self.env or ():
            if var.name == name:
                return var.value
        return None


class PodContainer(Container):
    """An entry of a pod's `containers`/`initContainers`: Kubernetes requires the name."""

    name: str


class PodFields(ApiModel):
    """The PodSpec fields KServe inlines into a component; the ones ksrv reads are typed."""

    containers: list[PodContainer] | None = None
    init_containers: list[PodContainer] | None = None
    volumes: list[dict[str, Any]] | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    resources: ResourceRequirements | None = None
    node_name: str | None = None
    priority_class_name: str | None = None
    scheduler_name: str | None = None
    runtime_class_name: str | None = None
    security_context: dict[str, Any] | None = None
