"""Gateway benchmark: what the proxy hop costs, measured against the replica it fronts.

Why: every request of the local platform goes through `ksrv gateway`, so its cost must stay
small next to the model server's own. One run starts one `ksrv serve` replica (iris sklearn,
1 worker, pinned to CPU 0) and one `ksrv gateway` (pinned to CPU 1, with wrk), fed a route
table by a tiny long-poll server in this process, then runs interleaved wrk rounds (V2 REST)
straight at the replica and through the gateway (`/serving/default/iris/...`), and prints
medians: RPS, p50/p99 both ways, the p50 the hop adds, and the gateway's CPU time per proxied
request (utime + stime from /proc/PID/stat around each timed run, over wrk's request count).

Bars (issue 11): at most 50 us of gateway CPU per request and at least 0.9x the replica's
direct RPS, at 8 connections. `--gateway-workers N` runs `ksrv gateway --workers N` (still
pinned to the one gateway CPU; its CPU time is summed over the worker processes).

`--baseline-src DIR` also starts a gateway from another checkout's `src` (e.g. main's, before a
change) and measures it interleaved with this one in the same run, so a before/after on a busy
machine compares like with like. `--auth` marks the service `enable_auth` (as
`serving.kserve.io/enable-auth: "true"` does) and sends a valid bearer token with every
request: what the token check costs per request.

Run: `.venv/bin/python bench/gateway.py` (`--help` for rounds, duration, connections).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import rest  # bench/rest.py: model training, wrk runner, process handling

GATEWAY_CPU = 1
PATH = "/v2/models/iris/infer"
GATEWAY_PREFIX = "/serving/default/iris"
BARS = {"cpu_us": 50.0, "rps_ratio": 0.9}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 8, 64],
        help="wrk connection counts (default 1,8,64); at 1 the added p50 is the bare hop, at "
        "8 and 64 the replica is saturated and latency is mostly queueing",
    )
    parser.add_argument("--gateway-workers", type=int, default=1, help="ksrv gateway --workers")
    parser.add_argument(
        "--replica-batch-size",
        type=int,
        help="ksrv serve --max-batch-size for the replica (1: every request answered on its "
        "own; by default it merges requests that arrive together, so how they arrive changes "
        "its cost per request)",
    )
    parser.add_argument(
        "--auth", action="store_true", help="protect the service; every request has a token"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure a gateway run from this src directory (PYTHONPATH), same run",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure bench/proxy_floor.py (a bare proxy: the least Python can do), same run",
    )
    return parser.parse_args()


def route_server(replica_port: int, replica_grpc: int, token: str = "") -> ThreadingHTTPServer:
    """Answers the gateway's long polls with one fixed table (version 1); with `token`, the
    service requires it."""
    table: dict[str, Any] = {
        "version": 1,
        "domain": "example.com",
        "services": [
            {
                "namespace": "default",
                "name": "iris",
                "timeout_s": 60.0,
                "entry": "predictor",
                "components": {
                    "predictor": {
                        "backends": [
                            {
                                "revision": "iris-predictor-00001",
                                "percent": 100,
                                "replicas": [
                                    {
                                        "http": f"127.0.0.1:{replica_port}",
                                        "grpc": f"127.0.0.1:{replica_grpc}",
                                    }
                                ],
                            }
                        ]
                    }
                },
            }
        ],
    }
    if token:
        from ksrv.protocol import tokens

        table["services"][0]["enable_auth"] = True
        table["tokens"] = [
            {"sha256": tokens.token_hash(token), "namespace": "default", "role": "invoke"}
        ]
    body = json.dumps(table).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if "after=0&" not in self.path:
                time.sleep(30)  # nothing newer: the long poll times out
                self.send_response(304)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (threads included) and of its child processes (workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / rest.CLOCK_TICKS
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += cpu_seconds(int(child))
    return total


def start(
    name: str, argv: list[str], cpu: int, port: int, env: dict[str, str] | None = None
) -> rest.Server:
    server = rest.Server(name, ("v2",), port, argv, rest.PROJECT_BIN / "python")
    rest.LOG_DIR.mkdir(parents=True, exist_ok=True)
    with server.log_path.open("wb") as log:
        server.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=rest.server_env(env or {}),
            cwd=rest.WORK_DIR,
            start_new_session=True,
        )
    return server


def wait_for(url: str, body: bytes, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status, answer = rest.http(url, body, timeout=2.0)
            if status == 200:
                classes = [int(c) for c in json.loads(answer)["outputs"][0]["data"]]
                if classes != rest.EXPECTED_CLASSES:
                    sys.exit(f"{url} predicted {classes}")
                return
        except OSError:
            pass
        time.sleep(0.25)
    sys.exit(f"{url} never answered 200")


def main() -> None:
    args = parse_args()
    rest.check_tools()
    model_path = rest.train_model()
    body = rest.request_body("v2")
    python = str(rest.PROJECT_BIN / "python")
    replica_port, replica_grpc = rest.free_port(), rest.free_port()
    gateway_port, gateway_grpc = rest.free_port(), rest.free_port()
    replica = start(
        "replica",
        [python, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn",
         "--model-dir", str(model_path.parent), "--model-name", "iris",
         "--http-port", str(replica_port), "--grpc-port", str(replica_grpc), "--workers", "1",
         *(["--max-batch-size", str(args.replica_batch_size)] if args.replica_batch_size else [])],
        rest.SERVER_CPU, replica_port,
    )  # fmt: skip
    token = "ksrv_bench-token" if args.auth else ""
    if token:
        os.environ["BENCH_AUTHORIZATION"] = f"Bearer {token}"  # post.lua sends it
    routes = route_server(replica_port, replica_grpc, token)
    routes_url = f"http://127.0.0.1:{routes.server_address[1]}/ksrv/v1/routes"
    sources = {"gateway": None}
    if args.baseline_src:
        sources["baseline"] = str(args.baseline_src.resolve())
    gateways: dict[str, rest.Server] = {}
    targets = {"direct": f"http://127.0.0.1:{replica_port}{PATH}"}
    for name, src in sources.items():
        port, grpc_port = (gateway_port, gateway_grpc) if name == "gateway" else (
            rest.free_port(), rest.free_port())  # fmt: skip
        gateways[name] = start(
            name,
            [python, "-m", "ksrv.cli.main", "gateway", "--http-port", str(port),
             "--grpc-port", str(grpc_port), "--routes-url", routes_url,
             *(["--workers", str(args.gateway_workers)] if args.gateway_workers > 1 else [])],
            GATEWAY_CPU, port, {"PYTHONPATH": src} if src else None,
        )  # fmt: skip
        targets[name] = f"http://127.0.0.1:{port}{GATEWAY_PREFIX}{PATH}"
    if args.floor:
        port = rest.free_port()
        floor = str(Path(__file__).with_name("proxy_floor.py"))
        gateways["floor"] = start(
            "floor", [python, floor, str(port), str(replica_port)], GATEWAY_CPU, port
        )
        targets["floor"] = f"http://127.0.0.1:{port}{GATEWAY_PREFIX}{PATH}"
    try:
        for url in targets.values():
            wait_for(url, body)
        runs = measure(targets, body, gateways, args, replica.proc.pid)
    finally:
        rest.stop_all([replica, *gateways.values()])
        routes.shutdown()
    report(runs, args, list(gateways))


def measure(
    targets: dict[str, str],
    body: bytes,
    gateways: dict[str, rest.Server],
    args: argparse.Namespace,
    replica_pid: int,
) -> list[dict[str, Any]]:
    """Interleaved rounds; the order of the targets alternates each round. The replica's CPU
    is measured too: its busy share says whether it was kept saturated (then the RPS ratio is
    its own cost per request, direct vs proxied), and its CPU per request whether being fed
    through a proxy made each request dearer for it."""
    runs = []
    for round_index in range(args.rounds):
        for connections in args.connections:
            order = list(targets) if round_index % 2 == 0 else list(reversed(targets))
            for name in order:
                rest.run_wrk(targets[name], body, connections, args.warmup)
                proc = gateways[name].proc if name in gateways else None
                before = cpu_seconds(proc.pid) if proc else 0.0
                replica_before, started = cpu_seconds(replica_pid), time.monotonic()
                result = rest.run_wrk(targets[name], body, connections, args.duration)
                spent = (cpu_seconds(proc.pid) - before) if proc else 0.0
                replica_spent = cpu_seconds(replica_pid) - replica_before
                result["replica_busy"] = replica_spent / (time.monotonic() - started)
                result["replica_cpu_us"] = replica_spent / max(result["requests"], 1) * 1e6
                result.update(round=round_index, target=name, connections=connections)
                if proc is not None:
                    result["gateway_cpu_us"] = spent / max(result["requests"], 1) * 1e6
                runs.append(result)
                cpu = result.get("gateway_cpu_us")
                print(
                    f"[round {round_index + 1}] {name:8} c={connections:<3} "
                    f"{result['rps']:8.0f} rps  p50 {result['p50_us'] / 1000:6.2f} ms  "
                    f"p99 {result['p99_us'] / 1000:6.2f} ms  errors "
                    f"{result['socket_errors'] + result['non_2xx']}"
                    + (f"  gateway CPU {cpu:.1f} us/req" if cpu is not None else "")
                    + f"  replica CPU {result['replica_cpu_us']:.1f} us/req, "
                    f"busy {result['replica_busy']:.0%}",
                    flush=True,
                )
    out = rest.WORK_DIR / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(runs, indent=1))
    print(f"raw runs: {out}")
    return runs


def report(runs: list[dict[str, Any]], args: argparse.Namespace, gateways: list[str]) -> None:
    def median(name: str, connections: int, key: str) -> float:
        values = [r[key] for r in runs if r["target"] == name and r["connections"] == connections]
        return statistics.median(values)

    print(f"\nmedians of {args.rounds} rounds, {args.duration} s each, V2 REST, iris sklearn")
    print("| gateway | conns | direct RPS | gateway RPS | ratio | direct p50/p99 ms "
          "| gateway p50/p99 ms | added p50 ms | gateway CPU us/req |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for c in args.connections:
        print(
            f"| direct | {c} | | | | | | | replica: {median('direct', c, 'replica_cpu_us'):.1f} "
            f"us/req, busy {median('direct', c, 'replica_busy'):.0%} |"
        )
    for name in gateways:
        for c in args.connections:
            p50 = {n: median(n, c, "p50_us") / 1000 for n in ("direct", name)}
            p99 = {n: median(n, c, "p99_us") / 1000 for n in ("direct", name)}
            print(
                f"| {name} | {c} | {median('direct', c, 'rps'):.0f} | {median(name, c, 'rps'):.0f} "
                f"| {median(name, c, 'rps') / median('direct', c, 'rps'):.2f} "
                f"| {p50['direct']:.2f} / {p99['direct']:.2f} "
                f"| {p50[name]:.2f} / {p99[name]:.2f} "
                f"| {p50[name] - p50['direct']:.2f} | {median(name, c, 'gateway_cpu_us'):.1f} "
                f"(replica: {median(name, c, 'replica_cpu_us'):.1f} us/req, busy "
                f"{median(name, c, 'replica_busy'):.0%}) |"
            )
    if "baseline" in gateways:
        # Per round, so a busy machine's slow spells hit both sides of each ratio alike.
        for c in args.connections:
            ratios = {key: [] for key in ("rps", "gateway_cpu_us")}
            for index in range(args.rounds):
                pair = {
                    r["target"]: r
                    for r in runs
                    if r["round"] == index and r["connections"] == c and r["target"] != "direct"
                }
                for key, values in ratios.items():
                    values.append(pair["gateway"][key] / pair["baseline"][key])
            print(
                f"c={c}: gateway / baseline, median of per-round ratios: RPS "
                f"{statistics.median(ratios['rps']):.2f}, CPU per request "
                f"{statistics.median(ratios['gateway_cpu_us']):.2f}"
            )
    errors = sum(r["socket_errors"] + r["non_2xx"] for r in runs)
    if errors:
        print(f"WARNING: {errors} failed requests across runs")
    print(
        f"bars at 8 connections: gateway CPU <= {BARS['cpu_us']:.0f} us/req, "
        f"gateway RPS >= {BARS['rps_ratio']}x direct"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
