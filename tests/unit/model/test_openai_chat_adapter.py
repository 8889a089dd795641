"""KServe's chat adapter: chat settings onto a completion request, answers back into chat."""

from __future__ import annotations

from ksrv.model import openai_chat_adapter as adapter
from ksrv.protocol.openai.chat import ChatCompletionRequest
from ksrv.protocol.openai.common import Usage
from ksrv.protocol.openai.completions import Completion, CompletionChoice, CompletionLogprobs

HI = [{"role": "user", "content": "hi"}]


def test_chat_settings_carry_over_to_the_completion_request():
    chat = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": HI, "max_completion_tokens": 7, "n": 2, "stop": "x",
         "logprobs": True, "top_logprobs": 9, "seed": 3, "top_k": 4}
    )  # fmt: skip
    request = adapter.completion_request(chat, "PROMPT")
    assert (request.prompt, request.max_tokens, request.n, request.stop) == ("PROMPT", 7, 2, "x")
    assert request.logprobs == 5  # completions cap it at 5
    assert request.seed == 3 and request.model_extra == {"top_k": 4}
    assert adapter.completion_request(
        ChatCompletionRequest(model="m", messages=HI), "p"
    ).logprobs is None  # fmt: skip


def test_a_completion_becomes_a_chat_completion_with_every_choice():
    logprobs = CompletionLogprobs(
        tokens=["a", "b"], token_logprobs=[-0.5, -1.0], top_logprobs=[{"a": -0.5}, {"b": -1.0}]
    )
    completion = Completion(
        id="c", model="m", created=1,
        choices=[CompletionChoice(index=0, text="ab", logprobs=logprobs, finish_reason="stop"),
                 CompletionChoice(index=1, text="x", finish_reason="length")],
        usage=Usage(prompt_tokens=1, completion_tokens=3, total_tokens=4),
    )  # fmt: skip
    chat = adapter.chat_completion(completion)
    assert [(c.index, c.message.content, c.finish_reason) for c in chat.choices] == [
        (0, "ab", "stop"),
        (1, "x", "length"),
    ]
    first = chat.choices[0].logprobs
    assert first is not None and first.content is not None
    assert [(t.token, t.logprob, t.bytes) for t in first.content] == [
        ("a", -0.5, [97]),
        ("b", -1.0, [98]),
    ]
    assert first.content[1].top_logprobs[0].token == "b"
    assert chat.usage == completion.usage and chat.object == "chat.completion"
