"""default_runtimes: the data the control plane reads about ksrv's runtimes agrees with them."""

from __future__ import annotations

import importlib

import pytest

from ksrv.api import default_runtimes
from ksrv.runtimes import registry


def test_every_runtime_in_the_registry_has_a_default_runtime():
    assert default_runtimes.ksrv_formats() == sorted(registry.RUNTIMES)
    served = {default_runtimes.ksrv_runtime(r) for r in default_runtimes.default_runtimes()}
    assert served == set(registry.RUNTIMES)


@pytest.mark.parametrize("model_format", sorted(registry.RUNTIMES))
def test_merging_requests_is_said_as_the_runtime_class_does_it(model_format):
    module = registry.RUNTIMES[model_format].split(":")[0]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"{module} needs an extra that is not installed: {exc}")
    runtime_class = registry.runtime_class(model_format)
    batchable = runtime_class.batchable or runtime_class.enable_batcher
    assert default_runtimes.format_merges_requests(model_format) is batchable
    (runtime,) = [
        r
        for r in default_runtimes.default_runtimes()
        if default_runtimes.ksrv_runtime(r) == model_format
    ]
    annotation = runtime.metadata.annotations[default_runtimes.MERGES_ANNOTATION]
    assert annotation == str(batchable).lower()
