"""What Prometheus metrics add to one request, in CPU microseconds, measured in process.

Why: wrk figures on a shared machine move by more than the few microseconds metrics cost,
so this measures the instrumented code paths themselves, with the same code uninstrumented
as the baseline in the same run, on this thread's CPU clock (`time.thread_time`, which other
processes' load does not inflate the way it inflates wall time):

- model server: one V2 request through `Model.__call__` (a trivial inline predict), with and
  without KServe's step histograms, plus the request counter around it (`ServerMetrics.count`);
- gateway: the metrics hook's `on_request` + `on_response` for one answered request.

Prints medians over rounds of the per-request cost and the difference. Run:
`.venv/bin/python bench/metrics_cost.py [--rounds 7] [--requests 100000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from ksrv.gateway.hooks import Call
from ksrv.gateway.metrics import GatewayMetrics
from ksrv.gateway.routes import parse_table
from ksrv.model.base import Model
from ksrv.server.metrics import ServerMetrics


class Identity(Model):
    enable_inline_sync = True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        return payload


def cpu_us(run: Callable[[int], None], requests: int, rounds: int) -> float:
    """Median CPU time per request of `run(requests)` over `rounds`."""
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        run(requests)
        samples.append((time.thread_time() - started) / requests * 1e6)
    return statistics.median(samples)


def server_runs() -> tuple[Callable[[int], None], Callable[[int], None]]:
    plain, timed = Identity("plain"), Identity("timed")
    plain.ready = timed.ready = True
    metrics = ServerMetrics()
    timed.observe_steps(metrics.step_observers("timed"))
    loop = asyncio.new_event_loop()

    async def calls(model: Model, count: int, is_counted: bool) -> None:
        for _ in range(count):
            if is_counted:
                with metrics.count("v2", "timed"):
                    await model({}, {})
            else:
                await model({}, {})

    def baseline(count: int) -> None:
        loop.run_until_complete(calls(plain, count, False))

    def instrumented(count: int) -> None:
        loop.run_until_complete(calls(timed, count, True))

    return baseline, instrumented


def gateway_run() -> Callable[[int], None]:
    table = parse_table({
        "version": 1, "domain": "example.com",
        "services": [{"namespace": "default", "name": "iris", "timeout_s": 60, "entry": "predictor",
                      "components": {"predictor": {"backends": [
                          {"revision": "iris-predictor-00001", "percent": 100, "tag": "",
                           "replicas": [{"http": "127.0.0.1:1", "grpc": ""}]}]}}}],
    })  # fmt: skip
    match = table.match("", b"/serving/default/iris/v2/models/iris/infer")
    assert match is not None
    metrics = GatewayMetrics()
    call = Call("rest", "", b"/serving/default/iris/v2/models/iris/infer", {}, None)
    call.match, call.backend, call.code = match, match.component.backends[0], 200

    def run(count: int) -> None:
        for _ in range(count):
            metrics.on_request(call)
            metrics.on_response(call, None)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    baseline, instrumented = server_runs()
    plain_us, timed_us = [], []
    for _ in range(args.rounds):  # interleaved, so drift hits both alike
        plain_us.append(cpu_us(baseline, args.requests, 1))
        timed_us.append(cpu_us(instrumented, args.requests, 1))
    plain, timed = statistics.median(plain_us), statistics.median(timed_us)
    hook = cpu_us(gateway_run(), args.requests, args.rounds)
    print(f"medians of {args.rounds} rounds x {args.requests} requests, CPU us per request")
    print(f"model server pipeline, no metrics      {plain:7.2f}")
    print(f"model server pipeline, with metrics    {timed:7.2f}   (+{timed - plain:.2f})")
    print(f"gateway metrics hook (request+answer)  {hook:7.2f}")


if __name__ == "__main__":
    main()
