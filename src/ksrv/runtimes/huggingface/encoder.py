"""Encoder tasks over V1/V2: sequence and token classification, fill-mask, text embedding.

Outputs take KServe's shapes: a class index per text (or `{class: probability}` with
`--return_probabilities`, `{class: logit}` with `--return_raw_logits`), a list of class indices
per token, the predicted token per mask, and a mean-pooled, L2-normalised vector per text.
V1 `instances` are the texts; V2 takes them as the first input's BYTES elements (V2 answers
with one `output-0` tensor; dict-valued rows travel as JSON strings, as tensors hold no dicts).
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers
from ksrv.model.openai import OpenAIEncoderModel
from ksrv.protocol import v1, v2
from ksrv.protocol.openai.embeddings import Embedding
from ksrv.runtimes.huggingface import task as tasks
from ksrv.runtimes.huggingface.base import HuggingFaceModel

_AUTO_CLASSES = {
    tasks.SEQUENCE_CLASSIFICATION: "AutoModelForSequenceClassification",
    tasks.TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
    tasks.FILL_MASK: "AutoModelForMaskedLM",
    tasks.TEXT_EMBEDDING: "AutoModel",
}


class HuggingFaceEncoderModel(HuggingFaceModel, OpenAIEncoderModel):
    """A transformers encoder answering V1/V2 predict (and OpenAI embeddings for embeddings)."""

    def load(self) -> bool:
        self.load_pretrained(_AUTO_CLASSES[self.task])
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        texts = _texts(payload)
        rows, _ = self.infer(texts)
        if isinstance(payload, v2.InferRequest):
            cells = [json.dumps(row) if isinstance(row, dict | list) and _has_dict(row) else row
                     for row in rows]  # fmt: skip
            return v1.get_predict_response(payload, _tensor(cells), self.name)
        return {"predictions": rows}

    def infer(self, texts: list[str]) -> tuple[list[Any], int]:
        """KServe's answer row per text, and how many tokens the texts came to."""
        import torch

        if not texts:
            raise InvalidInput("Expected at least one text to encode")
        inputs = self.tokenizer(
            texts,
            max_length=self.max_length,
            add_special_tokens=not self.settings.disable_special_tokens,
            return_token_type_ids=self.settings.return_token_type_ids or None,
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            outputs = self.model(**inputs, return_dict=True)
        prompt_tokens = int(inputs["attention_mask"].sum())
        if self.task == tasks.TEXT_EMBEDDING:
            return _embeddings(outputs.last_hidden_state, inputs["attention_mask"]), prompt_tokens
        logits = outputs.logits.float()
        if self.task == tasks.SEQUENCE_CLASSIFICATION:
            return [self._classes(row) for row in logits], prompt_tokens
        if self.task == tasks.TOKEN_CLASSIFICATION:
            return [self._tokens(row) for row in logits], prompt_tokens
        return self._fill_mask(logits, inputs["input_ids"]), prompt_tokens

    def _classes(self, logits: Any) -> Any:
        if self.settings.return_raw_logits:
            return {str(index): float(value) for index, value in enumerate(logits)}
        if self.settings.return_probabilities:
            return _probabilities(logits)
        return int(logits.argmax())

    def _tokens(self, logits: Any) -> list[Any]:
        if self.settings.return_raw_logits or self.settings.return_probabilities:
            return [self._classes(token) for token in logits]
        return [int(index) for index in logits.argmax(dim=-1)]

    def _fill_mask(self, logits: Any, input_ids: Any) -> list[Any]:
        mask = self.tokenizer.mask_token_id
        if mask is None:
            raise InvalidInput(f"Model '{self.name}' has no mask token for fill_mask")
        rows: list[Any] = []
        for row_logits, ids in zip(logits, input_ids, strict=True):
            masked = row_logits[ids == mask]
            if self.settings.return_raw_logits:
                rows.append([[{str(i): float(v)} for i, v in enumerate(m)] for m in masked])
            elif self.settings.return_probabilities:
                probabilities = masked.softmax(dim=-1)
                rows.append([[{str(i): f"{float(v):.4f}"} for i, v in enumerate(p)]
                             for p in probabilities])  # fmt: skip
            else:
                rows.append(self.tokenizer.decode(masked.argmax(dim=-1)))
        return rows

    async def create_embedding(
        self, request: Any, raw_request: Any = None, context: Any = None
    ) -> Embedding:
        """An OpenAI embeddings response for `request` (`input`, `encoding_format`, `model`)."""
        if self.task != tasks.TEXT_EMBEDDING:
            raise InvalidInput(f"Model '{self.name}' is a {self.task} model, not an embedding one")
        texts = _embedding_input(_field(request, "input"))
        rows, prompt_tokens = self.infer(texts)
        encoding = _field(request, "encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidInput("encoding_format must be 'float' or 'base64'")
        data = [
            {"index": index, "object": "embedding",
             "embedding": _base64(row) if encoding == "base64" else row}
            for index, row in enumerate(rows)
        ]  # fmt: skip
        return Embedding.model_validate({
            "object": "list",
            "data": data,
            "model": _field(request, "model") or self.name,
            "created": int(time.time()),
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        })  # fmt: skip


def _texts(payload: Any) -> list[str]:
    if isinstance(payload, v2.InferRequest):
        if not payload.inputs:
            raise InvalidInput("The request has no inputs")
        values = payload.inputs[0].as_numpy().reshape(-1).tolist()
    else:
        values = v1.instances(v1.check_request(payload))
    texts = [value.decode() if isinstance(value, bytes) else value for value in values]
    if not all(isinstance(text, str) for text in texts):
        raise InvalidInput("Expected the instances to be strings")
    return texts


def _embedding_input(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    if isinstance(value, list) and value and not isinstance(value[0], str):
        # Token lists belong to OpenAI's tokenizer, not this model's (KServe refuses them too).
        raise InvalidInput("'input' as token lists is not supported")
    raise InvalidInput("'input' must be a string or a non-empty list of strings")


def _field(request: Any, name: str) -> Any:
    return request.get(name) if isinstance(request, dict) else getattr(request, name, None)


def _embeddings(hidden: Any, attention_mask: Any) -> list[list[float]]:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    normalised = pooled / pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
    return [[float(v) for v in row] for row in normalised.float()]


def _probabilities(logits: Any) -> dict[str, float]:
    # JSON object keys are strings: KServe's int class keys reach clients as "0", "1", ...
    return {str(index): float(f"{float(p):.4f}") for index, p in enumerate(logits.softmax(dim=-1))}


def _base64(row: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(row)}f", *row)).decode("ascii")


def _has_dict(row: Any) -> bool:
    if isinstance(row, dict):
        return True
    return isinstance(row, list) and any(_has_dict(item) for item in row)


def _tensor(rows: list[Any]) -> np.ndarray:
    if rows and all(isinstance(row, str) for row in rows):
        return np.array(rows, dtype=object)
    return np.asarray(rows)
