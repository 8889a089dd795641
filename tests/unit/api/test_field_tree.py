"""The CRD field tree: the committed file is what tools/gen_crd_fields.py writes from KServe's
CRDs, it stays small, and strict loading finds a typo at any depth with it."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ksrv.api import field_tree, resources
from ksrv.errors import ResourceInvalid

ROOT = Path(__file__).resolve().parents[3]
GENERATOR = ROOT / "tools" / "gen_crd_fields.py"
CRDS = ROOT.parent / "shared" / "schemas" / "kserve"
DATA = ROOT / "src" / "ksrv" / "api" / "crd_fields.json.gz"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_crd_fields", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KServe CRDs under {CRDS} to generate from")
def test_the_committed_tree_is_what_the_generator_writes():
    # compared as data, not bytes: another zlib may compress the same JSON differently
    committed = json.loads(gzip.decompress(DATA.read_bytes()))
    assert _generator().field_tree(CRDS) == committed, (
        "src/ksrv/api/crd_fields.json.gz is stale: run `python tools/gen_crd_fields.py`"
    )


def test_the_tree_is_small_and_read_from_the_package():
    assert DATA.stat().st_size < 16_000  # the InferenceService CRD alone is 2 MB
    assert field_tree.unknown_fields("InferenceService", {"spec": {"predictr": {}}}) == [
        "spec.predictr"
    ]


def test_importing_ksrv_api_does_not_read_the_tree():
    code = (
        "import ksrv.api.resources, ksrv.api.field_tree as t; print(t._tree.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0"


def _isvc(predictor: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": {"predictor": predictor},
    }


MODEL = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}
DEEP_TYPOS = [
    (
        _isvc({"model": {**MODEL, "readinessProbe": {"httpGet": {"paht": "/", "port": 8080}}}}),
        "spec.predictor.model.readinessProbe.httpGet.paht",
        "unknown field; did you mean path?",
    ),
    (
        _isvc(
            {"model": {**MODEL, "volumeMounts": [{"name": "v", "mountPath": "/d", "subPaht": "m"}]}}
        ),
        "spec.predictor.model.volumeMounts[0].subPaht",
        "unknown field; did you mean subPath?",
    ),
    (
        _isvc(
            {
                "model": {
                    **MODEL,
                    "env": [
                        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "keey": "k"}}}
                    ],
                }
            }
        ),
        "spec.predictor.model.env[0].valueFrom.secretKeyRef.keey",
        "unknown field; did you mean key?",
    ),
    (
        _isvc({"model": MODEL, "tolerations": [{"key": "k", "efect": "NoSchedule"}]}),
        "spec.predictor.tolerations[0].efect",
        "unknown field; did you mean effect?",
    ),
    (
        _isvc({"model": MODEL, "volumes": [{"name": "v", "emptyDir": {"medum": "Memory"}}]}),
        "spec.predictor.volumes[0].emptyDir.medum",
        "unknown field; did you mean medium?",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "message"), DEEP_TYPOS, ids=[p for _, p, _ in DEEP_TYPOS]
)
def test_strict_loading_refuses_a_typo_inside_an_untyped_pod_field(document, path, message):
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document, is_strict=True)
    # first, and alone but for the field a misspelt required one leaves missing
    assert caught.value.field_errors[0] == (path, message)
    assert [error for error in caught.value.field_errors[1:] if error[1] != "required"] == []


@pytest.mark.parametrize(
    ("document", "path", "message"), DEEP_TYPOS, ids=[p for _, p, _ in DEEP_TYPOS]
)
def test_a_stored_document_still_loads_and_reports_the_field(document, path, message):
    resource = resources.load(document)  # stored under looser rules: kept, reported
    assert any(
        note.startswith(f"{path}: not a field") for note in resources.local_limitations(resource)
    )


def test_maps_and_preserved_fields_take_any_key():
    document = _isvc(
        {
            "model": {**MODEL, "resources": {"limits": {"nvidia.com/gpu": 1}}},
            "nodeSelector": {"any-key": "v"},
            "annotations": {"x": "y"},
        }
    )
    document["metadata"]["labels"] = {"whatever": "v"}
    document["status"] = {"anything": {"goes": 1}}
    assert field_tree.unknown_fields("InferenceService", document) == []
    resources.load(document, is_strict=True)


def test_a_misspelt_required_field_is_named_with_the_missing_one():
    document = _isvc({"model": {"modelFormat": {"nme": "sklearn"}, "storageUri": "gs://b/m"}})
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document, is_strict=True)
    assert caught.value.field_errors == [
        ("spec.predictor.model.modelFormat.nme", "unknown field; did you mean name?"),
        ("spec.predictor.model.modelFormat.name", "required"),
    ]
