"""KServe's `--graph-json` (an InferenceGraphSpec with each step's `serviceUrl` set) as frozen
values the executor walks, checked once at start-up.

The JSON is parsed by the typed model in `ksrv.api.inference_graph`; this module adds what the
router itself needs: every step reaches a URL or a node, nodes do not loop, Splitter weights sum
to 100, and each step knows its own deadline. Timeouts follow KServe's `routerTimeouts`
defaults (serverRead 60 s, serverWrite 60 s, serverIdle 180 s, serviceClient unset); the
per-step timeout is ksrv's extra (`ksrv.dev/step-timeouts`, handed over as `--step-timeouts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import orjson
import pydantic

from ksrv.api.inference_graph import (
    ROOT,
    InferenceGraphSpec,
    InferenceRouter,
    step_timeouts,
)
from ksrv.api.meta import join
from ksrv.errors import ResourceInvalid

# KServe's router defaults (pkg/constants: RouterTimeouts*).
SERVER_READ_S: Final = 60.0
SERVER_WRITE_S: Final = 60.0
SERVER_IDLE_S: Final = 180.0
RESPONSE: Final = "$response"

RouterType = Literal["Sequence", "Splitter", "Ensemble", "Switch"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step: a URL to POST to or a node to enter, and what to send there."""

    node: str  # the node this step belongs to
    index: int
    name: str | None
    service_url: str | None
    node_name: str | None
    is_response: bool  # data: $response (else $request)
    is_hard: bool  # dependency: Hard
    maps_predictions: bool  # mapPredictionsToInstances
    weight: int
    condition: str | None
    timeout_s: float | None  # serviceClient, or this step's own timeout
    header_label: str  # `label`, computed once: printable ASCII, no comma or `=`

    @property
    def key(self) -> str:
        """The Ensemble's merge key (KServe: the step's name, else its index)."""
        return self.name or str(self.index)

    @property
    def label(self) -> str:
        """`node/step` as logs and the `ksrv-graph-steps` header name it."""
        return self.header_label


@dataclass(frozen=True, slots=True)
class Node:
    """A routing node: how it routes (`router_type`) and over which steps."""

    name: str
    router_type: RouterType
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: the whole request (`timeout`, bounded by serverWrite), reading a request head
    (serverRead) and a keep-alive connection's idle time (serverIdle)."""

    request_s: float
    server_read_s: float
    server_idle_s: float


@dataclass(frozen=True, slots=True)
class Graph:
    """Every node by name (`root` among them) and the request timeouts."""

    nodes: dict[str, Node]
    timeouts: Timeouts

    @property
    def root(self) -> Node:
        return self.nodes[ROOT]


def parse_graph(graph_json: str, step_timeouts_json: str | None = None) -> Graph:
    """The graph `--graph-json` describes, with `--step-timeouts` applied.

    Raises:
        ResourceInvalid: naming every field that is wrong (`field_errors`).
    """
    spec = _spec(graph_json)
    per_step = step_timeouts(step_timeouts_json)
    errors = _graph_errors(spec)
    if errors:
        raise ResourceInvalid(_summary(errors), field_errors=errors)
    service_client = _seconds(spec.router_timeouts.service_client if spec.router_timeouts else None)
    nodes = {}
    for node_name, router in spec.nodes.items():
        steps = tuple(
            _step(node_name, index, router, per_step, service_client)
            for index in range(len(router.steps or ()))
        )
        nodes[node_name] = Node(node_name, router.router_type, steps)
    return Graph(nodes, _timeouts(spec))


def _spec(graph_json: str) -> InferenceGraphSpec:
    try:
        document = orjson.loads(graph_json)
    except orjson.JSONDecodeError as exc:
        raise ResourceInvalid(f"--graph-json is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ResourceInvalid("--graph-json must be a JSON object (an InferenceGraphSpec)")
    try:
        return InferenceGraphSpec.model_validate(document)
    except pydantic.ValidationError as exc:
        errors = [
            (".".join(str(part) for part in error["loc"]), error["msg"]) for error in exc.errors()
        ]
        raise ResourceInvalid(_summary(errors), field_errors=errors) from None


def _step(
    node_name: str,
    index: int,
    router: InferenceRouter,
    per_step: dict[str, float],
    service_client: float | None,
) -> Step:
    step = (router.steps or [])[index]
    own = per_step.get(step.name or "") or per_step.get(f"{node_name}[{index}]")
    return Step(
        node=node_name,
        index=index,
        name=step.name or None,
        service_url=step.service_url or None,
        node_name=step.node_name or None,
        is_response=step.data == RESPONSE,
        is_hard=step.dependency == "Hard",
        maps_predictions=bool(step.map_predictions_to_instances),
        weight=step.weight or 0,
        condition=step.condition or None,
        timeout_s=own or per_step.get("*") or service_client,
        header_label=_header_safe(f"{node_name}/{step.name or index}"),
    )


def _graph_errors(spec: InferenceGraphSpec) -> list[tuple[str, str]]:
    """What the router cannot run: no root, a step with no URL or node, a node with no
    steps, weights not summing to 100, an unknown node, or nodes that loop."""
    errors: list[tuple[str, str]] = []
    if ROOT not in spec.nodes:
        errors.append(("nodes", f"a node named {ROOT!r} is required"))
    for node_name, router in spec.nodes.items():
        path = join("nodes", node_name)
        steps = router.steps or []
        if not steps:
            errors.append((join(path, "steps"), "a node needs at least one step"))
        for index, step in enumerate(steps):
            step_path = join(join(path, "steps"), index)
            if bool(step.node_name) == bool(step.service_url):
                errors.append(
                    (step_path, "exactly one of nodeName or serviceUrl must be set (the control "
                     "plane writes each serviceName's serviceUrl)")
                )  # fmt: skip
            elif step.node_name and step.node_name not in spec.nodes:
                errors.append((join(step_path, "nodeName"), f"no node named {step.node_name!r}"))
            elif step.service_url and not step.service_url.startswith(("http://", "https://")):
                errors.append((join(step_path, "serviceUrl"), "must be an http:// or https:// URL"))
            if step.data not in (None, "", "$request", RESPONSE):
                errors.append((join(step_path, "data"), "must be $request or $response"))
            if router.router_type == "Splitter" and (step.weight is None or step.weight < 0):
                errors.append((join(step_path, "weight"), "a Splitter step needs a weight >= 0"))
        if router.router_type == "Splitter":
            total = sum(step.weight or 0 for step in steps)
            if total != 100:
                errors.append((join(path, "steps"), f"Splitter weights sum to {total}, not 100"))
    errors.extend(_cycles(spec))
    return errors


def _cycles(spec: InferenceGraphSpec) -> list[tuple[str, str]]:
    """A node that can reach itself would recurse forever: name the first loop found."""
    edges = {
        name: [step.node_name for step in router.steps or () if step.node_name in spec.nodes]
        for name, router in spec.nodes.items()
    }
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done:
            return None
        for child in edges[name]:
            loop = visit(child, [*trail, name])
            if loop:
                return loop
        done.add(name)
        return None

    for name in sorted(edges):
        loop = visit(name, [])
        if loop:
            return [(join("nodes", loop[0]), "nodes form a loop: " + " -> ".join(loop))]
    return []


def _timeouts(spec: InferenceGraphSpec) -> Timeouts:
    router = spec.router_timeouts
    write = _seconds(router.server_write if router else None) or SERVER_WRITE_S
    overall = _seconds(spec.timeout)
    return Timeouts(
        request_s=min(write, overall) if overall else write,
        server_read_s=_seconds(router.server_read if router else None) or SERVER_READ_S,
        server_idle_s=_seconds(router.server_idle if router else None) or SERVER_IDLE_S,
    )


def _header_safe(text: str) -> str:
    """`text` fit for a header value listing steps: printable ASCII, no `,` or `=`."""
    return "".join(c if c.isascii() and c.isprintable() and c not in ",=" else "_" for c in text)


def _seconds(value: int | None) -> float | None:
    return float(value) if value else None


def _summary(errors: list[tuple[str, str]]) -> str:
    return "invalid graph: " + "; ".join(f"{path}: {message}" for path, message in errors)
