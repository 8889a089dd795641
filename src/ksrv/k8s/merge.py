"""Kubernetes' strategic merge patch, for the two shapes KServe merges: containers and pod specs.

KServe lays the InferenceService's container over its runtime's `kserve-container`, and the
component's pod fields over the runtime's, with `strategicpatch.StrategicMergePatch`. The
same rules here: a list with a patch merge key merges element by element (env by name, ports
by containerPort, volumeMounts by mountPath, volumes by name, ...), any other list is replaced,
maps merge key by key, the patch wins on scalars and a null in the patch deletes. The merge keys
are Kubernetes' own (`x-kubernetes-patch-merge-key` of core/v1). Two fixes keep the result
valid where the Go merge would not: an env var keeps only the patch's `value` or `valueFrom`
(as KServe's `MergeContainerWithPatch` does), and a probe or lifecycle hook keeps only the
patch's handler (`httpGet` over the runtime's `tcpSocket`, never both).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class ListRule:
    """How a list merges: by `key`; `retain_keys` keeps only the patch's fields of an element
    both sides have (a volume's source is replaced, not mixed); `item` merges matched elements."""

    key: str
    retain_keys: bool = False
    item: Mapping[str, ListRule] = field(default_factory=dict)


CONTAINER_RULES: Final[Mapping[str, ListRule]] = {
    "env": ListRule("name"),
    "ports": ListRule("containerPort"),
    "volumeMounts": ListRule("mountPath"),
    "volumeDevices": ListRule("devicePath"),
}
POD_RULES: Final[Mapping[str, ListRule]] = {
    "containers": ListRule("name", item=CONTAINER_RULES),
    "initContainers": ListRule("name", item=CONTAINER_RULES),
    "ephemeralContainers": ListRule("name", item=CONTAINER_RULES),
    "volumes": ListRule("name", retain_keys=True),
    "resourceClaims": ListRule("name", retain_keys=True),
    "imagePullSecrets": ListRule("name"),
    "schedulingGates": ListRule("name"),
    "hostAliases": ListRule("ip"),
    "topologySpreadConstraints": ListRule("topologyKey"),
}
# One of these per probe / lifecycle hook (Kubernetes rejects two).
_HANDLERS: Final = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")
_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")


def merge(
    base: Mapping[str, Any], patch: Mapping[str, Any], rules: Mapping[str, ListRule]
) -> dict[str, Any]:
    """`patch` laid over `base` (neither is changed)."""
    result = copy.deepcopy(dict(base))
    for key, value in patch.items():
        old = result.get(key)
        rule = rules.get(key)
        if value is None:
            result.pop(key, None)
        elif rule is not None and isinstance(value, list) and isinstance(old, list):
            result[key] = _merge_list(old, value, rule)
        elif isinstance(value, dict) and isinstance(old, dict):
            result[key] = merge(old, value, {})
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_container(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A container laid over another (the runtime's `kserve-container`, the model's fields)."""
    merged = merge(base, patch, CONTAINER_RULES)
    _keep_patch_env_source(merged, patch)
    for probe in _PROBES:
        _keep_patch_handler(merged.get(probe), patch.get(probe))
    lifecycle, patch_lifecycle = merged.get("lifecycle"), patch.get("lifecycle")
    if isinstance(lifecycle, dict) and isinstance(patch_lifecycle, dict):
        for hook in ("postStart", "preStop"):
            _keep_patch_handler(lifecycle.get(hook), patch_lifecycle.get(hook))
    if base.get("name"):
        merged.setdefault("name", base["name"])
    return merged


def merge_pod(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Pod fields laid over others (the component's over the runtime's)."""
    return merge(base, patch, POD_RULES)


def _merge_list(base: list[Any], patch: list[Any], rule: ListRule) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    index = {
        item.get(rule.key): position
        for position, item in enumerate(merged)
        if isinstance(item, dict) and rule.key in item
    }
    for item in patch:
        position = index.get(item.get(rule.key)) if isinstance(item, dict) else None
        if position is None:
            merged.append(copy.deepcopy(item))
            if isinstance(item, dict) and rule.key in item:
                index[item[rule.key]] = len(merged) - 1
            continue
        old = merged[position]
        if rule.retain_keys:
            old = {key: value for key, value in old.items() if key in item}
        merged[position] = (
            merge_container(old, item) if rule.item is CONTAINER_RULES
            else merge(old, item, rule.item)
        )  # fmt: skip
    return merged


def _keep_patch_env_source(merged: dict[str, Any], patch: Mapping[str, Any]) -> None:
    by_name = {v.get("name"): v for v in patch.get("env") or () if isinstance(v, dict)}
    for variable in merged.get("env") or ():
        given = by_name.get(variable.get("name"))
        if given is None or "value" not in variable or "valueFrom" not in variable:
            continue
        variable.pop("value" if "valueFrom" in given else "valueFrom")


def _keep_patch_handler(merged: Any, patch: Any) -> None:
    if not isinstance(merged, dict) or not isinstance(patch, dict):
        return
    if any(handler in patch for handler in _HANDLERS):
        for handler in _HANDLERS:
            if handler not in patch:
                merged.pop(handler, None)
