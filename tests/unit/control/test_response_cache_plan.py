"""The response cache's annotations -> the model server's flags, and the plan carrying them."""

from __future__ import annotations

import pytest

from ksrv.control.response_cache_plan import DEFAULT_BYTES, ResponseCache, from_annotations
from ksrv.errors import ResourceInvalid


def test_off_unless_true_and_sizes_as_quantities() -> None:
    assert from_annotations({}) is None
    assert from_annotations({"ksrv.dev/response-cache": "false"}) is None
    assert from_annotations({"ksrv.dev/response-cache": "true"}) == ResponseCache(DEFAULT_BYTES)
    on = {"ksrv.dev/response-cache": "true", "ksrv.dev/response-cache-ttl": "2.5"}
    for raw, expected in [("1000", 1000), ("64Mi", 64 * 2**20), ("2k", 2000), ("1e3", 1000)]:
        cache = from_annotations({**on, "ksrv.dev/response-cache-bytes": raw})
        assert cache == ResponseCache(expected, 2.5)
    assert ResponseCache(10, 2.5).args() == [
        "--response-cache-bytes", "10", "--response-cache-ttl", "2.5",
    ]  # fmt: skip
    assert ResponseCache(10).args() == ["--response-cache-bytes", "10"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ksrv.dev/response-cache", "True "),
        ("ksrv.dev/response-cache-bytes", "-5"),
        ("ksrv.dev/response-cache-bytes", "nan"),
        ("ksrv.dev/response-cache-bytes", ""),
        ("ksrv.dev/response-cache-ttl", "0"),
        ("ksrv.dev/response-cache-ttl", "inf"),
    ],
)
def test_bad_values_name_their_annotation(name: str, value: str) -> None:
    with pytest.raises(ResourceInvalid) as raised:
        from_annotations({"ksrv.dev/response-cache": "true", name: value})
    assert f'metadata.annotations["{name}"]' in str(raised.value)
    assert raised.value.reason == "InvalidSpec"


def test_the_plan_passes_the_flags_and_a_changed_cache_is_a_new_revision() -> None:
    from ksrv.api import default_runtimes, resources
    from ksrv.control.plan import desired_state

    def plan(annotations: dict[str, str]):
        document = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "m", "annotations": annotations},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "/models/m"}}},
        }  # fmt: skip
        runtimes = default_runtimes.default_runtimes()
        return desired_state(resources.load(document), runtimes).components["predictor"]

    off, on = plan({}), plan({"ksrv.dev/response-cache": "true"})
    assert off.response_cache is None and on.response_cache == ResponseCache(DEFAULT_BYTES)
    assert len({off.fingerprint, on.fingerprint}) == 2
    bad = plan({"ksrv.dev/response-cache": "on"})
    assert bad.error is not None and "ksrv.dev/response-cache" in bad.error
