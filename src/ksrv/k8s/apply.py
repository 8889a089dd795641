"""Create-or-patch of rendered objects on behalf of an owner, and clean-up of what is no longer
rendered.

Every object gets a controller ownerReference to its owner (the cluster's garbage collector
deletes it with the owner) and the owner's label, so the operator finds what it made by one
label selector per kind. Changes go as JSON merge patches (RFC 7386), whose meaning is the same
on every API server: maps merge, lists are replaced whole. A field rendered before and not any
more is removed explicitly (null in the patch), found by comparing with the last-applied copy
kept in an annotation, as client-side `kubectl apply` does; fields the cluster defaulted are left
alone, and an object that already says what was rendered is not patched at all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ksrv.k8s.client import Api

LAST_APPLIED: Final = "ksrv.dev/last-applied"
# Every kind the renderer may make for an InferenceService, searched for leftovers; the kinds of
# the objects just rendered are searched too, whatever their version.
OWNED_KINDS: Final = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("serving.knative.dev/v1", "Service"),
    ("networking.istio.io/v1beta1", "VirtualService"),
    ("v1", "ConfigMap"),
)


@dataclass(frozen=True, slots=True)
class Owner:
    """The resource the objects belong to, and the label that marks them as its own."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str
    label: str

    @classmethod
    def of(cls, body: dict[str, Any], label: str) -> Owner:
        meta = body["metadata"]
        return cls(
            body["apiVersion"], body["kind"], meta["name"], meta.get("namespace") or "default",
            meta["uid"], label,
        )  # fmt: skip

    @property
    def selector(self) -> str:
        return f"{self.label}={self.name}"

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def owns(self, obj: dict[str, Any]) -> bool:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        return any(ref.get("uid") == self.uid for ref in refs)


def apply(api: Api, obj: dict[str, Any], owner: Owner) -> dict[str, Any]:
    """Create `obj`, or patch the live one to say what `obj` says; the live object after."""
    desired = stamped(obj, owner)
    meta = desired["metadata"]
    current = api.get(desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace"))
    if current is None:
        return api.create(desired)
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    last = _json_object(annotations.get(LAST_APPLIED))
    patch = with_removals(desired, last)
    if covers(current, patch):
        return current
    return api.patch(desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace"),
                     patch)  # fmt: skip


def stamped(obj: dict[str, Any], owner: Owner) -> dict[str, Any]:
    """`obj` owned by `owner`: its ownerReference, its label, and the last-applied copy."""
    desired = copy.deepcopy(obj)
    meta = desired.setdefault("metadata", {})
    meta.setdefault("namespace", owner.namespace)
    meta.setdefault("labels", {})[owner.label] = owner.name
    meta["ownerReferences"] = [owner.reference()]
    annotations = meta.setdefault("annotations", {})
    annotations.pop(LAST_APPLIED, None)
    annotations[LAST_APPLIED] = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    return desired


def with_removals(desired: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """A merge patch saying `desired`, and null for each map key applied last time and gone
    now (lists are replaced whole, so their contents need no nulls)."""
    patch = dict(desired)
    for key, value in last.items():
        if key not in desired:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(desired[key], dict):
            patch[key] = with_removals(desired[key], value)
    return patch


def covers(current: Any, wanted: Any) -> bool:
    """Whether `current` already says everything the merge patch `wanted` says (a null: the
    key is absent). Keys the server added (defaults, status) do not count."""
    if isinstance(wanted, dict):
        if not isinstance(current, dict):
            return False
        for key, value in wanted.items():
            if value is None:
                if current.get(key) is not None:
                    return False
            elif key not in current or not covers(current[key], value):
                return False
        return True
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(covers(c, w) for c, w in zip(current, wanted, strict=True))
        )
    return bool(current == wanted)


def owned(api: Api, owner: Owner, kinds: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The live objects of `kinds` in the owner's namespace that carry its label and reference."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for api_version, kind in kinds:
        for obj in api.list(api_version, kind, owner.namespace, owner.selector):
            if owner.owns(obj):
                found.setdefault(identity(obj), obj)
    return list(found.values())


def delete_owned(api: Api, owner: Owner, kinds: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Delete every object of `kinds` that `owner` owns; those deleted."""
    found = owned(api, owner, kinds)
    for obj in found:
        delete(api, obj)
    return found


def collect_garbage(
    api: Api, owner: Owner, keep: Iterable[dict[str, Any]], kinds: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Delete the owner's objects that are not in `keep` (rendered no more); those deleted."""
    kept = {identity(obj) for obj in keep}
    search = {*kinds, *((obj["apiVersion"], obj["kind"]) for obj in keep)}
    gone = [obj for obj in owned(api, owner, sorted(search)) if identity(obj) not in kept]
    for obj in gone:
        delete(api, obj)
    return gone


def delete(api: Api, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp"):
        api.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(API group, kind, name): one object whichever version it is read through."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return group, str(obj["kind"]), str(obj["metadata"]["name"])


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `old` into `new` (empty when they are equal)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or value != before:
            patch[key] = value
    return patch
