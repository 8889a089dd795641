"""Tracing's cost per request in the model server, without sockets: off, on, and a baseline.

Why: tracing must be free when off (issue 17), and the wrk benches (`rest.py`, `gateway.py`)
on a shared machine vary by more than a few microseconds. Here each configuration runs in its
own process, which builds the REST app of `ksrv serve` for the iris scikit-learn model and
awaits `RESTApp.handle` on ready-made V1 and V2 requests; the figure is CPU time per request
(`time.process_time`, which other load on the machine moves far less than wall time; also
the event loop's thread alone), median over interleaved rounds. Configurations:

- `baseline`: ksrv from `KSRV_BASELINE_SRC` (e.g. a worktree of the commit before tracing);
- `off`: this tree, no OTEL_* variables;
- `on`: this tree, tracing on, every span sampled and exported in batches (OTLP/HTTP) to a
  sink in this process that answers 200; the export thread's CPU time counts too.

Run: `.venv/bin/python bench/tracing.py [--rounds 5] [--requests 3000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import rest  # bench/rest.py: the iris model

SINK_URL = ""  # the in-process OTLP sink, once started

CHILD = r"""
import asyncio, json, sys, time
from ksrv.http.messages import Request
from ksrv.server import app as server_app
from ksrv.server.settings import ServerSettings
from ksrv.telemetry import tracing  # absent from the baseline: ImportError is fine there

model_dir, count = sys.argv[1], int(sys.argv[2])
settings = ServerSettings(model_format="sklearn", model_dir=model_dir, model_name="iris")
models = server_app.build_models(settings)
server_app.load_models(models)
tracing.configure("bench") if hasattr(tracing, "configure") else None
application = server_app.build_app(settings, models)
rows = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": sum(rows, [])}
bodies = {
    "v1": ("/v1/models/iris:predict", json.dumps({"instances": rows}).encode()),
    "v2": ("/v2/models/iris/infer", json.dumps({"inputs": [tensor]}).encode()),
}
parent = [(b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]

async def run():
    result = {}
    for protocol, (path, body) in bodies.items():
        def request():
            headers = [(b"content-type", b"application/json"), *parent]
            return Request("POST", path, None, body, path.encode(), headers)
        for _ in range(200):
            await application.handle(request())
        start, start_loop = time.process_time(), time.thread_time()
        for _ in range(count):
            response = await application.handle(request())
        assert response.status == 200, response.body
        result[protocol] = (time.process_time() - start) / count * 1e6
        result[protocol + " loop"] = (time.thread_time() - start_loop) / count * 1e6
    print(json.dumps(result))

asyncio.run(run())
"""


class _Sink(BaseHTTPRequestHandler):
    """Takes an OTLP export and answers 200 (an empty ExportTraceServiceResponse)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_one(mode: str, model_dir: Path, count: int, baseline_src: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode == "baseline":
        env["PYTHONPATH"] = baseline_src or ""
        child = CHILD.replace("from ksrv.telemetry import tracing", "tracing = None")
    else:
        child = CHILD
    if mode == "on":
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=SINK_URL,
            OTEL_TRACES_SAMPLER="always_on",
        )
    answer = subprocess.run(
        [sys.executable, "-c", child, str(model_dir), str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if answer.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{answer.stderr[-2000:]}")
    result: dict[str, float] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per run")
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    global SINK_URL
    SINK_URL = f"http://127.0.0.1:{sink.server_address[1]}"
    baseline_src = os.environ.get("KSRV_BASELINE_SRC")
    modes = ["off", "on"] + (["baseline"] if baseline_src else [])
    model_dir = rest.train_model().parent
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for index in range(args.rounds):
        order = modes[index % len(modes) :] + modes[: index % len(modes)]
        for mode in order:
            runs[mode].append(run_one(mode, model_dir, args.requests, baseline_src))
            print(f"round {index + 1} {mode:8s} {runs[mode][-1]}", flush=True)
    print("\nCPU us per request, median over rounds, ratio to off ('loop': the event loop's")
    print("thread only, i.e. without the span exporter's thread and the model's thread pool)")
    for protocol in ("v1", "v1 loop", "v2", "v2 loop"):
        off = statistics.median(r[protocol] for r in runs["off"])
        for mode in modes:
            median = statistics.median(r[protocol] for r in runs[mode])
            print(f"  {protocol:7s} {mode:8s} {median:8.1f} us  x{median / off:.3f}")


if __name__ == "__main__":
    main()
