"""Which fields KServe's CRDs define, down to the pod-spec fields KServe inlines.

kubectl's default strict field validation refuses a field the CRD's schema does not define,
at any depth (`readinessProbe.httpGet.paht`, `volumeMounts[0].mountPaht`); the API server
prunes it otherwise. The schemas' field names, as a tree deduplicated by shape, ship in
`crd_fields.json.gz` (written by tools/gen_crd_fields.py from the CRDs); it is read on first
use, once, so `import ksrv` does not pay for it. For the LLM kinds the tree also says which
properties an object requires (`missing_required`).
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
from importlib.resources import files
from typing import Any

from ksrv.api.meta import join

# (parent path, field, the fields known there)
Unknown = tuple[str, str, frozenset[str]]


@functools.cache
def _tree() -> dict[str, Any]:
    data = files(__package__).joinpath("crd_fields.json.gz").read_bytes()
    tree: dict[str, Any] = json.loads(gzip.decompress(data))
    return tree


def unknown_fields(kind: str, document: object) -> list[str]:
    """Paths of the fields `kind`'s CRD does not define (KServe's API server prunes them)."""
    return [join(path, key) for path, key, _ in _unknown(kind, document)]


def unknown_field_errors(kind: str, document: object) -> list[tuple[str, str]]:
    """`(path, message)` per field the CRD does not define, as kubectl's strict validation
    refuses them, with the closest known field where one is close (a typo, most likely)."""
    errors = []
    for path, key, known in _unknown(kind, document):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        errors.append((join(path, key), f"unknown field{hint}"))
    return errors


def missing_required(kind: str, document: object) -> list[str]:
    """Paths of the properties `kind`'s CRD requires that `document` lacks (where the tree
    records them)."""
    tree = _tree()
    entry = tree["kinds"].get(kind)
    missing: list[str] = []
    if entry is not None:
        _walk(tree["nodes"], entry["root"], document, "", [], missing)
    return missing


def _unknown(kind: str, document: object) -> list[Unknown]:
    """Every field of `document` that `kind`'s CRD does not define; [] for a kind it lacks.

    Values of the wrong type are left to the models' validation: only keys are checked here.
    """
    tree = _tree()
    entry = tree["kinds"].get(kind)
    if entry is None:
        return []
    found: list[Unknown] = []
    _walk(tree["nodes"], entry["root"], document, "", found)
    return found


def _walk(
    nodes: list[Any],
    index: int,
    value: object,
    path: str,
    found: list[Unknown],
    missing: list[str] | None = None,
) -> None:
    node = nodes[index]
    if node is None:
        return
    if isinstance(value, list):  # an array's node is its items' node
        for position, item in enumerate(value):
            _walk(nodes, index, item, join(path, position), found, missing)
        return
    if not isinstance(value, dict):
        return
    if "m" in node:
        for key, item in value.items():
            _walk(nodes, node["m"], item, join(path, str(key)), found, missing)
        return
    known: dict[str, int] = node["p"]
    if missing is not None:
        missing += [join(path, name) for name in node.get("r", ()) if name not in value]
    for key, item in value.items():
        name = str(key)
        if name in known:
            _walk(nodes, known[name], item, join(path, name), found, missing)
        elif not node.get("open"):
            found.append((path, name, frozenset(known)))
