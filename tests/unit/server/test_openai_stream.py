"""OpenAI's SSE framing of a model's chunks: usage handling, [DONE], errors, closing."""

from __future__ import annotations

import asyncio
import json

import pytest

from ksrv.errors import InvalidInput
from ksrv.protocol.openai.common import Usage
from ksrv.protocol.openai.completions import CompletionChoice, CompletionChunk
from ksrv.server import generate, openai_stream


def chunk(text: str, usage: Usage | None = None) -> CompletionChunk:
    choices = [CompletionChoice(text=text)] if text else []
    return CompletionChunk(id="c", created=1, model="m", choices=choices, usage=usage)


async def model_chunks(items, events: list[str]):
    try:
        for item in items:
            if isinstance(item, Exception):
                raise item
            yield item
        events.append("finished")
    finally:
        events.append("closed")


def body(items, include_usage: bool) -> tuple[list[bytes], list[str]]:
    events: list[str] = []

    async def run() -> list[bytes]:
        stream = await openai_stream.Prefetched.start(model_chunks(items, events))
        return [part async for part in openai_stream.openai_events(stream, include_usage)]

    return asyncio.run(run()), events


def decoded(parts: list[bytes]) -> list:
    assert all(p.startswith(b"data: ") and p.endswith(b"\n\n") for p in parts)
    return [p[6:-2].decode() if p == b"data: [DONE]\n\n" else json.loads(p[6:-2]) for p in parts]


USAGE = Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)


def test_usage_is_sent_as_a_last_chunk_only_when_asked():
    parts, events = body([chunk("a"), chunk("b", USAGE)], include_usage=True)
    sent = decoded(parts)
    assert [s["choices"][0]["text"] for s in sent[:2]] == ["a", "b"]
    assert sent[0]["usage"] is None and sent[1]["usage"] is None
    assert sent[2]["choices"] == [] and sent[2]["usage"]["total_tokens"] == 3
    assert sent[3] == "[DONE]"
    assert events == ["finished", "closed"]


def test_without_include_usage_no_chunk_has_a_usage_field():
    parts, _ = body([chunk("a"), chunk("", USAGE)], include_usage=False)
    sent = decoded(parts)
    assert len(sent) == 2 and "usage" not in sent[0] and sent[1] == "[DONE]"


def test_an_error_mid_stream_is_an_error_event_then_done():
    parts, events = body([chunk("a"), InvalidInput("bad")], include_usage=False)
    sent = decoded(parts)
    assert sent[1] == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}
    }
    assert sent[2] == "[DONE]" and events == ["closed"]


def test_an_error_before_the_first_chunk_propagates_for_its_status():
    with pytest.raises(InvalidInput):
        body([InvalidInput("too long")], include_usage=False)


def test_kserve_style_framed_strings_pass_through_verbatim():
    framed = ["data: {}\n\n", "data: [DONE]\n\n"]
    parts, _ = body(framed, include_usage=True)
    assert parts == [f.encode() for f in framed]


def test_closing_the_stream_closes_the_models_iterator():
    events: list[str] = []

    async def run() -> None:
        stream = await openai_stream.Prefetched.start(model_chunks([chunk("a")] * 3, events))
        sse = openai_stream.openai_events(stream, False)
        await anext(sse)
        await sse.aclose()

    asyncio.run(run())
    assert events == ["closed"]


@pytest.mark.parametrize(
    ("body_in", "fields"),
    [
        ({"text_input": "hi"}, {"prompt": "hi", "max_tokens": 16}),
        ({"text_input": "hi", "parameters": {"max_tokens": 4, "temperature": 0.5}},
         {"max_tokens": 4, "temperature": 0.5}),
        ({"text_input": "hi", "max_tokens": 2, "stop_words": ["x"]},
         {"max_tokens": 2, "stop": ["x"]}),
    ],
)  # fmt: skip
def test_a_generate_body_becomes_a_completion_request(body_in, fields):
    request = generate.completion_request("m", body_in, stream=False)
    assert request.model == "m" and request.n == 1
    for name, value in fields.items():
        assert getattr(request, name) == value


@pytest.mark.parametrize(
    ("body_in", "message"),
    [
        ([], "generate expects a JSON object"),
        ({"parameters": {}}, "text_input: expected a string"),
        ({"text_input": "x", "parameters": {"temperature": 5}}, "temperature"),
    ],
)
def test_a_bad_generate_body_is_invalid_input(body_in, message):
    with pytest.raises(InvalidInput, match=message):
        generate.completion_request("m", body_in, stream=False)
