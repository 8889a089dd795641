"""Process behaviour: draining on SIGTERM, worker processes, the thread pool, the repository."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal

import httpx

from tests.conftest import HELD_TIMEOUT_S, TESTS_DIR, HeldLoop, ModelCalls, wait_until
from tests.models import IRIS_ROWS, iris_expected, sklearn_iris

TOYS = str(TESTS_DIR / "toys.py")


def readiness(server) -> int | None:
    """/v2/health/ready's status, None once the listener is closed (also "not ready")."""
    try:
        return httpx.get(f"{server.url}/v2/health/ready", timeout=HELD_TIMEOUT_S).status_code
    except httpx.TransportError:
        return None


def test_sigterm_answers_every_accepted_request_then_exits(start_server):
    server = start_server([f"{TOYS}:Gate", "--model-name", "gate", "--max-threads", "8"])
    url = f"{server.url}/v1/models/gate:predict"
    with concurrent.futures.ThreadPoolExecutor(6) as pool, ModelCalls() as calls:
        body = {"port": calls.port}
        futures = [pool.submit(httpx.post, url, json=body, timeout=60) for _ in range(6)]
        calls.wait_for(6)  # all six are inside the model, and stay there until released
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: readiness(server) != 200, "the draining server says it is not ready")
        ready = readiness(server)
        assert not any(future.done() for future in futures)
        calls.release()
        responses = [future.result() for future in futures]
    assert ready in (503, None)
    assert [r.status_code for r in responses] == [200] * 6
    assert server.process.wait(HELD_TIMEOUT_S) in (0, -signal.SIGTERM)  # uvicorn re-raises it


def test_a_slow_sync_predict_does_not_block_health_checks(start_server):
    server = start_server([f"{TOYS}:Gate", "--model-name", "gate"])
    url = f"{server.url}/v1/models/gate:predict"
    with concurrent.futures.ThreadPoolExecutor(1) as pool, ModelCalls() as calls:
        slow = pool.submit(httpx.post, url, json={"port": calls.port}, timeout=60)
        calls.wait_for(1)
        # predict stays inside the model until released: were it blocking the loop, this
        # health check would never be answered (it times out and fails)
        live = httpx.get(f"{server.url}/v2/health/live", timeout=HELD_TIMEOUT_S)
        assert live.status_code == 200
        assert not slow.done(), "the health check must be answered while predict still runs"
        calls.release()
        assert slow.result().status_code == 200


def worker_pids(server) -> set[int]:
    """Each of two workers' pid: one holds its loop in the `pid` toy, so the next connection
    can only be accepted (from the shared socket) by the other, even one still starting."""
    with HeldLoop(server, model="pid") as held:
        other = httpx.post(f"{server.url}/v1/models/pid:predict", json={}, timeout=60)
    return {held.answer["pid"], other.json()["pid"]}


def test_workers_share_the_port_and_a_killed_worker_is_replaced(start_server):
    server = start_server([f"{TOYS}:Pid", "--model-name", "pid", "--workers", "2"])
    workers = worker_pids(server)
    assert len(workers) == 2
    assert server.process.pid not in workers
    victim, survivor = sorted(workers)
    os.kill(victim, signal.SIGKILL)
    replaced = worker_pids(server)
    assert survivor in replaced, "the surviving worker still answers"
    assert len(replaced - {survivor, victim}) == 1, "a replacement worker answers"


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

    def every_worker_seen() -> bool:
        options = [("grpc.use_local_subchannel_pool", 1)]  # a new connection each time
        with grpc.insecure_channel(server.grpc_target, options=options) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            response = stub.ModelInfer(request, timeout=HELD_TIMEOUT_S, wait_for_ready=True)
        seen.add(int(response.outputs[0].contents.int64_contents[0]))
        return seen >= workers

    workers = worker_pids(server)
    seen: set[int] = set()

    # The kernel picks the worker of each new connection by a hash of its address and port:
    # one worker is missed k connections in a row with chance 2^-k, so this bound only
    # catches a worker that never gets any.
    wait_until(every_worker_seen, "SO_REUSEPORT spreads gRPC connections over both workers")
    assert seen == workers
