"""autoscaler_settings: one revision's settings from fields, annotations and the config."""

from __future__ import annotations

import pytest

from ksrv.control.autoscaler_config import AutoscalerConfig
from ksrv.control.autoscaler_settings import autoscaler_class, settings_for
from ksrv.control.plan import Autoscaling
from ksrv.errors import ResourceInvalid

KN = "autoscaling.knative.dev/"


def resolve(
    annotations: dict[str, str] | None = None,
    container_concurrency: int | None = None,
    config: dict[str, str] | None = None,
    **fields: object,
):
    autoscaling = Autoscaling(
        annotations=tuple(sorted((annotations or {}).items())),
        **fields,  # type: ignore[arg-type]
    )
    return settings_for(AutoscalerConfig.from_configmap(config or {}), autoscaling,
                        container_concurrency)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "metric", "target", "total"),
    [
        ({}, "concurrency", 70.0, 100.0),  # 100 x 70%
        ({"scale_metric": "rps"}, "rps", 140.0, 200.0),  # 200 x 70%
        ({"scale_target": 5}, "concurrency", 3.5, 5.0),
        ({"annotations": {KN + "target": "20"}}, "concurrency", 14.0, 20.0),
        ({"annotations": {KN + "target": "20"}, "scale_target": 4}, "concurrency", 2.8, 4.0),
        ({"annotations": {KN + "metric": "rps"}}, "rps", 140.0, 200.0),
        ({"annotations": {KN + "target-utilization-percentage": "50"}}, "concurrency", 50.0,
         100.0),
        ({"container_concurrency": 4}, "concurrency", 2.8, 4.0),  # it is the total
        ({"container_concurrency": 4, "scale_target": 10}, "concurrency", 2.8, 4.0),  # capped
        ({"container_concurrency": 4, "scale_target": 2}, "concurrency", 1.4, 2.0),
        ({"container_concurrency": 4, "scale_metric": "rps", "scale_target": 10}, "rps", 7.0,
         10.0),  # the cap is for concurrency only
        ({"scale_metric": "cpu"}, "cpu", 80.0, 80.0),  # HPA's default utilisation
        ({"scale_metric": "memory", "scale_target": 60}, "memory", 60.0, 60.0),
        ({"config": {"container-concurrency-target-default": "10"}}, "concurrency", 7.0, 10.0),
    ],
)  # fmt: skip
def test_target_resolution_follows_knative(kwargs, metric, target, total):
    settings = resolve(**kwargs)
    assert settings.metric == metric
    assert settings.target == pytest.approx(target)
    assert settings.total == pytest.approx(total)


def test_windows_and_thresholds_come_from_annotations_or_the_config():
    settings = resolve(
        {KN + "window": "6s", KN + "panic-threshold-percentage": "300",
         KN + "scale-down-delay": "15s"},
        min_replicas=0, max_replicas=4,
    )  # fmt: skip
    assert (settings.stable_window_s, settings.panic_window_s) == (6, 1)
    assert settings.panic_threshold == 3.0
    assert settings.scale_down_delay_s == 15
    assert (settings.min_scale, settings.max_scale) == (0, 4)
    defaults = resolve(config={"stable-window": "2m", "scale-to-zero-grace-period": "5s"})
    assert (defaults.stable_window_s, defaults.panic_window_s) == (120, 12)
    assert defaults.scale_to_zero_grace_period_s == 5


def test_panic_window_rounds_half_up_to_whole_seconds():
    settings = resolve({KN + "window": "25s"})
    assert settings.panic_window_s == 3  # 2.5 s, as Go's Duration.Round


def test_max_scale_annotation_applies_when_max_replicas_is_unset():
    assert resolve({KN + "max-scale": "7"}).max_scale == 7
    assert resolve({KN + "maxScale": "6"}).max_scale == 6  # Knative's old spelling
    assert resolve({KN + "max-scale": "7"}, max_replicas=3).max_scale == 3


@pytest.mark.parametrize(
    ("annotations", "fields", "path", "words"),
    [
        ({KN + "window": "5s"}, {}, f'metadata.annotations["{KN}window"]', "between 6s"),
        ({KN + "window": "6.5s"}, {}, f'metadata.annotations["{KN}window"]', "whole seconds"),
        ({KN + "target": "0"}, {}, f'metadata.annotations["{KN}target"]', "at least 0.01"),
        ({KN + "target": "many"}, {}, f'metadata.annotations["{KN}target"]', "not a number"),
        ({KN + "metric": "latency"}, {}, f'metadata.annotations["{KN}metric"]', "not one of"),
        ({KN + "panic-threshold-percentage": "100"}, {},
         f'metadata.annotations["{KN}panic-threshold-percentage"]', "between 110"),
        ({KN + "max-scale": "-1"}, {}, f'metadata.annotations["{KN}max-scale"]', "at least 0"),
        ({KN + "initial-scale": "0"}, {}, f'metadata.annotations["{KN}initial-scale"]',
         "at least 1"),
        ({}, {"min_replicas": 5, "max_replicas": 2}, "maxReplicas", "less than minReplicas"),
    ],
)  # fmt: skip
def test_bad_annotations_name_the_annotation(annotations, fields, path, words):
    with pytest.raises(ResourceInvalid, match=words) as caught:
        resolve(annotations, **fields)
    assert [p for p, _ in caught.value.field_errors] == [path]


def test_every_bad_annotation_is_reported_at_once():
    with pytest.raises(ResourceInvalid) as caught:
        resolve({KN + "window": "1s", KN + "target": "x"})
    assert len(caught.value.field_errors) == 2


@pytest.mark.parametrize(
    ("annotations", "mode", "expected"),
    [
        ({}, None, "kpa"),  # the local platform is serverless by default
        ({}, "Knative", "kpa"),
        ({}, "Standard", "hpa"),  # KServe's raw deployments get an HPA
        ({"serving.kserve.io/autoscalerClass": "hpa"}, None, "hpa"),
        ({KN + "class": "hpa.autoscaling.knative.dev"}, "Knative", "hpa"),
        ({"serving.kserve.io/autoscalerClass": "none"}, "Standard", None),
        ({"serving.kserve.io/autoscalerClass": "external"}, None, None),
        ({"serving.kserve.io/autoscalerClass": "keda"}, None, None),
    ],
)
def test_the_autoscaler_class_follows_kserve(annotations, mode, expected):
    assert autoscaler_class(annotations, mode) == expected
    settings = settings_for(
        AutoscalerConfig(), Autoscaling(annotations=tuple(annotations.items())), None, mode
    )
    assert (settings is None) == (expected is None)


def test_hpa_scales_on_cpu_by_default_and_not_at_all_without_max_replicas():
    fixed = settings_for(AutoscalerConfig(), Autoscaling(min_replicas=2), None, "Standard")
    assert fixed is not None
    assert (fixed.metric, fixed.target, fixed.min_scale, fixed.max_scale) == ("cpu", 80.0, 2, 2)
    annotations = (
        ("serving.kserve.io/metric", "memory"),
        ("serving.kserve.io/targetUtilizationPercentage", "60"),
    )
    scaling = Autoscaling(min_replicas=1, max_replicas=5, annotations=annotations)
    memory = settings_for(AutoscalerConfig(), scaling, None, "Standard")
    assert memory is not None
    assert (memory.metric, memory.target, memory.max_scale) == ("memory", 60.0, 5)


def test_a_bad_kserve_utilization_annotation_is_named():
    scaling = Autoscaling(annotations=(("serving.kserve.io/targetUtilizationPercentage", "x"),))
    with pytest.raises(ResourceInvalid) as caught:
        settings_for(AutoscalerConfig(), scaling, None, "Standard")
    assert caught.value.field_errors == [
        ('metadata.annotations["serving.kserve.io/targetUtilizationPercentage"]', "is not a number")
    ]


def test_the_configs_default_class_and_knatives_metric_annotation_apply_to_hpa():
    config = AutoscalerConfig.from_configmap(
        {"pod-autoscaler-class": "hpa.autoscaling.knative.dev"}
    )
    scaling = Autoscaling(max_replicas=3, annotations=((KN + "metric", "memory"),))
    settings = settings_for(config, scaling, None)
    assert settings is not None and settings.metric == "memory"
