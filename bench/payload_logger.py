"""Payload-logger benchmark: what KServe's `logger` costs a model server, in one run.

Why: the logger must never slow inference when its sink is slow or gone (issue 17: with the
sink down, RPS within 10% of no logger, and no request fails). The same iris model is served
by `ksrv serve` three ways, side by side:

- `off`: no logger (the baseline);
- `sink-down`: `--log-url` to a port nothing listens on (every event fails, is retried, and
  the queue fills: events are dropped and counted);
- `sink-up`: `--log-url` to a real CloudEvents sink in this process (`tests/event_sink.py`),
  `mode: all`: two events per request actually delivered (for information; sending costs
  CPU in the server's process).

Interleaved rounds of `wrk` (bench/wrk/post.lua, V1 predict with two iris rows), one server
loaded at a time (after a `sink-up` run, the next waits until its queue is sent); medians
over rounds and each configuration's ratio to `off`, for requests per second and for the
server's CPU time per request (from /proc: steadier than RPS on a shared machine, as CPU
that other processes take shows in RPS but not in it). Non-2xx
answers and socket errors are counted and reported: the bar wants none. With `taskset`
and two CPUs, servers run on CPU 0 and wrk on CPU 1.

    .venv/bin/python bench/payload_logger.py --rounds 3 --duration 5 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tests import models  # noqa: E402
from tests.event_sink import EventSink  # noqa: E402

WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"
BODY = json.dumps({"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]})
CONFIGS = ("off", "sink-down", "sink-up")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="passed to every server; 1 turns request merging off, whose batch sizes follow "
        "the load and so blur per-request figures",
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    """`taskset -c CPU` when there are two CPUs to keep server and load apart."""
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def start(
    config: str, model_dir: Path, sink_url: str, log_dir: Path, extra: list[str]
) -> tuple[Any, int]:
    port = free_port()
    command = [
        *pinned(0), sys.executable, "-m", "ksrv.cli.main", "serve", "--model-format",
        "sklearn", "--model-dir", str(model_dir), "--model-name", "iris",
        "--http-port", str(port), "--grpc-port", "0", "--log-level", "warning", *extra,
    ]  # fmt: skip
    if config == "sink-down":
        command += ["--log-url", f"http://127.0.0.1:{free_port()}/"]
    elif config == "sink-up":
        command += ["--log-url", sink_url, "--inference-service", "iris"]
    log = (log_dir / f"{config}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"{config}: server not ready; see {log_dir / f'{config}.log'}")


def run_wrk(port: int, connections: int, seconds: int) -> dict:
    command = [
        *pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}/v1/models/iris:predict",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "BENCH_BODY": BODY}
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT "))
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(v for k, v in result.items() if k.startswith("errors_"))
    if result["errors"]:
        kinds = {k: v for k, v in result.items() if k.startswith("errors_") and v}
        print(f"  port {port}: {kinds} (errors_status: answers >= 400)", flush=True)
    return result


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drained(port: int, timeout_s: float = 120.0) -> None:
    """Wait until the server has sent what it queued: its senders (and this process's sink)
    would otherwise still be busy during the next configuration's run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = logger_counts(port)
        if counts is None or counts["queued"] == 0:
            return
        time.sleep(0.2)


def logger_counts(port: int) -> dict | None:
    try:
        url = f"http://127.0.0.1:{port}/ksrv/server/payload-logger"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.load(answer))
    except OSError:
        return None


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    configs = args.configs.split(",")
    work = Path(tempfile.mkdtemp(prefix="ksrv-bench-logger-"))
    model_dir = models.sklearn_iris(work / "model")
    sink = EventSink()
    extra = [] if args.max_batch_size is None else ["--max-batch-size", str(args.max_batch_size)]
    servers = {config: start(config, model_dir, sink.url, work, extra) for config in configs}
    runs: dict[str, list[dict]] = {config: [] for config in configs}
    try:
        for round_index in range(args.rounds):
            order = configs[round_index % len(configs) :] + configs[: round_index % len(configs)]
            for config in order:
                port = servers[config][1]
                run_wrk(port, args.connections, args.warmup)
                process = servers[config][0]
                used_s = cpu_s(process.pid)
                result = run_wrk(port, args.connections, args.duration)
                # CPU per request: what the server spent, whatever else ran on the machine.
                result["cpu_us"] = (cpu_s(process.pid) - used_s) * 1e6 / max(1, result["requests"])
                runs[config].append(result)
                if config == "sink-up":
                    drained(port)
        counts = {config: logger_counts(servers[config][1]) for config in configs}
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(30)
        sink.close()
    report(args, runs, counts, len(sink.events))


def report(args: argparse.Namespace, runs: dict, counts: dict, delivered: int) -> None:
    print(
        f"V1 predict, iris 2 rows, {args.connections} connections, {args.rounds} rounds x "
        f"{args.duration}s; servers {'on CPU 0, wrk on CPU 1' if pinned(0) else 'unpinned'}"
        f"{'' if args.max_batch_size is None else f'; --max-batch-size {args.max_batch_size}'}"
    )
    baseline = statistics.median(run["rps"] for run in runs.get("off", [])) if "off" in runs else 0
    cpu_baseline = statistics.median(run["cpu_us"] for run in runs["off"]) if "off" in runs else 0
    print(f"{'config':<10} {'median rps':>11} {'vs off':>7} {'cpu us/req':>10} {'vs off':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  payload logger counts")  # fmt: skip
    for config, results in runs.items():
        rps = statistics.median(run["rps"] for run in results)
        p50 = statistics.median(run["p50_us"] for run in results) / 1000
        p99 = statistics.median(run["p99_us"] for run in results) / 1000
        errors = sum(run["errors"] for run in results)
        ratio = f"{rps / baseline:.3f}" if baseline else "-"
        found = counts.get(config)
        shown = (
            ", ".join(f"{k} {found[k]}" for k in ("submitted", "sent", "failed", "dropped"))
            if found
            else "-"
        )
        cpu = statistics.median(run["cpu_us"] for run in results)
        cpu_ratio = f"{cpu / cpu_baseline:.3f}" if cpu_baseline else "-"
        print(f"{config:<10} {rps:>11.0f} {ratio:>7} {cpu:>10.0f} {cpu_ratio:>7} {p50:>7.2f} "
              f"{p99:>7.2f} {errors:>6}  {shown}")  # fmt: skip
    print(f"events the in-process sink received: {delivered}")


if __name__ == "__main__":
    main()
