"""Triton's generate extension over V2: `POST /v2/models/{m}/generate` and `generate_stream`.

`{"text_input": "...", "parameters": {...}}` in (sampling fields may also sit at the top level,
as Triton allows), `{"model_name", "model_version", "text_output"}` out; `generate_stream`
sends one such object per server-sent event, `text_output` holding the new text. It needs no
model method of its own: the request becomes a `CompletionRequest` for the model's
`create_completion`. Errors keep V2's `{"error": "..."}` body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError

from ksrv.errors import InvalidInput, ModelNotReady
from ksrv.http import sse
from ksrv.http.server import Response, StreamingResponse
from ksrv.model.openai import OpenAIGenerativeModel
from ksrv.protocol import rest_codec, status
from ksrv.protocol.openai import errors as openai_errors
from ksrv.protocol.openai.completions import Completion, CompletionChunk, CompletionRequest
from ksrv.server import openai_stream
from ksrv.server.dataplane import DataPlane

_JSON = (b"content-type", b"application/json")
# Triton's stop-word input name, taken as OpenAI's `stop`.
_ALIASES = {"stop_words": "stop", "max_new_tokens": "max_tokens"}
_NOT_PARAMETERS = ("text_input", "parameters", "id", "model", "prompt", "stream", "n")


def completion_request(name: str, body: Any, stream: bool) -> CompletionRequest:
    """A generate body as the `CompletionRequest` it stands for (one prompt, one choice)."""
    if not isinstance(body, dict):
        raise InvalidInput("generate expects a JSON object")
    text = body.get("text_input")
    if not isinstance(text, str):
        raise InvalidInput("text_input: expected a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters: expected an object")
    fields = {k: v for k, v in body.items() if k not in _NOT_PARAMETERS}
    fields.update(parameters)
    fields = {_ALIASES.get(k, k): v for k, v in fields.items() if k not in _NOT_PARAMETERS}
    try:
        return CompletionRequest.model_validate(
            {**fields, "model": name, "prompt": text, "stream": stream}
        )
    except ValidationError as exc:
        raise InvalidInput(openai_errors.from_validation(exc).message) from None


async def generate(
    dataplane: DataPlane, name: str, version: str | None, body: bytes, stream: bool
) -> Response | StreamingResponse:
    model = dataplane.model(name, version)
    if not isinstance(model, OpenAIGenerativeModel):
        raise InvalidInput(f"Model {name} does not support generate (it is not a text generator)")
    if not model.ready:
        raise ModelNotReady(name)
    params = completion_request(name, rest_codec.loads(body, rest_codec.MAX_JSON_BYTES), stream)
    result = await model.create_completion(params, None, {})
    answer = _Answer(name, version)
    if isinstance(result, Completion):
        if stream:  # a model that answers whole: one event
            return StreamingResponse(_one(answer.encode(result)), headers=list(sse.HEADERS))
        return Response(answer.encode(result), 200, [_JSON])
    started = await openai_stream.Prefetched.start(result)
    if not stream:  # a model that streams anyway: the pieces joined
        text = [piece async for piece in _texts(started)]
        return Response(answer.encode_text("".join(text)), 200, [_JSON])
    return StreamingResponse(
        openai_stream.events(started, answer.encode_chunk, answer.encode_error),
        headers=list(sse.HEADERS),
    )


class _Answer:
    """Triton's response object for one model."""

    def __init__(self, name: str, version: str | None) -> None:
        self.name = name
        self.version = version or ""

    def encode(self, result: Completion | CompletionChunk) -> bytes:
        return self.encode_text("".join(choice.text for choice in result.choices))

    def encode_text(self, text: str) -> bytes:
        return rest_codec.dumps(
            {"model_name": self.name, "model_version": self.version, "text_output": text}
        )

    def encode_chunk(self, chunk: CompletionChunk) -> bytes | None:
        """A streamed chunk; a usage-only one (no choices) has no text to send."""
        return self.encode(chunk) if chunk.choices else None

    def encode_error(self, exc: BaseException) -> bytes:
        return rest_codec.dumps({"error": status.public_message(exc)})


async def _one(event: bytes) -> AsyncIterator[bytes]:
    yield sse.event(event)


async def _texts(stream: openai_stream.Prefetched) -> AsyncIterator[str]:
    try:
        async for chunk in stream.items():
            yield "".join(choice.text for choice in chunk.choices)
    finally:
        await stream.aclose()
