"""autoscaler_config: Knative's config-autoscaler keys, defaults and checks."""

from __future__ import annotations

import pytest

from ksrv.control.autoscaler_config import AutoscalerConfig, from_file, parse_bool, parse_duration
from ksrv.errors import ResourceInvalid


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("0", 0.0),
     ("-2s", -2.0), ("1h2m3s", 3723.0)],
)  # fmt: skip
def test_go_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "60", "s", "1x", "1s2", "ten seconds"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_go_booleans_parse():
    assert parse_bool("True") is True and parse_bool("0") is False
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("yes")


def test_defaults_are_knatives():
    config = AutoscalerConfig.from_configmap({})
    assert config == AutoscalerConfig()
    found = (config.stable_window_s, config.panic_window_percentage,
             config.panic_threshold_percentage, config.scale_to_zero_grace_period_s,
             config.max_scale_up_rate, config.max_scale_down_rate,
             config.container_concurrency_target_default,
             config.requests_per_second_target_default)  # fmt: skip
    assert found == (60, 10, 200, 30, 1000, 2, 100, 200)


def test_configmap_keys_set_the_platform_defaults():
    config = AutoscalerConfig.from_configmap({
        "stable-window": "30s", "scale-to-zero-grace-period": "10s",
        "container-concurrency-target-percentage": "80", "enable-scale-to-zero": "false",
        "max-scale-down-rate": "4", "initial-scale": "2", "max-scale": "8",
        "scale-down-delay": "1m", "some-future-key": "whatever",
    })  # fmt: skip
    assert config.stable_window_s == 30
    assert config.scale_to_zero_grace_period_s == 10
    assert config.container_concurrency_target_fraction == pytest.approx(0.8)
    assert config.enable_scale_to_zero is False
    assert (config.max_scale_down_rate, config.initial_scale, config.max_scale) == (4, 2, 8)
    assert config.scale_down_delay_s == 60


def test_a_fraction_stays_a_fraction():
    config = AutoscalerConfig.from_configmap({"container-concurrency-target-percentage": "0.5"})
    assert config.container_concurrency_target_fraction == 0.5


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"stable-window": "5s"}, "data.stable-window", "between 6s and 1h"),
        ({"stable-window": "6500ms"}, "data.stable-window", "second precision"),
        ({"stable-window": "a minute"}, "data.stable-window", "not a duration"),
        ({"scale-to-zero-grace-period": "0s"}, "data.scale-to-zero-grace-period", "positive"),
        ({"max-scale-down-rate": "1"}, "data.max-scale-down-rate", "greater than 1.0"),
        ({"enable-scale-to-zero": "yes"}, "data.enable-scale-to-zero", "not a boolean"),
        ({"initial-scale": "0"}, "data.initial-scale", "allow-zero-initial-scale"),
        ({"min-scale": "3", "max-scale": "2"}, "data.min-scale", "max-scale"),
        ({"panic-window-percentage": "0.5"}, "data.panic-window-percentage", "between 1"),
        ({"max-scale": "two"}, "data.max-scale", "not an integer"),
        ({"requests-per-second-target-default": "nan"}, "data.requests-per-second-target-default",
         "finite"),
    ],
)  # fmt: skip
def test_bad_configmap_values_name_their_key(data, field, words):
    with pytest.raises(ResourceInvalid, match=words) as caught:
        AutoscalerConfig.from_configmap(data)
    assert [path for path, _ in caught.value.field_errors] == [field]


def test_zero_initial_scale_is_allowed_when_the_config_allows_it():
    config = AutoscalerConfig.from_configmap(
        {"initial-scale": "0", "allow-zero-initial-scale": "true"}
    )
    assert config.initial_scale == 0


def test_a_file_holds_the_configmap_or_its_data(tmp_path):
    configmap = tmp_path / "config-autoscaler.yaml"
    configmap.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler}\n"
        "data:\n  stable-window: 30s\n  enable-scale-to-zero: 'false'\n"
    )
    config = from_file(configmap)
    assert (config.stable_window_s, config.enable_scale_to_zero) == (30, False)
    plain = tmp_path / "data.yaml"
    plain.write_text("max-scale: 4\nenable-scale-to-zero: false\n")  # YAML's own types
    config = from_file(plain)
    assert (config.max_scale, config.enable_scale_to_zero) == (4, False)


@pytest.mark.parametrize(
    ("text", "words"), [("- a list\n", "expected a ConfigMap"), ("a: [\n", "autoscaler config")]
)
def test_a_file_that_is_no_config_is_refused(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ResourceInvalid, match=words):
        from_file(path)
    with pytest.raises(ResourceInvalid, match="No such file"):
        from_file(tmp_path / "missing.yaml")
