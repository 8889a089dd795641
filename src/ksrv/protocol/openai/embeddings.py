"""`POST /v1/embeddings` and `POST /v1/rerank`: the encoder endpoints.

A model returns its vectors as floats; the server encodes them as base64 (little-endian
float32, what OpenAI sends and its client asks for by default) when `encoding_format` says so.
"""

from __future__ import annotations

import base64
import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from ksrv.protocol.openai.common import OpenAIRequest, Usage

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenAIRequest):
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    @field_validator("input")
    @classmethod
    def _input_not_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if isinstance(value, list) and not value:
            raise ValueError("must not be an empty list")
        return value

    def inputs(self) -> list[str | list[int]]:
        """The input(s) as a list: strings or token id lists."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(item, int) for item in value):
            return [[int(item) for item in value]]  # type: ignore[arg-type]
        return list(value)  # type: ignore[arg-type]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int = 0
    embedding: list[float] | str


class Embedding(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData] = Field(default_factory=list)
    model: str
    usage: Usage = Field(default_factory=Usage)


def as_base64(embedding: Embedding) -> Embedding:
    """The same vectors, each as base64 of its little-endian float32 bytes."""
    data = [
        EmbeddingData(
            index=item.index,
            embedding=base64.b64encode(np.asarray(item.embedding, dtype="<f4").tobytes()).decode(),
        )
        if isinstance(item.embedding, list)
        else item
        for item in embedding.data
    ]
    return embedding.model_copy(update={"data": data})


class RerankRequest(OpenAIRequest):
    """Cohere/Jina-style rerank, as vLLM and KServe serve it."""

    query: str
    documents: list[str] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = True


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class Rerank(BaseModel):
    id: str
    object: Literal["rerank"] = "rerank"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    results: list[RerankResult] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
