"""InferenceGraph router benchmark: the CPU the router spends per hop, against calling the
service directly in the same run.

Why: every call of an InferenceGraph goes through `ksrv router`, once per step, so a hop must
stay cheap next to the model server's own work (issue 16's bar: at most 200 us of router CPU
per hop). One run starts one `ksrv serve` replica (iris sklearn, 1 worker, pinned to CPU 0)
and two routers (pinned to CPU 1, with wrk): one whose graph is a Sequence of 1 step and one of
3 steps, each step a V2 infer call to the replica. Interleaved wrk rounds (V2 REST) go straight
at the replica, then through each router; the router's CPU time (utime + stime from
/proc/PID/stat around each timed run) over wrk's request count, divided by the steps per
request, is its CPU per hop; the difference between the two routers, over the 2 extra steps,
is what one more step costs. Both routers log every request's step latencies, as they do by
default. Last, the router's own Python work is timed in this process (process CPU time of
`Router.handle` with a step caller that answers at once: no sockets, no other process), a
figure that other load on the machine barely moves.

Run: `.venv/bin/python bench/graph_router.py` (`--help` for rounds, duration, connections).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import time
from typing import Any

import gateway  # bench/gateway.py: pinned processes, /proc CPU time, readiness
import rest  # bench/rest.py: model training, wrk runner, process handling

ROUTER_CPU = 1
PATH = "/v2/models/iris/infer"
BAR_CPU_US_PER_HOP = 200.0
HOPS = {"router-1": 1, "router-3": 3}
BASELINE = "router-1-baseline"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 8],
        help="wrk connection counts (default 1,8)",
    )
    parser.add_argument(
        "--baseline-src",
        help="also run a 1-step router from this src directory (PYTHONPATH), e.g. main's before "
        "a change, interleaved in the same run (reported as router-1-baseline)",
    )
    return parser.parse_args()


def graph_json(service_url: str, steps: int) -> str:
    """A Sequence of `steps` calls to `service_url`, each sending the request."""
    sequence = [{"name": f"iris-{i}", "serviceUrl": service_url} for i in range(steps)]
    return json.dumps({"nodes": {"root": {"routerType": "Sequence", "steps": sequence}}})


def python_work_us(steps: int, count: int = 20000) -> float:
    """Process CPU per request of `Router.handle` for a `steps`-step Sequence whose steps answer
    at once (best of 3), logging on as in `ksrv router`."""
    from ksrv.graph import app, headers, spec
    from ksrv.graph.client import Answer
    from ksrv.http.server import Request

    answer = Answer(200, b'{"outputs":[{"name":"output-0","shape":[2],"datatype":"INT64",'
                    b'"data":[1,1]}]}', b"application/json")  # fmt: skip

    class Instant:
        async def post(self, *args: Any) -> Answer:
            return answer

    body = rest.request_body("v2")
    head = [(b"host", b"graph"), (b"content-type", b"application/json")]
    settings = app.RouterSettings(
        spec.parse_graph(graph_json("http://iris/v2/models/iris/infer", steps)),
        propagate=headers.DEFAULT_PATTERNS,
    )

    async def run() -> float:
        router = app.Router(settings, caller=Instant())
        for _ in range(500):
            await router.handle(Request("POST", "/", None, body, b"/", head))
        started = time.process_time()
        for _ in range(count):
            await router.handle(Request("POST", "/", None, body, b"/", head))
        return (time.process_time() - started) / count * 1e6

    return min(asyncio.run(run()) for _ in range(3))


def main() -> None:
    args = parse_args()
    rest.check_tools()
    model_path = rest.train_model()
    body = rest.request_body("v2")
    python = str(rest.PROJECT_BIN / "python")
    replica_port, replica_grpc = rest.free_port(), rest.free_port()
    replica = gateway.start(
        "replica",
        [python, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn",
         "--model-dir", str(model_path.parent), "--model-name", "iris",
         "--http-port", str(replica_port), "--grpc-port", str(replica_grpc), "--workers", "1"],
        rest.SERVER_CPU, replica_port,
    )  # fmt: skip
    service_url = f"http://127.0.0.1:{replica_port}{PATH}"
    targets = {"direct": service_url}
    routers: dict[str, rest.Server] = {}
    hops = {**HOPS, BASELINE: 1} if args.baseline_src else HOPS
    for name, steps in hops.items():
        port = rest.free_port()
        env = {"PYTHONPATH": os.path.abspath(args.baseline_src)} if name == BASELINE else None
        routers[name] = gateway.start(
            name,
            [python, "-m", "ksrv", "router", "--graph-json", graph_json(service_url, steps),
             "--http-port", str(port)],
            ROUTER_CPU, port, env,
        )  # fmt: skip
        targets[name] = f"http://127.0.0.1:{port}/"
    try:
        for url in targets.values():
            gateway.wait_for(url, body)
        runs = measure(targets, body, routers, args)
    finally:
        rest.stop_all([replica, *routers.values()])
    report(runs, args)
    # As `ksrv router` logs (cli/router.py), into the void.
    from ksrv.telemetry import buffered_log

    buffered_log.configure(logging.INFO, fd=os.open(os.devnull, os.O_WRONLY))
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for steps in HOPS.values():
        print(
            f"router Python work, in process, {steps} step(s): {python_work_us(steps):.1f} us/req"
        )


def measure(
    targets: dict[str, str],
    body: bytes,
    routers: dict[str, rest.Server],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Interleaved rounds; the order of the targets rotates each round."""
    runs = []
    names = list(targets)
    for round_index in range(args.rounds):
        for connections in args.connections:
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                router = routers.get(name)
                rest.run_wrk(targets[name], body, connections, args.warmup)
                before = gateway.cpu_seconds(router.proc.pid) if router and router.proc else 0.0
                result = rest.run_wrk(targets[name], body, connections, args.duration)
                result.update(round=round_index, target=name, connections=connections)
                if router is not None and router.proc is not None:
                    spent = gateway.cpu_seconds(router.proc.pid) - before
                    per_request = spent / max(result["requests"], 1) * 1e6
                    result["router_cpu_us"] = per_request
                    result["router_cpu_us_per_hop"] = per_request / HOPS.get(name, 1)
                runs.append(result)
                hop = result.get("router_cpu_us_per_hop")
                print(
                    f"[round {round_index + 1}] {name:8} c={connections:<3} "
                    f"{result['rps']:8.0f} rps  p50 {result['p50_us'] / 1000:6.2f} ms  "
                    f"errors {result['socket_errors'] + result['non_2xx']}"
                    + (f"  router CPU {hop:.1f} us/hop" if hop is not None else ""),
                    flush=True,
                )
    out = rest.WORK_DIR / f"graph-router-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(runs, indent=1))
    print(f"raw runs: {out}")
    return runs


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    def median(name: str, connections: int, key: str) -> float:
        values = [r[key] for r in runs if r["target"] == name and r["connections"] == connections]
        return statistics.median(values)

    print(f"\nmedians of {args.rounds} rounds, {args.duration} s each, V2 REST, iris sklearn")
    print("| conns | target | RPS | p50 ms | added p50 ms per hop | router CPU us/req "
          "| router CPU us/hop |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    marginal = {}
    for c in args.connections:
        # What one more step costs, the request's own handling (client side) taken out.
        one, three = (median(name, c, "router_cpu_us") for name in HOPS)
        marginal[c] = (three - one) / (HOPS["router-3"] - HOPS["router-1"])
        direct_p50 = median("direct", c, "p50_us") / 1000
        print(f"| {c} | direct | {median('direct', c, 'rps'):.0f} | {direct_p50:.2f} | | | |")
        for name, hops in [*HOPS.items(), *([(BASELINE, 1)] if args.baseline_src else [])]:
            p50 = median(name, c, "p50_us") / 1000
            print(
                f"| {c} | {name} ({hops} step{'s' if hops > 1 else ''}) "
                f"| {median(name, c, 'rps'):.0f} | {p50:.2f} "
                f"| {(p50 - direct_p50) / hops:.2f} "
                f"| {median(name, c, 'router_cpu_us'):.1f} "
                f"| {median(name, c, 'router_cpu_us_per_hop'):.1f} |"
            )
    for c, cost in marginal.items():
        print(f"each step beyond the first, {c} connection(s): {cost:.1f} us of router CPU")
    errors = sum(r["socket_errors"] + r["non_2xx"] for r in runs)
    if errors:
        print(f"WARNING: {errors} failed requests across runs")
    print(f"bar: router CPU <= {BAR_CPU_US_PER_HOP:.0f} us per hop")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
