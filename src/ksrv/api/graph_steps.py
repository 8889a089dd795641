"""Where an InferenceGraph's steps send, and the `--graph-json` argument its router gets.

Both platforms hand the router the same text: the graph's spec with each `serviceName` step's
`serviceUrl` filled in, written as Go's encoding/json writes it (KServe's controller marshals
the Go struct). How a service name becomes an address is the platform's (`Resolver`): the
operator asks the cluster, the local platform the gateway; the predict path appended to that
address is KServe's GetPredictorEndpoint rule for every platform (`predict_path`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from ksrv.api.inference_graph import InferenceGraph
from ksrv.api.inference_service import InferenceService

# (InferenceService name, namespace) -> the URL a step sends to.
Resolver = Callable[[str, str], str]

# InferenceGraphSpec's fields in Go's declaration order, which is the order KServe marshals.
_SPEC_ORDER: Final = (
    "nodes", "resources", "affinity", "timeout", "routerTimeouts", "minReplicas", "maxReplicas",
    "scaleTarget", "scaleMetric", "tolerations", "nodeSelector", "nodeName", "serviceAccountName",
)  # fmt: skip
_STEP_ORDER: Final = (
    "name", "nodeName", "serviceName", "serviceUrl", "data", "mapPredictionsToInstances",
    "weight", "condition", "dependency",
)  # fmt: skip


def graph_json(graph: InferenceGraph, resolve: Resolver) -> str:
    """The `--graph-json` argument: the spec with every `serviceName` step's `serviceUrl` set,
    written as Go's encoding/json writes it (declaration order, sorted nodes, compact, HTML
    characters escaped)."""
    namespace = graph.metadata.namespace or "default"
    spec = graph.to_dict()["spec"]
    nodes = {}
    for node_name in sorted(spec["nodes"]):
        router = spec["nodes"][node_name]
        steps = []
        for step in router.get("steps") or ():
            step = dict(step)
            if step.get("serviceName") and not step.get("serviceUrl"):
                step["serviceUrl"] = resolve(step["serviceName"], namespace)
            if not step.get("mapPredictionsToInstances"):
                step.pop("mapPredictionsToInstances", None)
            steps.append({k: step[k] for k in _STEP_ORDER if step.get(k) not in (None, "")})
        node: dict[str, Any] = {"routerType": router["routerType"]}
        if steps:
            node["steps"] = steps
        nodes[node_name] = node
    spec["nodes"] = nodes
    spec.setdefault("resources", {})  # a Go struct, never omitted
    if not spec.get("maxReplicas"):
        spec.pop("maxReplicas", None)
    ordered = {k: spec[k] for k in _SPEC_ORDER if k in spec}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def service_names(graph: InferenceGraph) -> list[tuple[str, str]]:
    """(node, InferenceService) for each `serviceName` step that needs resolving (one without
    its own `serviceUrl`), nodes in name order, each service once."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for node_name in sorted(graph.spec.nodes):
        for step in graph.spec.nodes[node_name].steps or ():
            service = step.service_name
            if service and not step.service_url and service not in seen:
                seen.add(service)
                found.append((node_name, service))
    return found


def predict_path(isvc: InferenceService) -> str:
    """KServe's GetPredictorEndpoint path: `/v1/models/{m}:predict` or `/v2/models/{m}/infer`
    for the entry component's protocol and model name; none for gRPC."""
    model = model_name(isvc)
    transformer = isvc.spec.transformer
    protocol: str | None
    if transformer is not None:
        first = transformer.containers[0] if transformer.containers else None
        protocol = first.env_value("PROTOCOL") if first is not None else None
    else:
        main = isvc.spec.predictor.main_container
        protocol = getattr(main, "protocol_version", None)
        if isvc.spec.predictor.implementation == "containers" and main is not None:
            protocol = main.env_value("PROTOCOL")
    protocol = protocol or "v1"
    if protocol == "v1":
        return f"/v1/models/{model}:predict"
    if protocol == "v2":
        return f"/v2/models/{model}/infer"
    return ""


def model_name(isvc: InferenceService) -> str:
    """KServe's GetModelName: `--model_name` in the transformer's or predictor's args,
    MLSERVER_MODEL_NAME, else the InferenceService's name."""
    transformer = isvc.spec.transformer
    if transformer is not None and transformer.containers:
        found = _arg_model_name(transformer.containers[0].args or [])
        if found:
            return found
    main = isvc.spec.predictor.main_container
    if main is not None:
        if isvc.spec.predictor.model_spec is not None:
            found = main.env_value("MLSERVER_MODEL_NAME")
            if found:
                return found
        found = _arg_model_name(main.args or [])
        if found:
            return found
    return isvc.metadata.name


def _arg_model_name(args: list[Any]) -> str | None:
    found = None
    for index, arg in enumerate(str(a) for a in args):
        # KServe's flag is --model_name; ksrv's servers spell it --model-name.
        if arg.startswith(("--model_name", "--model-name")):
            _, equals, value = arg.partition("=")
            if equals and "=" not in value:
                found = value
            if index + 1 < len(args) and not str(args[index + 1]).startswith("--"):
                found = str(args[index + 1])
    return found
