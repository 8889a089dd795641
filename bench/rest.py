"""REST benchmark: ksrv against KServe, MLServer and a bare ASGI floor.

Why: ksrv's claim is "KServe's protocols, faster". The only honest way to show
that is to serve the very same model with the very same payload from every
server in one run, on the same machine and the same environment, and read the
results as ratios: to KServe (the thing ksrv replaces) and to a bare ASGI app
(the floor, the least work Python can do per request).

What it does:

1. Trains an iris LogisticRegression with the running interpreter's
   scikit-learn and saves it as ``bench/.work/model/model.joblib``. Peer venvs
   pin the same scikit-learn version, so that one pickle loads everywhere.
2. Creates the peer venvs under ``bench/.work/venvs`` on first use (KServe
   0.21.0; MLServer 1.7.1 + mlserver-sklearn with uvloop 0.21). Skips any
   server that is not available (e.g. the ``ksrv`` CLI is not installed yet).
3. Starts every server (1 worker, pinned to CPU 0, per-request logging off,
   OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset), waits for ``/v2/health/ready``
   and checks one prediction per protocol.
4. Runs interleaved rounds of ``wrk`` (pinned to CPU 1): for each round, for
   each protocol and connection count, each server gets a warm-up and a timed
   run, one server loaded at a time while the others sit idle. A run during
   which some other process on the machine used CPU is redone, or flagged BUSY.
5. Prints medians over rounds and ratios, and writes every raw run to
   ``bench/.work/results-<timestamp>.json``.

Run it with the project venv: ``.venv/bin/python bench/rest.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
VENVS_DIR = WORK_DIR / "venvs"
LOG_DIR = WORK_DIR / "logs"
MODEL_DIR = WORK_DIR / "model"
MLSERVER_REPO = WORK_DIR / "mlserver-repo"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"
# The project venv: the one running this script (ksrv and the floor live there).
PROJECT_BIN = Path(sys.executable).parent

SERVER_CPU = 0
WRK_CPU = 1
MODEL_NAME = "iris"
MODEL_FILE = "model.joblib"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
EXPECTED_CLASSES = [1, 1]  # both rows are versicolor
PATHS = {"v1": f"/v1/models/{MODEL_NAME}:predict", "v2": f"/v2/models/{MODEL_NAME}/infer"}
HEALTH_PATH = "/v2/health/ready"
UNSET_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# "ksrv-unbatched" is ksrv with `--max-batch-size 1`: what it does without merging concurrent
# requests into one predict call (which the peers here do not do by default).
# Not run by default, only when named in --servers: "mlserver-batched" (MLServer's adaptive
# batching on, which is off unless configured).
ALL_SERVERS = ("ksrv", "ksrv-unbatched", "kserve", "mlserver", "floor")
# "tuned": peers without per-request logging and with httptools (the default);
# "stock": KServe's default logging and MLServer as pip installs it.
PEERS = {"config": "tuned"}
# A run is "busy" if a process outside the benchmark used this share of a core,
# or the machine as a whole used this much more than the benchmark's processes.
BUSY_SHARE = 0.05
OUTSIDE_SHARE = 0.10
BUSY_BACKOFF_S = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KTHREADD_PID = 2
# Talk to 127.0.0.1 directly even if *_proxy variables are set.
NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SKLEARN_VERSION = metadata.version("scikit-learn")
PEER_REQUIREMENTS = {
    "kserve": ["kserve==0.21.0", f"scikit-learn=={SKLEARN_VERSION}"],
    # uvloop >= 0.22 crashes MLServer 1.7.1's workers.
    "mlserver": [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "uvloop==0.21.*",
        # mlserver depends on plain uvicorn, which then parses HTTP with h11;
        # give it the same C parser the other servers get.
        f"httptools=={metadata.version('httptools')}",
        f"scikit-learn=={SKLEARN_VERSION}",
    ],
    # `--peers stock`: MLServer exactly as `pip install` gives it (uvicorn parses with h11).
    "mlserver-stock": [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "uvloop==0.21.*",
        f"scikit-learn=={SKLEARN_VERSION}",
    ],
}
COMMON_PACKAGES = ["uvicorn", "uvloop", "httptools", "orjson", "numpy", "scikit-learn"]
REPORTED_PACKAGES = {
    "ksrv": ["ksrv", *COMMON_PACKAGES],
    "ksrv-unbatched": ["ksrv", *COMMON_PACKAGES],
    "ksrv-baseline": ["ksrv", *COMMON_PACKAGES],
    "kserve": ["kserve", "fastapi", "pydantic", *COMMON_PACKAGES],
    "mlserver": ["mlserver", "mlserver-sklearn", "fastapi", "pydantic", *COMMON_PACKAGES],
    "mlserver-batched": ["mlserver", "mlserver-sklearn", "fastapi", "pydantic", *COMMON_PACKAGES],
    "floor": COMMON_PACKAGES,
}


class Unavailable(Exception):
    """A server cannot be run here; the message says why."""


@dataclass
class Server:
    name: str
    protocols: tuple[str, ...]
    port: int
    argv: list[str]
    python: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = WORK_DIR
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return LOG_DIR / f"{self.name}.log"


# --------------------------------------------------------------------------- setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def csv(kind):
        return lambda text: [kind(item) for item in text.split(",") if item]

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--servers", type=csv(str), default=list(ALL_SERVERS))
    parser.add_argument("--connections", type=csv(int), default=[1, 8, 64])
    parser.add_argument("--protocols", type=csv(str), default=["v1", "v2"])
    parser.add_argument(
        "--peers",
        choices=["tuned", "stock"],
        default="tuned",
        help="tuned: no per-request logging, httptools everywhere (default); "
        "stock: KServe and MLServer with their out-of-the-box settings",
    )
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=2,
        help="redo a run up to N times if other processes used CPU during it (default 2)",
    )
    args = parser.parse_args(argv)
    PEERS["config"] = args.peers
    for name in args.servers:
        if name not in FACTORIES:
            parser.error(f"unknown server {name!r}; choose from {', '.join(FACTORIES)}")
    for protocol in args.protocols:
        if protocol not in PATHS:
            parser.error(f"unknown protocol {protocol!r}; choose from v1, v2")
    return args


def check_tools() -> None:
    """Fail early, with instructions, if the load generator or pinning is missing."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed: apt-get install -y util-linux")
    cpus = os.sched_getaffinity(0)
    if not {SERVER_CPU, WRK_CPU} <= cpus:
        sys.exit(f"need CPUs {SERVER_CPU} and {WRK_CPU} (server, wrk); have {sorted(cpus)}")


def train_model() -> Path:
    """Train the iris model with this venv's scikit-learn and save it with joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    predicted = model.predict(ROWS).tolist()
    if predicted != EXPECTED_CLASSES:
        sys.exit(f"trained model predicts {predicted}, expected {EXPECTED_CLASSES}")
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    path = MODEL_DIR / MODEL_FILE
    joblib.dump(model, path)
    return path


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """Create or update bench/.work/venvs/NAME so it holds exactly these pins.

    Idempotent: a marker file records what was installed; nothing is done when
    it matches. Returns the venv's python.
    """
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    marker = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"[setup] installing {name} venv in {venv} (first run only): {' '.join(requirements)}")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"pip-{name}.log"
    with log_path.open("w") as log:
        if not python.exists():
            base_python = shutil.which("python3") or sys.executable
            subprocess.run(
                [base_python, "-m", "venv", str(venv)], check=True, stdout=log, stderr=log
            )
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements]
        if subprocess.run(pip, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise Unavailable(f"pip install failed for the {name} venv, see {log_path}")
    marker.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------- server definitions


def as_flags(options: dict) -> list[str]:
    """{"--port": 80} -> ["--port", "80"]"""
    return [str(word) for pair in options.items() for word in pair]


def make_ksrv(model_dir: Path) -> Server:
    ksrv = PROJECT_BIN / "ksrv"
    if not ksrv.exists():
        raise Unavailable(f"{ksrv} not found (ksrv is not installed in the project venv yet)")
    probe = subprocess.run([str(ksrv), "serve", "--help"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        raise Unavailable(f"`ksrv serve --help` exited {probe.returncode}")
    port = free_port()
    options = {
        "--model-name": MODEL_NAME,
        "--model-dir": model_dir,
        "--model-format": "sklearn",
        "--http-port": port,
        "--grpc-port": 0,  # no gRPC
        "--workers": 1,
    }
    argv = [str(ksrv), "serve", *as_flags(options)]
    return Server("ksrv", ("v1", "v2"), port, argv, python=PROJECT_BIN / "python")


def unbatched(server: Server) -> Server:
    """A ksrv server that answers every request on its own (no merging)."""
    server.name = "ksrv-unbatched"
    server.argv += ["--max-batch-size", "1"]
    return server


def make_ksrv_unbatched(model_dir: Path) -> Server:
    return unbatched(make_ksrv(model_dir))


def make_ksrv_baseline(model_dir: Path) -> Server:
    """ksrv from another source tree (`KSRV_BASELINE_SRC`, e.g. a git worktree of an older
    commit) in the project venv: before/after figures of one change in the same run."""
    source = os.environ.get("KSRV_BASELINE_SRC")
    if not source or not (Path(source) / "ksrv").is_dir():
        raise Unavailable("set KSRV_BASELINE_SRC to a src/ directory holding another ksrv")
    server = make_ksrv(model_dir)
    server.name = "ksrv-baseline"
    server.argv = [str(PROJECT_BIN / "python"), "-m", "ksrv.cli.main", *server.argv[1:]]
    server.env = {**server.env, "PYTHONPATH": str(Path(source).resolve())}
    return server


def make_kserve(model_dir: Path) -> Server:
    python = ensure_venv("kserve", PEER_REQUIREMENTS["kserve"])
    port = free_port()
    options = {
        "--model_name": MODEL_NAME,
        "--model_dir": model_dir,
        "--http_port": port,
        "--workers": 1,
    }
    argv = [str(python), str(BENCH_DIR / "kserve_server.py"), *as_flags(options)]
    if PEERS["config"] == "stock":
        argv.append("--stock")
    return Server("kserve", ("v1", "v2"), port, argv, python=python)


def write_mlserver_repo(
    repo: Path, model_path: Path, http_port: int, batching: dict | None = None
) -> None:
    """MLServer reads settings.json and <model>/model-settings.json from its repo dir."""
    model_dir = repo / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model_path, model_dir / MODEL_FILE)
    settings = {
        "debug": False,  # no access log
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),  # cannot be disabled: give it a free port
        "metrics_port": free_port(),
        "parallel_workers": 0,  # infer in the server process, like the others
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": f"./{MODEL_FILE}"},
        **(batching or {}),
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


def make_mlserver(model_dir: Path) -> Server:
    venv = "mlserver-stock" if PEERS["config"] == "stock" else "mlserver"
    python = ensure_venv(venv, PEER_REQUIREMENTS[venv])
    port = free_port()
    write_mlserver_repo(MLSERVER_REPO, model_dir / MODEL_FILE, port)
    argv = [str(python.parent / "mlserver"), "start", str(MLSERVER_REPO)]
    return Server("mlserver", ("v2",), port, argv, python=python, cwd=MLSERVER_REPO)


def make_mlserver_batched(model_dir: Path) -> Server:
    """MLServer with its adaptive batching on (off by default): up to 32 requests a batch,
    waiting at most 1 ms for them."""
    python = ensure_venv("mlserver", PEER_REQUIREMENTS["mlserver"])
    port = free_port()
    repo = WORK_DIR / "mlserver-batched-repo"
    batching = {"max_batch_size": 32, "max_batch_time": 0.001}
    write_mlserver_repo(repo, model_dir / MODEL_FILE, port, batching)
    argv = [str(python.parent / "mlserver"), "start", str(repo)]
    return Server("mlserver-batched", ("v2",), port, argv, python=python, cwd=repo)


def make_floor(model_dir: Path) -> Server:
    port = free_port()
    options = {
        "--app-dir": BENCH_DIR,
        "--host": "127.0.0.1",
        "--port": port,
        "--http": "httptools",
        "--loop": "uvloop",
        "--workers": 1,
        "--lifespan": "off",
        "--log-level": "warning",
    }
    argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--no-access-log", *as_flags(options)]
    env = {"FLOOR_MODEL_PATH": str(model_dir / MODEL_FILE)}
    return Server("floor", ("v1", "v2"), port, argv, python=Path(sys.executable), env=env)


FACTORIES = {
    "ksrv": make_ksrv,
    "ksrv-unbatched": make_ksrv_unbatched,
    "ksrv-baseline": make_ksrv_baseline,  # only when named in --servers
    "kserve": make_kserve,
    "mlserver": make_mlserver,
    "mlserver-batched": make_mlserver_batched,
    "floor": make_floor,
}


def build_servers(names: list[str], model_dir: Path) -> tuple[list[Server], dict[str, str]]:
    servers, skipped = [], {}
    for name in names:
        try:
            servers.append(FACTORIES[name](model_dir))
        except Unavailable as reason:
            skipped[name] = str(reason)
            print(f"[skip] {name}: {reason}")
    return servers, skipped


# ----------------------------------------------------------------- process control


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """One environment for every server: ours, minus the OpenBLAS tuning variables."""
    env = {key: value for key, value in os.environ.items() if key not in UNSET_ENV}
    env.update(extra)
    return env


def start(server: Server) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with server.log_path.open("wb") as log:
        server.proc = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CPU), *server.argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(server.env),
            cwd=server.cwd,
            start_new_session=True,  # own process group: Ctrl-C reaches us, we stop it
        )


def stop_all(servers: list[Server], grace: float = 10.0) -> None:
    """SIGTERM every server's process group, then SIGKILL what is left after `grace`."""
    running = [s for s in servers if s.proc is not None and s.proc.poll() is None]
    for server in running:
        signal_group(server.proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for server in running:
        try:
            server.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[stop] {server.name} did not exit on SIGTERM, killing")
        signal_group(server.proc, signal.SIGKILL)  # also reaps stray children
        server.proc.wait()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def log_tail(server: Server, lines: int = 20) -> str:
    try:
        text = server.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


def http(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if os.environ.get("BENCH_AUTHORIZATION"):  # bench/gateway.py --auth, as post.lua sends it
        headers["Authorization"] = os.environ["BENCH_AUTHORIZATION"]
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise Unavailable(f"exited with code {server.proc.returncode}:\n{log_tail(server)}")
        try:
            if http(server.base_url + HEALTH_PATH, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise Unavailable(f"not ready after {timeout:.0f}s:\n{log_tail(server)}")


# ------------------------------------------------------------------------ payloads


def request_body(protocol: str) -> bytes:
    if protocol == "v1":
        payload = {"instances": ROWS}
    else:
        flat = [value for row in ROWS for value in row]
        tensor = {
            "name": "input-0",
            "shape": [len(ROWS), len(ROWS[0])],
            "datatype": "FP64",
            "data": flat,
        }
        payload = {"inputs": [tensor]}
    return json.dumps(payload, separators=(",", ":")).encode()


def response_classes(protocol: str, body: bytes) -> list:
    document = json.loads(body)
    if protocol == "v1":
        return document["predictions"]
    return document["outputs"][0]["data"]


def verify(server: Server) -> None:
    """One real request per protocol; the class ids must match the model's."""
    for protocol in server.protocols:
        status, body = http(server.base_url + PATHS[protocol], request_body(protocol))
        if status != 200:
            raise Unavailable(f"{protocol} returned HTTP {status}: {body[:300]!r}")
        classes = response_classes(protocol, body)
        if [int(value) for value in classes] != EXPECTED_CLASSES:
            raise Unavailable(f"{protocol} predicted {classes}, expected {EXPECTED_CLASSES}")


# ---------------------------------------------------------------------- measuring


def run_wrk(url: str, body: bytes, connections: int, seconds: int) -> dict:
    """One wrk run; returns the numbers printed by post.lua's done() plus rps."""
    command = [
        "taskset",
        "-c",
        str(WRK_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": body.decode()}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.split(" ", 1)[1])
            break
    else:
        raise RuntimeError(
            f"wrk printed no result (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["socket_errors"] = sum(
        result[f"errors_{kind}"] for kind in ("connect", "read", "write", "timeout")
    )
    result["non_2xx"] = result["errors_status"]
    return result


def measure(servers: list[Server], args: argparse.Namespace) -> list[dict]:
    """Interleaved rounds; the server order rotates each round to spread drift."""
    own_groups = {os.getpgrp()} | {server.proc.pid for server in servers}
    runs = []
    for round_no in range(1, args.rounds + 1):
        print(f"\n== round {round_no}/{args.rounds}")
        for protocol in args.protocols:
            for connections in args.connections:
                eligible = [s for s in servers if protocol in s.protocols]
                shift = (round_no - 1) % max(1, len(eligible))
                for server in eligible[shift:] + eligible[:shift]:
                    result = measure_one(server, protocol, connections, args, own_groups)
                    run = {
                        "round": round_no,
                        "protocol": protocol,
                        "connections": connections,
                        "server": server.name,
                        **result,
                    }
                    runs.append(run)
                    print(progress_line(run))
    return runs


def measure_one(
    server: Server, protocol: str, connections: int, args: argparse.Namespace, own_groups: set
) -> dict:
    """Warm up, then one timed run; redo it if another process was eating CPU meanwhile."""
    url, body = server.base_url + PATHS[protocol], request_body(protocol)
    for attempt in range(1, args.busy_retries + 2):
        if args.warmup > 0:
            run_wrk(url, body, connections, args.warmup)
        before = sample_cpu()
        result = run_wrk(url, body, connections, args.duration)
        result["foreign_cpu"] = foreign_cpu(before, sample_cpu(), own_groups)
        result["attempts"] = attempt
        if not result["foreign_cpu"] or attempt > args.busy_retries:
            break
        print(f"  [busy] {server.name}: other processes used {result['foreign_cpu']}; redoing")
        time.sleep(BUSY_BACKOFF_S)
    return result


@dataclass
class CpuSample:
    at: float  # time.monotonic()
    machine: int  # busy clock ticks summed over all CPUs (/proc/stat)
    processes: dict[int, tuple[str, int, int]]  # pid -> (name, process group, ticks)


def sample_cpu() -> CpuSample:
    """CPU used so far, by the whole machine and by each user-space process.

    A process's ticks include its reaped children's (cutime, cstime), so a
    short-lived process still shows up in its parent.
    """
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, stat.readline().split()[1:9]
        )
    processes = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()  # fields[0] is stat field 3 (state)
        ppid, group = int(fields[1]), int(fields[2])
        if ppid != KTHREADD_PID and int(entry.name) != KTHREADD_PID:  # skip kernel threads
            processes[int(entry.name)] = (name, group, sum(map(int, fields[11:15])))
    busy = user + nice + system + irq + softirq + steal
    return CpuSample(time.monotonic(), busy, processes)


def foreign_cpu(before: CpuSample, after: CpuSample, own_groups: set) -> dict[str, float]:
    """Shares of a core used outside this benchmark between two samples.

    Names each outside process above BUSY_SHARE, and adds "all_outside" when
    the machine as a whole used OUTSIDE_SHARE more than this benchmark's
    processes did (wrk counts as ours through this process's reaped children):
    that catches processes that came and went between the two samples.
    """
    seconds = after.at - before.at
    busy, own = {}, 0
    for pid, (name, group, ticks) in after.processes.items():
        used = ticks - before.processes.get(pid, (name, group, 0))[2]
        if group in own_groups:
            own += used
        elif used / CLOCK_TICKS / seconds >= BUSY_SHARE:
            busy[f"{name}[{pid}]"] = round(used / CLOCK_TICKS / seconds, 2)
    outside = (after.machine - before.machine - own) / CLOCK_TICKS / seconds
    if outside >= OUTSIDE_SHARE:
        busy["all_outside"] = round(outside, 2)
    return busy


def progress_line(run: dict) -> str:
    flags = error_flags(run["non_2xx"], run["socket_errors"])
    if run["foreign_cpu"]:
        flags += f" BUSY {run['foreign_cpu']}"
    return (
        f"  {run['protocol']} c={run['connections']:<3} {run['server']:<9}"
        f"{run['rps']:>9.0f} rps  p50 {run['p50_us'] / 1000:7.2f} ms"
        f"  p99 {run['p99_us'] / 1000:7.2f} ms {flags}"
    ).rstrip()


def error_flags(non_2xx: int, socket_errors: int, busy_runs: int = 0) -> str:
    parts = []
    if non_2xx:
        parts.append(f"NON-2XX={non_2xx}")
    if socket_errors:
        parts.append(f"SOCKET-ERRORS={socket_errors}")
    if busy_runs:
        parts.append(f"BUSY={busy_runs}")
    return " ".join(parts)


# ----------------------------------------------------------------------- reporting


def summarize(runs: list[dict]) -> list[dict]:
    """Median over rounds per (protocol, connections, server), plus ratios.

    Runs flagged busy are left out when the same cell has a clean round; if
    every round was busy they are used, and the row says so (busy_runs).
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["protocol"], run["connections"], run["server"]), []).append(run)
    rows = []
    for (protocol, connections, server), members in groups.items():
        clean = [r for r in members if not r["foreign_cpu"]]
        used = clean or members
        rows.append(
            {
                "protocol": protocol,
                "connections": connections,
                "server": server,
                "rounds": len(members),
                "rounds_used": len(used),
                "rps": statistics.median(r["rps"] for r in used),
                "p50_ms": statistics.median(r["p50_us"] for r in used) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in used) / 1000,
                "non_2xx": sum(r["non_2xx"] for r in members),
                "socket_errors": sum(r["socket_errors"] for r in members),
                "busy_runs": 0 if clean else len(members),
            }
        )
    for row in rows:
        peers = {
            r["server"]: r
            for r in rows
            if (r["protocol"], r["connections"]) == (row["protocol"], row["connections"])
        }
        floor, kserve, mlserver = peers.get("floor"), peers.get("kserve"), peers.get("mlserver")
        row["rps_vs_floor"] = row["rps"] / floor["rps"] if floor else None
        row["rps_vs_kserve"] = row["rps"] / kserve["rps"] if kserve else None
        row["p99_vs_kserve"] = row["p99_ms"] / kserve["p99_ms"] if kserve else None
        row["rps_vs_mlserver"] = row["rps"] / mlserver["rps"] if mlserver else None
        row["p99_vs_mlserver"] = row["p99_ms"] / mlserver["p99_ms"] if mlserver else None
    return rows


def format_table(
    rows: list[dict], servers: list[str], protocols: list[str], connections: list[int]
) -> str:
    header = (
        f"{'proto':<5} {'conns':>5}  {'server':<14} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'RPS/floor':>9} {'RPS/kserve':>10} {'p99/kserve':>10}"
        f" {'RPS/mlserver':>12} {'p99/mlserver':>12}  flags"
    )
    lines = [header, "-" * len(header)]
    by_key = {(r["protocol"], r["connections"], r["server"]): r for r in rows}
    for protocol in protocols:
        for conns in connections:
            for server in servers:
                label = f"{protocol:<5} {conns:>5}  {server:<14}"
                cells = format_cells(by_key.get((protocol, conns, server)))
                lines.append((label + cells).rstrip())
            lines.append("")
    return "\n".join(lines).rstrip()


def format_cells(row: dict | None) -> str:
    if row is None:  # e.g. MLServer has no V1 protocol
        return f" {'n/a':>8}"
    flags = error_flags(row["non_2xx"], row["socket_errors"], row["busy_runs"])
    if row["rounds_used"] < row["rounds"]:
        flags += f" {row['rounds_used']}/{row['rounds']} rounds"
    return (
        f" {row['rps']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        f" {ratio(row['rps_vs_floor']):>9} {ratio(row['rps_vs_kserve']):>10}"
        f" {ratio(row['p99_vs_kserve']):>10} {ratio(row['rps_vs_mlserver']):>12}"
        f" {ratio(row['p99_vs_mlserver']):>12}  {flags.strip()}"
    )


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def package_versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n        out[name] = 'not installed'\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()}


def project_revision() -> str:
    """Which ksrv was measured: the project's commit, and whether src/ differs from it."""
    git = ["git", "-C", str(BENCH_DIR.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True
    )
    revision = head.stdout.strip() if head.returncode == 0 else "no commit"
    return revision + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")


def describe_environment() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True
    ).stdout.splitlines()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "project_revision": project_revision(),
        "kernel": platform.release(),
        "wrk": wrk_version[0] if wrk_version else "?",
        "unset_for_servers": {name: os.environ.get(name) for name in UNSET_ENV},
        "server_cpu": SERVER_CPU,
        "wrk_cpu": WRK_CPU,
    }


def print_versions(versions: dict[str, dict[str, str]]) -> None:
    print("\nversions:")
    for server, packages in versions.items():
        listed = ", ".join(f"{name} {version}" for name, version in packages.items())
        print(f"  {server:<9} {listed}")


def write_results(document: dict) -> Path:
    path = WORK_DIR / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(document, indent=2))
    return path


# ---------------------------------------------------------------------------- main


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def start_and_check(servers: list[Server], skipped: dict[str, str]) -> list[Server]:
    """Start all servers, then keep only those that become ready and answer correctly."""
    for server in servers:
        start(server)
    healthy = []
    for server in servers:
        try:
            wait_ready(server)
            verify(server)
        except Unavailable as reason:
            skipped[server.name] = str(reason)
            print(f"[skip] {server.name}: {reason}")
            continue
        print(
            f"[ready] {server.name} on :{server.port} (pid {server.proc.pid}), predictions verified"
        )
        healthy.append(server)
    return healthy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools()
    signal.signal(signal.SIGTERM, raise_interrupt)
    environment = describe_environment()
    print(
        f"REST bench: rounds={args.rounds} duration={args.duration}s warmup={args.warmup}s "
        f"connections={args.connections} protocols={args.protocols}"
    )
    print(
        f"servers pinned to CPU {SERVER_CPU}, wrk to CPU {WRK_CPU}; 1 worker each; "
        f"unset for every server: {', '.join(UNSET_ENV)} (were {environment['unset_for_servers']})"
    )
    print(f"project: {environment['project_revision']}")
    model_path = train_model()
    print(f"model: {model_path} (scikit-learn {SKLEARN_VERSION}, pinned in every venv)")
    servers: list[Server] = []
    try:
        servers, skipped = build_servers(args.servers, model_path.parent)
        healthy = start_and_check(servers, skipped)
        if not healthy:
            print("no server to measure")
            return 1
        versions = {s.name: package_versions(s.python, REPORTED_PACKAGES[s.name]) for s in healthy}
        print_versions(versions)
        runs = measure(healthy, args)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers")
        return 130
    finally:
        stop_all(servers)

    rows = summarize(runs)
    print_report(rows, [s.name for s in healthy], args, skipped)
    document = {
        "args": vars(args),
        "environment": environment,
        "versions": versions,
        "skipped": skipped,
        "summary": rows,
        "runs": runs,
    }
    print(f"\nraw results: {write_results(document)}")
    return 0


def print_report(
    rows: list[dict], names: list[str], args: argparse.Namespace, skipped: dict[str, str]
) -> None:
    print(f"\nmedians over {args.rounds} round(s), {args.duration}s runs:\n")
    print(format_table(rows, names, args.protocols, args.connections))
    if any(r["non_2xx"] or r["socket_errors"] for r in rows):
        print("\nWARNING: some runs had non-2xx responses or socket errors (see flags)")
    if any(r["busy_runs"] for r in rows):
        print("WARNING: BUSY=n: all n rounds shared the machine with other busy processes")
    if any(r["rounds_used"] < r["rounds"] for r in rows):
        print("note: 'k/n rounds': busy rounds left out of that median (details in the JSON)")
    if skipped:
        print()
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason.splitlines()[0]}")


if __name__ == "__main__":
    sys.exit(main())
