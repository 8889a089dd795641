"""The route table as it travels from the control plane to the gateway: one shape, typed.

The control plane builds it (`control/isvc_reconciler.py`), publishes it with a version
(`control/routes.py`) and serves it as JSON on `GET /ksrv/v1/routes`; the gateway parses it
into its matcher (`gateway/routes.py`). Both import the shape from here, the one layer they
share, so neither spells the document on its own (docs/platform.md, the route table).
"""

from __future__ import annotations

from typing import Final, NotRequired, TypedDict

from ksrv.protocol.tokens import TokenDoc

# The components a service may have (KServe's); `api.kinds.COMPONENTS` is the same tuple on
# the resource side, which may not import this layer (checked by a unit test).
COMPONENTS: Final = ("predictor", "transformer", "explainer")
DEFAULT_TIMEOUT_S: Final = 60.0
DEFAULT_ENTRY: Final = "predictor"


class ReplicaDoc(TypedDict):
    """One ready replica: its REST and gRPC addresses (`host:port`; gRPC may be empty)."""

    http: str
    grpc: str


class BackendDoc(TypedDict):
    """One revision of a component and its share of the traffic."""

    revision: str
    percent: float
    replicas: list[ReplicaDoc]
    tag: NotRequired[str]
    """"latest" / "prev" while a canary splits the traffic."""


class ShadowDoc(TypedDict):
    """The revision that gets a copy of `percent`% of the component's requests (its answers
    are dropped): the latest, while it is not rolled out (`ksrv.dev/shadow-percent`)."""

    revision: str
    percent: float
    replicas: list[ReplicaDoc]


class ComponentDoc(TypedDict):
    backends: list[BackendDoc]
    """The revisions with a share of the traffic; one without ready replicas (scaled to
    zero, starting) is listed with none, and the gateway holds its requests for it."""
    timeout_s: NotRequired[float | None]
    """The component's own `timeout`; absent or None means the service's."""
    failed: NotRequired[str]
    """Set, with the reason, when no backend has replicas and none will come until the spec,
    a runtime or the model changes (a plan that cannot run, a model that failed to load on
    every try): the gateway answers 503 with it at once instead of holding requests."""
    container_concurrency: NotRequired[int]
    """`containerConcurrency`: the most requests the gateway sends one replica at a time."""
    shadow: NotRequired[ShadowDoc]
    """Where copies of the requests go, when the component has a shadow revision."""
    multi_model: NotRequired[bool]
    """A multi-model predictor (TrainedModels): the gateway sends a model's requests to the
    replica that holds it while that one is not busy."""


class ServiceDoc(TypedDict):
    """One InferenceService."""

    namespace: str
    name: str
    timeout_s: float
    entry: str
    """The component the service's URL reaches first: transformer if any, else predictor."""
    components: dict[str, ComponentDoc]
    enable_auth: NotRequired[bool]
    """`serving.kserve.io/enable-auth: "true"`: only a token for its namespace gets in."""


class RouteTableDoc(TypedDict):
    version: int
    """Goes up with every change; 0 means nothing was published yet."""
    domain: str
    services: list[ServiceDoc]
    tokens: NotRequired[list[TokenDoc]]
    """Every token's hash and grant, for the services with `enable_auth`."""
