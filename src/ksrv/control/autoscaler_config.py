"""Knative's `config-autoscaler`: the platform-wide autoscaling defaults, parsed and checked.

`AutoscalerConfig.from_configmap(data)` reads the string map Knative's `config-autoscaler`
ConfigMap holds: the same keys, defaults and validation, durations in Go's syntax (`60s`,
`1m30s`); `from_file` reads such a ConfigMap (or its `data` alone) from YAML, for
`ksrv up --autoscaler-config`. A bad value raises `ResourceInvalid` naming the key
(`data.stable-window`). One revision's settings are resolved from it in
`autoscaler_settings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Final

import yaml

from ksrv.errors import ResourceInvalid

KPA_CLASS: Final = "kpa.autoscaling.knative.dev"
TARGET_MIN: Final = 0.01
WINDOW_MIN_S: Final = 6.0
WINDOW_MAX_S: Final = 3600.0

_GO_DURATION: Final = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S: Final = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


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


def parse_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


def parse_float(text: str) -> float:
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
            "initial-scale": parse_int,
            "min-scale": parse_int,
            "max-scale": parse_int,
            "max-scale-limit": parse_int,
        }
        for key in _FLOAT_KEYS:
            parsers[key] = parse_float
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
        raise_problems(problems)
        config = replace(cls(), **values)  # type: ignore[arg-type]
        if config.container_concurrency_target_fraction > 1.0:
            fraction = config.container_concurrency_target_fraction / 100.0
            config = replace(config, container_concurrency_target_fraction=fraction)
        raise_problems(_config_problems(config))
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
        ("scale-down-delay", whole_seconds(c.scale_down_delay_s),
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
        ("stable-window", whole_seconds(c.stable_window_s),
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


def whole_seconds(value_s: float) -> bool:
    return abs(value_s - round(value_s)) < 1e-9


def raise_problems(problems: list[tuple[str, str]]) -> None:
    if problems:
        listed = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ResourceInvalid(f"autoscaling settings are not valid: {listed}", "InvalidSpec",
                              problems)  # fmt: skip
