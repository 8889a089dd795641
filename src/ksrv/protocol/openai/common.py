"""What every OpenAI endpoint shares: usage counts, stream options, model cards, the error body.

Requests keep fields they do not know (`model_extra`), as vLLM does, so vendor sampling knobs
(`top_k`, `min_tokens`) reach the model; responses are plain data the server serialises.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenAIRequest(BaseModel):
    """Base of the request types: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    user: str | None = None


class Usage(BaseModel):
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int | None = 0
    total_tokens: int = 0


class StreamOptions(BaseModel):
    include_usage: bool | None = False


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = ""
    root: str | None = None  # vLLM: the weights' path or hub id (an adapter's own path)
    parent: str | None = None  # vLLM: a LoRA adapter's base model


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard] = Field(default_factory=list)


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorBody


def stop_list(stop: str | list[str] | None) -> list[str]:
    """`stop` as a list (OpenAI takes one string or up to four)."""
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def new_id(prefix: str) -> str:
    """A response id in OpenAI's style (`cmpl-…`, `chatcmpl-…`)."""
    return f"{prefix}-{uuid.uuid4().hex}"
