"""Response-cache benchmark: identical V2 requests, cached vs uncached, in one run.

Why: issue 19's bar: with the cache on, repeated identical V2 requests are answered at least
5x faster than uncached, for a model whose predict costs at least 5 ms. The same toy model
(`tests/cache_toy.py:SlowCounter`, predict sleeps 10 ms) is served by two `ksrv serve`
processes side by side: one with `--response-cache-bytes`, one without. One client (httpx,
keep-alive) sends the same V2 request back to back; rounds interleave the servers. Per
configuration: the median latency over every timed request, and its ratio to `uncached`:

- `uncached`: no cache (the baseline: every request calls the model);
- `hit`: the cached server, the same request each time (one miss in the warm-up, then hits);
- `miss`: the cached server, a different request each time (what the cache costs a miss).

    .venv/bin/python bench/response_cache.py --rounds 3 --requests 200
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MODEL = f"{ROOT / 'tests' / 'cache_toy.py'}:SlowCounter"
CONFIGS = ("uncached", "hit", "miss")


def body(value: float) -> bytes:
    inputs = [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [value, 2, 3, 4]}]
    return json.dumps({"inputs": inputs}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(flags: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "ksrv.cli.main", "serve", MODEL, "--model-name", "slow",
        "--http-port", str(port), "--grpc-port", "0", "--log-level", "warning", *flags,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start: {log.read_text()}")


def timed(client: httpx.Client, url: str, bodies: list[bytes]) -> list[float]:
    path = url + "/v2/models/slow/infer"
    headers = {"content-type": "application/json"}
    latencies = []
    for content in bodies:
        started = time.perf_counter()
        response = client.post(path, content=content, headers=headers)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{response.status_code}: {response.text}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per run")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="ksrv-bench-cache-"))
    uncached = start([], logs / "uncached.log")
    cached = start(["--response-cache-bytes", str(64 * 2**20)], logs / "cached.log")
    urls = {"uncached": uncached[1], "hit": cached[1], "miss": cached[1]}
    latencies: dict[str, list[float]] = {config: [] for config in CONFIGS}
    distinct = iter(range(1, 10**9))
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(args.rounds):
                for config in CONFIGS:
                    if config == "miss":
                        bodies = [body(next(distinct)) for _ in range(args.requests)]
                    else:
                        bodies = [body(0.0)] * args.requests
                    timed(client, urls[config], bodies[:10])  # warm-up (the hit's one miss)
                    latencies[config] += timed(client, urls[config], bodies)
    finally:
        for process, _url in (uncached, cached):
            process.terminate()
            process.wait(10)
    baseline = statistics.median(latencies["uncached"])
    print(f"{'config':<10} {'median ms':>10} {'p90 ms':>8} {'speed-up':>9}")
    for config in CONFIGS:
        values = sorted(latencies[config])
        median = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(f"{config:<10} {median * 1e3:>10.3f} {p90 * 1e3:>8.3f} {baseline / median:>8.1f}x")


if __name__ == "__main__":
    main()
