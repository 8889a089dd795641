"""modelFormat (+ runtime name, protocol) -> the ServingRuntime that serves it, as KServe picks.

Mirrors KServe's `ModelSpec.GetSupportingRuntimes`
(pkg/apis/serving/v1beta1/predictor_model.go): a runtime qualifies when it is enabled,
multi-node exactly when the model is, speaks the protocol (an empty list speaks all) and carries
the model's label: `name`, or `name:version` when the model gives a version (exact strings).
Without an explicit runtime only autoSelect formats count. A multi-model predictor (no
storageUri: TrainedModels) needs a `multiModel: true` runtime; a single model takes any other,
or a multiModel runtime ksrv serves itself (its `ksrv.dev/runtime` annotation: ksrv's server
runs either way, while KServe keeps multiModel runtimes for ModelMesh). Namespaced runtimes come
before every cluster runtime; within each scope, runtimes pre-sorted by lowest protocol, newest,
name are stably sorted by priority. Pure: the caller passes the runtimes in; nothing here reads
a store or a cluster.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ksrv.api import default_runtimes
from ksrv.api.conditions import NO_SUPPORTING_RUNTIME, RUNTIME_DISABLED, RUNTIME_NOT_RECOGNIZED
from ksrv.api.serving_runtime import (
    PROTOCOL_VERSIONS,
    ClusterServingRuntime,
    Runtime,
    ServingRuntime,
)
from ksrv.errors import ResourceInvalid


@dataclass(frozen=True, slots=True)
class ModelFormat:
    """An InferenceService's `predictor.model.modelFormat`."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelFormat:
        """`NAME` or `NAME:VERSION`, as `ksrv serve --model-format` takes it."""
        name, _, version = text.partition(":")
        if not name or (":" in text and not version):
            raise ResourceInvalid(f"expected a model format as NAME or NAME:VERSION, got {text!r}")
        return cls(name, version or None)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


def select_runtime(
    model_format: ModelFormat,
    runtimes: Iterable[Runtime],
    *,
    runtime_name: str | None = None,
    protocol_version: str | None = None,
    is_multi_node: bool = False,
    is_multi_model: bool = False,
) -> Runtime:
    """The runtime KServe would choose for this model.

    Args:
        runtime_name: the model's explicit `runtime`; then all its formats count, autoSelect or not.
        protocol_version: the model's `protocolVersion`; None accepts any (KServe's webhook
            defaults it to v1 before selection, so pass "v1" to mirror an InferenceService).

    Raises:
        ResourceInvalid: with `reason` set to KServe's condition reason; the message lists every
            runtime considered and why it was passed over.
    """
    runtimes = list(runtimes)
    needs = _Needs(protocol_version, is_multi_node, is_multi_model)
    if runtime_name is not None:
        return _named_runtime(model_format, runtimes, runtime_name, needs)
    candidates = supporting_runtimes(
        model_format, runtimes, protocol_version, is_multi_node, is_multi_model
    )
    unknown = _unknown_format(model_format, runtimes)
    if not candidates and unknown is not None:
        raise ResourceInvalid(unknown, reason=NO_SUPPORTING_RUNTIME)
    if not candidates:
        raise ResourceInvalid(
            "No runtime found to support specified framework/version "
            f"{model_format}{_protocol_note(protocol_version)}. Considered: "
            + _considered(model_format, runtimes, needs, False),
            reason=NO_SUPPORTING_RUNTIME,
        )
    return candidates[0]


def _unknown_format(model_format: ModelFormat, runtimes: Sequence[Runtime]) -> str | None:
    """When no runtime lists the format's name at all (a typo, most likely): say so, with the
    closest name that one does list; None when some runtime knows the name."""
    known = sorted(
        {entry.name for runtime in runtimes for entry in runtime.spec.supported_model_formats}
    )
    if not known or model_format.name in known:
        return None
    message = f"no runtime supports modelFormat {model_format.name!r}"
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(model_format.name.lower(), by_lower, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {by_lower[close[0]]!r}?"
    return f"{message}; the runtimes support {', '.join(known)}"


def default_ksrv_runtime(model_format: str) -> str:
    """`NAME[:VERSION]` -> the ksrv runtime (registry key) chosen among ksrv's defaults.

    This is what `ksrv serve --model-format` runs. The name is lower-cased first, as that
    option always accepted `SKLearn`; KServe itself matches names exactly, and every ksrv
    default format name is lower case.
    """
    parsed = ModelFormat.parse(model_format)
    parsed = ModelFormat(parsed.name.lower(), parsed.version)
    chosen = select_runtime(parsed, default_runtimes.default_runtimes())
    runtime = default_runtimes.ksrv_runtime(chosen)
    assert runtime is not None, f"default runtime {chosen.name} names no ksrv runtime"
    return runtime


def supporting_runtimes(
    model_format: ModelFormat,
    runtimes: Iterable[Runtime],
    protocol_version: str | None = None,
    is_multi_node: bool = False,
    is_multi_model: bool = False,
) -> list[Runtime]:
    """Every auto-selectable runtime that qualifies, best first."""
    runtimes = list(runtimes)
    needs = _Needs(protocol_version, is_multi_node, is_multi_model)
    ordered: list[Runtime] = []
    for scope in (ServingRuntime, ClusterServingRuntime):
        qualifying = [
            runtime
            for runtime in _presorted(r for r in runtimes if isinstance(r, scope))
            if _rejection(model_format, runtime, needs, False) is None
        ]
        ordered += _by_priority(qualifying, model_format.name)
    return ordered


def _named_runtime(
    model_format: ModelFormat,
    runtimes: Sequence[Runtime],
    runtime_name: str,
    needs: _Needs,
) -> Runtime:
    # A namespaced ServingRuntime shadows a ClusterServingRuntime of the same name.
    named = [r for r in runtimes if r.name == runtime_name]
    named.sort(key=lambda r: isinstance(r, ClusterServingRuntime))
    if not named:
        raise ResourceInvalid(
            f"specified runtime {runtime_name!r} is not recognized; known runtimes: "
            + (", ".join(sorted({r.name for r in runtimes})) or "none"),
            reason=RUNTIME_NOT_RECOGNIZED,
        )
    runtime = named[0]
    if runtime.spec.is_disabled:
        raise ResourceInvalid(
            f"specified runtime {runtime_name!r} is disabled", reason=RUNTIME_DISABLED
        )
    rejection = _rejection(model_format, runtime, needs, True)
    if rejection is not None:
        raise ResourceInvalid(
            f"specified runtime {runtime_name!r} does not support specified framework/version "
            f"{model_format}{_protocol_note(needs.protocol_version)}: {rejection}",
            reason=NO_SUPPORTING_RUNTIME,
        )
    return runtime


@dataclass(frozen=True, slots=True)
class _Needs:
    """What the model asks of a runtime besides its format."""

    protocol_version: str | None
    is_multi_node: bool
    is_multi_model: bool


def _rejection(
    model_format: ModelFormat, runtime: Runtime, needs: _Needs, is_named: bool
) -> str | None:
    """Why `runtime` cannot serve the model, or None when it can."""
    spec = runtime.spec
    protocol_version, is_multi_node = needs.protocol_version, needs.is_multi_node
    if spec.is_disabled:
        return "disabled"
    if needs.is_multi_model and not spec.is_multi_model:
        return "not a multiModel runtime (the predictor has no storageUri: TrainedModels)"
    if (
        not needs.is_multi_model
        and spec.is_multi_model
        and not default_runtimes.ksrv_runtime(runtime)
    ):
        return "multiModel (ModelMesh) runtime"
    if spec.is_multi_node != is_multi_node:
        return "multi-node runtime" if spec.is_multi_node else "not a multi-node runtime"
    if (
        protocol_version
        and spec.protocol_versions
        and protocol_version not in spec.protocol_versions
    ):
        return f"protocols {', '.join(spec.protocol_versions)} lack {protocol_version}"
    if _label(model_format) not in _labels(runtime, is_named):
        return "no " + ("" if is_named else "autoSelect ") + f"format {model_format}"
    return None


def _label(model_format: ModelFormat) -> str:
    return f"mt:{model_format}"


def _labels(runtime: Runtime, is_named: bool) -> set[str]:
    """KServe's `mt:` labels for a runtime: autoSelect formats only, unless it was named."""
    labels: set[str] = set()
    for entry in runtime.spec.supported_model_formats:
        if is_named or entry.is_auto_select:
            labels.add(f"mt:{entry.name}")
            if entry.version is not None:
                labels.add(f"mt:{entry.name}:{entry.version}")
    return labels


def _protocol_rank(runtime: Runtime) -> int:
    """KServe's `GetProtocolVersionPriority`: the best protocol listed; none listed sorts last."""
    ranks = [
        PROTOCOL_VERSIONS.index(p) if p in PROTOCOL_VERSIONS else len(PROTOCOL_VERSIONS)
        for p in runtime.spec.protocol_versions
    ]
    return min(ranks, default=len(PROTOCOL_VERSIONS) + 1)


def _presorted(runtimes: Iterable[Runtime]) -> list[Runtime]:
    """Lowest protocol first, then newest, then name (KServe's `sortServingRuntimeList`)."""
    by_name = sorted(runtimes, key=lambda r: r.name)
    # RFC 3339 timestamps in UTC sort as strings; a runtime without one counts as oldest.
    by_age = sorted(by_name, key=lambda r: r.metadata.creation_timestamp or "", reverse=True)
    return sorted(by_age, key=_protocol_rank)


def _by_priority(runtimes: list[Runtime], format_name: str) -> list[Runtime]:
    """Stable: higher priority first; a runtime with a priority beats one without."""

    def key(runtime: Runtime) -> tuple[bool, int]:
        priority = runtime.spec.priority(format_name)
        return (priority is None, -(priority or 0))

    return sorted(runtimes, key=key)


def _considered(
    model_format: ModelFormat, runtimes: Sequence[Runtime], needs: _Needs, is_named: bool
) -> str:
    if not runtimes:
        return "no runtimes"
    lines = []
    for runtime in sorted(runtimes, key=lambda r: r.name):
        formats = ", ".join(
            str(ModelFormat(entry.name, entry.version))
            for entry in runtime.spec.supported_model_formats
        )
        reason = _rejection(model_format, runtime, needs, is_named)
        lines.append(f"{runtime.kind} {runtime.name} [{formats}]: {reason}")
    return "; ".join(lines)


def _protocol_note(protocol_version: str | None) -> str:
    return f" over protocol {protocol_version}" if protocol_version else ""
