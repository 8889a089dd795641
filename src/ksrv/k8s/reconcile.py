"""One pass over one InferenceService on a cluster: read, render, apply, clean up, observe, and
write KServe's status back (canaries included), with its TrainedModels' ConfigMap and status.

Blocking (the official client); the operator runs a pass in a thread, never two at once for
the same InferenceService. A pass always starts from the live object, so whichever event woke
it (the resource, one of its Deployments or Knative Services, a runtime) it does the same thing.
It ends in one of three ways: normally (objects applied, status written: readiness changes come
back as events); `Retry` when the same spec may succeed later (API trouble, a conflict, a
ConfigMap to fix); `Rejected` when nothing will change until the spec does (the status says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.api import conditions as api_conditions
from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.control.plan import ServicePlan, desired_state
from ksrv.control.service_status import mapping, stopped_status
from ksrv.errors import ResourceInvalid
from ksrv.k8s import (
    apply,
    canary_status,
    cluster_view,
    naming,
    reconcile_trained_model,
    render,
    status,
)
from ksrv.k8s.client import Api, ApiFailure
from ksrv.k8s.config import KNATIVE, ClusterConfig
from ksrv.k8s.context import Readiness
from ksrv.k8s.outcome import (
    DEPENDENT_VERSION,
    ISVC_VERSION,
    REFUSED,
    Rejected,
    Retry,
    Settings,
    failed_status,
    warn,
    write_status,
)

__all__ = ["DEPENDENT_VERSION", "ISVC_VERSION", "Rejected", "Retry", "Settings"]

STOP_ANNOTATION: Final = "serving.kserve.io/stop"
# A component whose pod cannot be built yet (a missing secret or storage container).
RENDER_FAILED: Final = "RenderFailed"
# The Warning Events' reason for settings the rendered objects do not carry out (`unenforced`).
NOT_ENFORCED: Final = "NotEnforced"
KSVC_VERSION: Final = "serving.knative.dev/v1"
REVISION_LABEL: Final = "serving.knative.dev/revision"


def reconcile_inference_service(
    api: Api,
    namespace: str,
    name: str,
    settings: Settings,
    now: Callable[[], float] = time.time,
    *,
    is_spec_news: bool = True,
) -> dict[str, Any] | None:
    """Bring the cluster to what the InferenceService says; its new status (None: it is gone
    or being deleted, so nothing was done). Objects rendered no more are searched for only on
    `is_spec_news`, or when the spec changed since the last status (`observedGeneration`): a
    pass woken by an owned object's status otherwise renders what the last one did."""
    body = api.get(ISVC_VERSION, "InferenceService", name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    old = mapping(body.get("status"))
    generation = body["metadata"].get("generation")
    try:
        resource = resources.load(body)
    except ResourceInvalid as exc:
        reason = exc.reason or api_conditions.INVALID_SPEC
        write_status(api, body, status.invalid_status(generation, reason, str(exc), old, now()))
        raise Rejected(str(exc)) from None
    assert isinstance(resource, InferenceService)
    try:
        is_spec_news = is_spec_news or generation != old.get("observedGeneration")
        return _pass(api, body, resource, settings, now, is_spec_news)
    except ApiFailure as failure:
        if failure.is_transient:
            raise Retry(str(failure), settings.retry_delay_s) from None
        message = failure.message
        write_status(api, body, failed_status(generation, "ApplyFailed", message, old, now()))
        if failure.status in REFUSED:
            raise Rejected(message) from None
        raise Retry(message, settings.slow_retry_delay_s) from None
    except ResourceInvalid as exc:  # the cluster's configuration, not the resource
        reason = exc.reason or "InvalidConfig"
        write_status(api, body, failed_status(generation, reason, str(exc), old, now()))
        raise Retry(str(exc), settings.slow_retry_delay_s) from None


def delete_inference_service(api: Api, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Delete every object the InferenceService owns (explicitly, whatever propagation policy
    its own deletion has); those deleted."""
    owner = apply.Owner.of(body, naming.ISVC_LABEL)
    found = apply.delete_owned(api, owner, apply.OWNED_KINDS)
    reconcile_trained_model.delete_models(api, owner.namespace, owner.name)
    return found


def _pass(
    api: Api,
    body: dict[str, Any],
    isvc: InferenceService,
    settings: Settings,
    now: Callable[[], float],
    is_spec_news: bool,
) -> dict[str, Any]:
    old = mapping(body.get("status"))
    owner = apply.Owner.of(body, naming.ISVC_LABEL)
    config = cluster_view.cluster_config(api, settings.config_namespace)
    config = config.with_mode(render.deployment_mode(isvc, config))
    runtimes = cluster_view.runtimes(api, owner.namespace)
    if (isvc.metadata.annotations or {}).get(STOP_ANNOTATION) == "true":
        # KServe deletes the workload and the ingress of a stopped service.
        apply.collect_garbage(api, owner, [], apply.OWNED_KINDS)
        new = stopped_status(body["metadata"].get("generation"), old, now())
        write_status(api, body, new)
        return new
    view = cluster_view.ApiClusterView(api)
    plan = desired_state(isvc, runtimes)
    errors = [f"{c}: {p.error}" for c, p in plan.components.items() if p.error is not None]
    readiness = Readiness.from_status(old)
    rendered = render.render_inference_service(isvc, runtimes, config, view, readiness)
    if rendered.problems and not errors:
        # A secret or storage container that may appear later: said, and tried again.
        message = "; ".join(rendered.problems)
        new = failed_status(body["metadata"].get("generation"), RENDER_FAILED, message, old, now())
        write_status(api, body, new)
        raise Retry(message, settings.slow_retry_delay_s)
    if is_spec_news and rendered.warnings:
        warn(api, body, NOT_ENFORCED, rendered.warnings, now())
    # The TrainedModels' ConfigMap, rendered with the service (KServe's controller makes it).
    models, where, extra = reconcile_trained_model.placed(api, isvc, rendered.objects)
    objects = [*rendered.objects, *extra]
    applied = [apply.apply(api, obj, owner) for obj in objects]
    new = service_status(api, isvc, plan, config, applied, old, now())
    if not errors and Readiness.from_status(new) != readiness:
        # Components turned Ready in this pass: what waits for them (the Ingress, the
        # VirtualService, canary weights) is rendered now, not at the next event.
        ready_now = Readiness.from_status(new)
        rendered = render.render_inference_service(isvc, runtimes, config, view, ready_now)
        objects = [*rendered.objects, *extra]
        applied = [apply.apply(api, obj, owner) for obj in objects]
        new = service_status(api, isvc, plan, config, applied, old, now())
    if is_spec_news:
        apply.collect_garbage(api, owner, objects, apply.OWNED_KINDS)
    write_status(api, body, new)
    reconcile_trained_model.write_statuses(api, isvc, models, where, new, now())
    if errors:  # a runtime applied later re-runs the pass (the operator watches runtimes)
        raise Rejected("; ".join(errors))
    return new


def service_status(
    api: Api,
    isvc: InferenceService,
    plan: ServicePlan,
    config: ClusterConfig,
    applied: list[dict[str, Any]],
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """KServe's status from the objects as applied (and read back), canaries included."""
    observed = _observe(api, isvc, config, applied)
    new = status.inference_service_status(isvc, plan, config, observed, old, now)
    if config.deployment_mode == KNATIVE:  # canaries are Standard mode's
        return new
    deployments = {
        obj["metadata"]["name"]: obj
        for obj in applied
        if obj.get("apiVersion") == "apps/v1" and obj.get("kind") == "Deployment"
    }
    return canary_status.with_canaries(new, isvc, deployments, old, now)


def _observe(
    api: Api, isvc: InferenceService, config: ClusterConfig, applied: list[dict[str, Any]]
) -> dict[str, status.Observed]:
    """Each component's workload as read back, and the predictor's pods."""
    is_knative = config.deployment_mode == KNATIVE
    api_version, kind = (KSVC_VERSION, "Service") if is_knative else ("apps/v1", "Deployment")
    by_name = {
        obj["metadata"]["name"]: obj
        for obj in applied
        if obj.get("apiVersion") == api_version and obj.get("kind") == kind
    }
    namespace = isvc.metadata.namespace or "default"
    observed: dict[str, status.Observed] = {}
    for component in isvc.components():
        workload = by_name.get(naming.component_name(isvc.metadata.name, component))
        pods: list[dict[str, Any]] = []
        if component == "predictor" and workload is not None:
            selector = f"{naming.ISVC_LABEL}={isvc.metadata.name},component={component}"
            revision = mapping(workload.get("status")).get("latestCreatedRevisionName")
            if is_knative and revision:
                selector += f",{REVISION_LABEL}={revision}"
            pods = api.list("v1", "Pod", namespace, selector)
        observed[component] = status.Observed(workload, tuple(pods))
    return observed
