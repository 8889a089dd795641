"""The response cache's parts in process: the canonical key, LRU by bytes, the TTL."""

from __future__ import annotations

import pytest

from ksrv.protocol import rest_codec
from ksrv.protocol.v2 import InferOutput, InferResponse
from ksrv.server.response_cache import ResponseCache, answer_size, is_bypassed, request_key


def v2_key(body: str | bytes, name: str = "m", version: str | None = None) -> bytes | None:
    raw = body.encode() if isinstance(body, str) else body
    return request_key(name, version, "predict", rest_codec.decode_request(raw, name, None))


BASE = (
    '{"id": "a", "parameters": {"p": 1, "q": "x"}, '
    '"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}], '
    '"outputs": [{"name": "y"}, {"name": "z"}]}'
)


def test_same_key_whatever_the_json_spacing_key_order_and_id() -> None:
    reordered = (
        '{"outputs":[{"name":"z"},{"name":"y"}],"inputs":[{"data":[1.0,2.0],"datatype":"FP32",'
        '"shape":[2],"name":"x"}],"parameters":{"q":"x","p":1},"id":"another"}'
    )
    assert v2_key(BASE) == v2_key(reordered)
    assert v2_key(BASE) is not None


@pytest.mark.parametrize(
    "changed",
    [
        BASE.replace('"data": [1, 2]', '"data": [1, 3]'),
        BASE.replace('"p": 1', '"p": 2'),
        BASE.replace('{"name": "z"}', '{"name": "w"}'),
        BASE.replace(', {"name": "z"}', ""),
        BASE.replace('"FP32"', '"FP64"'),
        BASE.replace('"name": "x"', '"name": "x2"'),
    ],
)
def test_a_changed_input_parameter_or_output_list_is_another_key(changed: str) -> None:
    assert changed != BASE
    assert v2_key(changed) != v2_key(BASE)


def test_model_version_and_binary_data_are_part_of_the_key() -> None:
    assert v2_key(BASE, name="other") != v2_key(BASE)
    assert v2_key(BASE, version="2") != v2_key(BASE)
    header = (
        b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":8}}]}'
    )
    binary = rest_codec.decode_request(
        header + b"\x00\x00\x80?\x00\x00\x00@", "m", len(header)
    )  # [1.0, 2.0] as little-endian FP32
    as_json = '{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2]}]}'
    assert request_key("m", None, "predict", binary) == v2_key(as_json)


def test_bytes_inputs_and_v1_bodies() -> None:
    words = '{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["ab","c"]}]}'
    split = '{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","bc"]}]}'
    assert v2_key(words) != v2_key(split)
    first = request_key("m", None, "predict", {"instances": [[1, 2]], "b": {"x": 1, "y": 2}})
    same = request_key("m", None, "predict", {"b": {"y": 2, "x": 1}, "instances": [[1, 2]]})
    other = request_key("m", None, "predict", {"instances": [[1, 3]]})
    explain = request_key("m", None, "explain", {"instances": [[1, 2]], "b": {"x": 1, "y": 2}})
    assert first == same
    assert len({first, other, explain}) == 3
    assert request_key("m", None, "predict", "not a request") is None


def test_lru_by_bytes_counts_evictions() -> None:
    evicted: list[str] = []
    cache = ResponseCache(100, on_evict=evicted.append)
    assert cache.put(b"a", "A", 40, "m1")
    assert cache.put(b"b", "B", 40, "m2")
    assert cache.get(b"a") == "A"  # a is now the most recently used
    assert cache.put(b"c", "C", 40, "m3")  # 120 > 100: b goes
    assert cache.get(b"b") is None
    assert (cache.get(b"a"), cache.get(b"c")) == ("A", "C")
    assert evicted == ["m2"]
    assert cache.bytes == 80
    assert not cache.put(b"big", "X", 101)  # larger than the whole cache: not stored
    assert len(cache) == 2
    assert cache.put(b"a", "A2", 10)  # replacing an entry is not an eviction
    assert cache.bytes == 50 and evicted == ["m2"]


def test_ttl_with_an_injected_clock() -> None:
    now = [1000.0]
    cache = ResponseCache(100, ttl_s=5, clock=lambda: now[0])
    cache.put(b"a", "A", 10)
    now[0] += 4.9
    assert cache.get(b"a") == "A"
    now[0] += 0.2
    assert cache.get(b"a") is None
    assert cache.bytes == 0 and len(cache) == 0


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ResponseCache(0)
    with pytest.raises(ValueError, match="ttl_s"):
        ResponseCache(10, ttl_s=0)


def test_answer_sizes_and_bypass() -> None:
    import numpy as np

    response = InferResponse("i", "m", [InferOutput("y", [4], "FP64", np.zeros(4))])
    assert answer_size(response) == 256 + 32
    as_list = InferResponse("i", "m", [InferOutput("y", [2], "FP32", [1, 2])])
    assert answer_size(as_list) == 256 + len(b"[1,2]")
    assert as_list.outputs[0].data == [1, 2]  # sizing left the answer as the model gave it
    assert answer_size({"predictions": [1]}) == 256 + len(b'{"predictions":[1]}')
    assert answer_size(iter(())) is None
    assert is_bypassed({"cache-control": "No-Cache"})
    assert not is_bypassed({"cache-control": "max-age=0"})
    assert not is_bypassed({})


def test_a_model_replaced_in_place_never_gets_its_predecessors_answers() -> None:
    import asyncio

    from ksrv.model.repository import ModelRepository
    from ksrv.server.dataplane import DataPlane
    from ksrv.server.metrics import ServerMetrics
    from ksrv.server.response_cache import cached_infer
    from tests.cache_toy import SlowCounter

    repository = ModelRepository()
    first = SlowCounter()
    first.load()
    repository.update(first)
    dataplane = DataPlane(repository)
    cache = ResponseCache(10**6)
    infer = cached_infer(dataplane.infer, cache, ServerMetrics().response_cache(), dataplane.model)
    payload = {"instances": [[1, 2]]}

    async def calls() -> int:
        answer = await infer("slow", dict(payload), {})
        return int(answer["calls"])

    try:
        assert asyncio.run(calls()) == 1
        assert asyncio.run(calls()) == 1  # a hit
        second = SlowCounter()  # the same name reloaded (a TrainedModel's new storageUri)
        second.load()
        repository.update(second)
        assert asyncio.run(calls()) == 1 and second.calls == 1  # its own first answer
        assert asyncio.run(calls()) == 1 and second.calls == 1  # then a hit on it
    finally:
        dataplane.shutdown()


class _Model:
    """Stands for the model object the answers belong to (held by weak reference)."""


class _HeldModel:
    """An `infer` that counts its calls and holds each until `release` is set; the first
    `failures` calls fail."""

    def __init__(self, failures: int = 0) -> None:
        import asyncio

        self.calls = 0
        self.failures = failures
        self.release = asyncio.Event()
        self.model = _Model()

    async def infer(self, name, payload, headers, version=None, verb="predict"):
        from ksrv.errors import InvalidInput

        self.calls += 1
        call = self.calls
        await self.release.wait()
        if call <= self.failures:
            raise InvalidInput("the model failed")
        return {"predictions": [call]}


def _single_flight(held: _HeldModel):
    from ksrv.server.metrics import ServerMetrics
    from ksrv.server.response_cache import cached_infer

    server_metrics = ServerMetrics()
    metrics = server_metrics.response_cache()
    infer = cached_infer(held.infer, ResponseCache(10**6), metrics, lambda *_: held.model)
    return infer, server_metrics.registry


async def _settle() -> None:
    """Let every task run to where it waits (all in this loop: no OS scheduling involved)."""
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)


def test_identical_misses_at_once_call_the_model_once() -> None:
    import asyncio

    async def run() -> tuple[list, int, float]:
        held = _HeldModel()
        infer, registry = _single_flight(held)
        calls = [asyncio.create_task(infer("m", {"instances": [1]}, {})) for _ in range(5)]
        await _settle()
        held.release.set()
        answers = await asyncio.gather(*calls)
        hits = registry.get_sample_value("ksrv_response_cache_hits_total", {"model_name": "m"})
        return answers, held.calls, hits

    answers, calls, hits = asyncio.run(run())
    assert calls == 1
    assert answers == [{"predictions": [1]}] * 5
    assert hits == 4


def test_when_the_first_call_fails_or_is_called_off_the_others_ask_the_model() -> None:
    import asyncio

    from ksrv.errors import InvalidInput

    async def failing() -> tuple[list, int]:
        held = _HeldModel(failures=1)
        infer, _ = _single_flight(held)
        calls = [asyncio.create_task(infer("m", {"instances": [1]}, {})) for _ in range(3)]
        await _settle()
        held.release.set()
        return await asyncio.gather(*calls, return_exceptions=True), held.calls

    answers, calls = asyncio.run(failing())
    assert isinstance(answers[0], InvalidInput)  # errors are not shared, nor stored
    assert sorted(a["predictions"][0] for a in answers[1:]) == [2, 3] and calls == 3

    async def called_off() -> tuple[list, int]:
        held = _HeldModel()
        infer, _ = _single_flight(held)
        calls = [asyncio.create_task(infer("m", {"instances": [1]}, {})) for _ in range(3)]
        await _settle()
        calls[0].cancel()  # its client hung up
        await _settle()
        held.release.set()
        return await asyncio.gather(*calls[1:]), held.calls

    answers, calls = asyncio.run(called_off())
    assert calls == 3 and sorted(a["predictions"][0] for a in answers) == [2, 3]
