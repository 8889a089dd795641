"""The coalescer: concurrent requests merge into one model call, and each caller still gets
exactly its own answer or its own error."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ksrv.errors import InvalidInput
from ksrv.model.base import Model
from ksrv.protocol.v2 import InferInput, InferOutput, InferRequest, InferResponse
from ksrv.server.batching import Coalescer


class Doubler(Model):
    """Doubles each row; records the rows of every call; refuses negative values."""

    batchable = True

    def __init__(self, splittable: bool = True) -> None:
        super().__init__("doubler")
        self.ready = True
        self.calls: list[int] = []
        self.splittable = splittable

    def predict(self, payload, headers=None):
        values = payload.inputs[0].as_numpy()
        self.calls.append(len(values))
        if (values < 0).any():
            raise InvalidInput("negative")
        result = values * 2 if self.splittable else values.sum(keepdims=True)
        return InferResponse(
            payload.id, self.name, [InferOutput("y", [len(result)], "FP64", result)]
        )


def request(values, request_id):
    array = np.asarray(values, dtype=np.float64)
    return InferRequest("doubler", [InferInput("x", [len(array)], "FP64", array)], request_id)


async def call(model, payload, headers):
    return await model(payload, headers, "predict")


def run_all(coalescer, model, payloads):
    async def main():
        tasks = [coalescer.submit(model, payload, {}, call) for payload in payloads]
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(main())


def values(answer):
    return answer.outputs[0].as_numpy().tolist()


def test_concurrent_requests_share_one_call_and_get_their_own_rows_and_ids():
    model = Doubler()
    answers = run_all(Coalescer(), model, [request([i, i + 0.5], f"r{i}") for i in range(8)])
    assert model.calls == [16]
    assert [answer.id for answer in answers] == [f"r{i}" for i in range(8)]
    assert [values(answer) for answer in answers] == [[2 * i, 2 * i + 1] for i in range(8)]


def test_batches_hold_at_most_max_batch_size_rows():
    model = Doubler()
    answers = run_all(Coalescer(max_batch_size=4), model, [request([i], str(i)) for i in range(10)])
    assert model.calls == [4, 4, 2]
    assert [values(answer) for answer in answers] == [[2 * i] for i in range(10)]


def test_max_batch_size_one_never_merges_nor_do_unbatchable_models():
    model = Doubler()
    run_all(Coalescer(max_batch_size=1), model, [request([i], None) for i in range(3)])
    assert model.calls == [1, 1, 1]
    model = Doubler()
    model.batchable = False
    run_all(Coalescer(), model, [request([i], None) for i in range(3)])
    assert model.calls == [1, 1, 1]


def test_a_bad_request_fails_alone_and_the_rest_of_its_batch_is_answered():
    model = Doubler()
    coalescer = Coalescer()
    payloads = [request([1], "a"), request([-1], "bad"), request([3], "c")]
    good_a, bad, good_c = run_all(coalescer, model, payloads)
    assert isinstance(bad, InvalidInput)
    assert (values(good_a), values(good_c)) == ([2], [6])
    assert model.calls == [3, 1, 1, 1]  # the merged call failed; each was answered alone
    run_all(coalescer, model, [request([1], "d"), request([2], "e")])
    assert model.calls[-1] == 2  # one caller's mistake does not stop merging


def test_a_model_whose_answer_does_not_split_is_answered_alone_from_then_on():
    model = Doubler(splittable=False)
    coalescer = Coalescer()
    answers = run_all(coalescer, model, [request([1, 2], "a"), request([3], "b")])
    assert [values(answer) for answer in answers] == [[3], [3]]
    assert model.calls == [3, 2, 1]
    run_all(coalescer, model, [request([1], "c"), request([2], "d")])
    assert model.calls == [3, 2, 1, 1, 1]


def test_a_model_that_fails_merged_but_not_alone_is_not_merged_again():
    class OneRowOnly(Doubler):
        def predict(self, payload, headers=None):
            if len(payload.inputs[0].as_numpy()) > 1:
                raise RuntimeError("this model cannot take two rows")
            return super().predict(payload, headers)

    model = OneRowOnly()
    coalescer = Coalescer()
    answers = run_all(coalescer, model, [request([1], "a"), request([2], "b")])
    assert [values(answer) for answer in answers] == [[2], [4]]
    run_all(coalescer, model, [request([3], "c"), request([4], "d")])
    assert model.calls == [1, 1, 1, 1]  # the one merged call failed before predict recorded it


def test_requests_that_cannot_merge_run_in_their_own_calls():
    model = Doubler()
    wide = InferRequest(
        "doubler", [InferInput("x", [1, 2], "FP64", np.array([[1.0, 2.0]]))], "wide"
    )
    answers = run_all(Coalescer(), model, [request([1], "a"), wide, request([2], "b")])
    assert sorted(model.calls) == [1, 2]
    assert values(answers[1]) == [[2.0, 4.0]]


@pytest.mark.parametrize("leaving", [0, 1], ids=["leader", "follower"])
def test_a_caller_that_goes_away_does_not_stop_the_others(leaving):
    model = Doubler()
    coalescer = Coalescer()

    async def main():
        tasks = [
            asyncio.ensure_future(coalescer.submit(model, request([i], str(i)), {}, call))
            for i in range(3)
        ]
        await asyncio.sleep(0)  # every request has joined the batch
        tasks[leaving].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(main())
    assert isinstance(answers.pop(leaving), asyncio.CancelledError)
    assert [values(answer) for answer in answers] == [[2 * i] for i in range(3) if i != leaving]


def test_requests_to_different_models_never_share_a_call():
    one, other = Doubler(), Doubler()

    async def main():
        coalescer = Coalescer()
        calls = [coalescer.submit(m, request([i], str(i)), {}, call) for i, m in
                 enumerate([one, other, one, other])]  # fmt: skip
        return await asyncio.gather(*calls)

    answers = asyncio.run(main())
    assert [values(answer) for answer in answers] == [[0], [2], [4], [6]]
    assert one.calls == [2] and other.calls == [2]


@pytest.mark.parametrize("count", [1, 2])
def test_a_lone_request_is_answered_without_waiting_for_company(count):
    model = Doubler()
    answers = run_all(Coalescer(), model, [request([5], str(i)) for i in range(count)])
    assert [values(answer) for answer in answers] == [[10]] * count


def test_each_merged_call_is_recorded_with_its_requests_and_rows_and_lone_ones_are_not():
    model = Doubler()
    merges: list[tuple[str, int, int]] = []
    coalescer = Coalescer(max_batch_size=4, record=lambda *merge: merges.append(merge))
    run_all(coalescer, model, [request([i, i], str(i)) for i in range(5)])
    assert sorted(model.calls) == [2, 4, 4]
    assert merges == [("doubler", 2, 4), ("doubler", 2, 4)]  # the fifth ran alone
