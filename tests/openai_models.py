"""Custom OpenAI models for tests: a counting text generator and an encoder with fixed vectors.

Real user models (custom OpenAI models are a KServe feature), deterministic so tests can say
exactly what comes back. `counter` continues any prompt with " a1 a2 a3 ..." (choice 0; choice
1 says b1 b2, ...); a request with the vendor field `gate` (the openai client's `extra_body`)
stops after its first token until the test opens that gate through the model's own V1 route
(`{"open": KEY}`), and `{"state": KEY}` says whether that stream finished or was closed (the
client hung up); `templated` is the same generator serving chat through a chat template.
Run as a script it serves all three, KServe-style (`ModelServer().start`).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import ClassVar

from ksrv import (
    ModelServer,
    OpenAIChatAdapterModel,
    OpenAIEncoderModel,
    OpenAIGenerativeModel,
    model_server,
)
from ksrv.model.openai_chat_adapter import ChatPrompt
from ksrv.protocol.openai.chat import (
    AssistantMessage,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChoiceDelta,
)
from ksrv.protocol.openai.common import Usage, new_id
from ksrv.protocol.openai.completions import Completion, CompletionChoice, CompletionChunk
from ksrv.protocol.openai.embeddings import (
    Embedding,
    EmbeddingData,
    Rerank,
    RerankDocument,
    RerankResult,
)
from ksrv.protocol.openai.errors import ContextLengthExceeded

CONTEXT_WORDS = 64  # the "context window", in words
RELEASE_TIMEOUT_S = 90.0  # a gate never opened gives up (longer than any test wait)


class Counter(OpenAIGenerativeModel):
    gates: ClassVar[dict[str, asyncio.Event]] = {}
    states: ClassVar[dict[str, str]] = {}

    def __init__(self, name: str = "counter") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return True

    async def predict(self, payload, headers=None):
        """The test's controls: open a gate, read a stream's state."""
        if "open" in payload:
            Counter.gates.setdefault(payload["open"], asyncio.Event()).set()
            return {"opened": payload["open"]}
        return {"state": Counter.states.get(payload["state"], "unknown")}

    # -- generation ------------------------------------------------------------------------
    def _tokens(self, prompt: str, choice: int, max_tokens: int | None, stop: list[str], param):
        prompt_words = len(prompt.split())
        limit = max_tokens if max_tokens is not None else 8
        if prompt_words + limit > CONTEXT_WORDS:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {CONTEXT_WORDS} tokens; the prompt "
                f"has {prompt_words} and {limit} more were asked for",
                param,
            )
        letter = chr(ord("a") + choice)
        return prompt_words, [f" {letter}{k}" for k in range(1, limit + 1)], stop

    async def _pieces(self, tokens: list[str], stop: list[str], gate: str | None):
        """(text, finish_reason) per token; the text of a stop sequence never shows."""
        text = ""
        for position, token in enumerate(tokens):
            candidate = text + token
            cut = min((candidate.find(s) for s in stop if s in candidate), default=-1)
            if cut >= 0:
                if cut > len(text):
                    yield candidate[len(text) : cut], None
                yield "", "stop"
                return
            text = candidate
            yield token, "length" if position == len(tokens) - 1 else None
            if position == 0 and gate is not None:
                event = Counter.gates.setdefault(gate, asyncio.Event())
                await asyncio.wait_for(event.wait(), RELEASE_TIMEOUT_S)
        yield "", "length"

    async def _generate(self, prompts: list[str], request, param):
        """(index, text, finish, prompt_words) for every prompt and choice, streamed."""
        gate = (request.model_extra or {}).get("gate")
        max_tokens = getattr(request, "max_tokens", None)
        if hasattr(request, "max_new_tokens"):
            max_tokens = request.max_new_tokens()
        plans = []
        for p, prompt in enumerate(prompts):
            for i in range(request.n):
                words, tokens, stop = self._tokens(
                    prompt, i, max_tokens, request.stop_sequences(), param
                )
                plans.append((p * request.n + i, words, tokens, stop))
        if gate is not None:
            Counter.states[gate] = "streaming"
        outcome = "closed"
        try:
            for index, words, tokens, stop in plans:
                async for text, finish in self._pieces(tokens, stop, gate):
                    yield index, text, finish, words
            outcome = "finished"
        finally:
            if gate is not None:
                Counter.states[gate] = outcome

    @staticmethod
    def _usage(prompt_words: dict[int, int], generated: dict[int, int]) -> Usage:
        prompt = sum(prompt_words.values())
        completion = sum(generated.values())
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    async def create_completion(self, request, raw_request=None, context=None):
        prompts = [p if isinstance(p, str) else " ".join(map(str, p)) for p in request.prompts()]
        pieces = self._generate(prompts, request, "prompt")
        first = await anext(pieces)  # raises ContextLengthExceeded before anything streams
        ident = new_id("cmpl")
        if not request.stream:
            texts, finishes, words, counts = {}, {}, {}, {}
            for index, text, finish, prompt_words in [first] + [p async for p in pieces]:
                texts[index] = texts.get(index, "") + text
                counts[index] = counts.get(index, 0) + (1 if text else 0)
                words[index // request.n] = prompt_words
                if finish:
                    finishes[index] = finish
            choices = [CompletionChoice(index=i, text=texts[i], finish_reason=finishes.get(i))
                       for i in sorted(texts)]  # fmt: skip
            return Completion(id=ident, model=request.model, choices=choices,
                              usage=self._usage(words, counts))  # fmt: skip

        async def stream():
            words, counts = {}, {}
            async for index, text, finish, prompt_words in _achain(first, pieces):
                words[index // request.n] = prompt_words
                counts[index] = counts.get(index, 0) + (1 if text else 0)
                choice = CompletionChoice(index=index, text=text, finish_reason=finish)
                yield CompletionChunk(id=ident, model=request.model, choices=[choice])
            yield CompletionChunk(id=ident, model=request.model, usage=self._usage(words, counts))

        return stream()

    async def create_chat_completion(self, request, raw_request=None, context=None):
        prompt = " ".join(message.text() for message in request.messages)
        pieces = self._generate([prompt], request, "messages")
        first = await anext(pieces)
        ident = new_id("chatcmpl")
        if not request.stream:
            texts, finishes, counts = {}, {}, {}
            words = first[3]
            for index, text, finish, _ in [first] + [p async for p in pieces]:
                texts[index] = texts.get(index, "") + text
                counts[index] = counts.get(index, 0) + (1 if text else 0)
                if finish:
                    finishes[index] = finish
            choices = [
                ChatCompletionChoice(index=i, message=AssistantMessage(content=texts[i]),
                                     finish_reason=finishes.get(i))
                for i in sorted(texts)
            ]  # fmt: skip
            return ChatCompletion(id=ident, model=request.model, choices=choices,
                                  usage=self._usage({0: words}, counts))  # fmt: skip

        async def stream():
            roles = [
                ChatChunkChoice(index=i, delta=ChoiceDelta(role="assistant", content=""))
                for i in range(request.n)
            ]
            yield ChatCompletionChunk(id=ident, model=request.model, choices=roles)
            counts = {}
            async for index, text, finish, _ in _achain(first, pieces):
                counts[index] = counts.get(index, 0) + (1 if text else 0)
                delta = ChoiceDelta(content=text) if text else ChoiceDelta()
                choice = ChatChunkChoice(index=index, delta=delta, finish_reason=finish)
                yield ChatCompletionChunk(id=ident, model=request.model, choices=[choice])
            yield ChatCompletionChunk(
                id=ident, model=request.model, usage=self._usage({0: first[3]}, counts)
            )

        return stream()


async def _achain(first, rest):
    """`first`, then the rest of an async generator; closing this closes the generator."""
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


class Templated(OpenAIChatAdapterModel, Counter):
    """`counter` serving chat through a chat template (KServe's chat adapter)."""

    def __init__(self, name: str = "templated") -> None:
        Counter.__init__(self, name)

    def apply_chat_template(self, request):
        turns = " ".join(f"<{m.role}> {m.text()}" for m in request.messages)
        return ChatPrompt(prompt=f"{turns} <assistant>")


class Vectors(OpenAIEncoderModel):
    """Embeddings: `[characters, words, 0.5, -1.0]` per input; rerank: shared words."""

    def __init__(self, name: str = "vectors") -> None:
        super().__init__(name)

    def load(self) -> bool:
        self.ready = True
        return True

    async def create_embedding(self, request, raw_request=None, context=None):
        texts = [t if isinstance(t, str) else " ".join(map(str, t)) for t in request.inputs()]
        data = [
            EmbeddingData(index=i, embedding=[float(len(t)), float(len(t.split())), 0.5, -1.0])
            for i, t in enumerate(texts)
        ]
        words = sum(len(t.split()) for t in texts)
        usage = Usage(prompt_tokens=words, completion_tokens=None, total_tokens=words)
        return Embedding(data=data, model=request.model, usage=usage)

    async def create_rerank(self, request, raw_request=None, context=None):
        query = set(request.query.split())
        results = [
            RerankResult(
                index=i,
                relevance_score=len(query & set(doc.split())) / max(len(doc.split()), 1),
                document=RerankDocument(text=doc) if request.return_documents else None,
            )
            for i, doc in enumerate(request.documents)
        ]
        results.sort(key=lambda r: -r.relevance_score)
        return Rerank(id=new_id("rerank"), model=request.model, results=results[: request.top_n])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.parse_args()
    ModelServer().start([Counter(), Vectors(), Templated()])
