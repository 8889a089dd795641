"""OpenAI's wire types: defaults, ranges, helpers, and the error envelope naming the param."""

from __future__ import annotations

import base64
import struct

import pytest
from pydantic import ValidationError

from ksrv import errors
from ksrv.protocol.openai import errors as openai_errors
from ksrv.protocol.openai.chat import ChatCompletionRequest, ChatMessage
from ksrv.protocol.openai.completions import CompletionRequest
from ksrv.protocol.openai.embeddings import (
    Embedding,
    EmbeddingData,
    EmbeddingRequest,
    as_base64,
)

HI = [{"role": "user", "content": "hi"}]


def test_completion_defaults_are_openais():
    request = CompletionRequest.model_validate({"model": "m", "prompt": "x"})
    assert (request.max_tokens, request.n, request.stream, request.echo) == (16, 1, False, False)
    assert request.temperature is None and request.stop_sequences() == []
    assert not request.include_usage()


@pytest.mark.parametrize(
    ("prompt", "prompts"),
    [
        ("one", ["one"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1], [2, 3]], [[1], [2, 3]]),
    ],
)
def test_prompts_are_always_a_list(prompt, prompts):
    assert CompletionRequest(model="m", prompt=prompt).prompts() == prompts


def test_unknown_fields_are_kept_for_the_model():
    request = CompletionRequest.model_validate({"model": "m", "prompt": "x", "top_k": 5})
    assert request.model_extra == {"top_k": 5}


def test_chat_max_new_tokens_prefers_max_completion_tokens():
    both = ChatCompletionRequest(model="m", messages=HI, max_tokens=5, max_completion_tokens=3)
    assert both.max_new_tokens() == 3
    assert ChatCompletionRequest(model="m", messages=HI, max_tokens=5).max_new_tokens() == 5
    assert ChatCompletionRequest(model="m", messages=HI).max_new_tokens() is None


def test_a_message_with_parts_reads_as_its_text():
    message = ChatMessage(
        role="user",
        content=[
            {"type": "text", "text": "look "},
            {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "text", "text": "here"},
        ],
    )
    assert message.text() == "look here"


@pytest.mark.parametrize(
    ("kind", "body", "param", "code"),
    [
        (CompletionRequest, {"model": "m"}, "prompt", "missing_required_parameter"),
        (CompletionRequest, {"model": "m", "prompt": []}, "prompt", "invalid_value"),
        (CompletionRequest, {"model": "m", "prompt": "x", "logprobs": 6}, "logprobs", None),
        (CompletionRequest, {"prompt": "x"}, "model", "missing_required_parameter"),
        (ChatCompletionRequest, {"model": "m", "messages": []}, "messages", "invalid_value"),
        (ChatCompletionRequest, {"model": "m", "messages": [{"role": "x"}]},
         "messages.0.role", None),
        (ChatCompletionRequest, {"model": "m", "messages": HI, "n": 0}, "n", None),
        (ChatCompletionRequest, {"model": "m", "messages": HI, "top_p": 2}, "top_p", None),
        (EmbeddingRequest, {"model": "m", "input": "x", "encoding_format": "hex"},
         "encoding_format", None),
    ],
)  # fmt: skip
def test_validation_errors_name_the_parameter(kind, body, param, code):
    with pytest.raises(ValidationError) as raised:
        kind.model_validate(body)
    error = openai_errors.from_validation(raised.value)
    assert isinstance(error, errors.InvalidInput)
    assert error.param == param
    assert error.message.startswith(f"Invalid request: {param}:")
    if code is not None:
        assert error.code == code


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            errors.ModelNotFound("m"),
            404,
            {"message": "Model with name m does not exist.", "type": "invalid_request_error",
             "param": "model", "code": "model_not_found"},
        ),
        (
            openai_errors.ContextLengthExceeded("too long", "prompt"),
            400,
            {"message": "too long", "type": "invalid_request_error", "param": "prompt",
             "code": "context_length_exceeded"},
        ),
        (
            errors.ModelNotReady("m"),
            503,
            {"message": "Model with name m is not ready.", "type": "server_error",
             "param": None, "code": None},
        ),
        (
            ValueError("boom"),
            500,
            {"message": "ValueError : boom", "type": "server_error", "param": None, "code": None},
        ),
    ],
)  # fmt: skip
def test_envelope_has_openais_shape_and_the_status_table(exc, status, body):
    code, envelope = openai_errors.envelope(exc)
    assert code == status
    assert envelope.model_dump() == {"error": body}


def test_base64_embeddings_are_little_endian_float32():
    embedding = Embedding(model="m", data=[EmbeddingData(index=0, embedding=[1.5, -2.0])])
    encoded = as_base64(embedding).data[0].embedding
    assert isinstance(encoded, str)
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (1.5, -2.0)
