"""Autoscaling settings: Knative's `config-autoscaler` defaults and one revision's resolution.

`AutoscalerConfig.from_configmap(data)` reads the platform-wide defaults from the string map
Knative's `config-autoscaler` ConfigMap holds (same keys, same validation, durations in Go's
syntax: `60s`, `1m30s`). `settings_for(config, autoscaling, container_concurrency, mode)` resolves
what one revision scales by, as KServe and Knative do: the component's fields
(`minReplicas`, `maxReplicas`, `scaleMetric`, `scaleTarget`) win over the
`autoscaling.knative.dev/*` annotations, which win over the config. The autoscaler class
follows KServe: Knative's KPA (the local platform's default, serverless), HPA for
`serving.kserve.io/autoscalerClass: hpa` or Standard mode (cpu by default; an unset
maxReplicas means minReplicas), none for `none`, `external` and `keda`. Bad values raise
`ResourceInvalid` naming the key or annotation. Pure but for `from_file`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Final, Literal, TypeVar

import yaml

from ksrv.control.plan import Autoscaling
from ksrv.errors import ResourceInvalid

Metric = Literal["concurrency", "rps", "cpu", "memory"]
GROUP: Final = "autoscaling.knative.dev/"
KPA_CLASS: Final = "kpa.autoscaling.knative.dev"
KSERVE_CLASS: Final = "serving.kserve.io/autoscalerClass"
KSERVE_METRIC: Final = "serving.kserve.io/metric"
KSERVE_UTILIZATION: Final = "serving.kserve.io/targetUtilizationPercentage"
TARGET_MIN: Final = 0.01
WINDOW_MIN_S: Final = 6.0
WINDOW_MAX_S: Final = 3600.0
# HPA's default target utilisation (Kubernetes' DefaultCPUUtilization; KServe's default too).
HPA_DEFAULT_UTILIZATION: Final = 80.0
# HPA's default scale-down stabilisation (kube-controller-manager's 5 minutes).
HPA_DOWNSCALE_STABILIZATION_S: Final = 300.0

_GO_DURATION: Final = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S: Final = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

T = TypeVar("T")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (`time.ParseDuration`: `30s`, `1m30s`, `1.5h`, `0`).

    Raises:
        ValueError: not a Go duration.
    """
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    for found in _GO_DURATION.finditer(body):
        if found.start() != position:
            break
        total += float(found.group(1)) * _UNIT_S[found.group(2)]
        position = found.end()
    if not body or position != len(body):
        raise ValueError(f"{text!r} is not a duration (e.g. 60s, 1m30s, 500ms)")
    return sign * total


def parse_bool(text: str) -> bool:
    """Go's `strconv.ParseBool`.

    Raises:
        ValueError: not one of Go's boolean spellings.
    """
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false)")


def _parse_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


@dataclass(frozen=True, slots=True)
class AutoscalerConfig:
    """Knative's `config-autoscaler`, with its defaults; durations in seconds."""

    enable_scale_to_zero: bool = True
    allow_zero_initial_scale: bool = False
    container_concurrency_target_fraction: float = 0.7
    container_concurrency_target_default: float = 100.0
    target_utilization: float = 0.7
    """For rps (Knative keeps this one fixed at 70%; not a ConfigMap key)."""
    requests_per_second_target_default: float = 200.0
    target_burst_capacity: float = 211.0
    panic_window_percentage: float = 10.0
    activator_capacity: float = 100.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window_s: float = 60.0
    scale_down_delay_s: float = 0.0
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_period_s: float = 0.0
    pod_autoscaler_class: str = KPA_CLASS
    initial_scale: int = 1
    min_scale: int = 0
    max_scale: int = 0
    max_scale_limit: int = 0

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> AutoscalerConfig:
        """The config from `config-autoscaler`'s `data` (unknown keys are ignored, as Knative
        does); percentages over 1 for the target fraction are read as percent.

        Raises:
            ResourceInvalid: a value does not parse or is out of Knative's range; each bad
                key is named in `field_errors` (`data.<key>`).
        """
        parsers: dict[str, Callable[[str], object]] = {
            "pod-autoscaler-class": str,
            "enable-scale-to-zero": parse_bool,
            "allow-zero-initial-scale": parse_bool,
            "initial-scale": _parse_int,
            "min-scale": _parse_int,
            "max-scale": _parse_int,
            "max-scale-limit": _parse_int,
        }
        for key in _FLOAT_KEYS:
            parsers[key] = _parse_float
        for key in _DURATION_KEYS:
            parsers[key] = parse_duration
        values: dict[str, object] = {}
        problems: list[tuple[str, str]] = []
        for key, parse in parsers.items():
            if key not in data:
                continue
            try:
                values[_FIELD[key]] = parse(str(data[key]))
            except ValueError as exc:
                problems.append((f"data.{key}", str(exc)))
        _raise(problems)
        config = replace(cls(), **values)  # type: ignore[arg-type]
        if config.container_concurrency_target_fraction > 1.0:
            fraction = config.container_concurrency_target_fraction / 100.0
            config = replace(config, container_concurrency_target_fraction=fraction)
        _raise(_config_problems(config))
        return config


def from_file(path: Path) -> AutoscalerConfig:
    """The config from a YAML file: Knative's `config-autoscaler` ConfigMap, or its `data`
    map alone.

    Raises:
        ResourceInvalid: the file cannot be read, is not such a map, or holds a bad value.
    """
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ResourceInvalid(f"autoscaler config {path}: {exc}", "InvalidSpec") from exc
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        document = document.get("data") or {}
    if not isinstance(document, dict) or not all(isinstance(k, str) for k in document):
        raise ResourceInvalid(
            f"autoscaler config {path}: expected a ConfigMap (config-autoscaler) or a map of "
            "its keys to values",
            "InvalidSpec",
        )
    # A ConfigMap's values are strings; YAML reads `60s` so, but `2` as a number.
    data = {key: _as_text(value) for key, value in document.items()}
    return AutoscalerConfig.from_configmap(data)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_FLOAT_KEYS: Final = (
    "max-scale-up-rate", "max-scale-down-rate", "container-concurrency-target-percentage",
    "container-concurrency-target-default", "requests-per-second-target-default",
    "target-burst-capacity", "panic-window-percentage", "activator-capacity",
    "panic-threshold-percentage",
)  # fmt: skip
_DURATION_KEYS: Final = (
    "stable-window", "scale-down-delay", "scale-to-zero-grace-period",
    "scale-to-zero-pod-retention-period",
)  # fmt: skip
_FIELD: Final = {
    **{f.name.replace("_", "-").removesuffix("-s"): f.name for f in fields(AutoscalerConfig)},
    "container-concurrency-target-percentage": "container_concurrency_target_fraction",
}


def _config_problems(c: AutoscalerConfig) -> list[tuple[str, str]]:
    """Knative's `validate` of config-autoscaler, one (key, message) per broken rule."""
    checks = [
        ("scale-to-zero-grace-period", c.scale_to_zero_grace_period_s > 0, "must be positive"),
        ("scale-down-delay", c.scale_down_delay_s >= 0, "cannot be negative"),
        ("scale-down-delay", _whole_seconds(c.scale_down_delay_s),
         "must be given with at most second precision"),
        ("scale-to-zero-pod-retention-period", c.scale_to_zero_pod_retention_period_s >= 0,
         "cannot be negative"),
        ("target-burst-capacity", c.target_burst_capacity >= 0 or c.target_burst_capacity == -1,
         "must be non-negative or -1 (unlimited)"),
        ("container-concurrency-target-percentage",
         0 < c.container_concurrency_target_fraction <= 1, "must be in (0, 100]"),
        ("container-concurrency-target-default",
         c.container_concurrency_target_fraction * c.container_concurrency_target_default
         >= TARGET_MIN, f"with the target percentage gives a target under {TARGET_MIN}"),
        ("requests-per-second-target-default",
         c.requests_per_second_target_default >= TARGET_MIN, f"must be at least {TARGET_MIN}"),
        ("activator-capacity", c.activator_capacity >= 1, "must be at least 1"),
        ("max-scale-up-rate", c.max_scale_up_rate > 1, "must be greater than 1.0"),
        ("max-scale-down-rate", c.max_scale_down_rate > 1, "must be greater than 1.0"),
        ("stable-window", WINDOW_MIN_S <= c.stable_window_s <= WINDOW_MAX_S,
         "must be between 6s and 1h"),
        ("stable-window", _whole_seconds(c.stable_window_s),
         "must be given with at most second precision"),
        ("panic-window-percentage", 1 <= c.panic_window_percentage <= 100,
         "must be between 1 and 100"),
        ("initial-scale", c.initial_scale > 0 or (c.initial_scale == 0 and
         c.allow_zero_initial_scale),
         "must be at least 1 (0 only with allow-zero-initial-scale: true)"),
        ("min-scale", c.min_scale >= 0, "must be at least 0"),
        ("max-scale-limit", c.max_scale_limit >= 0, "must be at least 0"),
        ("max-scale", c.max_scale >= (1 if c.max_scale_limit else 0)
         and (not c.max_scale_limit or c.max_scale <= c.max_scale_limit),
         "must be in [0 (unlimited), max-scale-limit]; at least 1 when max-scale-limit is set"),
        ("min-scale", not (c.max_scale and c.min_scale > c.max_scale),
         "must not be more than max-scale"),
    ]  # fmt: skip
    return [(f"data.{key}", message) for key, is_valid, message in checks if not is_valid]


@dataclass(frozen=True, slots=True)
class ScalingSettings:
    """What one revision scales by, every default resolved."""

    metric: Metric
    target: float
    """Per-replica target the autoscaler aims for: `total` x target utilisation (KPA), or
    the target utilisation percent (cpu, memory)."""
    total: float
    """Per-replica value the target is a fraction of (KPA); the target percent for HPA."""
    min_scale: int
    max_scale: int
    """0 = no upper bound."""
    initial_scale: int
    panic_threshold: float
    """A fraction: 2.0 = panic at 200% of the ready replicas' capacity."""
    stable_window_s: float
    panic_window_s: float
    scale_down_delay_s: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    enable_scale_to_zero: bool
    scale_to_zero_grace_period_s: float
    scale_to_zero_pod_retention_period_s: float

    @property
    def is_kpa(self) -> bool:
        """Request-based (Knative's KPA), not resource-based (HPA's formula)."""
        return self.metric in ("concurrency", "rps")


def autoscaler_class(
    annotations: Mapping[str, str],
    deployment_mode: str | None,
    default: str = KPA_CLASS,
) -> str | None:
    """`kpa`, `hpa`, or None where KServe runs no autoscaler (`none`, `external`) or one
    ksrv cannot run locally (`keda`, which scales on external queries). `default` is
    config-autoscaler's `pod-autoscaler-class`."""
    chosen = annotations.get(KSERVE_CLASS)
    if chosen in ("none", "external", "keda"):
        return None
    if chosen == "hpa" or deployment_mode == "Standard":
        return "hpa"
    return "hpa" if annotations.get(GROUP + "class", default).startswith("hpa.") else "kpa"


def settings_for(
    config: AutoscalerConfig,
    autoscaling: Autoscaling,
    container_concurrency: int | None,
    deployment_mode: str | None = None,
) -> ScalingSettings | None:
    """Resolve one revision's scaling settings as KServe + Knative would; None when no
    autoscaler scales it (`autoscaler_class`).

    Raises:
        ResourceInvalid: an annotation or field value Knative's webhook would refuse; each
            problem names it (`metadata.annotations["autoscaling.knative.dev/window"]`).
    """
    annotations = dict(autoscaling.annotations)
    klass = autoscaler_class(annotations, deployment_mode, config.pod_autoscaler_class)
    if klass is None:
        return None
    reader = _Annotations(annotations)
    if klass == "hpa":  # KServe's HPA: cpu unless told, its own metric annotation
        metric = (
            autoscaling.scale_metric or annotations.get(KSERVE_METRIC) or reader.text("metric")
            or "cpu"
        )  # fmt: skip
    else:
        metric = autoscaling.scale_metric or reader.text("metric") or "concurrency"
    if metric not in ("concurrency", "rps", "cpu", "memory"):
        reader.problems.append((reader.path("metric"), f"{metric!r} is not one of concurrency, "
                                "rps, cpu, memory"))  # fmt: skip
    min_scale = autoscaling.min_replicas
    max_scale = autoscaling.max_replicas or reader.number("max-scale", _parse_int, config.max_scale)
    if klass == "hpa" and not autoscaling.max_replicas:
        max_scale = max(1, min_scale)  # KServe's HPA: an unset maxReplicas is minReplicas
    initial = reader.number("initial-scale", _parse_int, None)
    if initial is not None and (
        initial < 0 or (initial == 0 and not config.allow_zero_initial_scale)
    ):
        reader.problems.append((reader.path("initial-scale"), "must be at least 1 (0 only when "
                                "config-autoscaler allows a zero initial scale)"))  # fmt: skip
    window_s = reader.duration("window", config.stable_window_s, WINDOW_MIN_S, WINDOW_MAX_S)
    panic_percent = reader.bounded("panic-window-percentage", config.panic_window_percentage,
                                   1.0, 100.0)  # fmt: skip
    threshold = reader.bounded(
        "panic-threshold-percentage", config.panic_threshold_percentage, 110.0, 1000.0
    )
    utilization = reader.bounded("target-utilization-percentage", None, 1.0, 100.0)
    delay_s = reader.duration("scale-down-delay", config.scale_down_delay_s, 0.0, WINDOW_MAX_S)
    retention_s = reader.duration(
        "scale-to-zero-pod-retention-period", config.scale_to_zero_pod_retention_period_s,
        0.0, WINDOW_MAX_S, whole_seconds=False,
    )  # fmt: skip
    annotated_target = reader.number("target", _parse_float, None)
    if annotated_target is not None and annotated_target < TARGET_MIN:
        reader.problems.append((reader.path("target"), f"must be at least {TARGET_MIN}"))
    if max_scale and min_scale > max_scale:
        reader.problems.append(("maxReplicas", f"{max_scale} is less than minReplicas {min_scale}"))
    target_given = float(autoscaling.scale_target) if autoscaling.scale_target else annotated_target
    if klass == "hpa" and not autoscaling.scale_target and KSERVE_UTILIZATION in annotations:
        target_given = reader.number_at(KSERVE_UTILIZATION, _parse_float)
    _raise(reader.problems)
    target, total = _resolve_target(
        config, metric, target_given, utilization, container_concurrency or 0
    )
    return ScalingSettings(
        metric=metric,  # type: ignore[arg-type]
        target=target,
        total=total,
        min_scale=min_scale,
        max_scale=max_scale,
        initial_scale=config.initial_scale if initial is None else initial,
        panic_threshold=threshold / 100.0,
        stable_window_s=window_s,
        # Knative rounds the panic window to whole seconds (half up), never under one bucket.
        panic_window_s=max(1.0, float(math.floor(window_s * panic_percent / 100.0 + 0.5))),
        scale_down_delay_s=delay_s,
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        enable_scale_to_zero=config.enable_scale_to_zero,
        scale_to_zero_grace_period_s=config.scale_to_zero_grace_period_s,
        scale_to_zero_pod_retention_period_s=retention_s,
    )


def _resolve_target(
    config: AutoscalerConfig,
    metric: str,
    given: float | None,
    utilization_percent: float | None,
    container_concurrency: int,
) -> tuple[float, float]:
    """(target, total) as Knative's `ResolveMetricTarget`; HPA metrics take a percent."""
    if metric in ("cpu", "memory"):
        percent = given if given is not None else HPA_DEFAULT_UTILIZATION
        return percent, percent
    if metric == "rps":
        total, fraction = config.requests_per_second_target_default, config.target_utilization
    else:
        # containerConcurrency is the per-replica total when set, else the default target.
        total = float(container_concurrency or config.container_concurrency_target_default)
        fraction = config.container_concurrency_target_fraction
    if given is not None:
        # A target above containerConcurrency would aim for more than a replica takes.
        total = min(given, container_concurrency) if metric == "concurrency" and \
            container_concurrency else given  # fmt: skip
    if utilization_percent is not None:
        fraction = utilization_percent / 100.0
    return max(TARGET_MIN, total * fraction), total


class _Annotations:
    """Reads `autoscaling.knative.dev/*` annotations (and their old camelCase spellings),
    collecting every problem instead of stopping at the first."""

    _ALIASES: Final = {
        "min-scale": "minScale", "max-scale": "maxScale", "initial-scale": "initialScale",
        "scale-down-delay": "scaleDownDelay", "panic-window-percentage": "panicWindowPercentage",
        "panic-threshold-percentage": "panicThresholdPercentage",
        "target-utilization-percentage": "targetUtilizationPercentage",
        "scale-to-zero-pod-retention-period": "scaleToZeroPodRetentionPeriod",
    }  # fmt: skip

    def __init__(self, annotations: dict[str, str]) -> None:
        self.annotations = annotations
        self.problems: list[tuple[str, str]] = []

    def _key(self, name: str) -> str | None:
        for key in (GROUP + name, GROUP + self._ALIASES.get(name, name)):
            if key in self.annotations:
                return key
        return None

    def path(self, name: str) -> str:
        return f'metadata.annotations["{self._key(name) or GROUP + name}"]'

    def number_at(self, key: str, parse: Callable[[str], float]) -> float | None:
        """A number under a full annotation key (KServe's own, not Knative's)."""
        try:
            return parse(self.annotations[key])
        except ValueError:
            self.problems.append((f'metadata.annotations["{key}"]', "is not a number"))
            return None

    def text(self, name: str) -> str | None:
        key = self._key(name)
        return self.annotations[key] if key is not None else None

    def number(self, name: str, parse: Callable[[str], T], default: T) -> T:
        text = self.text(name)
        if text is None:
            return default
        try:
            value = parse(text)
        except ValueError:
            self.problems.append((self.path(name), f"{text!r} is not a number"))
            return default
        if isinstance(value, int) and value < 0:
            self.problems.append((self.path(name), f"{text!r} must be at least 0"))
            return default
        return value

    def bounded(self, name: str, default: T, low: float, high: float) -> float | T:
        value = self.number(name, _parse_float, None)
        if value is None:
            return default
        if not low <= value <= high:
            self.problems.append((self.path(name), f"{value:g} must be between {low:g} and "
                                  f"{high:g}"))  # fmt: skip
            return default
        return value

    def duration(
        self, name: str, default: float, low: float, high: float, whole_seconds: bool = True
    ) -> float:
        text = self.text(name)
        if text is None:
            return default
        try:
            value = parse_duration(text)
        except ValueError as exc:
            self.problems.append((self.path(name), str(exc)))
            return default
        if not low <= value <= high:
            self.problems.append((self.path(name), f"{text} must be between {low:g}s and "
                                  f"{high:g}s"))  # fmt: skip
        elif whole_seconds and not _whole_seconds(value):
            self.problems.append((self.path(name), f"{text} must be whole seconds"))
        else:
            return value
        return default


def _whole_seconds(value_s: float) -> bool:
    return abs(value_s - round(value_s)) < 1e-9


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        listed = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ResourceInvalid(f"autoscaling settings are not valid: {listed}", "InvalidSpec",
                              problems)  # fmt: skip
