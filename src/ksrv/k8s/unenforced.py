"""What a resource asks for that the rendered objects do not carry out on Kubernetes.

Not problems: the objects are complete and apply; the user is told (`ksrv k8s render`'s
warnings, the operator's log) so a setting does not silently mean nothing:
- `serving.kserve.io/enable-auth` (or OpenDataHub's spelling): ksrv's gateway enforces it
  locally; KServe itself does not implement it upstream and the renderer adds nothing for it;
- a `logger` on a container that is not `ksrv serve`: ksrv's server logs its own payloads
  (`components.logger_args`); KServe's agent sidecar, which would log for another server,
  is not rendered;
- a multi-model predictor on a runtime image that is not ksrv's: KServe's agent would pull
  its TrainedModels into it; nothing does here.
"""

from __future__ import annotations

from typing import Any

from ksrv.api.inference_service import InferenceService
from ksrv.control.plan import ModelServer
from ksrv.k8s import components
from ksrv.k8s.context import ComponentContext
from ksrv.protocol.tokens import ENABLE_AUTH_ANNOTATIONS


def service_warnings(isvc: InferenceService) -> list[str]:
    """The service-wide settings that are not enforced on Kubernetes."""
    annotations = isvc.metadata.annotations or {}
    return [
        f"annotation {key}: not enforced on Kubernetes by ksrv (KServe does not implement it "
        "upstream); protect the service with your ingress, mesh or gateway's authorization"
        for key in ENABLE_AUTH_ANNOTATIONS
        if annotations.get(key, "").lower() == "true"
    ]


def component_warnings(ctx: ComponentContext, pod: dict[str, Any]) -> list[str]:
    """What `ctx`'s component asks for that its rendered `pod` does not carry out."""
    containers: list[dict[str, Any]] = pod.get("containers") or []
    main = next((c for c in containers if c.get("name") == components.MAIN), {})
    args = [str(arg) for arg in main.get("args") or ()]
    path = f"spec.{ctx.component}"
    warnings = []
    if ctx.plan.logger is not None and not components.has_arg(args, "--log-url"):
        warnings.append(
            f"{path}.logger: payloads are logged by `ksrv serve`; this container runs another "
            "server and KServe's agent sidecar is not rendered, so nothing is logged"
        )
    workload = ctx.plan.workload
    is_multi_model = isinstance(workload, ModelServer) and workload.is_multi_model
    if is_multi_model and not components.has_arg(args, "--models-config"):
        warnings.append(
            f"{path}: a multi-model predictor on runtime {ctx.plan.runtime}, which does not "
            "run `ksrv serve`: KServe's agent would pull its TrainedModels, and it is not "
            "rendered, so none are loaded"
        )
    return warnings
