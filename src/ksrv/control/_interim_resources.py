"""TEMPORARY stand-in for `ksrv.api.resources` until it lands; delete it then.

Only the surface `admission` uses: ServingRuntime kinds through `api.serving_runtime`, the
other kinds checked for metadata.name and a spec mapping (InferenceService: spec.predictor).
"""

from __future__ import annotations

from typing import Any

import yaml

from ksrv import errors
from ksrv.api import serving_runtime


class _Loaded:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.kind = document.get("kind")

    def to_dict(self) -> dict[str, Any]:
        return self.document


def parse_documents(text: str) -> list[dict[str, Any]]:
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise errors.ResourceInvalid(f"not valid YAML: {exc}") from exc
    for document in documents:
        if not isinstance(document, dict):
            raise errors.ResourceInvalid("expected a mapping")
    return documents


def _invalid(kind: str, name: str, problems: list[tuple[str, str]]) -> errors.ResourceInvalid:
    exc = errors.ResourceInvalid(
        f"{kind} {name}: " + "; ".join(f"{path}: {message}" for path, message in problems)
    )
    exc.field_errors = problems  # type: ignore[attr-defined]
    return exc


def load(document: dict[str, Any]) -> _Loaded:
    kind = str(document.get("kind"))
    raw_metadata = document.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = str(metadata.get("name") or "(unnamed)")
    if kind in ("ServingRuntime", "ClusterServingRuntime"):
        runtime = serving_runtime.parse_runtime(document)
        return _Loaded(runtime.model_dump(by_alias=True, exclude_none=True))
    if kind not in ("InferenceService", "InferenceGraph", "TrainedModel"):
        raise _invalid(kind, name, [("kind", f"unknown kind {kind!r}")])
    problems: list[tuple[str, str]] = []
    if not metadata.get("name"):
        problems.append(("metadata.name", "Required value"))
    spec = document.get("spec")
    if not isinstance(spec, dict):
        problems.append(("spec", "Required value"))
    elif kind == "InferenceService" and not isinstance(spec.get("predictor"), dict):
        problems.append(("spec.predictor", "Required value"))
    if problems:
        raise _invalid(kind, name, problems)
    return _Loaded(dict(document))


def validate_update(old: _Loaded, new: _Loaded) -> None:
    return None
