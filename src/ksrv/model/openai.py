"""The OpenAI model API: what a model implements to be served on `/openai/v1/...`.

KServe's classes by KServe's names and signatures (`raw_request` is always None here; it is
kept so a KServe model ports unchanged). A streamed answer is an async iterator of chunk
objects; the server frames it as server-sent events, adds `[DONE]` and the usage chunk, and
closes the iterator when the client hangs up (docs/openai.md). A generative model may report
its engine's load (`EngineLoad`: requests running and waiting, tokens in flight), which the
server exports as vLLM's gauges for autoscalers to read (docs/llm.md).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ksrv.model.base import Model
from ksrv.protocol.openai.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from ksrv.protocol.openai.completions import Completion, CompletionChunk, CompletionRequest
from ksrv.protocol.openai.embeddings import Embedding, EmbeddingRequest, Rerank, RerankRequest
from ksrv.protocol.openai.errors import OpenAIInvalidRequest

Context = dict[str, Any]


class OpenAIModel(Model, metaclass=abc.ABCMeta):
    """A model served through the OpenAI routes; `/v1/models` lists every one."""

    # vLLM's model card fields: where the weights came from, and an adapter's base model.
    root: str | None = None
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """What a generation engine holds now, as vLLM's scheduler gauges count it."""

    running: int
    """Generations producing tokens (`vllm:num_requests_running`)."""
    waiting: int
    """Generations admitted but queued for a place (`vllm:num_requests_waiting`)."""
    tokens: int
    """Tokens in flight: each generation's prompt plus the new tokens it may still ask for."""


class OpenAIGenerativeModel(OpenAIModel):
    """Completions and chat completions (`/v1/completions`, `/v1/chat/completions`)."""

    def engine_load(self) -> EngineLoad | None:
        """The engine's load now, for the server's gauges; None (the default) reports none.
        Called at each scrape, so it must be cheap."""
        return None

    def adapters(self) -> list[OpenAIGenerativeModel]:
        """Models served beside this one under their own names (LoRA adapters, as vLLM's
        `--lora-modules`); the server registers them with it. None by default."""
        return []

    @abc.abstractmethod
    async def create_completion(
        self,
        request: CompletionRequest,
        raw_request: Any = None,
        context: Context | None = None,
    ) -> Completion | AsyncIterator[CompletionChunk]:
        """The completion, or (when `request.stream`) an async iterator of its chunks."""

    @abc.abstractmethod
    async def create_chat_completion(
        self,
        request: ChatCompletionRequest,
        raw_request: Any = None,
        context: Context | None = None,
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        """The chat completion, or (when `request.stream`) an async iterator of its chunks."""


class OpenAIEncoderModel(OpenAIModel):
    """Embeddings and rerank (`/v1/embeddings`, `/v1/rerank`)."""

    @abc.abstractmethod
    async def create_embedding(
        self,
        request: EmbeddingRequest,
        raw_request: Any = None,
        context: Context | None = None,
    ) -> Embedding:
        """One float vector per input; the server base64-encodes them when asked."""

    async def create_rerank(
        self,
        request: RerankRequest,
        raw_request: Any = None,
        context: Context | None = None,
    ) -> Rerank:
        """The documents scored against the query; by default the model has no rerank."""
        raise OpenAIInvalidRequest(f"Model {self.name} does not support the Rerank API", "model")
