"""Body memory benchmark: what large request bodies cost the gateway and a replica, in RSS.

Why: a gateway that buffered every body whole grew to 1.77 GB after ten 110-200 MB bodies
the replica refused (issue 12), and a replica took 1.14 GB decoding one 50 MB JSON body.
One run starts an iris `ksrv serve` replica and a `ksrv gateway` in front of it (fed by
bench/gateway.py's route server), then measures, reading /proc/PID/status:

- gateway: ten 200 MB bodies (over the replicas' 100 MiB limit: 413), then ten 90 MB
  bodies (under it: streamed on to the replica, which refuses them), `--concurrency` at once;
  the gateway's RSS after each batch and its peak (VmHWM);
- replica: one 50 MB V2 JSON body sent straight to it; its peak RSS.

`--baseline-src PATH` (or KSRV_BASELINE_SRC) runs the same against another source tree
first, e.g. a `git worktree` of main: before/after in one run. Bar (issue 12): ten 200 MB
bodies leave the gateway under 300 MB RSS.

Run: `.venv/bin/python bench/body_memory.py [--baseline-src ../main/src]`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gateway as gateway_bench  # bench/gateway.py: the route server
import rest  # bench/rest.py: model training, process handling

MIB = 1024 * 1024
PATH = "/serving/default/iris/v2/models/iris/infer"
BAR_MB = 300


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", default=os.environ.get("KSRV_BASELINE_SRC"))
    parser.add_argument("--bodies", type=int, default=10, help="bodies per batch")
    parser.add_argument("--concurrency", type=int, default=1, help="bodies in flight at once")
    return parser.parse_args()


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of `pid`, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def post(port: int, path: str, size: int, piece: bytes) -> int:
    """POST `size` bytes (Content-Length, sent in 1 MiB pieces); the status, or 0 if none."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n"
        sock.sendall((head + "content-type: application/json\r\n\r\n").encode())
        sent = 0
        try:
            while sent < size:
                chunk = piece[: min(len(piece), size - sent)]
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # refused and closed early: the answer may still be readable
        try:
            answer = sock.recv(64)
        except OSError:
            return 0
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def batch(port: int, path: str, size: int, count: int, concurrency: int) -> list[int]:
    """`count` bodies of `size` bytes, `concurrency` at a time; their statuses."""
    piece = b"[" + b"0.5," * (MIB // 4 - 1) + b" "  # not valid JSON: no decode cost
    statuses = [0] * count

    def one(index: int) -> None:
        statuses[index] = post(port, path, size, piece)

    for first in range(0, count, concurrency):
        threads = [
            threading.Thread(target=one, args=(i,))
            for i in range(first, min(first + concurrency, count))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return statuses


def json_body(size: int) -> bytes:
    rows = size // 16
    data = b"0.5," * (rows * 4)
    return b'{"inputs":[{"name":"x","shape":[%d,4],"datatype":"FP32","data":[%b]}]}' % (
        rows,
        data[:-1],
    )


def start(name: str, argv: list[str], port: int, source: str | None) -> rest.Server:
    server = rest.Server(name, ("v2",), port, argv, rest.PROJECT_BIN / "python")
    if source:
        server.env = {"PYTHONPATH": str(Path(source).resolve())}
    rest.start(server)
    return server


def run(
    label: str, source: str | None, model_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    python = str(rest.PROJECT_BIN / "python")
    replica_port, gateway_port = rest.free_port(), rest.free_port()
    replica = start(f"{label}-replica",
                    [python, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn",
                     "--model-dir", str(model_dir), "--model-name", "iris",
                     "--http-port", str(replica_port), "--grpc-port", "0"],
                    replica_port, source)  # fmt: skip
    routes = gateway_bench.route_server(replica_port, 0)
    routes_url = f"http://127.0.0.1:{routes.server_address[1]}/ksrv/v1/routes"
    gateway = start(f"{label}-gateway",
                    [python, "-m", "ksrv.cli.main", "gateway", "--http-port", str(gateway_port),
                     "--grpc-port", "0", "--routes-url", routes_url],
                    gateway_port, source)  # fmt: skip
    result: dict[str, Any] = {"label": label}
    try:
        body = rest.request_body("v2")
        gateway_bench.wait_for(f"http://127.0.0.1:{replica_port}/v2/models/iris/infer", body)
        gateway_bench.wait_for(f"http://127.0.0.1:{gateway_port}{PATH}", body)
        assert gateway.proc is not None and replica.proc is not None
        result["gateway_idle"] = memory_mb(gateway.proc.pid)
        for size_mb in (200, 90):
            started = time.monotonic()
            size = size_mb * 1000 * 1000
            statuses = batch(gateway_port, PATH, size, args.bodies, args.concurrency)
            result[f"gateway_{size_mb}mb"] = {
                **memory_mb(gateway.proc.pid),
                "replica": memory_mb(replica.proc.pid),
                "statuses": sorted(set(statuses)),
                "s": round(time.monotonic() - started, 1),
            }
        direct = f"http://127.0.0.1:{replica_port}/v2/models/iris/infer"
        before = memory_mb(replica.proc.pid)
        status, _ = rest.http(direct, json_body(50 * 1000 * 1000), timeout=300)
        result["replica_json_50mb"] = {
            "status": status,
            "before": before,
            **memory_mb(replica.proc.pid),
        }
    finally:
        rest.stop_all([gateway, replica])
        routes.shutdown()
    return result


def report(results: list[dict[str, Any]]) -> None:
    print(f"\n{'':10} {'gateway idle':>13} {'after 10x200MB':>22} {'after 10x90MB':>22}"
          f" {'replica 50MB JSON':>26}")  # fmt: skip
    for result in results:
        idle = result["gateway_idle"]["VmRSS"]
        big, mid = result["gateway_200mb"], result["gateway_90mb"]
        replica = result["replica_json_50mb"]
        print(
            f"{result['label']:10} {idle:>10.0f} MB"
            f" {big['VmRSS']:>6.0f} MB (peak {big['VmHWM']:>5.0f})"
            f" {mid['VmRSS']:>6.0f} MB (peak {mid['VmHWM']:>5.0f})"
            f"   {replica['status']} peak {replica['VmHWM']:>5.0f} MB"
            f" (was {replica['before']['VmRSS']:.0f})"
        )
        print(f"{'':10} statuses: 200 MB {big['statuses']} in {big['s']} s, "
              f"90 MB {mid['statuses']} in {mid['s']} s; replica RSS after them: "
              f"{big['replica']['VmRSS']:.0f} MB, {mid['replica']['VmRSS']:.0f} MB")  # fmt: skip
    last = results[-1]["gateway_200mb"]["VmRSS"]
    print(f"\nbar: ten 200 MB bodies leave the gateway under {BAR_MB} MB RSS: "
          f"{'met' if last < BAR_MB else 'NOT met'} ({last:.0f} MB)")  # fmt: skip
    print(json.dumps(results, indent=1), file=sys.stderr)


def main() -> None:
    args = parse_args()
    model_dir = rest.train_model().parent
    results = []
    if args.baseline_src:
        results.append(run("baseline", args.baseline_src, model_dir, args))
    results.append(run("this tree", None, model_dir, args))
    report(results)


if __name__ == "__main__":
    main()
