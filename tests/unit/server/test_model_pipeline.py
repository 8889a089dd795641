"""The Model pipeline: sync/async handlers, header passing, one pool trip for sync runs."""

from __future__ import annotations

import asyncio

from ksrv import Model


class Recording(Model):
    def __init__(self) -> None:
        super().__init__("recording")
        self.trips = 0

    def preprocess(self, payload, headers=None):
        return [*payload, "pre"]

    def predict(self, payload):  # no headers parameter, as some KServe ports write it
        return [*payload, "predict"]

    async def postprocess(self, result, headers=None):
        return [*result, f"post:{headers.get('x')}"]


def test_sync_steps_share_one_pool_trip_and_async_steps_are_awaited():
    model = Recording()

    async def run_sync(function):
        model.trips += 1
        return function()

    result = asyncio.run(model([], {"x": "1"}, run_sync=run_sync))
    assert result == ["pre", "predict", "post:1"]
    assert model.trips == 1


def test_default_preprocess_and_postprocess_are_skipped():
    class Plain(Model):
        def predict(self, payload, headers=None):
            return payload * 2

    plain = Plain("plain")
    assert asyncio.run(plain(21)) == 42
    assert [mode for mode, _ in plain._pipelines["predict"]] == ["inline", "sync"]


def test_a_pipeline_without_sync_steps_never_uses_the_pool():
    class AsyncOnly(Model):
        async def predict(self, payload, headers=None):
            return {"predictions": payload["instances"]}

    async def refuse(function):
        raise AssertionError("no sync step should reach the pool")

    model = AsyncOnly("async-only")
    assert asyncio.run(model({"instances": [1]}, run_sync=refuse)) == {"predictions": [1]}
