"""InferenceGraph -> the router's objects, as KServe's `inferencegraph` controller makes them.

One router per graph (§4.3), named as the graph: a Deployment + Service (+ HPA) in Standard mode, a
Knative Service in Knative mode. The router runs ksrv's own (`ksrv router --graph-json JSON`,
image `images.router`; the router itself is issue 16's) where KServe runs `kserve/router` with
the same argument (`api.graph_steps.graph_json`, which the local platform hands its routers too).
Before the spec is handed over, each `serviceName` step gets the `serviceUrl` KServe would
resolve (`service_endpoint.py`). That lookup is an input (`resolve`): the operator
answers from the cluster, `render.py` from the documents it was given.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.api.graph_steps import Resolver, graph_json
from ksrv.api.inference_graph import InferenceGraph
from ksrv.control.graph_plan import STEP_TIMEOUTS
from ksrv.errors import ResourceInvalid
from ksrv.k8s import knative, naming
from ksrv.k8s.config import KNATIVE, ClusterConfig, normalise_mode

ROUTER_PORT: Final = 8080
READINESS_PATH: Final = "/readyz"
PROPAGATE_ENV: Final = "PROPAGATE_HEADERS"
WORKLOAD_KIND_LABEL: Final = "serving.kserve.io/kind"
DEPLOYMENT_MODE: Final = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS: Final = "serving.kserve.io/autoscalerClass"
DEFAULT_CPU_UTILIZATION: Final = 80


def graph_mode(graph: InferenceGraph, config: ClusterConfig) -> str:
    """KServe's rule, as for an InferenceService: status, else annotation, else the config."""
    chosen = (graph.status or {}).get("deploymentMode") or graph.metadata.annotations.get(
        DEPLOYMENT_MODE
    )
    return normalise_mode(chosen) if chosen else config.deployment_mode


def graph_objects(
    graph: InferenceGraph, config: ClusterConfig, resolve: Resolver
) -> list[dict[str, Any]]:
    """The router's objects for `graph` in its deployment mode."""
    namespace = graph.metadata.namespace or "default"
    spec_json = graph_json(graph, resolve)
    if graph_mode(graph, config) == KNATIVE:
        return [_knative_service(graph, namespace, config, spec_json)]
    return _standard_objects(graph, namespace, config, spec_json)


def _labels(graph: InferenceGraph) -> dict[str, str]:
    return {**graph.metadata.labels, naming.GRAPH_LABEL: graph.metadata.name}


def _args(graph: InferenceGraph, spec_json: str) -> list[str]:
    """The router's flags: the graph, every interface of the pod (it binds loopback unless
    told), and ksrv's per-step timeouts when the graph's annotation sets them."""
    args = ["--graph-json", spec_json, "--host=0.0.0.0"]
    step_timeouts = (graph.metadata.annotations or {}).get(STEP_TIMEOUTS)
    return [*args, "--step-timeouts", step_timeouts] if step_timeouts else args


def _container(graph: InferenceGraph, config: ClusterConfig, spec_json: str) -> dict[str, Any]:
    resources = graph.to_dict()["spec"].get("resources") or {}
    if not resources:
        router = config.router
        resources = {
            "limits": {"cpu": router.cpu_limit, "memory": router.memory_limit},
            "requests": {"cpu": router.cpu_request, "memory": router.memory_request},
        }
    container: dict[str, Any] = {
        "image": config.images.router,
        "imagePullPolicy": config.router.image_pull_policy,
        "command": ["ksrv", "router"],
        "args": _args(graph, spec_json),
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, "port": ROUTER_PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 5, "timeoutSeconds": 2, "periodSeconds": 5,
            "successThreshold": 1, "failureThreshold": 3,
        },
        "securityContext": {
            "privileged": False, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        },
    }  # fmt: skip
    if config.propagate_headers:
        container["env"] = [{"name": PROPAGATE_ENV, "value": ",".join(config.propagate_headers)}]
    return container


def _pod(graph: InferenceGraph, container: dict[str, Any], config: ClusterConfig) -> dict[str, Any]:
    spec = graph.to_dict()["spec"]
    pod: dict[str, Any] = {"containers": [container], "automountServiceAccountToken": False}
    for key in ("affinity", "tolerations", "nodeSelector", "nodeName", "serviceAccountName"):
        if spec.get(key):
            pod[key] = spec[key]
    if config.router.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in config.router.image_pull_secrets]
    return pod


def _knative_service(
    graph: InferenceGraph, namespace: str, config: ClusterConfig, spec_json: str
) -> dict[str, Any]:
    spec = graph.spec
    annotations = knative.autoscaling_annotations(
        graph.metadata.annotations,
        target=spec.scale_target,
        metric=spec.scale_metric,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
    )
    passthrough = "serving.knative.openshift.io/enablePassthrough"
    ksvc_annotations = (
        {passthrough: annotations.pop(passthrough)} if passthrough in annotations else {}
    )
    # KServe labels the revisions, not the Knative Service, with the graph's name and kind.
    labels = dict(graph.metadata.labels)
    template_labels = {
        **knative.template_labels(_labels(graph)),
        WORKLOAD_KIND_LABEL: "InferenceGraph",
    }
    revision: dict[str, Any] = _pod(graph, _container(graph, config, spec_json), config)
    if spec.timeout is not None:
        revision["timeoutSeconds"] = spec.timeout
    metadata: dict[str, Any] = {"name": graph.metadata.name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    if ksvc_annotations:
        metadata["annotations"] = ksvc_annotations
    return {
        "apiVersion": knative.API_VERSION,
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {"labels": template_labels, "annotations": annotations},
                "spec": revision,
            }
        },
    }


def _standard_objects(
    graph: InferenceGraph, namespace: str, config: ClusterConfig, spec_json: str
) -> list[dict[str, Any]]:
    name = graph.metadata.name
    app = f"isvc.{name}"
    labels = {**_labels(graph), naming.APP_LABEL: app}
    annotations = dict(graph.metadata.annotations)

    def meta() -> dict[str, Any]:
        found: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if annotations:
            found["annotations"] = dict(annotations)
        return found

    container = {"name": name, **_container(graph, config, spec_json)}
    autoscaler = annotations.get(AUTOSCALER_CLASS, "hpa")
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": {naming.APP_LABEL: app}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {k: v for k, v in meta().items() if k in ("labels", "annotations")},
                "spec": _pod(graph, container, config),
            },
        },
    }
    if autoscaler == "none" and graph.spec.min_replicas is not None:
        deployment["spec"]["replicas"] = graph.spec.min_replicas
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(),
        "spec": {
            "selector": {naming.APP_LABEL: app},
            "ports": [{"name": name, "port": 80, "targetPort": ROUTER_PORT, "protocol": "TCP"}],
        },
    }
    objects = [deployment, service]
    if autoscaler == "hpa":
        objects.append(_hpa(graph, meta()))
    elif autoscaler == "keda":
        raise ResourceInvalid(
            f"InferenceGraph {name}: {AUTOSCALER_CLASS}=keda is not rendered for a graph "
            "(use hpa, none or external)",
            "UnsupportedAutoscaler",
        )
    return objects


def _hpa(graph: InferenceGraph, metadata: dict[str, Any]) -> dict[str, Any]:
    """KServe's createHPA: min = max(1, minReplicas), max = max(maxReplicas, min), CPU 80% by
    default, the metric and target from scaleMetric / scaleTarget."""
    spec = graph.spec
    minimum = max(1, spec.min_replicas or 0)
    maximum = max(spec.max_replicas or 0, minimum)
    metric = spec.scale_metric or "cpu"
    metrics = []
    if metric == "cpu" or (metric == "memory" and spec.scale_target is not None):
        target = spec.scale_target if spec.scale_target is not None else DEFAULT_CPU_UTILIZATION
        metrics.append({
            "type": "Resource",
            "resource": {
                "name": metric,
                "target": {"type": "Utilization", "averageUtilization": target},
            },
        })  # fmt: skip
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": metadata["name"]},
        "minReplicas": minimum,
        "maxReplicas": maximum,
    }
    if metrics:
        hpa_spec["metrics"] = metrics
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": hpa_spec,
    }
