"""Cold start and density of sklearn iris replicas: spawned afresh (the baseline) vs forked.

Three parts, each with the baseline in the same run (loopback only; every process it starts
is stopped, and its temporary directory removed, before it exits):

- `breakdown`: where a fresh `ksrv serve` replica's start goes (interpreter, imports, storage,
  model load, binding), phase by phase in a fresh interpreter, next to the time a real
  `ksrv serve` takes to answer its readiness probe.
- `replica`: time from asking for a replica to its first V1 prediction (median of `--rounds`),
  spawned (`python -m ksrv.cli.main serve`) vs forked from a warm `ksrv forkserver`; then the
  PSS / USS / RSS of `--idle` idle replicas of each kind (psutil `memory_full_info`).
- `readiness`: a LocalPlatform with a fork server, `ensure()` of a new revision until its
  replica is Ready, with the readiness probe cadence of before (every 100 ms) and of now.
- `platform`: a real `ksrv up` per mode (`--no-fork-server` = baseline, then `--fork-server`):
  `--services` sklearn InferenceServices applied at once (one `ksrv apply`), the time until all
  are Ready and the total PSS of their replicas; then `--rounds` times a new InferenceService,
  from its create call on the management API to its first V1 prediction through the gateway.

    python bench/cold_start.py [--parts breakdown,replica,readiness,platform] [--rounds 5]
        [--idle 5] [--services 20] [--baseline-src /path/to/other/src]

`--baseline-src` runs the platform part's baseline from another source tree (e.g. main's, for
before/after figures); by default the baseline is this tree with `--no-fork-server`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
KSRV = [sys.executable, "-m", "ksrv.cli.main"]
ROW = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
MIB = 1024 * 1024
TIMEOUT_S = 120.0
CREATE_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
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
# Each phase of a replica's start in a fresh interpreter (argv: spawn wall time, model dir).
PHASES = """
import json, sys, time
marks = {"interpreter start": time.time() - float(sys.argv[1])}
def timed(name, start):
    marks[name] = time.perf_counter() - start
s = time.perf_counter(); import ksrv.cli.main, ksrv.cli.serve, ksrv.server.app
timed("import ksrv serve + server (numpy, api)", s)
s = time.perf_counter(); import uvloop; from ksrv.server import grpc_service
timed("import grpc service + uvloop", s)
s = time.perf_counter(); from ksrv import storage; path = storage.download(sys.argv[2], None)
timed("storage (local uri, cached)", s)
s = time.perf_counter(); from ksrv.runtimes import registry
runtime = registry.runtime_class("sklearn"); runtime.preload()
timed("import sklearn (unpickling needs it)", s)
s = time.perf_counter(); model = runtime("iris", path); model.load()
timed("model load (unpickle)", s)
print(json.dumps(marks))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_argv(model: Path) -> list[str]:
    return [
        *KSRV,
        "serve",
        "--model-format",
        "sklearn",
        "--storage-uri",
        str(model),
        "--model-name",
        "iris",
        "--http-port",
        "{http}",
        "--grpc-port",
        "{grpc}",
    ]


def with_ports(argv: list[str]) -> tuple[list[str], int]:
    http_port, grpc_port = free_port(), free_port()
    filled = [a.replace("{http}", str(http_port)).replace("{grpc}", str(grpc_port)) for a in argv]
    return filled, http_port


def status(port: int, method: str, path: str, body: dict[str, object] | None = None) -> int:
    """The HTTP status of one request, 0 when nothing answers."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, payload, {"content-type": "application/json"})
        code = connection.getresponse().status
        connection.close()
        return code
    except OSError:
        return 0


def wait_for(condition: Callable[[], bool], what: str, poll_s: float = 0.002) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {TIMEOUT_S}s")
        time.sleep(poll_s)


def first_answer(port: int, started: float) -> tuple[float, float]:
    """(ready, first V1 prediction) in seconds after `started`."""
    wait_for(lambda: status(port, "GET", "/v2/health/ready") == 200, f"replica on {port}")
    ready = time.monotonic() - started
    if status(port, "POST", "/v1/models/iris:predict", ROW) != 200:
        raise RuntimeError(f"replica on {port} did not predict")
    return ready, time.monotonic() - started


def memory(pids: list[int]) -> dict[str, float]:
    """Mean PSS, USS and RSS (MiB) and total PSS of `pids`."""
    infos = [psutil.Process(pid).memory_full_info() for pid in pids]
    mean = {
        key: statistics.mean(getattr(i, key) for i in infos) / MIB for key in ("pss", "uss", "rss")
    }
    return {**mean, "total_pss": sum(i.pss for i in infos) / MIB}


def stop(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(30)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# --- breakdown --------------------------------------------------------------------------


def breakdown(model: Path, rounds: int) -> None:
    print(f"\n== where a fresh replica's start goes (spawned `ksrv serve`, median of {rounds}) ==")
    phases: dict[str, list[float]] = {}
    totals = []
    for _ in range(rounds):
        result = subprocess.run(
            [sys.executable, "-c", PHASES, str(time.time()), str(model)],
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT_S,
        )
        for name, seconds in json.loads(result.stdout).items():
            phases.setdefault(name, []).append(seconds)
        argv, port = with_ports(serve_argv(model))
        started = time.monotonic()
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            totals.append(first_answer(port, started)[0])
        finally:
            stop([process.pid])
    accounted = 0.0
    for name, values in phases.items():
        accounted += statistics.median(values)
        print(f"  {name:42s} {statistics.median(values) * 1000:7.0f} ms")
    total = statistics.median(totals)
    print(f"  {'the rest: bind, event loop (and noise)':42s} {(total - accounted) * 1000:7.0f} ms")
    print(f"  {'= ksrv serve until /v2/health/ready is 200':42s} {total * 1000:7.0f} ms")


# --- replica ----------------------------------------------------------------------------


def spawned_replica(model: Path) -> tuple[int, int, float]:
    argv, port = with_ports(serve_argv(model))
    started = time.monotonic()
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    return process.pid, port, started


async def forked_replica(server: object, model: Path, log: Path) -> tuple[int, int, float]:
    from ksrv.control.platforms.forkserver import ForkServer

    assert isinstance(server, ForkServer)
    argv, port = with_ports(serve_argv(model))
    started = time.monotonic()
    forked = await server.fork(argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, log)
    if forked is None:
        raise RuntimeError("the fork server refused")
    return forked.pid, port, started


def replica(model: Path, work: Path, rounds: int, idle: int) -> None:
    print(f"\n== a fresh replica: request -> ready -> first V1 prediction (median of {rounds}) ==")
    results: dict[str, dict[str, float]] = {}
    for mode in ("spawned", "forked"):
        results[mode] = asyncio.run(_replica_mode(mode, model, work, rounds, idle))
    for mode, figures in results.items():
        print(
            f"  {mode:8s} ready {figures['ready'] * 1000:6.0f} ms   first answer "
            f"{figures['answer'] * 1000:6.0f} ms"
        )
    print(f"\n== {idle} idle replicas each (after one prediction), MiB per replica ==")
    for mode, figures in results.items():
        print(
            f"  {mode:8s} PSS {figures['pss']:6.1f}  USS {figures['uss']:6.1f}  RSS "
            f"{figures['rss']:6.1f}  total PSS {figures['total_pss']:7.1f}"
        )
    if "server_pss" in results["forked"]:
        print(f"  (the fork server itself: PSS {results['forked']['server_pss']:.1f} MiB)")


async def _replica_mode(
    mode: str, model: Path, work: Path, rounds: int, idle: int
) -> dict[str, float]:
    from ksrv.control.platforms.forkserver import ForkServer

    server = ForkServer(work / f"forkserver-{mode}.log") if mode == "forked" else None

    async def start(index: int) -> tuple[int, int, float]:
        if server is None:
            return spawned_replica(model)
        return await forked_replica(server, model, work / f"{mode}-{index}.log")

    pids: list[int] = []
    try:
        if server is not None:  # warm it (and its sklearn) once, as a running platform has
            pid, port, started = await start(-1)
            await asyncio.to_thread(first_answer, port, started)
            stop([pid])
        timings = []
        for index in range(rounds):
            pid, port, started = await start(index)
            pids.append(pid)
            timings.append(await asyncio.to_thread(first_answer, port, started))
            stop([pids.pop()])
        for index in range(idle):
            pid, port, started = await start(rounds + index)
            pids.append(pid)
            await asyncio.to_thread(first_answer, port, started)
        figures = memory(pids)
        if server is not None and server.pid is not None:
            figures["server_pss"] = memory([server.pid])["pss"]
        figures["ready"] = statistics.median(t[0] for t in timings)
        figures["answer"] = statistics.median(t[1] for t in timings)
        return figures
    finally:
        stop(pids)
        if server is not None:
            await server.close()


# --- readiness --------------------------------------------------------------------------


def readiness(model: Path, work: Path, rounds: int) -> None:
    print(
        f"\n== LocalPlatform with a fork server: ensure() -> replica Ready (median of {rounds}) =="
    )
    from ksrv.control.platforms.replica import Supervision

    cadences = {
        "probe every 100 ms (before)": Supervision(quick_probe_s=0.0),
        "every 10 ms for the first 2 s": Supervision(),
    }
    for label, supervision in cadences.items():
        timings = asyncio.run(_readiness_rounds(model, work, rounds, supervision))
        print(
            f"  {label:32s} {statistics.median(timings) * 1000:6.0f} ms "
            f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})"
        )


async def _readiness_rounds(
    model: Path, work: Path, rounds: int, supervision: object
) -> list[float]:
    from ksrv.control.platforms.base import RevisionSpec
    from ksrv.control.platforms.forkserver import ForkServer
    from ksrv.control.platforms.local import LocalPlatform
    from ksrv.control.platforms.replica import Supervision

    assert isinstance(supervision, Supervision)
    state = Path(tempfile.mkdtemp(dir=work))
    fork_server = ForkServer(state / "forkserver.log")
    platform = LocalPlatform(state, supervision=supervision, fork_server=fork_server)
    await platform.start()
    argv = [
        a.replace("{http}", "{http_port}").replace("{grpc}", "{grpc_port}")
        for a in serve_argv(model)
    ]
    timings = []
    try:
        for index in range(rounds + 1):  # the first one waits for the fork server: not timed
            spec = RevisionSpec(
                "default",
                f"r{index}",
                "predictor",
                f"r{index}-predictor-00001",
                argv,
                is_forkable=True,
            )
            started = time.monotonic()
            await platform.ensure(spec)
            while platform.observe()[spec.key].replicas[0].phase != "Ready":
                if time.monotonic() - started > TIMEOUT_S:
                    raise RuntimeError(f"{spec.revision} not Ready")
                await asyncio.sleep(0.001)
            if index:
                timings.append(time.monotonic() - started)
            await platform.remove("default", spec.revision)
    finally:
        await platform.shutdown(stop_replicas=True)
    return timings


# --- platform ---------------------------------------------------------------------------


@contextlib.contextmanager
def ksrv_up(
    state: Path, args: list[str], src: Path | None
) -> Iterator[tuple[int, int, dict[str, str]]]:
    port, grpc_port, api_port = free_port(), free_port(), free_port()
    env = {**os.environ, "KSRV_SERVER": f"http://127.0.0.1:{api_port}"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    up = subprocess.Popen(
        [
            *KSRV,
            "up",
            "--state-dir",
            str(state),
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--api-port",
            str(api_port),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        api = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: status(api_port, "GET", "/healthz") == 200, api, 0.05)
        yield port, api_port, env
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def apply(names: list[str], model: Path, env: dict[str, str]) -> None:
    text = "---\n".join(ISVC.format(name=name, storage=model) for name in names)
    subprocess.run(
        [*KSRV, "apply", "-f", "-"],
        input=text,
        text=True,
        check=True,
        capture_output=True,
        env=env,
        timeout=TIMEOUT_S,
    )


def ready_names(api_port: int) -> set[str]:
    """InferenceServices whose Ready condition is True (from the API: no CLI start-ups)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=10)
        connection.request("GET", CREATE_PATH)
        document = json.loads(connection.getresponse().read())
        connection.close()
    except (OSError, ValueError):
        return set()
    return {
        item["metadata"]["name"]
        for item in document.get("items", [])
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
    }


def replica_pids(state: Path) -> list[int]:
    document = json.loads((state / "platform" / "platform.json").read_text())
    return [r["pid"] for rev in document["revisions"] for r in rev["replicas"] if r.get("pid")]


def platform(model: Path, work: Path, rounds: int, count: int, baseline_src: Path | None) -> None:
    print(
        f"\n== real `ksrv up`: {count} sklearn InferenceServices applied at once; then "
        f"create -> first V1 prediction through the gateway (median of {rounds}) =="
    )
    # Another tree's `ksrv up` (main's) knows no --no-fork-server: it only spawns.
    baseline_args = [] if baseline_src is not None else ["--no-fork-server"]
    modes = [
        ("spawned (baseline)", baseline_args, baseline_src),
        ("forked", ["--fork-server"], None),
    ]
    for index, (label, args, src) in enumerate(modes):
        state = work / f"state-{index}"
        with ksrv_up(state, args, src) as (port, api_port, env):
            names = {f"iris-{index:02d}" for index in range(count)}
            started = time.monotonic()
            apply(sorted(names), model, env)
            _wait_ready(names, api_port)
            all_ready = time.monotonic() - started
            figures = memory(replica_pids(state))
            firsts = [_create_to_answer(f"cold-{i}", model, port, api_port) for i in range(rounds)]
        print(
            f"  {label:18s} all {count} Ready {all_ready:5.1f} s   total PSS "
            f"{figures['total_pss']:7.1f} MiB (mean PSS {figures['pss']:.1f}, RSS "
            f"{figures['rss']:.1f})   create -> first answer median "
            f"{statistics.median(firsts) * 1000:.0f} ms (min {min(firsts) * 1000:.0f}, "
            f"max {max(firsts) * 1000:.0f})"
        )


def _wait_ready(names: set[str], api_port: int) -> None:
    wait_for(lambda: ready_names(api_port) >= names, "all Ready", 0.05)


def _create_to_answer(name: str, model: Path, port: int, api_port: int) -> float:
    """From the management API's create call (no CLI start-up in the figure) to the first
    V1 prediction through the gateway: admission, reconcile, replica start, readiness, route
    table, gateway. What a request arriving at zero replicas waits for, less the activator."""
    path = f"/serving/default/{name}/v1/models/{name}:predict"
    document = yaml.safe_load(ISVC.format(name=name, storage=model))
    started = time.monotonic()
    created = status(api_port, "POST", CREATE_PATH, document)
    if created not in (200, 201):
        raise RuntimeError(f"creating {name} answered {created}")
    wait_for(lambda: status(port, "POST", path, ROW) == 200, f"{name} through the gateway", 0.005)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="breakdown,replica,readiness,platform")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=int, default=5)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="ksrv-cold-") as tmp:
        work = Path(tmp)
        model = work / "iris"
        subprocess.run(
            [sys.executable, str(ROOT / "examples/sklearn-iris/train.py"), str(model)],
            check=True,
            capture_output=True,
        )
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, ksrv from {ROOT / 'src'}")
        if "breakdown" in parts:
            breakdown(model, args.rounds)
        if "replica" in parts:
            replica(model, work, args.rounds, args.idle)
        if "readiness" in parts:
            readiness(model, work, args.rounds)
        if "platform" in parts:
            platform(model, work, args.rounds, args.services, args.baseline_src)


if __name__ == "__main__":
    main()
