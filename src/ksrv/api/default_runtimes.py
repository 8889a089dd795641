"""ksrv's default ClusterServingRuntimes: KServe's shipped set, served by ksrv's runtimes.

One runtime per ksrv framework runtime. Each format lists every version some KServe default
runtime supports (sklearn 0/1 from kserve-mlserver as well as 1 from kserve-sklearnserver, ...)
with the priority of KServe's dedicated runtime for it, so any `modelFormat` KServe would place
finds a ksrv runtime. The annotation `ksrv.dev/runtime` names the `ksrv.runtimes.registry` key;
`ksrv.dev/merges-requests` says whether that runtime merges concurrent requests into one predict
call (sklearn, xgboost, lightgbm always; onnx, pytorch, tensorflow under a `batcher`): a fact
of the runtime, kept here as data so the control plane never imports runtimes; a unit test
checks it against the runtime classes. Every runtime but Hugging Face's declares
`multiModel: true`: ksrv's server can hold many of its models, loaded on first request
(TrainedModels, docs/multi-model.md); KServe's IsMMSPredictor never counts a Hugging Face
predictor as multi-model either.

They are installed the way KServe's chart installs its own: listed and read like applied ones
(`ksrv get csr`), and a ClusterServingRuntime applied under the same name takes a default's
place (`disabled: true` turns one off), for listing and for runtime selection alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from ksrv.api.serving_runtime import ClusterServingRuntime, Runtime, parse_runtimes

RUNTIME_ANNOTATION = "ksrv.dev/runtime"
MERGES_ANNOTATION = "ksrv.dev/merges-requests"

# format name -> (versions, priority, KServe runtime the priority comes from, merges requests)
_FORMATS: dict[str, tuple[tuple[str, ...], int, str, bool]] = {
    "sklearn": (("0", "1"), 1, "kserve-sklearnserver", True),
    "xgboost": (("1", "2"), 1, "kserve-xgbserver", True),
    "lightgbm": (("3", "4"), 1, "kserve-lgbserver", True),
    "onnx": (("1",), 1, "kserve-tritonserver", True),
    "pytorch": (("1",), 2, "kserve-torchserve", True),
    "tensorflow": (("1", "2"), 2, "kserve-tensorflow-serving", True),
    "pmml": (("3", "4"), 1, "kserve-pmmlserver", False),
    "mlflow": (("1", "2"), 1, "kserve-mlserver", False),
    "huggingface": (("1",), 1, "kserve-huggingfaceserver", False),
    # ksrv's own: KServe runs alibi-detect's server as a Knative service for this.
    "detector": (("1",), 1, "alibi-detect-server", False),
}
# Runtimes that take flags of their own: an InferenceService's `args` reach them after `--`.
_TAKES_ARGS = frozenset({"huggingface", "detector"})
# Runtimes that serve one model per server only (no TrainedModels).
_SINGLE_MODEL = frozenset({"huggingface", "detector"})

_TEMPLATE = """\
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: ksrv-{name}
  annotations:
    serving.kserve.io/server-type: ksrv
    {annotation}: {name}
    {merges_annotation}: "{merges}"
    ksrv.dev/mirrors: {mirrors}
spec:
  annotations:
    prometheus.kserve.io/port: "8080"
    prometheus.kserve.io/path: /metrics
  supportedModelFormats:
{formats}
  protocolVersions: [v1, v2, grpc-v2]
  multiModel: {multi_model}
  containers:
    - name: kserve-container
      image: ksrv:replace
      command: [ksrv, serve]
      args:
        - --model-name={{{{.Name}}}}
        - --model-dir=/mnt/models
        - --model-format={name}
        - --http-port=8080
        - --grpc-port=8081
        - --host=0.0.0.0{separator}
      resources:
        requests: {{cpu: "1", memory: 2Gi}}
        limits: {{cpu: "1", memory: 2Gi}}
"""


def default_runtimes_yaml() -> str:
    """The default set as one multi-document YAML text (what `kubectl apply` would take)."""
    documents = []
    for name, (versions, priority, mirrors, merges) in _FORMATS.items():
        formats = "\n".join(
            f"    - {{name: {name}, version: {version!r}, autoSelect: true, priority: {priority}}}"
            for version in versions
        )
        documents.append(
            _TEMPLATE.format(
                name=name,
                annotation=RUNTIME_ANNOTATION,
                merges_annotation=MERGES_ANNOTATION,
                merges=str(merges).lower(),
                mirrors=mirrors,
                formats=formats,
                multi_model=str(name not in _SINGLE_MODEL).lower(),
                # The model's `args` are appended after these; `--` hands them to the runtime.
                separator='\n        - "--"' if name in _TAKES_ARGS else "",
            )
        )
    return "---\n".join(documents)


def default_runtimes() -> list[ClusterServingRuntime]:
    """The default set, parsed (and so validated) like any user-supplied runtime."""
    runtimes = parse_runtimes(default_runtimes_yaml())
    return [runtime for runtime in runtimes if isinstance(runtime, ClusterServingRuntime)]


def installed(stored: Iterable[dict[str, Any]], created: str) -> list[dict[str, Any]]:
    """Every ClusterServingRuntime the platform uses, by name: the stored ones, and each
    default no stored one replaces (stamped `created`, an RFC 3339 time)."""
    by_name = {str(document["metadata"]["name"]): document for document in stored}
    for document in yaml.safe_load_all(default_runtimes_yaml()):
        name = document["metadata"]["name"]
        if name not in by_name:
            document["metadata"]["creationTimestamp"] = created
            by_name[name] = document
    return [by_name[name] for name in sorted(by_name)]


def unreplaced(runtimes: Iterable[Runtime], names: set[str]) -> list[Runtime]:
    """The defaults among `runtimes` whose name no applied ClusterServingRuntime takes."""
    return [runtime for runtime in runtimes if runtime.metadata.name not in names]


def ksrv_runtime(runtime: Runtime) -> str | None:
    """The `ksrv.runtimes.registry` key a runtime points at, if it is a ksrv runtime."""
    return runtime.metadata.annotations.get(RUNTIME_ANNOTATION)


def format_merges_requests(model_format: str) -> bool:
    """Whether ksrv's default runtime for a model format merges concurrent requests (always, or
    under a `batcher`).

    A replica serves a format with ksrv's own runtime for it, whichever ServingRuntime KServe's
    rules picked, so this is what a `batcher` can count on.
    """
    entry = _FORMATS.get(model_format.lower())
    return entry is not None and entry[3]


def format_takes_args(model_format: str) -> bool:
    """Whether ksrv's runtime for a model format takes the model's `args` (KServe's flags)."""
    return model_format.partition(":")[0].lower() in _TAKES_ARGS


def ksrv_formats() -> list[str]:
    """The model formats ksrv's runtimes serve."""
    return sorted(_FORMATS)
