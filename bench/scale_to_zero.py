"""Scale to zero through the gateway's activator: the 0 -> N -> 0 bar and the cold start.

Two parts, each on a real `ksrv up` (loopback only; everything it starts is stopped and its
temporary directory removed before it exits):

- `load`: the `slow` toy (tests/toys.py, 0.3 s per request) with `minReplicas: 0`,
  `maxReplicas: 4`, `scaleTarget: 1` and `autoscaling.knative.dev/window: 6s`, Knative's
  other defaults (30 s grace period): first scaled to zero, then 8 concurrent clients for
  20 s through the gateway. Prints the most replicas reached, the requests and failures,
  and the time from the load's end to zero replicas (bar: >= 3 replicas, back to 0 within
  90 s, no failure), with the autoscaler's last word.
- `cold`: sklearn iris with `minReplicas: 0` on a platform with a 6 s stable window and a
  1 s grace period: each round waits until the revision is at zero, then times one V1 predict
  through the gateway, held by the activator until a replica (forked from the warm fork
  server) is ready (bar: median of 5 < 1 s); the baseline in the same run is the same
  request with the replica running.

    python bench/scale_to_zero.py [--parts load,cold] [--rounds 5] [--clients 8]
        [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

from cold_start import KSRV, ROOT, ROW, ksrv_up, ready_names, replica_pids, wait_for

SLOW = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": "slow",
        "annotations": {"autoscaling.knative.dev/window": "6s"},
    },
    "spec": {
        "predictor": {
            "minReplicas": 0,
            "maxReplicas": 4,
            "scaleTarget": 1,
            "containers": [{
                "name": "kserve-container", "image": "ksrv-toys",
                "command": ["ksrv", "serve", f"{ROOT / 'tests' / 'toys.py'}:Slow"],
                "args": ["--model-name", "slow"],
            }],
        }
    },
}  # fmt: skip
SHORT_GRACE = "stable-window: 6s\nscale-to-zero-grace-period: 1s\n"
IDLE_TIMEOUT_S = 180.0


def iris(model: Path) -> dict[str, object]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris"},
        "spec": {
            "predictor": {
                "minReplicas": 0,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(model)},
            }
        },
    }


def apply(document: dict[str, object], env: dict[str, str]) -> None:
    subprocess.run([*KSRV, "apply", "-f", "-"], input=yaml.safe_dump(document), text=True,
                   check=True, capture_output=True, env=env, timeout=120)  # fmt: skip


def replicas(state: Path) -> int:
    return len(replica_pids(state))


def at_zero(state: Path) -> None:
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while replicas(state):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not at zero replicas within {IDLE_TIMEOUT_S}s")
        time.sleep(0.1)


def autoscaler(api_port: int, name: str) -> dict[str, object]:
    url = f"http://127.0.0.1:{api_port}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}"
    status = httpx.get(url, timeout=10).json().get("status", {})
    return dict(status.get("components", {}).get("predictor", {}).get("autoscaler", {}))


def revisions(env: dict[str, str]) -> list[dict[str, object]]:
    """`ksrv get revisions -o json`, as a user reads it: name, actual and desired replicas."""
    shown = subprocess.run([*KSRV, "get", "revisions", "-o", "json"], text=True, check=True,
                           capture_output=True, env=env, timeout=60)  # fmt: skip
    return [
        {"name": item["metadata"]["name"], "actualReplicas": item["status"].get("actualReplicas"),
         "desiredReplicas": item["status"].get("desiredReplicas")}
        for item in json.loads(shown.stdout)["items"]
    ]  # fmt: skip


class Load:
    """`clients` loops of 0.3 s requests through the gateway; counts answers by status."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.clients = clients
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=120) as client:

            async def loop() -> None:
                while not self.stop.is_set():
                    try:
                        answer = await client.post(
                            self.url, json={"instances": [[1]], "delay_s": 0.3}
                        )
                        code = answer.status_code
                    except httpx.HTTPError:
                        code = 0
                    self.statuses[code] = self.statuses.get(code, 0) + 1

            await asyncio.gather(*(loop() for _ in range(self.clients)))


def load(work: Path, clients: int, duration_s: float) -> None:
    print(f"\n== 0 -> N -> 0: {clients} clients for {duration_s:g} s, slow toy (0.3 s), "
          "minReplicas 0, maxReplicas 4, scaleTarget 1, window 6s, grace 30 s ==")  # fmt: skip
    state = work / "state-load"
    with ksrv_up(state, [], None) as (port, api_port, env):
        apply(SLOW, env)
        wait_for(lambda: "slow" in ready_names(api_port), "slow Ready", 0.05)
        at_zero(state)
        print("  at zero replicas; load starts")
        run = Load(f"http://127.0.0.1:{port}/serving/default/slow/v1/models/slow:predict", clients)
        most = 0
        started = time.monotonic()
        run.thread.start()
        while time.monotonic() - started < duration_s:
            most = max(most, replicas(state))
            time.sleep(0.1)
        run.stop.set()
        run.thread.join(120)
        stopped = time.monotonic()
        decision = autoscaler(api_port, "slow")
        print(f"  ksrv get revisions at the load's end: {json.dumps(revisions(env))}")
        at_zero(state)
        to_zero_s = time.monotonic() - stopped
        total = sum(run.statuses.values())
        failed = total - run.statuses.get(200, 0)
        print(f"  most replicas {most}   requests {total}   failed {failed} {run.statuses}")
        print(f"  load end -> 0 replicas {to_zero_s:.1f} s")
        print(f"  autoscaler at the load's end: {json.dumps(decision)}")
        print(f"  ksrv get revisions at zero: {json.dumps(revisions(env))}")


def cold(model: Path, work: Path, rounds: int) -> None:
    print(
        f"\n== from zero replicas: first V1 predict through the gateway, sklearn iris (median "
        f"of {rounds}); baseline: the same request with the replica running =="
    )
    state = work / "state-cold"
    state.mkdir()
    config = state / "config-autoscaler.yaml"
    config.write_text(SHORT_GRACE)
    with ksrv_up(state, ["--autoscaler-config", str(config)], None) as (port, api_port, env):
        apply(iris(model), env)
        wait_for(lambda: "iris" in ready_names(api_port), "iris Ready", 0.05)
        url = f"http://127.0.0.1:{port}/serving/default/iris/v1/models/iris:predict"
        colds, warms = [], []
        with httpx.Client(timeout=60) as client:
            for _ in range(rounds):
                at_zero(state)
                started = time.perf_counter()
                answer = client.post(url, json=ROW)
                colds.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(f"cold predict answered {answer.status_code}: {answer.text}")
                for _ in range(5):
                    started = time.perf_counter()
                    client.post(url, json=ROW).raise_for_status()
                    warms.append(time.perf_counter() - started)
    for label, timings in (("from zero (activator)", colds), ("replica running", warms)):
        print(f"  {label:22s} median {statistics.median(timings) * 1000:7.1f} ms "
              f"(min {min(timings) * 1000:.1f}, max {max(timings) * 1000:.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="load,cold")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="ksrv-zero-") as tmp:
        work = Path(tmp)
        print(f"python {sys.version.split()[0]}, ksrv from {ROOT / 'src'}")
        if "load" in parts:
            load(work, args.clients, args.duration)
        if "cold" in parts:
            model = work / "iris"
            subprocess.run([sys.executable, str(ROOT / "examples/sklearn-iris/train.py"),
                            str(model)], check=True, capture_output=True)  # fmt: skip
            cold(model, work, args.rounds)


if __name__ == "__main__":
    main()
