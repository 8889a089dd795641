"""Continuous batching in the huggingface runtime: 16 concurrent clients vs one at a time.

Builds a randomly initialised Llama (the tests' tokenizer and chat template; `--hidden` and
`--layers` set its size), loads it with ksrv's runtime and sends the same completions
(`--clients` x `--tokens` new tokens, greedy) twice in the same run: all at once, sharing the
batch, and one after the other. End-of-sequence is switched off so every request generates
exactly `--tokens` tokens. Also times a lone request against transformers' own `generate`,
to show a lone request is not slowed.

    PYTHONPATH=src:. .venv/bin/python bench/llm_batching.py [--hidden 256 --layers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from ksrv.runtimes.huggingface.base import HuggingFaceModel
from tests import hf_models

PROMPTS = ["the quick brown fox", "hello world", "serving models", "a small model answers"]


def request(index: int, tokens: int) -> dict[str, object]:
    return {"prompt": PROMPTS[index % len(PROMPTS)], "max_tokens": tokens, "temperature": 0}


async def concurrent(model: HuggingFaceModel, clients: int, tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(model.create_completion(request(i, tokens)) for i in range(clients))  # type: ignore[attr-defined]
    )
    return time.perf_counter() - started, sum(a.usage.completion_tokens for a in answers)


async def one_at_a_time(model: HuggingFaceModel, clients: int, tokens: int) -> tuple[float, int]:
    started, total = time.perf_counter(), 0
    for i in range(clients):
        answer = await model.create_completion(request(i, tokens))  # type: ignore[attr-defined]
        total += answer.usage.completion_tokens
    return time.perf_counter() - started, total


def plain_generate_s(model: HuggingFaceModel, tokens: int, rounds: int) -> float:
    import torch

    ids = model.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with torch.inference_mode():
            model.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False, pad_token_id=3)  # fmt: skip
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def lone_s(model: HuggingFaceModel, tokens: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await model.create_completion(request(0, tokens))  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def run(args: argparse.Namespace, model: HuggingFaceModel) -> None:
    await concurrent(model, args.clients, 4)  # warm the batching thread and the cache
    ratios = []
    for round_ in range(args.rounds):
        together_s, together_tokens = await concurrent(model, args.clients, args.tokens)
        alone_s, alone_tokens = await one_at_a_time(model, args.clients, args.tokens)
        together, alone = together_tokens / together_s, alone_tokens / alone_s
        ratios.append(together / alone)
        print(
            f"round {round_ + 1}: {args.clients} concurrent {together:7.1f} tok/s "
            f"({together_tokens} tokens, {together_s:.2f} s) | one at a time {alone:7.1f} tok/s "
            f"({alone_tokens}, {alone_s:.2f} s) | x{together / alone:.2f}"
        )
    print(f"median speedup x{statistics.median(ratios):.2f} over {args.rounds} rounds")
    lone = await lone_s(model, args.tokens, 5)
    plain = plain_generate_s(model, args.tokens, 5)
    print(f"lone request, {args.tokens} tokens: ksrv {lone * 1000:.0f} ms, "
          f"transformers generate {plain * 1000:.0f} ms (median of 5)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads ($TORCH_NUM_THREADS)"
    )
    args = parser.parse_args()
    os.environ["TORCH_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        directory = hf_models.tiny_llama(Path(folder), hidden=args.hidden, layers=args.layers)
        model = HuggingFaceModel("llama", directory)
        model.load()
        model.generator.eos_token_ids = []  # type: ignore[attr-defined]  # exactly --tokens each
        print(f"Llama hidden {args.hidden}, {args.layers} layers; {args.clients} clients x "
              f"{args.tokens} new tokens, greedy; torch threads: {args.threads}")  # fmt: skip
        try:
            asyncio.run(run(args, model))
        finally:
            model.stop()


if __name__ == "__main__":
    main()
