"""KServe's InferenceService webhook: defaulting, then the validation rules the CRD cannot express.

`apply_defaults` mutates a parsed InferenceService in place (as a mutating webhook patches the
object); the `*_errors` functions return `(path, message)` pairs rather than raising, so one
`ResourceInvalid` can name every bad field at once.
"""

from __future__ import annotations

import posixpath
import re
from typing import Final

from ksrv.api import names
from ksrv.api.inference_service import (
    DEPLOYMENT_MODE,
    FRAMEWORKS,
    ArtExplainerSpec,
    AutoScalingSpec,
    ComponentSpec,
    ExplainerSpec,
    FrameworkSpec,
    InferenceService,
    ModelFormat,
    ModelSpec,
    PredictorSpec,
)
from ksrv.api.meta import join

FieldError = tuple[str, str]

# Values older KServe releases wrote; the webhook rewrites them.
LEGACY_MODES: Final = {"Serverless": "Knative", "RawDeployment": "Standard"}
MODES: Final = ("Standard", "Knative", "ModelMesh")
AUTOSCALER_CLASS: Final = "serving.kserve.io/autoscalerClass"
AUTOSCALER_CLASSES: Final = ("hpa", "keda", "external", "none")
KNATIVE_CLASS: Final = "autoscaling.knative.dev/class"
# KServe's built-in prefixes plus what its default ClusterStorageContainer adds (modelscope).
STORAGE_PREFIXES: Final = (
    "gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://",
    "oci://", "oci+native://", "oci+fetch://", "hf://", "modelscope://",
)  # fmt: skip
_HAS_SCHEME = re.compile(r"\w+?://")
_AZURE_BLOB = re.compile(r"https://(.+?)\.blob\.core\.windows\.net/(.+)")
_IMPLEMENTATIONS: Final = {
    "predictor": ("PredictorSpec", (*FRAMEWORKS, "model", "containers")),
    "transformer": ("TransformerSpec", ("containers",)),
    "explainer": ("ExplainerSpec", ("art", "containers")),
}
_CANARY_FORBIDDEN: Final = ("autoScaling", "scaleTarget", "scaleMetric", "scaleMetricType")


def apply_defaults(isvc: InferenceService) -> None:
    """KServe's defaulting: mode spelling, framework specs -> `model`, triton v2, minReplicas 1."""
    annotations = isvc.metadata.annotations
    mode = annotations.get(DEPLOYMENT_MODE)
    if mode in LEGACY_MODES:
        annotations[DEPLOYMENT_MODE] = LEGACY_MODES[mode]
    _convert_framework(isvc.spec.predictor)
    for canary in isvc.spec.canary or ():
        _convert_framework(canary.predictor)
    for component in isvc.components().values():
        if component.min_replicas is None:
            component.min_replicas = 1


def _convert_framework(predictor: PredictorSpec) -> None:
    # Only an unambiguous spec converts; two implementations stay for validation to report.
    implementations = predictor.implementations()
    if len(implementations) != 1:
        return
    (name,) = implementations
    if name in FRAMEWORKS:
        framework = predictor.framework(name)
        assert framework is not None
        fields = framework.model_dump(by_alias=True, exclude_none=True)
        predictor.model = ModelSpec.model_validate(fields)
        predictor.model.model_format = ModelFormat(name=name)
        setattr(predictor, name, None)
    model = predictor.model
    model_format = model.model_format if model is not None else None
    if model is not None and model_format is not None and model_format.name == "triton":
        model.protocol_version = model.protocol_version or "v2"


def inference_service_errors(isvc: InferenceService) -> list[FieldError]:
    """Every webhook rule an InferenceService breaks, as `(path, message)`."""
    errors: list[FieldError] = []
    # Its Services and hosts are named after it: a DNS-1035 label, as KServe's webhook says.
    problem = names.service_name_problem(isvc.metadata.name)
    if problem:
        errors.append(("metadata.name", problem))
    errors += _annotation_errors(isvc)
    for role, component in isvc.components().items():
        errors += component_errors(component, f"spec.{role}", role)
    errors += _autoscaling_errors(isvc)
    errors += _canary_errors(isvc)
    return errors


def _annotation_errors(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    annotations = isvc.metadata.annotations
    mode = annotations.get(DEPLOYMENT_MODE)
    if mode is not None and mode not in MODES:
        errors.append(
            (f"metadata.annotations[{DEPLOYMENT_MODE}]", f"{mode!r} is not one of {list(MODES)}")
        )
    autoscaler = annotations.get(AUTOSCALER_CLASS)
    if autoscaler is not None and autoscaler not in AUTOSCALER_CLASSES:
        errors.append(
            (
                f"metadata.annotations[{AUTOSCALER_CLASS}]",
                f"{autoscaler!r} is not one of {list(AUTOSCALER_CLASSES)}",
            )
        )
    return errors


def component_errors(component: ComponentSpec, path: str, role: str) -> list[FieldError]:
    """Rules every component follows: one implementation, storage, replica bounds, logger."""
    errors = _implementation_errors(component, path, role)
    errors += _storage_errors(component, path)
    errors += _bounds_errors(component, path)
    return errors


def _implementation_errors(component: ComponentSpec, path: str, role: str) -> list[FieldError]:
    spec_name, options = _IMPLEMENTATIONS[role]
    if len(component.implementations()) == 1:
        return []
    # A misspelt implementation (`container:`) is named by the unknown-field check, once.
    return [(path, f"exactly one of [{', '.join(options)}] must be specified in {spec_name}")]


def _storage_errors(component: ComponentSpec, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    container = component.main_container
    uri_owner = None
    if isinstance(container, FrameworkSpec | ArtExplainerSpec) and container.storage_uri:
        uri_owner = join(path, _owner_field(component, container))
        problem = storage_uri_problem(container.storage_uri)
        if problem:
            errors.append((join(uri_owner, "storageUri"), problem))
    elif component.implementation == "containers" and container is not None:
        # A custom container names its model in STORAGE_URI, which KServe checks the same way.
        uri = container.env_value("STORAGE_URI")
        problem = storage_uri_problem(uri) if uri else None
        if problem:
            index = next(i for i, c in enumerate(component.containers or []) if c is container)
            errors.append((join(join(join(path, "containers"), index), "env"), problem))
    uris = component.storage_uris or []
    if uris and uri_owner is not None:
        errors.append(
            (join(path, "storageUris"), f"storageUri ({uri_owner}) and storageUris are exclusive")
        )
    for index, entry in enumerate(uris):
        entry_path = join(join(path, "storageUris"), index)
        problem = storage_uri_problem(entry.uri)
        if problem:
            errors.append((join(entry_path, "uri"), problem))
        mount = entry.mount_path
        if ".." in mount.split("/") or len(mount) > 255:
            errors.append(
                (join(entry_path, "mountPath"), "must be absolute, without '..', <= 255 chars")
            )
    mounts = [posixpath.normpath(entry.mount_path) for entry in uris]
    if len(mounts) > 1 and posixpath.commonpath(mounts) == "/":
        errors.append(
            (join(path, "storageUris"), "mount paths need a common parent directory other than /")
        )
    if isinstance(component, PredictorSpec) and component.model is not None:
        for index, extra in enumerate(component.containers or []):
            if extra.env_value("STORAGE_URI") is not None:
                errors.append(
                    (
                        join(join(join(path, "containers"), index), "env"),
                        "a transformer collocated with a model must not set STORAGE_URI",
                    )
                )
    return errors


def _owner_field(component: ComponentSpec, container: object) -> str:
    if isinstance(component, ExplainerSpec) and container is component.art:
        return "art"
    return "model"


def storage_uri_problem(uri: str) -> str | None:
    """None when KServe's webhook accepts the storage URI, else why not."""
    if not _HAS_SCHEME.search(uri):  # a local path
        return None
    if uri.startswith(STORAGE_PREFIXES) or _AZURE_BLOB.match(uri):
        return None
    return f"{uri!r} must start with one of {', '.join(STORAGE_PREFIXES)} or be a local path"


def _bounds_errors(component: ComponentSpec, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    low, high = component.min_replicas, component.max_replicas
    for field, value in (
        ("minReplicas", low),
        ("maxReplicas", high),
        ("containerConcurrency", component.container_concurrency),
        ("timeout", component.timeout),
    ):
        if value is not None and value < 0:
            errors.append((join(path, field), "must be >= 0"))
    batcher = component.batcher
    if batcher is not None:  # the replica's flags: a negative wait or size cannot run
        for field, value in (("maxBatchSize", batcher.max_batch_size),
                             ("maxLatency", batcher.max_latency),
                             ("timeout", batcher.timeout)):  # fmt: skip
            if value is not None and value < 0:
                errors.append((join(path, f"batcher.{field}"), "must be >= 0"))
    if low is not None and high is not None and high > 0 and low > high:
        errors.append(
            (join(path, "minReplicas"), f"must be <= maxReplicas ({high}) unless maxReplicas is 0")
        )
    percent = component.canary_traffic_percent
    if percent is not None and not 0 <= percent <= 100:
        errors.append((join(path, "canaryTrafficPercent"), "must be between 0 and 100"))
    return errors


def _autoscaling_errors(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    annotations = isvc.metadata.annotations
    mode = isvc.deployment_mode
    autoscaler = annotations.get(AUTOSCALER_CLASS) or ("hpa" if mode == "Standard" else None)
    is_kpa = mode == "Knative" and annotations.get(KNATIVE_CLASS, "kpa").startswith("kpa")
    for role, component in isvc.components().items():
        path = f"spec.{role}"
        metric = component.scale_metric
        if autoscaler == "hpa" and mode != "Knative" and metric in ("concurrency", "rps"):
            errors.append(
                (
                    join(path, "scaleMetric"),
                    f"{metric!r} needs Knative; hpa scales on cpu or memory",
                )
            )
        if (
            autoscaler == "hpa"
            and metric in (None, "cpu")
            and component.scale_metric_type in (None, "Utilization")
            and component.scale_target is not None
            and not 1 <= component.scale_target <= 100
        ):
            errors.append((join(path, "scaleTarget"), "a utilization target must be 1..100 (%)"))
        if is_kpa and metric in ("cpu", "memory"):
            errors.append(
                (
                    join(path, "scaleMetric"),
                    f"{metric!r} needs hpa; Knative's kpa scales on concurrency or rps",
                )
            )
        if (
            is_kpa
            and metric == "rps"
            and component.scale_target is not None
            and component.scale_target < 1
        ):
            errors.append((join(path, "scaleTarget"), "an rps target must be >= 1"))
        if mode == "Knative" and component.deployment_strategy is not None:
            errors.append((join(path, "deploymentStrategy"), "only applies in Standard mode"))
        for index, metric_spec in enumerate(
            (component.auto_scaling or AutoScalingSpec()).metrics or []
        ):
            if metric_spec.type != "External":
                continue
            query = ((metric_spec.external or {}).get("metric") or {}).get("query")
            if not query:
                metric_path = join(join(join(path, "autoScaling"), "metrics"), index)
                errors.append(
                    (join(metric_path, "external.metric.query"), "required for External metrics")
                )
    return errors  # fmt: skip


def _canary_errors(isvc: InferenceService) -> list[FieldError]:
    canaries = isvc.spec.canary or []
    if not canaries:
        return []
    errors: list[FieldError] = []
    if isvc.deployment_mode in ("Knative", "ModelMesh"):
        errors.append(("spec.canary", "is supported in Standard mode only"))
    stable = isvc.spec.predictor
    names: set[str] = set()
    total = 0
    for index, canary in enumerate(canaries):
        path = join("spec.canary", index)
        predictor = canary.predictor
        name = predictor.name
        total += canary.traffic_percent
        if name is None:
            errors.append((join(path, "predictor.name"), "required: a canary is a named predictor"))
        elif name in names or name == stable.name:
            errors.append((join(path, "predictor.name"), f"{name!r} is used twice"))
        else:
            names.add(name)
        dumped = predictor.model_dump(by_alias=True, exclude_none=True)
        for field in (*_CANARY_FORBIDDEN, "workerSpec"):
            if field in dumped:
                errors.append((join(join(path, "predictor"), field), "not allowed on a canary"))
        low, stable_low = predictor.min_replicas, stable.min_replicas
        if low is not None and stable_low is not None and low > stable_low:
            errors.append(
                (
                    join(path, "predictor.minReplicas"),
                    f"must be <= the stable minReplicas ({stable_low})",
                )
            )
        errors += _bounds_errors(predictor, join(path, "predictor"))
    if total > 100:
        errors.append(("spec.canary", f"traffic percents sum to {total}, more than 100"))
    return errors  # fmt: skip


def update_errors(old: InferenceService, new: InferenceService) -> list[FieldError]:
    """KServe's update rules: the deployment mode stays; a renamed predictor needs a new model."""
    errors: list[FieldError] = []
    # KServe compares with the mode recorded in status; ksrv also keeps a set annotation.
    recorded = old.deployment_mode or (old.status or {}).get("deploymentMode")
    new_mode = new.deployment_mode
    is_set = old.deployment_mode is not None or new_mode is not None
    if recorded is not None and new_mode != recorded and is_set:
        errors.append(
            (f"metadata.annotations[{DEPLOYMENT_MODE}]", f"is immutable (was {recorded!r})")
        )
    before, after = old.spec.predictor, new.spec.predictor
    if before.name != after.name and (before.storage_uri, before.storage_uris) == (
        after.storage_uri,
        after.storage_uris,
    ):
        errors.append(
            (
                "spec.predictor.name",
                "changing the predictor name needs a change to the model (storageUri) too",
            )
        )
    return errors
