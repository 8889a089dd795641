"""Where an InferenceGraph step named by `serviceName` sends: KServe's GetPredictorEndpoint.

The InferenceService's `status.address.url` (what the operator observed) plus the predict path
of its entry component's protocol and model name (`api.graph_steps.predict_path`, the
local platform's rule too). Without a recorded address the steady-state
cluster-local address stands in: the VirtualService's host in Knative mode, else the entry
component's Service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ksrv.api import graph_steps
from ksrv.api.graph_steps import Resolver
from ksrv.api.inference_service import InferenceService
from ksrv.k8s import naming
from ksrv.k8s.config import KNATIVE, ClusterConfig


def endpoint(isvc: InferenceService, mode: str, config: ClusterConfig) -> str:
    """KServe's GetPredictorEndpoint: `status.address.url` plus the predict path of the
    entry component's protocol (`/v1/models/{m}:predict`, `/v2/models/{m}/infer`; none for
    gRPC). Without a recorded address, the address KServe records once the service is up."""
    address = ((isvc.status or {}).get("address") or {}).get("url") or default_address(
        isvc.metadata.name,
        isvc.metadata.namespace or "default",
        mode,
        config,
        has_transformer=isvc.spec.transformer is not None,
        predictor=isvc.spec.predictor.name,
    )
    return f"{address}{graph_steps.predict_path(isvc)}"


def default_address(
    name: str,
    namespace: str,
    mode: str,
    config: ClusterConfig,
    *,
    has_transformer: bool = False,
    predictor: str | None = None,
) -> str:
    """The cluster-local `status.address.url` of an InferenceService in the steady state: the
    VirtualService's host in Knative mode, else the entry component's Service (a named
    predictor's is `{isvc}-{name}-predictor`)."""
    if mode == KNATIVE and not config.ingress.disable_istio_virtual_host:
        return f"http://{naming.cluster_local_host(name, namespace)}"
    entry = "transformer" if has_transformer else "predictor"
    if entry == "predictor" and predictor:
        service = f"{name}-{predictor}-predictor"
    else:
        service = naming.component_name(name, entry)
    return f"http://{naming.cluster_local_host(service, namespace)}"


def resolver(
    services: Iterable[InferenceService],
    mode_of: Callable[[InferenceService], str],
    config: ClusterConfig,
) -> Resolver:
    """Steps' URLs from a known set of InferenceServices (`ksrv k8s render -f`). One not among
    them is taken to be a plain v1 predictor in the cluster's default mode (KServe would wait
    for it to exist)."""
    known = {(s.metadata.namespace or "default", s.metadata.name): s for s in services}

    def resolve(name: str, namespace: str) -> str:
        service = known.get((namespace, name))
        if service is not None:
            return endpoint(service, mode_of(service), config)
        address = default_address(name, namespace, config.deployment_mode, config)
        return f"{address}/v1/models/{name}:predict"

    return resolve
