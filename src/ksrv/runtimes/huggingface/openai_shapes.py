"""OpenAI's response shapes for completions and chat, and reading the fields of its requests.

Built as dicts in OpenAI's JSON layout (`text_completion`, `chat.completion`, their chunks,
`usage`, both `logprobs` layouts), then validated into the OpenAI layer's types (`typed`) on
the way out. Requests are read with `field`, which takes a dict or any object with the fields
as attributes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pydantic import BaseModel

from ksrv.protocol.openai.errors import ContextLengthExceeded, OpenAIInvalidRequest

COMPLETION = "completion"
CHAT = "chat"


def bad(message: str, param: str | None = None) -> OpenAIInvalidRequest:
    """A 400 naming the request field at fault (OpenAI's `param`)."""
    return OpenAIInvalidRequest(message, param)


def too_long(message: str, param: str) -> ContextLengthExceeded:
    """A prompt (plus `max_tokens`) over the model's context: OpenAI's code says which."""
    return ContextLengthExceeded(message, param)


def typed(
    result: dict[str, Any] | AsyncIterator[dict[str, Any]],
    whole: type[BaseModel],
    chunk: type[BaseModel],
) -> Any:
    """The OpenAI layer's types for an answer built here as OpenAI's JSON: the whole answer,
    or each chunk of a stream (closing the stream closes the generation under it)."""
    if isinstance(result, dict):
        return whole.model_validate(result)

    async def chunks() -> AsyncIterator[BaseModel]:
        try:
            async for item in result:
                yield chunk.model_validate(item)
        finally:
            await result.aclose()  # type: ignore[attr-defined]

    return chunks()


def field(request: Any, name: str) -> Any:
    if isinstance(request, dict):
        return request.get(name)
    return getattr(request, name, None)


def number(request: Any, name: str, default: float, low: float, high: float) -> float:
    value = field(request, name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(f"'{name}' must be a number from {low:g} to {high:g}", name)
    return float(value)


def max_tokens(request: Any) -> int | None:
    """`max_completion_tokens` (chat's newer name) or `max_tokens`; None means up to the limit."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = field(request, name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"'{name}' must be a positive integer", name)
            return value
    return None


def stop_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
        return stop
    raise bad("'stop' must be a string or a list of up to 4 strings", "stop")


def logprobs_wanted(request: Any) -> int | None:
    """How many alternatives per token to report, or None for no log-probabilities at all.

    Completions send `logprobs: N`; chat sends `logprobs: true` and `top_logprobs: N`.
    """
    value = field(request, "logprobs")
    if value is None or value is False:
        return None
    if value is True:
        top = field(request, "top_logprobs") or 0
        if not isinstance(top, int) or not 0 <= top <= 20:
            raise bad("'top_logprobs' must be an integer from 0 to 20", "top_logprobs")
        return top
    if isinstance(value, int) and 0 <= value <= 5:
        return value
    raise bad("'logprobs' must be an integer from 0 to 5", "logprobs")


def chat_message(message: Any) -> dict[str, str]:
    """A chat message as the template takes it: role and text content (text parts joined)."""
    if not isinstance(message, dict):
        message = message.model_dump() if hasattr(message, "model_dump") else dict(message)
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str):
        raise bad("each message needs a 'role'", "messages")
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad("only text content parts are supported", "messages")
            parts.append(str(part.get("text", "")))
        content = "\n".join(parts)
    return {"role": role, "content": content if isinstance(content, str) else ""}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def choice(kind: str, index: int, text: str, reason: str, logprobs: Any) -> dict[str, Any]:
    if kind == CHAT:
        message = {"role": "assistant", "content": text}
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": reason}
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}


def chunk_choice(
    kind: str, index: int, text: str, reason: str | None, logprobs: Any
) -> dict[str, Any]:
    if kind == CHAT:
        delta = {"content": text} if text or reason is None else {}
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}


def role_delta(index: int) -> dict[str, Any]:
    """Chat streams open each choice with the assistant's role and no content yet."""
    delta = {"role": "assistant", "content": ""}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


@dataclass(slots=True)
class Header:
    """The fields every response and chunk of one request repeats."""

    kind: str
    model: str
    id: str = dataclass_field(default_factory=lambda: uuid.uuid4().hex)
    created: int = dataclass_field(default_factory=lambda: int(time.time()))

    def _base(self, object_name: str) -> dict[str, Any]:
        prefix = "chatcmpl-" if self.kind == CHAT else "cmpl-"
        return {"id": prefix + self.id, "object": object_name, "created": self.created,
                "model": self.model}  # fmt: skip

    def response(self, choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
        name = "chat.completion" if self.kind == CHAT else "text_completion"
        return {**self._base(name), "choices": choices, "usage": usage}

    def chunk(
        self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        name = "chat.completion.chunk" if self.kind == CHAT else "text_completion"
        body = {**self._base(name), "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return body


def logprobs(kind: str, tokenizer: Any, progress: Any, start: int) -> dict[str, Any]:
    """The log-probabilities of tokens `start:` of a generation, in `kind`'s layout."""
    tokens = [tokenizer.decode([t]) for t in progress.token_ids[start:]]
    values = progress.logprobs[start:]
    tops = progress.top_logprobs[start:] or [{} for _ in tokens]
    if kind == CHAT:
        content = [
            {"token": token, "logprob": value, "bytes": list(token.encode()),
             "top_logprobs": [
                 {"token": (alt := tokenizer.decode([t])), "logprob": v,
                  "bytes": list(alt.encode())}
                 for t, v in top.items()
             ]}
            for token, value, top in zip(tokens, values, tops, strict=False)
        ]  # fmt: skip
        return {"content": content}
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": [{tokenizer.decode([t]): v for t, v in top.items()} for top in tops],
        "text_offset": offsets,
    }
