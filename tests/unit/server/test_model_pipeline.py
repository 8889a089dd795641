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
    segments = plain._pipelines["predict"]
    assert [(mode, len(steps)) for mode, steps in segments] == [("sync", 2)]  # validate+predict


def test_opted_in_models_run_cheap_sync_steps_inline_and_slow_ones_in_the_pool():
    import time as clock

    class Fast(Model):
        enable_inline_sync = True

        def __init__(self) -> None:
            super().__init__("fast")
            self.delay_s = 0.0

        def predict(self, payload, headers=None):
            clock.sleep(self.delay_s)
            return payload

    model = Fast()
    trips = []

    async def run_sync(function):
        trips.append(1)
        return function()

    async def call_many(count: int) -> None:
        for _ in range(count):
            await model(1, run_sync=run_sync)

    asyncio.run(call_many(5))
    assert len(trips) == 1  # the first call is measured in the pool, the rest run inline
    model.delay_s = 0.02
    asyncio.run(call_many(3))  # one slow inline call sends the model back to the pool
    assert len(trips) == 3


def test_a_pipeline_without_sync_steps_never_uses_the_pool():
    class AsyncOnly(Model):
        async def predict(self, payload, headers=None):
            return {"predictions": payload["instances"]}

    async def refuse(function):
        raise AssertionError("no sync step should reach the pool")

    model = AsyncOnly("async-only")
    assert asyncio.run(model({"instances": [1]}, run_sync=refuse)) == {"predictions": [1]}


def test_a_runtime_subclass_that_changes_the_pipeline_is_not_merged_unless_it_says_so():
    from ksrv.runtimes.sklearn import SklearnModel

    class Tenanted(SklearnModel):
        def preprocess(self, payload, headers=None):
            return payload

    class StillRowWise(Tenanted):
        batchable = True

    class OnlyLoadsDifferently(SklearnModel):
        def load(self):
            return super().load()

    assert SklearnModel.batchable
    assert not Tenanted.batchable
    assert StillRowWise.batchable
    assert OnlyLoadsDifferently.batchable


def test_observed_steps_are_each_timed_identity_ones_included():
    class Plain(Model):
        def predict(self, payload, headers=None):
            return payload * 2

        async def explain(self, payload, headers=None):
            return "why"

    model = Plain("plain")
    assert asyncio.run(model(2)) == 4  # a pipeline built before it is observed is rebuilt
    timed: dict[str, list[float]] = {}
    steps = ("preprocess", "predict", "postprocess", "explain")
    model.observe_steps({step: timed.setdefault(step, []).append for step in steps})
    assert asyncio.run(model(2)) == 4
    assert asyncio.run(model(2, verb="explain")) == "why"
    assert {step: len(seconds) for step, seconds in timed.items()} == {
        "preprocess": 2, "predict": 1, "postprocess": 2, "explain": 1,
    }  # fmt: skip
    assert all(0 <= s < 1 for seconds in timed.values() for s in seconds)


def test_async_and_sync_steps_are_timed_where_they_run():
    model = Recording()
    timed: dict[str, list[float]] = {}
    steps = ("preprocess", "predict", "postprocess")
    model.observe_steps({step: timed.setdefault(step, []).append for step in steps})

    async def run_sync(function):
        model.trips += 1
        return function()

    assert asyncio.run(model([], {"x": "1"}, run_sync=run_sync)) == ["pre", "predict", "post:1"]
    assert model.trips == 1  # timing keeps the sync steps in one trip
    assert sorted(timed) == ["postprocess", "predict", "preprocess"]
