"""Process behaviour: draining on SIGTERM, worker processes, the thread pool, the repository."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import time

import httpx

from tests.conftest import TESTS_DIR
from tests.models import IRIS_ROWS, iris_expected, sklearn_iris

TOYS = str(TESTS_DIR / "toys.py")


def test_sigterm_answers_every_accepted_request_then_exits(start_server):
    server = start_server([f"{TOYS}:Slow", "--model-name", "slow", "--max-threads", "8"])
    url = f"{server.url}/v1/models/slow:predict"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(httpx.post, url, json={"delay_s": 1.5}, timeout=30) for _ in range(6)
        ]
        time.sleep(0.5)  # all six are in the model now
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            ready = httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code
        except httpx.TransportError:
            ready = None  # the listener may already be closed, which is also "not ready"
        responses = [future.result() for future in futures]
    assert ready in (503, None)
    assert [r.status_code for r in responses] == [200] * 6
    assert server.process.wait(20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


def test_a_slow_sync_predict_does_not_block_health_checks(start_server):
    server = start_server([f"{TOYS}:Slow", "--model-name", "slow"])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            httpx.post, f"{server.url}/v1/models/slow:predict", json={"delay_s": 3}, timeout=30
        )
        time.sleep(0.3)
        started = time.monotonic()
        live = httpx.get(f"{server.url}/v2/health/live", timeout=10)
        waited_s = time.monotonic() - started
        assert live.status_code == 200
        assert not slow.done(), "the health check must be answered while predict still runs"
        assert waited_s < 2.5
        assert slow.result().status_code == 200


def test_workers_share_the_port_and_a_killed_worker_is_replaced(start_server):
    server = start_server([f"{TOYS}:Pid", "--model-name", "pid", "--workers", "2"])
    url = f"{server.url}/v1/models/pid:predict"

    def pids(count: int) -> set[int]:
        seen = set()
        for _ in range(count):
            with httpx.Client() as client:  # a new connection each time
                seen.add(client.post(url, json={}).json()["pid"])
        return seen

    deadline = time.monotonic() + 20
    seen = pids(40)
    while len(seen) < 2 and time.monotonic() < deadline:
        seen |= pids(20)
    assert len(seen) == 2
    assert server.process.pid not in seen
    victim = seen.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    fresh: set[int] = set()
    while time.monotonic() < deadline and not (fresh - seen - {victim}):
        try:
            fresh |= pids(10)
        except httpx.TransportError:
            time.sleep(0.1)
    assert fresh - seen - {victim}, "a replacement worker answers"
    assert victim not in pids(20)


def test_concurrent_requests_all_get_the_sequential_answer(iris_server):
    url = f"{iris_server.url}/v2/models/iris/infer"
    bodies = [
        {
            "id": str(i),
            "inputs": [
                {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROWS[i % 2]}
            ],
        }
        for i in range(200)
    ]
    expected = [iris_expected([IRIS_ROWS[i % 2]])[0] for i in range(200)]
    limits = httpx.Limits(max_connections=200)
    with (
        httpx.Client(limits=limits, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(50) as pool,
    ):
        responses = list(pool.map(lambda body: client.post(url, json=body), bodies))
    for i, response in enumerate(responses):
        assert response.status_code == 200
        assert response.json()["id"] == str(i)
        assert response.json()["outputs"][0]["data"] == expected[i]
    assert httpx.get(f"{iris_server.url}/v2/health/ready").status_code == 200


def test_repository_extension_loads_and_unloads_models(start_server, tmp_path):
    sklearn_iris(tmp_path / "iris")
    server = start_server(
        ["--model-format", "sklearn", "--model-dir", str(tmp_path / "iris"), "--model-name", "iris"]
    )
    url = server.url
    assert httpx.post(f"{url}/v2/repository/index").json() == [
        {"name": "iris", "state": "Ready", "reason": ""}
    ]
    # A second model appears in the model dir and is loaded on request.
    shutil.copytree(tmp_path / "iris", tmp_path / "iris" / "second")
    response = httpx.post(f"{url}/v2/repository/models/second/load")
    assert response.json() == {"name": "second", "load": True}
    body = {"instances": IRIS_ROWS}
    predictions = httpx.post(f"{url}/v1/models/second:predict", json=body).json()
    assert predictions == {"predictions": iris_expected(IRIS_ROWS)[0]}
    assert httpx.post(f"{url}/v2/repository/models/second/unload").json() == {
        "name": "second",
        "unload": True,
    }
    assert httpx.post(f"{url}/v1/models/second:predict", json=body).status_code == 404
    assert httpx.post(f"{url}/v2/repository/models/second/unload").status_code == 404
    assert httpx.post(f"{url}/v2/repository/models/absent/load").status_code == 404
    (tmp_path / "iris" / "broken").mkdir()
    (tmp_path / "iris" / "broken" / "model.joblib").write_bytes(b"not a pickle")
    broken = httpx.post(f"{url}/v2/repository/models/broken/load")
    assert broken.status_code == 503
    assert "not ready" in broken.json()["error"]
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200


def test_a_model_dir_of_subdirectories_serves_each_as_a_model(start_server, tmp_path):
    sklearn_iris(tmp_path / "first")
    sklearn_iris(tmp_path / "second")
    (tmp_path / "notes").mkdir()
    server = start_server(["--model-format", "sklearn", "--model-dir", str(tmp_path)])
    assert httpx.get(f"{server.url}/v1/models").json() == {"models": ["first", "second"]}
    for name in ("first", "second"):
        body = {"instances": IRIS_ROWS}
        response = httpx.post(f"{server.url}/v1/models/{name}:predict", json=body)
        assert response.json() == {"predictions": iris_expected(IRIS_ROWS)[0]}


def test_serve_refuses_a_model_dir_with_nothing_to_load(tmp_path):
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("no model here")
    result = subprocess.run(
        [sys.executable, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn",
         "--model-dir", str(tmp_path), "--http-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "holds no file the sklearn runtime can load" in result.stderr


def test_serve_refuses_a_missing_model_dir(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn",
         "--model-dir", str(tmp_path / "absent"), "--http-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_grpc_is_served_by_every_worker(start_server):
    import grpc

    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc

    server = start_server([f"{TOYS}:Pid", "--model-name", "pid", "--workers", "2"])
    request = pb.ModelInferRequest(model_name="pid")
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)

    def pid() -> int:
        with grpc.insecure_channel(server.grpc_target) as channel:  # a new connection
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
        return int(response.outputs[0].contents.int64_contents[0])

    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        seen |= {pid() for _ in range(10)}
    assert len(seen) == 2, "SO_REUSEPORT spreads gRPC connections over both workers"
    assert server.process.pid not in seen
