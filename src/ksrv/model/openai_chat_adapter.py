"""`OpenAIChatAdapterModel`: chat completions served by a completion model and a chat template.

KServe's helper: the model implements `create_completion` and `apply_chat_template` (messages
-> one prompt); chat requests become completion requests and the answers (whole or streamed)
are translated back into chat's shape. Unlike KServe's, `n > 1` is kept (each choice maps by
its index), and each streamed choice opens with OpenAI's `role` delta.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel

from ksrv.model.openai import Context, OpenAIGenerativeModel
from ksrv.protocol.openai.chat import (
    AssistantMessage,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatLogprobs,
    ChatTokenLogprob,
    ChoiceDelta,
    TopLogprob,
)
from ksrv.protocol.openai.completions import (
    Completion,
    CompletionChunk,
    CompletionLogprobs,
    CompletionRequest,
)


class ChatPrompt(BaseModel):
    """What a chat template made of the messages (KServe's `ChatPrompt`)."""

    prompt: str
    response_role: str = "assistant"


class OpenAIChatAdapterModel(OpenAIGenerativeModel):
    """A completion model that serves chat through `apply_chat_template`."""

    @abc.abstractmethod
    def apply_chat_template(self, request: ChatCompletionRequest) -> ChatPrompt:
        """The messages (and `add_generation_prompt`, `chat_template`) as one prompt."""

    async def create_chat_completion(
        self,
        request: ChatCompletionRequest,
        raw_request: Any = None,
        context: Context | None = None,
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        prompt = self.apply_chat_template(request)
        result = await self.create_completion(
            completion_request(request, prompt.prompt), raw_request, context
        )
        if isinstance(result, Completion):
            return chat_completion(result)
        return _chat_chunks(result)


def completion_request(request: ChatCompletionRequest, prompt: str) -> CompletionRequest:
    """The chat request's sampling settings on a completion request for `prompt`."""
    top = request.top_logprobs if request.top_logprobs is not None else 0
    return CompletionRequest.model_validate(
        {
            **(request.model_extra or {}),
            "model": request.model,
            "prompt": prompt,
            "max_tokens": request.max_new_tokens(),
            "n": request.n,
            "stop": request.stop,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "logprobs": min(top, 5) if request.logprobs else None,
            "stream": request.stream,
            "stream_options": request.stream_options,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
            "logit_bias": request.logit_bias,
            "user": request.user,
        }
    )


def chat_completion(completion: Completion) -> ChatCompletion:
    choices = [
        ChatCompletionChoice(
            index=choice.index,
            message=AssistantMessage(content=choice.text),
            logprobs=chat_logprobs(choice.logprobs),
            finish_reason=choice.finish_reason,
        )
        for choice in completion.choices
    ]
    return ChatCompletion(choices=choices, **_same_fields(completion))


def chat_logprobs(logprobs: CompletionLogprobs | None) -> ChatLogprobs | None:
    """The legacy per-token lists as chat's per-token objects."""
    if logprobs is None:
        return None
    tops = logprobs.top_logprobs or [None] * len(logprobs.tokens)
    content = [
        ChatTokenLogprob(
            token=token,
            logprob=logprob if logprob is not None else float("-inf"),
            bytes=list(token.encode()),
            top_logprobs=[
                TopLogprob(token=t, logprob=p, bytes=list(t.encode()))
                for t, p in (top or {}).items()
            ],
        )
        for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, tops, strict=False)
    ]
    return ChatLogprobs(content=content)


async def _chat_chunks(
    chunks: AsyncIterator[CompletionChunk],
) -> AsyncIterator[ChatCompletionChunk]:
    """Completion chunks as chat chunks; each choice index opens with the role delta."""
    opened: set[int] = set()
    try:
        async for chunk in chunks:
            choices = []
            for choice in chunk.choices:
                role: Literal["assistant"] | None = None
                if choice.index not in opened:
                    opened.add(choice.index)
                    role = "assistant"
                delta = ChoiceDelta(role=role, content=choice.text)
                choices.append(
                    ChatChunkChoice(
                        index=choice.index,
                        delta=delta,
                        logprobs=chat_logprobs(choice.logprobs),
                        finish_reason=choice.finish_reason,
                    )
                )
            yield ChatCompletionChunk(choices=choices, **_same_fields(chunk))
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _same_fields(completion: Completion) -> dict[str, Any]:
    """What a chat answer copies from the completion it stands for."""
    return {
        "id": completion.id,
        "created": completion.created,
        "model": completion.model,
        "usage": completion.usage,
        "system_fingerprint": completion.system_fingerprint,
    }
