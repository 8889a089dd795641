"""The coalescer as KServe's batcher (`max_latency_s`): a batch waits for its timer or for
`max_batch_size` rows, whichever comes first. The timer is an injected sleep the test fires,
so every wait here ends when the test says, never on the wall clock."""

from __future__ import annotations

import asyncio

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Model
from ksrv.protocol.v2 import InferInput, InferOutput, InferRequest, InferResponse
from ksrv.server.batching import Coalescer

LATENCY_S = 0.25


class Tensors(Model):
    """A tensor runtime: doubles each row (V1 or V2), records each call's rows, refuses < 0."""

    enable_batcher = True

    def __init__(self) -> None:
        super().__init__("tensors")
        self.ready = True
        self.calls: list[int] = []

    def predict(self, payload, headers=None):
        if isinstance(payload, dict):
            values = np.asarray(payload["instances"], dtype=np.float64)
        else:
            values = payload.inputs[0].as_numpy()
        self.calls.append(len(values))
        if (values < 0).any():
            raise InvalidInput("negative")
        if isinstance(payload, dict):
            return {"predictions": (values * 2).tolist()}
        output = InferOutput("y", list(values.shape), "FP64", values * 2)
        return InferResponse(payload.id, self.name, [output])


class Timer:
    """An injected sleep: each call waits until the test fires it."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.cancelled = 0
        self._waiting: list[asyncio.Event] = []

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        fired = asyncio.Event()
        self._waiting.append(fired)
        try:
            await fired.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def fire(self) -> None:
        for fired in self._waiting:
            fired.set()
        self._waiting.clear()


def request(rows, request_id="r"):
    array = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    return InferRequest("tensors", [InferInput("x", list(array.shape), "FP64", array)], request_id)


async def call(model, payload, headers):
    return await model(payload, headers, "predict")


async def turns(count=5):
    for _ in range(count):
        await asyncio.sleep(0)


def batcher(timer, max_batch_size=8):
    return Coalescer(max_batch_size, max_latency_s=LATENCY_S, sleep=timer.sleep)


def submit(coalescer, model, payload):
    return asyncio.ensure_future(coalescer.submit(model, payload, {}, call))


def test_requests_arriving_during_the_wait_join_one_call_when_the_timer_fires():
    async def main():
        model, timer = Tensors(), Timer()
        coalescer = batcher(timer)
        first = submit(coalescer, model, request([[1.0]], "a"))
        await turns()
        later = [submit(coalescer, model, request([[float(i)]], f"b{i}")) for i in range(3)]
        await turns()
        assert model.calls == []  # still waiting: 4 rows of 8, timer not fired
        timer.fire()
        answers = await asyncio.gather(first, *later)
        assert model.calls == [4]
        assert timer.asked == [LATENCY_S]
        assert [a.id for a in answers] == ["a", "b0", "b1", "b2"]
        assert [a.outputs[0].as_numpy().ravel().tolist() for a in answers] == [
            [2.0], [0.0], [2.0], [4.0]
        ]  # fmt: skip

    asyncio.run(main())


def test_a_full_batch_runs_at_once_without_waiting_for_the_timer():
    async def main():
        model, timer = Tensors(), Timer()
        coalescer = batcher(timer, max_batch_size=4)
        tasks = [submit(coalescer, model, request([[float(i)]], str(i))) for i in range(4)]
        answers = await asyncio.gather(*tasks)
        assert model.calls == [4] and len(answers) == 4
        assert timer.cancelled == 1  # the leader stopped waiting

    asyncio.run(main())


def test_a_lone_request_waits_for_the_timer_then_runs_alone():
    async def main():
        model, timer = Tensors(), Timer()
        lone = submit(batcher(timer), model, request([[3.0]]))
        await turns()
        assert model.calls == [] and not lone.done()
        timer.fire()
        answer = await lone
        assert model.calls == [1] and answer.outputs[0].as_numpy().tolist() == [[6.0]]

    asyncio.run(main())


def test_a_request_that_does_not_fit_sends_the_open_batch_and_opens_the_next():
    async def main():
        model, timer = Tensors(), Timer()
        coalescer = batcher(timer, max_batch_size=4)
        first = submit(coalescer, model, request([[1.0], [2.0], [3.0]]))
        await turns()
        second = submit(coalescer, model, request([[4.0], [5.0]]))
        await first
        assert model.calls == [3]  # sent when the next rows did not fit; no timer fired
        assert not second.done()
        timer.fire()
        await second
        assert model.calls == [3, 2]

    asyncio.run(main())


def test_one_bad_request_gets_its_error_and_its_batch_mates_their_answers():
    async def main():
        model, timer = Tensors(), Timer()
        coalescer = batcher(timer, max_batch_size=3)
        payloads = [request([[1.0]], "ok1"), request([[-1.0]], "bad"), request([[2.0]], "ok2")]
        answers = await asyncio.gather(
            *(submit(coalescer, model, payload) for payload in payloads), return_exceptions=True
        )
        assert isinstance(answers[1], InvalidInput)
        assert [answers[0].id, answers[2].id] == ["ok1", "ok2"]
        assert model.calls == [3, 1, 1, 1]  # merged call failed: each request ran alone

    asyncio.run(main())


def test_v1_answers_carry_one_batch_id_per_model_call():
    async def main():
        model, timer = Tensors(), Timer()
        coalescer = batcher(timer, max_batch_size=4)
        payloads = [{"instances": [[float(i)]]} for i in range(4)]
        answers = await asyncio.gather(*(submit(coalescer, model, p) for p in payloads))
        assert [a["predictions"] for a in answers] == [[[0.0]], [[2.0]], [[4.0]], [[6.0]]]
        assert len({a["batchId"] for a in answers}) == 1
        lone = submit(coalescer, model, {"instances": [[1.0]]})
        await turns()
        timer.fire()
        assert (await lone)["batchId"] != answers[0]["batchId"]

    asyncio.run(main())


def test_tensor_runtimes_merge_only_under_a_batcher():
    model = Tensors()
    assert not Coalescer().merges(model)
    assert Coalescer(max_latency_s=0.0).merges(model)
    assert not Coalescer(max_batch_size=1, max_latency_s=0.0).merges(model)

    class Rewritten(Tensors):
        def predict(self, payload, headers=None):  # a new pipeline must opt in again
            return super().predict(payload, headers)

    assert not Rewritten.enable_batcher


def test_a_zero_latency_batcher_merges_what_arrives_together_and_waits_for_nothing():
    async def main():
        model = Tensors()
        coalescer = Coalescer(8, max_latency_s=0.0)  # the real asyncio.sleep(0): one loop turn
        tasks = [submit(coalescer, model, request([[float(i)]], str(i))) for i in range(3)]
        await asyncio.gather(*tasks)
        await submit(coalescer, model, request([[1.0]]))
        assert model.calls == [3, 1]

    asyncio.run(main())
