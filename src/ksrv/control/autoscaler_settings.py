"""One revision's autoscaling settings, resolved as KServe and Knative resolve them.

`settings_for(config, autoscaling, container_concurrency, mode)` says what a revision scales
by: the component's fields (`minReplicas`, `maxReplicas`, `scaleMetric`, `scaleTarget`) win
over the `autoscaling.knative.dev/*` annotations (and their old camelCase spellings), which
win over `config-autoscaler` (`autoscaler_config`). The class follows KServe
(`autoscaler_class`): Knative's KPA by default (the local platform is serverless), HPA for
`serving.kserve.io/autoscalerClass: hpa`, Knative's hpa class or Standard mode (cpu by
default; an unset maxReplicas means minReplicas), none for `none` and `external`. `keda`
scales on the first `autoScaling.metrics` query the local platform can evaluate on the
replicas' own /metrics (`metric_query`; KServe's LLM autoscaling guide), as KEDA's HPA does;
none when there is no such query. Values Knative's webhook would refuse raise
`ResourceInvalid` naming each annotation. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from ksrv.control import metric_query
from ksrv.control.autoscaler_config import (
    KPA_CLASS,
    TARGET_MIN,
    WINDOW_MAX_S,
    WINDOW_MIN_S,
    AutoscalerConfig,
    parse_duration,
    parse_float,
    parse_int,
    raise_problems,
    whole_seconds,
)
from ksrv.control.metric_query import MetricQuery
from ksrv.control.plan import Autoscaling

Metric = Literal["concurrency", "rps", "cpu", "memory", "external"]
GROUP: Final = "autoscaling.knative.dev/"
KSERVE_CLASS: Final = "serving.kserve.io/autoscalerClass"
KSERVE_METRIC: Final = "serving.kserve.io/metric"
KSERVE_UTILIZATION: Final = "serving.kserve.io/targetUtilizationPercentage"
# HPA's default target utilisation (Kubernetes' DefaultCPUUtilization; KServe's default too).
HPA_DEFAULT_UTILIZATION: Final = 80.0
# HPA's default scale-down stabilisation (kube-controller-manager's 5 minutes).
HPA_DOWNSCALE_STABILIZATION_S: Final = 300.0
# KServe's defaults for a ScaledObject's HPA (inferenceservice-config), and KEDA's own cooldown.
KEDA_SCALE_UP_WINDOW_S: Final = 0.0
KEDA_SCALE_DOWN_WINDOW_S: Final = 300.0
KEDA_COOLDOWN_S: Final = 300.0

T = TypeVar("T")


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
    memory_base_bytes: float | None = None
    """`memory`: the replica's memory request utilisation is measured against."""
    query: MetricQuery | None = None
    """`external`: what the replicas' /metrics are read for (the target is its threshold)."""
    scale_up_window_s: float = KEDA_SCALE_UP_WINDOW_S
    scale_down_window_s: float = KEDA_SCALE_DOWN_WINDOW_S
    cooldown_s: float = KEDA_COOLDOWN_S
    """`external` with min 0: how long the metric stays 0 before the revision goes to zero."""

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
    if annotations.get(KSERVE_CLASS) == "keda":
        return keda_settings(config, autoscaling)
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
    if min_scale == 0 and klass != "hpa":
        # KServe sets min-scale from minReplicas, except for 0: then Knative's annotation (or
        # config-autoscaler's min-scale) decides, as on a cluster.
        min_scale = reader.number("min-scale", parse_int, config.min_scale)
    max_scale = autoscaling.max_replicas or reader.number("max-scale", parse_int, config.max_scale)
    if klass == "hpa" and not autoscaling.max_replicas:
        max_scale = max(1, min_scale)  # KServe's HPA: an unset maxReplicas is minReplicas
    initial = reader.number("initial-scale", parse_int, None)
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
        0.0, WINDOW_MAX_S, is_whole=False,
    )  # fmt: skip
    annotated_target = reader.number("target", parse_float, None)
    if annotated_target is not None and annotated_target < TARGET_MIN:
        reader.problems.append((reader.path("target"), f"must be at least {TARGET_MIN}"))
    if max_scale and min_scale > max_scale:
        reader.problems.append(("maxReplicas", f"{max_scale} is less than minReplicas {min_scale}"))
    target_given = float(autoscaling.scale_target) if autoscaling.scale_target else annotated_target
    if klass == "hpa" and not autoscaling.scale_target and KSERVE_UTILIZATION in annotations:
        target_given = reader.number_at(KSERVE_UTILIZATION, parse_float)
    raise_problems(reader.problems)
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
        memory_base_bytes=autoscaling.memory_request_bytes,
    )


def keda_settings(config: AutoscalerConfig, autoscaling: Autoscaling) -> ScalingSettings | None:
    """KServe's ScaledObject, carried out locally: its first query the replicas' /metrics
    answer (None without one), KEDA's AverageValue threshold per replica, min 0 allowed,
    max at least min, stabilisation windows from `autoScaling.behavior` else KServe's.

    Raises:
        ResourceInvalid: the query's threshold is not a positive quantity.
    """
    for target in autoscaling.metrics:
        try:
            query = metric_query.parse(target.query)
        except ValueError:
            continue  # said in LocalLimitations; a later metric may still be evaluable
        if target.target <= 0:
            raise_problems([(f"{target.path}.target.value", "must be a positive quantity")])
        low = autoscaling.min_replicas
        up_s, down_s = autoscaling.stabilization_s
        return ScalingSettings(
            metric="external", target=target.target, total=target.target, min_scale=low,
            max_scale=max(autoscaling.max_replicas or 0, low, 1), initial_scale=max(1, low),
            panic_threshold=config.panic_threshold_percentage / 100.0,
            stable_window_s=config.stable_window_s, panic_window_s=config.stable_window_s,
            scale_down_delay_s=0.0, max_scale_up_rate=config.max_scale_up_rate,
            max_scale_down_rate=config.max_scale_down_rate, enable_scale_to_zero=low == 0,
            scale_to_zero_grace_period_s=0.0, scale_to_zero_pod_retention_period_s=0.0,
            query=query,
            scale_up_window_s=KEDA_SCALE_UP_WINDOW_S if up_s is None else float(up_s),
            scale_down_window_s=KEDA_SCALE_DOWN_WINDOW_S if down_s is None else float(down_s),
        )  # fmt: skip
    return None


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
        value = self.number(name, parse_float, None)
        if value is None:
            return default
        if not low <= value <= high:
            self.problems.append((self.path(name), f"{value:g} must be between {low:g} and "
                                  f"{high:g}"))  # fmt: skip
            return default
        return value

    def duration(
        self, name: str, default: float, low: float, high: float, is_whole: bool = True
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
        elif is_whole and not whole_seconds(value):
            self.problems.append((self.path(name), f"{text} must be whole seconds"))
        else:
            return value
        return default
