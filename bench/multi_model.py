"""Multi-model serving at density: 1,000 sklearn TrainedModels on one InferenceService with
2 replicas, through a real `ksrv up` (loopback only; its temporary directory is removed).

Measures, in one run (issue 18's bars):
- apply: `ksrv apply` of the 1,000 TrainedModels (one multi-document file) until every one's
  status is Ready (bar < 30 s);
- first request: V1 predicts, one at a time, each for a model no replica has loaded yet
  (load included; bar: median < 300 ms), against the same request to a loaded model;
- RSS: every model called once (8 clients), then the replicas' total resident memory
  (bar <= 2 GiB), and how many copies the gateway's placement made;
- RPS: wrk, 8 connections, `--duration` s on one model, then spread at random over all
  1,000, alternating for `--rounds` rounds after a warm-up of each (steady state: the gateway
  has settled where each model is loaded); medians (bar: spread >= 80 % of one), same run,
  same replicas; no failed request;
- churn: a second service whose replicas hold `--churn-budget` of models (each declares
  1Mi), with `--churn-models` TrainedModels, and wrk's 8 connections at random over all of
  them for `--churn-duration` s (bar: zero failed requests), with the loads it caused.

    python bench/multi_model.py [--models 1000] [--duration 10] [--rounds 3] [--budget 1Gi]
        [--churn-models 300] [--churn-budget 50Mi] [--churn-duration 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import yaml

from cold_start import KSRV, ROOT, ROW, ksrv_up, replica_pids, wait_for

ISVC = "mms"
HOST = f"{ISVC}-default.example.com"
CHURN = "mms-churn"
TM_PATH = "/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels"
WRK_SPREAD = """\
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Host"] = os.getenv("BENCH_HOST")
local count = tonumber(os.getenv("BENCH_MODELS"))
local single = os.getenv("BENCH_SINGLE")
local prefix = os.getenv("BENCH_PREFIX")
request = function()
  local name = single or (prefix .. math.random(0, count - 1))
  return wrk.format(nil, "/v1/models/" .. name .. ":predict")
end
"""


def service(budget: str, name: str = ISVC) -> dict[str, object]:
    resources = {"requests": {"cpu": "1", "memory": budget}, "limits": {"memory": budget}}
    model = {"modelFormat": {"name": "sklearn"}, "resources": resources}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"minReplicas": 2, "maxReplicas": 2, "model": model}},
    }


def trained_models(count: int, models: Path, isvc: str = ISVC, prefix: str = "m") -> str:
    documents = [
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "TrainedModel",
            "metadata": {"name": f"{prefix}{i}"},
            "spec": {
                "inferenceService": isvc,
                "model": {
                    "storageUri": str(models / f"m{i}"),
                    "framework": "sklearn",
                    "memory": "1Mi",
                },
            },
        }
        for i in range(count)
    ]
    return yaml.safe_dump_all(documents)


def ready_models(api_port: int) -> int:
    try:
        items = httpx.get(f"http://127.0.0.1:{api_port}{TM_PATH}", timeout=30).json()["items"]
    except (httpx.HTTPError, ValueError, KeyError):
        return 0
    return sum(
        any(c.get("type") == "Ready" and c.get("status") == "True" for c in
            (item.get("status") or {}).get("conditions", []))
        for item in items
    )  # fmt: skip


def predict(client: httpx.Client, port: int, name: str) -> float:
    started = time.perf_counter()
    response = client.post(
        f"http://127.0.0.1:{port}/v1/models/{name}:predict", json=ROW, headers={"Host": HOST}
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{name}: {response.status_code} {response.text}")
    return elapsed


def wrk(
    port: int,
    duration: int,
    count: int,
    single: str | None,
    script: Path,
    host: str = HOST,
    prefix: str = "m",
) -> dict:
    env = {**os.environ, "BENCH_BODY": json.dumps(ROW), "BENCH_HOST": host,
           "BENCH_MODELS": str(count), "BENCH_PREFIX": prefix}  # fmt: skip
    if single is not None:
        env["BENCH_SINGLE"] = single
    result = subprocess.run(
        ["wrk", "-t", "2", "-c", "8", "-d", f"{duration}s", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    text = result.stdout
    rps = float(text.split("Requests/sec:")[1].split()[0])
    failed = text.split("Non-2xx or 3xx responses:")[1].split()[0] if "Non-2xx" in text else "0"
    return {"rps": rps, "failed": int(failed), "errors": "Socket errors" in text}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--budget", default="1Gi", help="each replica's memory request")
    parser.add_argument("--first", type=int, default=20, help="first requests to time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--churn-models", type=int, default=300)
    parser.add_argument("--churn-budget", default="50Mi")
    parser.add_argument("--churn-duration", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        iris = work / "iris"
        subprocess.run([sys.executable, str(ROOT / "examples/sklearn-iris/train.py"), str(iris)],
                       check=True, capture_output=True)  # fmt: skip
        for i in range(args.models):
            shutil.copytree(iris, work / "models" / f"m{i}")
        script = work / "spread.lua"
        script.write_text(WRK_SPREAD)
        with ksrv_up(work / "state", [], None) as (port, api_port, env):
            run(args, work, port, api_port, env, script)
            if args.churn_models:
                churn(args, work, port, env, script)


def run(args, work: Path, port: int, api_port: int, env: dict, script: Path) -> None:
    cli = [*KSRV, "apply", "-f", "-"]
    subprocess.run(cli, input=yaml.safe_dump(service(args.budget)), text=True, check=True,
                   env=env, capture_output=True)  # fmt: skip
    client = httpx.Client(timeout=60)
    ready = f"http://127.0.0.1:{port}/v2/health/ready"
    wait_for(lambda: client.get(ready, headers={"Host": HOST}).status_code == 200, "isvc", 0.2)
    started = time.perf_counter()
    subprocess.run(cli, input=trained_models(args.models, work / "models"), text=True,
                   check=True, env=env, capture_output=True)  # fmt: skip
    applied = time.perf_counter() - started
    wait_for(lambda: ready_models(api_port) == args.models, "TrainedModels Ready", 0.5)
    all_ready = time.perf_counter() - started
    print(f"apply {args.models} TrainedModels: `ksrv apply` {applied:.1f}s, all Ready "
          f"{all_ready:.1f}s (bar < 30 s)")  # fmt: skip

    names = [f"m{i}" for i in range(args.models)]
    wait_for(lambda: _answers(client, port, names[-1]), "last model served", 0.1)
    predict(client, port, names[-1])
    firsts = [predict(client, port, name) for name in names[: args.first]]
    warm = [predict(client, port, names[-1]) for _ in range(args.first)]
    print(f"first request of an unloaded model (n={args.first}): median "
          f"{statistics.median(firsts) * 1000:.0f} ms, max {max(firsts) * 1000:.0f} ms "
          f"(bar < 300 ms); a loaded model: {statistics.median(warm) * 1000:.1f} ms")  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: predict(client, port, name), names))
    pids = replica_pids(work / "state")
    rss = sum(psutil.Process(pid).memory_info().rss for pid in pids)
    index = [httpx.post(f"http://{address}/v2/repository/index").json()
             for address in _replicas(api_port)]  # fmt: skip
    loaded = [sum(e["state"] == "Ready" for e in entries) for entries in index]
    print(f"every model called once: {len(pids)} replicas, total RSS {rss / 2**20:.0f} MiB "
          f"(bar <= 2048 MiB); models loaded per replica {loaded} "
          f"({sum(loaded) - args.models} extra copies)")  # fmt: skip

    # Steady state: the spread and the hot model have settled where they are loaded.
    warm_up = [wrk(port, args.duration, args.models, single, script) for single in (None, names[0])]
    ones, spreads = [], []
    for _ in range(args.rounds):
        ones.append(wrk(port, args.duration, args.models, names[0], script))
        spreads.append(wrk(port, args.duration, args.models, None, script))
    one = statistics.median(r["rps"] for r in ones)
    spread = statistics.median(r["rps"] for r in spreads)
    failed = sum(r["failed"] for r in ones + spreads)
    print(f"RPS, 8 connections, {args.duration}s each, median of {args.rounds}: one model "
          f"{one:.0f} {[round(r['rps']) for r in ones]}, spread over {args.models} {spread:.0f} "
          f"{[round(r['rps']) for r in spreads]} = {spread / one:.0%} (bar >= 80%); failed "
          f"{failed}; warm-up (not counted): spread {warm_up[0]['rps']:.0f}, one "
          f"{warm_up[1]['rps']:.0f}")  # fmt: skip
    rss = sum(psutil.Process(pid).memory_info().rss for pid in pids)
    print(f"total RSS after the load: {rss / 2**20:.0f} MiB")


def churn(args, work: Path, port: int, env: dict, script: Path) -> None:
    """Budget smaller than the working set: zero failed requests while the LRU churns."""
    cli = [*KSRV, "apply", "-f", "-"]
    text = yaml.safe_dump(service(args.churn_budget, CHURN)) + "---\n"
    text += trained_models(args.churn_models, work / "models", CHURN, "c")
    subprocess.run(cli, input=text, text=True, check=True, env=env, capture_output=True)
    host = f"{CHURN}-default.example.com"
    client = httpx.Client(timeout=60)
    last = f"http://127.0.0.1:{port}/v1/models/c{args.churn_models - 1}:predict"
    wait_for(lambda: client.post(last, json=ROW, headers={"Host": host}).status_code == 200,
             "churn service", 0.2)  # fmt: skip
    before = _loads(work, CHURN)
    result = wrk(port, args.churn_duration, args.churn_models, None, script, host, "c")
    print(f"churn: {args.churn_models} models over 2 replicas with {args.churn_budget} each "
          f"(1Mi per model), 8 connections for {args.churn_duration}s: {result['rps']:.0f} "
          f"RPS, failed {result['failed']}, socket errors {result['errors']} (bar: zero); "
          f"{_loads(work, CHURN) - before} loads")  # fmt: skip


def _loads(work: Path, isvc: str) -> int:
    logs = work / "state" / "platform" / "logs" / "default"
    return sum(p.read_text().count("loaded model=") for p in logs.glob(f"{isvc}-predictor-*.log"))


def _answers(client: httpx.Client, port: int, name: str) -> bool:
    response = client.post(
        f"http://127.0.0.1:{port}/v1/models/{name}:predict", json=ROW, headers={"Host": HOST}
    )
    return response.status_code == 200


def _replicas(api_port: int) -> list[str]:
    table = httpx.get(f"http://127.0.0.1:{api_port}/ksrv/v1/routes", params={"after": 0}).json()
    return [
        replica["http"]
        for service in table["services"]
        if service["name"] == ISVC
        for backend in service["components"]["predictor"]["backends"]
        for replica in backend["replicas"]
    ]


if __name__ == "__main__":
    main()
