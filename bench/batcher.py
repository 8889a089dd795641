"""KServe's `batcher` on a small torch model: batched against unbatched throughput, same run.

Builds a TorchScript MLP (`--features` inputs, `--layers` hidden layers of `--hidden` units,
10 outputs; by default 16 MB of weights, which a one-row forward reads for one row's
arithmetic and a 32-row forward for 32 rows') and serves it from two `ksrv serve
--model-format pytorch` processes side by side: `unbatched` (no batcher: every request is its
own forward) and `batched` (`--max-batch-size`, `--max-latency-ms`, what `predictor.batcher`
passes to a replica). Both are pinned to CPU 0 with one torch thread, wrk (bench/wrk/post.lua)
to CPU 1; interleaved rounds of one-row V1 requests at `--connections`; medians over rounds
and the ratio, in requests per second and in requests per CPU-second of the server process
(its utime + stime during the run): on a machine others share, the second says what the
server does with the CPU it got.

    PYTHONPATH=src .venv/bin/python bench/batcher.py [--rounds 3 --duration 5 --connections 64]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"
SERVER_CPU, WRK_CPU = "0", "1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds before each timed run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-latency-ms", type=int, default=20)
    return parser.parse_args()


def build_model(directory: Path, features: int, hidden: int, layers: int) -> None:
    """A randomly initialised MLP saved as TorchScript (`model.pt`)."""
    import torch

    torch.manual_seed(0)
    widths = [features] + [hidden] * layers
    modules: list[torch.nn.Module] = []
    for width_in, width_out in itertools.pairwise(widths):
        modules += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
    modules.append(torch.nn.Linear(widths[-1], 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what users have
        scripted = torch.jit.script(torch.nn.Sequential(*modules).eval())
    torch.jit.save(scripted, directory / "model.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(model_dir: Path, flags: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        "taskset", "-c", SERVER_CPU, sys.executable, "-m", "ksrv.cli.main", "serve",
        "--model-format", "pytorch", "--model-dir", str(model_dir), "--model-name", "mlp",
        "--http-port", str(port), "--grpc-port", "0", "--log-level", "warning", *flags,
    ]  # fmt: skip
    env = {**os.environ, "TORCH_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited early; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"server not ready; see {log}")


def predict(url: str, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(
        f"{url}/v1/models/mlp:predict", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def cpu_s(pid: int) -> float:
    """CPU time the process has used (user + system; all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, body: bytes, connections: int, seconds: int) -> dict[str, float]:
    command = [
        "taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", "10s", "-s", str(WRK_SCRIPT), f"{url}/v1/models/mlp:predict",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY": body.decode()}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, float] = json.loads(line.removeprefix("BENCH_RESULT "))
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    sys.exit(f"wrk printed no result:\n{done.stdout}{done.stderr}")


def main() -> None:
    args = parse_args()
    row = [round((index % 7) / 7 - 0.5, 3) for index in range(args.features)]
    body = json.dumps({"instances": [row]}).encode()
    batcher = ["--max-batch-size", str(args.max_batch_size)]
    batcher += ["--max-latency-ms", str(args.max_latency_ms)]
    with tempfile.TemporaryDirectory(prefix="ksrv-batcher-") as scratch:
        model_dir = Path(scratch)
        build_model(model_dir, args.features, args.hidden, args.layers)
        servers = {
            "unbatched": start(model_dir, [], model_dir / "unbatched.log"),
            "batched": start(model_dir, batcher, model_dir / "batched.log"),
        }
        try:
            results = measure(args, servers, body)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(15)
    report(args, results)


def measure(
    args: argparse.Namespace, servers: dict[str, tuple[subprocess.Popen[bytes], str]], body: bytes
) -> dict[str, list[dict[str, float]]]:
    answers = {name: predict(url, body) for name, (_, url) in servers.items()}
    if "batchId" not in answers["batched"]:
        sys.exit("the batched server did not answer as a batcher (no batchId)")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for round_index in range(args.rounds):
        order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
        for name in order:
            process, url = servers[name]
            run_wrk(url, body, args.connections, args.warmup)
            used_before = cpu_s(process.pid)
            result = run_wrk(url, body, args.connections, args.duration)
            result["per_cpu_s"] = result["requests"] / (cpu_s(process.pid) - used_before)
            results[name].append(result)
            print(
                f"round {round_index + 1} {name}: {result['rps']:.0f} req/s, "
                f"{result['per_cpu_s']:.0f} req/CPU-s",
                flush=True,
            )
    return results


def report(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> None:
    print(
        f"\nMLP {args.features}->{'x'.join([str(args.hidden)] * args.layers)}->10, one-row V1 "
        f"requests, {args.connections} connections, medians of {args.rounds} rounds of "
        f"{args.duration}s; batcher: max batch {args.max_batch_size}, "
        f"max latency {args.max_latency_ms} ms"
    )
    medians, per_cpu = {}, {}
    for name, runs in results.items():
        medians[name] = statistics.median(run["rps"] for run in runs)
        per_cpu[name] = statistics.median(run["per_cpu_s"] for run in runs)
        p50 = statistics.median(run["p50_us"] for run in runs) / 1000
        p99 = statistics.median(run["p99_us"] for run in runs) / 1000
        errors = sum(run["errors_status"] + run["errors_timeout"] for run in runs)
        print(
            f"  {name:10} {medians[name]:8.0f} req/s  {per_cpu[name]:8.0f} req/CPU-s  "
            f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}"
        )
    print(
        f"  batched / unbatched: {medians['batched'] / medians['unbatched']:.2f}x req/s, "
        f"{per_cpu['batched'] / per_cpu['unbatched']:.2f}x req/CPU-s"
    )


if __name__ == "__main__":
    main()
