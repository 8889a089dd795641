"""ksrv's OpenAI endpoint on the vLLM backend vs vLLM's own OpenAI server, same model, same run.

Builds the tests' tiny Llama (`--hidden`, `--layers`; vLLM's CPU attention needs a head size of
32 or more), starts `ksrv serve --model-format huggingface -- --backend vllm ...` and
`python -m vllm.entrypoints.openai.api_server` on it with the same engine flags, and sends the
same greedy completions to both, one request at a time, interleaved request by request (the
order alternating): whole answers, and streamed ones (time to the first text and to the last).
Prints each server's median latency, the ratio of the medians and the median of the paired
ratios ksrv / vLLM (the bar: <= 1.05), and whether both answered the same text.
Run it with the venv that has vLLM:

    make .venv-vllm/.installed
    PYTHONPATH=src:. .venv-vllm/bin/python bench/vllm_overhead.py [--rounds 10 --requests 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests import hf_models
from tests.conftest import KSRV, ServerProcess, free_port

PROMPTS = ["the quick brown fox", "hello world", "serving models", "a small model answers"]
STARTUP_S = 600.0


def engine_flags(args: argparse.Namespace) -> list[str]:
    """vLLM's engine flags, identical for both servers."""
    return [
        "--max-model-len", "256", "--kv-cache-memory-bytes", str(256 << 20),
        *(["--enforce-eager"] if args.eager else []),
    ]  # fmt: skip


def start_servers(directory: Path, args: argparse.Namespace) -> dict[str, ServerProcess]:
    flags = engine_flags(args)
    ksrv_port, vllm_port = free_port(), free_port()
    ksrv = ServerProcess(
        [*KSRV, "serve", "--http-port", str(ksrv_port), "--grpc-port", "0",
         "--model-format", "huggingface", "--model-dir", str(directory), "--model-name",
         "llama", "--", "--backend", "vllm", *flags],
        ksrv_port,
    )  # fmt: skip
    vllm = ServerProcess(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(directory),
         "--served-model-name", "llama", "--host", "127.0.0.1", "--port", str(vllm_port),
         "--disable-log-stats", "--uvicorn-log-level", "warning", *flags],
        vllm_port,
    )  # fmt: skip
    servers = {"ksrv": ksrv, "vllm": vllm}
    try:
        ksrv.wait_ready(STARTUP_S)
        vllm.wait_ready(STARTUP_S, path="/health")
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds used so far by process `pid`, and by it with every descendant (vLLM's engine
    and worker processes): what each server spends, whatever else loads the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree = {pid}
    for _ in range(4):  # server -> engine core -> worker
        tree |= {child for child, (parent, _) in stats.items() if parent in tree}
    total = sum(stats[member][1] for member in tree if member in stats)
    return stats.get(pid, (0, 0.0))[1], total


def completions_url(name: str, server: ServerProcess) -> str:
    """ksrv serves OpenAI under KServe's `/openai` prefix; vLLM's server at the root."""
    return f"{server.url}{'/openai' if name == 'ksrv' else ''}/v1/completions"


def body(index: int, tokens: int, stream: bool) -> dict[str, object]:
    return {"model": "llama", "prompt": PROMPTS[index % len(PROMPTS)], "max_tokens": tokens,
            "temperature": 0, "stream": stream}  # fmt: skip


def whole(client: httpx.Client, url: str, index: int, tokens: int) -> tuple[float, str]:
    started = time.perf_counter()
    answer = client.post(url, json=body(index, tokens, False))
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed, answer.json()["choices"][0]["text"]


def streamed(client: httpx.Client, url: str, index: int, tokens: int) -> tuple[float, float, str]:
    """(time to the first text, time to `[DONE]`, the text)."""
    started, first, text = time.perf_counter(), 0.0, ""
    with client.stream("POST", url, json=body(index, tokens, True)) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:])["choices"]
            if choices and choices[0]["text"] and not first:
                first = time.perf_counter() - started
            text += choices[0]["text"] if choices else ""
    return first, time.perf_counter() - started, text


def run(servers: dict[str, ServerProcess], args: argparse.Namespace) -> None:
    kinds = ("whole", "first", "stream")
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in kinds} for n in servers}
    texts: dict[str, dict[int, str]] = {name: {} for name in servers}
    with httpx.Client(timeout=60) as client:
        for name in servers:  # warm both (first requests pay one-off costs)
            for index in range(8):
                whole(client, completions_url(name, servers[name]), index, args.tokens)
        cpu_before = {n: cpu_seconds(server.process.pid) for n, server in servers.items()}
        for round_ in range(args.rounds):
            for index in range(args.requests):
                # Request by request, the order alternating: the machine's load (other
                # processes on shared cores) falls on both servers alike.
                order = list(servers) if (round_ + index) % 2 == 0 else list(reversed(servers))
                for name in order:
                    url = completions_url(name, servers[name])
                    elapsed, text = whole(client, url, index, args.tokens)
                    first, total, streamed_text = streamed(client, url, index, args.tokens)
                    assert streamed_text == text, (name, streamed_text, text)
                    texts[name][index % len(PROMPTS)] = text
                    for kind, value in zip(kinds, (elapsed, first, total), strict=True):
                        times[name][kind].append(value)
            recent = {n: statistics.median(times[n]["whole"][-args.requests :]) for n in servers}
            print(f"round {round_ + 1}/{args.rounds}: whole answer, median "
                  + " | ".join(f"{n} {t * 1000:.1f} ms" for n, t in recent.items()))  # fmt: skip
    requests = args.rounds * args.requests * 2  # a whole answer and a stream each
    for name, server in servers.items():
        (front, tree), (front_0, tree_0) = cpu_seconds(server.process.pid), cpu_before[name]
        print(f"{name}: CPU per request {(front - front_0) / requests * 1000:.1f} ms in the "
              f"server process, {(tree - tree_0) / requests * 1000:.1f} ms with vLLM's "
              "engine and worker")  # fmt: skip
    same = texts["ksrv"] == texts["vllm"]
    print(f"same text from both servers: {same}")
    for index, text in texts["ksrv"].items():
        if text != texts["vllm"].get(index):
            print(f"  prompt {PROMPTS[index]!r}: ksrv {text!r}, vllm {texts['vllm'].get(index)!r}")
    print(f"{'median latency':<22}{'ksrv':>10}{'vllm':>10}{'ratio':>8}{'paired ratio':>14}")
    for kind, label in (("whole", "whole answer"), ("first", "stream: first text"),
                        ("stream", "stream: to [DONE]")):  # fmt: skip
        ours, theirs = times["ksrv"][kind], times["vllm"][kind]
        paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
        print(f"{label:<22}{ours_ms:>8.1f}ms{theirs_ms:>8.1f}ms{ours_ms / theirs_ms:>8.3f}"
              f"{paired:>14.3f}")  # fmt: skip
    for index, prompt in enumerate(PROMPTS):  # the first text depends on what is decodable
        firsts = {
            n: statistics.median(times[n]["first"][index :: len(PROMPTS)]) * 1000 for n in servers
        }
        print(f"  stream: first text for {prompt!r}: "
              + ", ".join(f"{n} {t:.1f} ms" for n, t in firsts.items()))  # fmt: skip
    print(f"({args.rounds} rounds x {args.requests} requests per server and kind, "
          f"{args.tokens} new tokens each, greedy, one at a time; paired ratio: the median of "
          "ksrv/vLLM over requests sent back to back)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--eager", action=argparse.BooleanOptionalAction, default=True,
                        help="--enforce-eager for both (no torch.compile warm-up)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as folder:
        directory = hf_models.tiny_llama(Path(folder), hidden=args.hidden, layers=args.layers)
        print(f"Llama hidden {args.hidden}, {args.layers} layers; vLLM flags: "
              f"{' '.join(engine_flags(args))}")  # fmt: skip
        servers = start_servers(directory, args)
        try:
            run(servers, args)
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()
