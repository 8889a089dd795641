"""From `ksrv apply` of the sklearn iris InferenceService to its first successful prediction.

Starts a real local platform (`ksrv up`) on free ports with a fresh state directory, trains
the iris model, then `rounds` times: runs `ksrv apply -f iris.yaml` (a new name each round)
and polls the gateway every 10 ms until the prediction answers 200. Prints each round and
the median. The bar (issue 6) is under 3 s.

    python bench/apply_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KSRV = [sys.executable, "-m", "ksrv.cli.main"]
ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: {storage}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state, model = Path(tmp) / "state", Path(tmp) / "iris"
        subprocess.run(
            [sys.executable, str(ROOT / "examples/sklearn-iris/train.py"), str(model)],
            check=True,
            capture_output=True,
        )
        port, grpc_port, api_port = free_port(), free_port(), free_port()
        env = {**os.environ, "KSRV_SERVER": f"http://127.0.0.1:{api_port}"}
        up = subprocess.Popen(
            [*KSRV, "up", "--state-dir", str(state), "--port", str(port),
             "--grpc-port", str(grpc_port), "--api-port", str(api_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            _wait(f"http://127.0.0.1:{api_port}/healthz")
            timings = [
                _one_round(f"iris-{index}", model, port, env) for index in range(args.rounds)
            ]
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
    print(f"median apply -> first prediction: {statistics.median(timings):.2f}s "
          f"(min {min(timings):.2f}s, max {max(timings):.2f}s, bar < 3 s)")  # fmt: skip


def _one_round(name: str, model: Path, port: int, env: dict[str, str]) -> float:
    url = f"http://127.0.0.1:{port}/serving/default/{name}/v1/models/{name}:predict"
    body = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
    started = time.monotonic()
    subprocess.run(
        [*KSRV, "apply", "-f", "-"],
        input=ISVC.format(name=name, storage=model),
        text=True, check=True, capture_output=True, env=env,
    )  # fmt: skip
    applied = time.monotonic() - started
    with httpx.Client(timeout=5) as http:
        while True:
            try:
                if http.post(url, json=body).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - started > 60:
                raise RuntimeError(f"{name} did not answer within 60 s")
            time.sleep(0.01)
    elapsed = time.monotonic() - started
    print(f"{name}: apply returned after {applied:.2f}s, first prediction after {elapsed:.2f}s")
    return elapsed


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


if __name__ == "__main__":
    main()
