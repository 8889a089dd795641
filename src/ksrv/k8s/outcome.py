"""How an operator pass ends and what it writes: `Retry` / `Rejected`, the `Settings` that time
retries, the status writes every pass shares (a failed `Ready`, a merge patch of the
status subresource), and `warn`: what a resource asks for that the cluster will not carry out,
told as Warning Events.

Shared by the passes over InferenceServices (`reconcile`), InferenceGraphs (`reconcile_graph`)
and TrainedModels (`reconcile_trained_model`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from ksrv.api.kinds import GROUP
from ksrv.control.service_status import condition, keep_transition_times, mapping
from ksrv.k8s import apply
from ksrv.k8s.client import Api, ApiFailure

logger = logging.getLogger(__name__)

ISVC_VERSION: Final = f"{GROUP}/v1beta1"
DEPENDENT_VERSION: Final = f"{GROUP}/v1alpha1"
# The API refused an object as written: the spec must change first.
REFUSED: Final = frozenset({400, 422})


class Retry(Exception):
    """Try the pass again after `delay_s` (the spec may well succeed then)."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class Rejected(Exception):
    """The pass cannot succeed until the resource changes; its status says why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How the operator runs: where its ConfigMap lives, how soon it retries."""

    config_namespace: str = "kserve"
    retry_delay_s: float = 1.0
    """After API trouble that passes (5xx, conflicts, throttling, unreachable)."""
    slow_retry_delay_s: float = 30.0
    """After what needs someone to act (a broken ConfigMap, a missing CRD, RBAC)."""


def failed_status(
    generation: Any, reason: str, message: str, old: dict[str, Any], now: float
) -> dict[str, Any]:
    """The old status with `Ready` False for a pass that could not apply its objects."""
    conditions = [condition("Ready", False, reason, message)]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    return {**old, "observedGeneration": generation, "conditions": conditions}


def write_status(api: Api, body: dict[str, Any], new: dict[str, Any]) -> None:
    """Patch the status subresource with what changed (nothing when nothing did)."""
    patch = apply.merge_patch(mapping(body.get("status")), new)
    if not patch:
        return
    meta = body["metadata"]
    try:
        api.patch(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"),
                  {"status": patch}, subresource="status")  # fmt: skip
    except ApiFailure as failure:
        if failure.status != 404:  # deleted meanwhile: nothing to report to
            raise


def warn(api: Api, body: dict[str, Any], reason: str, messages: list[str], now: float) -> None:
    """Tell the user of each message: the operator's log, and a Warning Event on the resource
    (`kubectl describe` lists it). Best effort: an Event the API refuses is only logged."""
    meta = body["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    for index, message in enumerate(messages):
        logger.warning("%s %s/%s: %s", body["kind"], namespace, name, message)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name}.{reason.lower()}-{meta.get('generation', 0)}-{index}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "ksrv-operator"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            api.create(event)
        except ApiFailure as failure:
            if failure.status != 409:  # 409: said already for this generation
                logger.info("could not record the warning as an Event: %s", failure)


def api_failure_outcome(
    api: Api, body: dict[str, Any], failure: ApiFailure, settings: Settings, now: float
) -> Retry | Rejected:
    """What an API failure makes of a pass: a quick `Retry` when it passes by itself; else
    `Ready` False says why, and the spec must change (`Rejected`: the API refused an object)
    or someone must act (a slow `Retry`)."""
    if failure.is_transient:
        return Retry(str(failure), settings.retry_delay_s)
    old = mapping(body.get("status"))
    generation = body["metadata"].get("generation")
    write_status(api, body, failed_status(generation, "ApplyFailed", failure.message, old, now))
    if failure.status in REFUSED:
        return Rejected(failure.message)
    return Retry(failure.message, settings.slow_retry_delay_s)
