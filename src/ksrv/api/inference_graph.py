"""InferenceGraph (`serving.kserve.io/v1alpha1`): routing nodes over InferenceServices.

The model mirrors the CRD; `graph_errors` adds the webhook's rules (a `root` node, one target
per step, Splitter weights summing to 100, steps naming nodes that exist), and checks ksrv's
`ksrv.dev/step-timeouts` annotation at apply rather than when the router starts.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal

from ksrv.api import names
from ksrv.api.inference_service import DNS_1035
from ksrv.api.meta import ApiModel, ObjectMeta, ResourceRequirements, join
from ksrv.errors import ResourceInvalid

API_VERSION: Final = "serving.kserve.io/v1alpha1"
ROOT: Final = "root"
# ksrv's per-step timeouts for a graph's router (its `--step-timeouts`): see `step_timeouts`.
STEP_TIMEOUTS_ANNOTATION: Final = "ksrv.dev/step-timeouts"
_TARGETS: Final = (
    ("node_name", "nodeName"),
    ("service_name", "serviceName"),
    ("service_url", "serviceUrl"),
)


class InferenceStep(ApiModel):
    """One step: where to send (a node, an InferenceService or a URL) and what to send."""

    name: str | None = None
    node_name: str | None = None
    service_name: str | None = None
    service_url: str | None = None
    data: str | None = None  # "$request" (default) or "$response"
    weight: int | None = None
    condition: str | None = None  # GJSON, for Switch
    dependency: Literal["Soft", "Hard"] | None = None
    map_predictions_to_instances: bool | None = None

    @property
    def target(self) -> str | None:
        return self.node_name or self.service_name or self.service_url


class InferenceRouter(ApiModel):
    router_type: Literal["Sequence", "Splitter", "Ensemble", "Switch"]
    steps: list[InferenceStep] | None = None


class RouterTimeouts(ApiModel):
    server_read: int | None = None
    server_write: int | None = None
    server_idle: int | None = None
    service_client: int | None = None


class InferenceGraphSpec(ApiModel):
    nodes: dict[str, InferenceRouter]
    resources: ResourceRequirements | None = None
    node_selector: dict[str, str] | None = None
    node_name: str | None = None
    service_account_name: str | None = None
    timeout: int | None = None
    router_timeouts: RouterTimeouts | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | None = None
    scale_metric: Literal["cpu", "memory", "concurrency", "rps"] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None


class InferenceGraph(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    kind: Literal["InferenceGraph"] = "InferenceGraph"
    metadata: ObjectMeta
    spec: InferenceGraphSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


def step_timeouts(text: str | None) -> dict[str, float]:
    """The `ksrv.dev/step-timeouts` annotation's value (the router's `--step-timeouts`): a JSON
    object, step name (or NODE[INDEX] for an unnamed step, or "*" for every step) -> seconds.

    Raises:
        ResourceInvalid: not such an object, naming the annotation (and the key) in
            `field_errors`.
    """
    if not text:
        return {}
    where = f"metadata.annotations.{STEP_TIMEOUTS_ANNOTATION}"
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        raise ResourceInvalid(
            f"{STEP_TIMEOUTS_ANNOTATION} is not JSON: {exc}", field_errors=[(where, "not JSON")]
        ) from None
    if not isinstance(document, dict):
        message = "must be a JSON object: step name -> seconds"
        raise ResourceInvalid(
            f"{STEP_TIMEOUTS_ANNOTATION} {message}", field_errors=[(where, message)]
        )
    timeouts = {}
    for key, value in document.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ResourceInvalid(
                f"{STEP_TIMEOUTS_ANNOTATION}: {key!r} must be a number of seconds > 0, "
                f"not {value!r}",
                field_errors=[(f"{where}.{key}", "must be seconds > 0")],
            )
        timeouts[str(key)] = float(value)
    return timeouts


def graph_errors(graph: InferenceGraph) -> list[tuple[str, str]]:
    """Every webhook rule the graph breaks, as `(path, message)`; and a `ksrv.dev/step-timeouts`
    annotation the router would refuse at start."""
    errors: list[tuple[str, str]] = []
    try:
        step_timeouts((graph.metadata.annotations or {}).get(STEP_TIMEOUTS_ANNOTATION))
    except ResourceInvalid as exc:
        errors += exc.field_errors or [("metadata.annotations", exc.message)]
    if not re.match(DNS_1035, graph.metadata.name):
        errors.append(
            ("metadata.name", f"{graph.metadata.name!r} is not valid: {names.DNS_1035_RULE}")
        )
    nodes = graph.spec.nodes
    if ROOT not in nodes:
        errors.append(("spec.nodes", f"a node named {ROOT!r} is required"))
    for node_name, router in nodes.items():
        path = join("spec.nodes", node_name)
        steps = router.steps or []
        for index, step in enumerate(steps):
            step_path = join(join(path, "steps"), index)
            targets = [alias for field, alias in _TARGETS if getattr(step, field)]
            if len(targets) != 1:
                errors.append(
                    (
                        step_path,
                        "exactly one of [nodeName, serviceName, serviceUrl] must be specified",
                    )
                )
            if step.node_name is not None and step.node_name not in nodes:
                errors.append((join(step_path, "nodeName"), f"no node named {step.node_name!r}"))
            if router.router_type == "Splitter" and step.weight is None:
                errors.append((join(step_path, "weight"), "required in a Splitter node"))
        if router.router_type == "Splitter":
            total = sum(step.weight or 0 for step in steps)
            if total != 100:
                errors.append((join(path, "steps"), f"Splitter weights sum to {total}, not 100"))
    return errors
