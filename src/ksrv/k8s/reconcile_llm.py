"""One pass over one LLMInferenceService on a cluster: read it and its presets, render, apply,
clean up, and write KServe's LLMInferenceService status back.

The service is rendered as the InferenceService it translates into (`llm`, `render`), in
Standard mode, its objects owned by the service and marked with KServe's LLM label
(`app.kubernetes.io/name`). Its presets are the LLMInferenceServiceConfigs it names (in its
namespace, then `kserve`), read live at each pass. The status is the InferenceService's recast
as KServe writes the kind's (`llm_plan.llm_status`: `url`, `addresses`, `MainWorkloadReady`,
`RouterReady`...). A pass ends as `reconcile`'s do: normally, `Retry` or `Rejected`. Blocking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.api.inference_service import InferenceService
from ksrv.api.kinds import GROUP
from ksrv.control import llm_plan
from ksrv.control.plan import desired_state
from ksrv.control.service_status import mapping
from ksrv.errors import ResourceInvalid
from ksrv.k8s import apply, cluster_view, llm, reconcile, render
from ksrv.k8s.client import Api, ApiFailure
from ksrv.k8s.config import STANDARD
from ksrv.k8s.context import Readiness
from ksrv.k8s.outcome import (
    ISVC_VERSION,
    Rejected,
    Retry,
    Settings,
    api_failure_outcome,
    failed_status,
    warn,
    write_status,
)

logger = logging.getLogger(__name__)

LLM_VERSION: Final = f"{GROUP}/v1alpha2"
SYSTEM_NAMESPACE: Final = llm_plan.SYSTEM_NAMESPACE
_RENAMED: Final = {"MainWorkloadReady": "PredictorReady", "RouterReady": "IngressReady"}


def reconcile_llm_service(
    api: Api,
    namespace: str,
    name: str,
    settings: Settings,
    now: Callable[[], float] = time.time,
    *,
    is_spec_news: bool = True,
) -> dict[str, Any] | None:
    """Bring the cluster to what the LLMInferenceService says; its new status (None: it is
    gone or being deleted). Leftovers are searched for on spec news, as `reconcile` does."""
    body = api.get(LLM_VERSION, llm_plan.LLMISVC, name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    old = mapping(body.get("status"))
    generation = body["metadata"].get("generation")
    try:
        is_spec_news = is_spec_news or generation != old.get("observedGeneration")
        return _pass(api, body, settings, now, is_spec_news)
    except ApiFailure as failure:
        raise api_failure_outcome(api, body, failure, settings, now()) from None


def _pass(
    api: Api,
    body: dict[str, Any],
    settings: Settings,
    now: Callable[[], float],
    is_spec_news: bool,
) -> dict[str, Any]:
    meta = body["metadata"]
    namespace, generation = meta.get("namespace") or "default", meta.get("generation")
    old = mapping(body.get("status"))

    def lookup(where: str, config: str) -> dict[str, Any] | None:
        return api.get(LLM_VERSION, llm_plan.CONFIG, config, where)

    try:
        isvc = _translated(api, body, lookup)
    except ResourceInvalid as exc:
        reason = exc.reason or "InvalidSpec"
        write_status(api, body, failed_status(generation, reason, str(exc), old, now()))
        raise Rejected(str(exc)) from None
    config = cluster_view.cluster_config(api, settings.config_namespace).with_mode(STANDARD)
    runtimes = cluster_view.runtimes(api, namespace)
    owner = apply.Owner.of(body, llm.NAME_LABEL)
    view = cluster_view.ApiClusterView(api)
    plan = desired_state(isvc, runtimes)
    errors = [f"{c}: {p.error}" for c, p in plan.components.items() if p.error is not None]
    previous = isvc_status(old)
    readiness = Readiness.from_status(previous)
    rendered = render.render_inference_service(isvc, runtimes, config, view, readiness)
    if rendered.problems and not errors:
        message = "; ".join(rendered.problems)
        write_status(api, body, failed_status(generation, reconcile.RENDER_FAILED, message, old,
                                              now()))  # fmt: skip
        raise Retry(message, settings.slow_retry_delay_s)
    applied = [apply.apply(api, obj, owner) for obj in rendered.objects]
    new = reconcile.service_status(api, isvc, plan, config, applied, previous, now())
    if not errors and Readiness.from_status(new) != readiness:
        # Ready in this pass: the ingress that waits for it is rendered now.
        ready_now = Readiness.from_status(new)
        rendered = render.render_inference_service(isvc, runtimes, config, view, ready_now)
        applied = [apply.apply(api, obj, owner) for obj in rendered.objects]
        new = reconcile.service_status(api, isvc, plan, config, applied, previous, now())
    if is_spec_news:
        apply.collect_garbage(api, owner, rendered.objects, apply.OWNED_KINDS)
        # What KServe's LLM controller would make that this does not: told as Warning Events.
        merged = llm.merged(body, lookup)
        warnings = [*llm.cluster_warnings(merged, meta["name"]), *rendered.warnings]
        if warnings:
            warn(api, body, reconcile.NOT_ENFORCED, warnings, now())
    status = {**llm_plan.llm_status(new), "observedGeneration": generation}
    write_status(api, body, status)
    if errors:  # a runtime applied later re-runs the pass (the operator watches runtimes)
        raise Rejected("; ".join(errors))
    return status


def _translated(api: Api, body: dict[str, Any], lookup: llm_plan.Lookup) -> InferenceService:
    """The InferenceService the service is rendered as.

    Raises:
        ResourceInvalid: the service or a preset is invalid, a preset is missing, or an
            InferenceService of the same name would own the same objects.
    """
    meta = body["metadata"]
    namespace = meta.get("namespace") or "default"
    if api.get(ISVC_VERSION, "InferenceService", meta["name"], namespace) is not None:
        raise ResourceInvalid(
            f"InferenceService {meta['name']} exists in namespace {namespace}: both would own "
            f"the objects named {meta['name']}-predictor",
            "NameTaken",
        )
    return llm.as_inference_service(body, lookup)


def isvc_status(status: dict[str, Any]) -> dict[str, Any]:
    """An LLMInferenceService's status read back as the InferenceService status it was made
    from (the conditions' transition times, what was Ready), for the next pass."""
    conditions = [
        {**found, "type": _RENAMED.get(found.get("type", ""), found.get("type"))}
        for found in status.get("conditions") or ()
        if found.get("type") not in ("PresetsCombined", "WorkloadsReady")
    ]
    return {**status, "conditions": conditions}
