"""`POST /v1/completions`: the request, the answer and its streamed chunks.

OpenAI streams a completion as objects of the same shape as the answer (`text_completion`),
each choice carrying the text produced since the last chunk.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ksrv.protocol.openai.common import OpenAIRequest, StreamOptions, Usage, stop_list

FinishReason = Literal["stop", "length", "content_filter"]
Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(OpenAIRequest):
    """What the client asks for, with OpenAI's defaults and ranges."""

    prompt: Prompt
    max_tokens: int | None = Field(16, ge=0)
    n: int = Field(1, ge=1, le=128)
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, prompt: Prompt) -> Prompt:
        if isinstance(prompt, list) and not prompt:
            raise ValueError("must not be an empty list")
        return prompt

    def prompts(self) -> list[str | list[int]]:
        """The prompt(s) as a list: one string, a list of strings, or token id lists."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if all(isinstance(item, int) for item in prompt):
            return [[int(item) for item in prompt]]  # type: ignore[arg-type]
        return list(prompt)  # type: ignore[arg-type]

    def stop_sequences(self) -> list[str]:
        return stop_list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionLogprobs(BaseModel):
    """Per-token log-probabilities of a completion choice (the legacy shape)."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int = 0
    text: str = ""
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(BaseModel):
    """The answer: one choice per prompt and `n`."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionChunk(Completion):
    """One streamed piece: each choice holds the text added since the last chunk."""
