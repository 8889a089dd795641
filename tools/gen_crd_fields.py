"""Generate src/ksrv/api/crd_fields.json.gz, the field tree strict loading checks documents
against, from KServe's CRDs: `python tools/gen_crd_fields.py [SCHEMAS_DIR]`.

Like proto/generate.py, a build-time script beside the package rather than in it: its input
(the CRDs, 2 MB for InferenceService alone) lives outside the repository and ksrv never reads
YAML schemas at run time; tests/unit/api/test_field_tree.py checks the committed file is what
this script writes.

The tree keeps only what strict field validation needs: for every object, the names of its
properties and the node of each. Nodes are stored once per distinct shape and referenced by
index (the pod spec KServe inlines in every component is the same few hundred nodes):
- `null`: anything goes (a scalar, int-or-string, `metadata`, `status`, a map of scalars, an
  object with neither properties nor a schema for its values);
- `{"p": {name: index}}`: an object that refuses any other key;
- `{"p": {...}, "open": 1}`: `x-kubernetes-preserve-unknown-fields`, other keys are kept;
- `{"m": index}`: a map (`additionalProperties`), every value checked against one node.
An array is its items' node: the walker applies it to each element. For the kinds in
`WITH_REQUIRED` (the LLM kinds, whose typed models leave most of the spec as data), an object's
required properties are kept too (`"r": [names]`) and strict loading refuses a missing one.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "ksrv" / "api" / "crd_fields.json.gz"
DEFAULT_SCHEMAS = ROOT.parent / "shared" / "schemas" / "kserve"
KINDS = ("InferenceService", "ServingRuntime", "ClusterServingRuntime", "InferenceGraph",
         "TrainedModel", "ClusterStorageContainer", "LocalModelCache",
         "LocalModelNamespaceCache", "LLMInferenceService",
         "LLMInferenceServiceConfig")  # fmt: skip
WITH_REQUIRED = ("LLMInferenceService", "LLMInferenceServiceConfig")
# Written by the controller; the API server ignores it when the resource itself is written.
# Accepted at the root even where the CRD has no status (ClusterStorageContainer): the local
# platform records one, and `ksrv get -o yaml | ksrv apply -f -` must round-trip.
_SKIPPED_AT_ROOT = ("metadata", "status")


class _Nodes:
    """Distinct nodes in first-seen order; node 0 is `null` (anything goes)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = [None]
        self._index: dict[str, int] = {"null": 0}

    def add(self, node: Any) -> int:
        key = json.dumps(node, sort_keys=True, separators=(",", ":"))
        if key not in self._index:
            self._index[key] = len(self.nodes)
            self.nodes.append(node)
        return self._index[key]


def _node(
    schema: dict[str, Any], nodes: _Nodes, skip: tuple[str, ...] = (), required: bool = False
) -> int:
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return _node(schema["items"], nodes, required=required)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        node: dict[str, Any] = {
            "p": {
                name: 0 if name in skip else _node(child, nodes, required=required)
                for name, child in sorted(properties.items())
            }
        }
        if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties"):
            node["open"] = 1
        if required and schema.get("required"):
            node["r"] = sorted(schema["required"])
        return nodes.add(node)
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        child = _node(values, nodes, required=required)
        return 0 if child == 0 else nodes.add({"m": child})
    return 0  # a scalar, int-or-string, or an object that takes any key


def field_tree(schemas: Path) -> dict[str, Any]:
    """{"kinds": {kind: {"apiVersion": ..., "root": index}}, "nodes": [...]}."""
    nodes = _Nodes()
    kinds: dict[str, Any] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in sorted(schemas.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        spec = crd["spec"]
        kind = spec["names"]["kind"]
        if kind not in KINDS:
            continue
        served = [v for v in spec["versions"] if v.get("served") and "schema" in v]
        for position, version in enumerate(served):
            schema = version["schema"]["openAPIV3Schema"]
            root_fields = {name: {} for name in _SKIPPED_AT_ROOT} | schema.get("properties", {})
            schema = {**schema, "properties": root_fields}
            root = _node(schema, nodes, _SKIPPED_AT_ROOT, kind in WITH_REQUIRED)
            entry = {"apiVersion": f"{spec['group']}/{version['name']}", "root": root}
            # The first served version is the kind's; a kind served in several versions
            # (LLMInferenceService) also has one entry per version, `Kind@version`.
            if position == 0:
                kinds[kind] = entry
            if len(served) > 1:
                kinds[f"{kind}@{version['name']}"] = entry
    missing = set(KINDS) - set(kinds)
    if missing:
        raise SystemExit(f"no CRD for {sorted(missing)} under {schemas}")
    return {"kinds": dict(sorted(kinds.items())), "nodes": nodes.nodes}


def encode(tree: dict[str, Any]) -> bytes:
    """The file's bytes: compact JSON, gzip without a timestamp (the same input, same bytes)."""
    text = json.dumps(tree, separators=(",", ":"), sort_keys=False)
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def main(argv: list[str]) -> int:
    schemas = Path(argv[1]) if len(argv) > 1 else DEFAULT_SCHEMAS
    data = encode(field_tree(schemas))
    OUT.write_bytes(data)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
