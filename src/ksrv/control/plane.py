"""The control-plane process: store, management API and dashboard, reconciler, local platform,
gateway.

`run` wires the pieces of docs/platform.md together in one event loop and supervises the
gateway as a separate process (its own session, so it keeps routing while the control plane
restarts; a restarted control plane adopts it through its pid file, as the platform adopts
replicas). SIGTERM/SIGINT end it: replicas drain and stop, then the gateway.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksrv.control import access, autoscaler_config
from ksrv.control.api_server import MAX_BODY_BYTES, ManagementAPI
from ksrv.control.api_tokens import TokenAuthority
from ksrv.control.autoscaling import Autoscalers
from ksrv.control.dashboard import Dashboard
from ksrv.control.graph_reconciler import InferenceGraphReconciler
from ksrv.control.isvc_reconciler import InferenceServiceReconciler
from ksrv.control.log_retention import DEFAULT_RETENTION_S, LogJanitor
from ksrv.control.metrics import ControlMetrics, scrape_targets
from ksrv.control.model_caches import ModelCacheReconciler
from ksrv.control.model_copies import ModelCopies
from ksrv.control.platforms import local_render, processes, statefile
from ksrv.control.platforms.forkserver import ForkServer
from ksrv.control.platforms.local import STATE_FILE, LocalPlatform
from ksrv.control.reconciler import Reconciler, not_served_reconcilers
from ksrv.control.revision_view import RevisionView
from ksrv.control.routes import RoutePublisher
from ksrv.control.store import Store
from ksrv.control.traffic import TrafficCollector
from ksrv.control.trained_models import TrainedModelReconciler
from ksrv.errors import KsrvError
from ksrv.http import listeners
from ksrv.http.server import HTTPServer
from ksrv.http.tls import TLSFiles

logger = logging.getLogger(__name__)

GATEWAY_RESTART_S = 1.0
GATEWAY_POLL_S = 0.1


@dataclass(frozen=True)
class PlaneSettings:
    state_dir: Path
    host: str = "127.0.0.1"
    """The gateway's address."""
    api_host: str = "127.0.0.1"
    """The management API's address."""
    api_port: int = 8090
    gateway_port: int = 8080
    gateway_grpc_port: int = 8081
    domain: str = "example.com"
    python: str = sys.executable
    gateway_workers: int = 1
    log_retention_s: float = DEFAULT_RETENTION_S  # logs of deleted services; 0 keeps them
    is_insecure_no_auth: bool = False
    """A non-loopback address was accepted without authentication (`--insecure-no-auth`)."""
    enable_fork_server: bool = True
    """Fork model-server replicas from a warm `ksrv forkserver` (`platforms/forkserver.py`)."""
    autoscaler_config: Path | None = None
    """Knative's `config-autoscaler` (a ConfigMap YAML): platform-wide autoscaling defaults."""
    enable_auth: bool = False
    """The management API requires bearer tokens (`ksrv up --auth`; docs/security.md)."""
    tls: TLSFiles | None = None
    """Serve the gateway's ports and the management API over TLS with this pair."""

    @property
    def gateway_http(self) -> str:
        return f"{self.host}:{self.gateway_port}"

    @property
    def api_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.api_host}:{self.api_port}"

    @property
    def dashboard_url(self) -> str:
        return f"{self.api_url}/dashboard/"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "ksrv.pid"

    @property
    def gateway_pid_file(self) -> Path:
        return self.state_dir / "gateway.pid"


class LogFiles:
    """`ksrv logs`: every replica log of a component, oldest revision first."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "platform" / "logs"

    def log_paths(self, namespace: str, name: str, component: str) -> list[Path]:
        return sorted((self.root / namespace).glob(f"{name}-{component}-[0-9]*-[0-9]*.log"))


async def run(settings: PlaneSettings, on_started: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then drain and stop replicas and the gateway.
    `on_started` is called once the ports are bound and the management API answers.

    Raises:
        ServerNotReady: a port is in use (before anything started).
        ResourceInvalid: the autoscaler config is not valid (before anything started).
    """
    config = (
        autoscaler_config.from_file(settings.autoscaler_config)
        if settings.autoscaler_config is not None
        else autoscaler_config.AutoscalerConfig()
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # Every port first, so a port in use is one error before anything starts.
    [api_socket] = listeners.listeners(settings.api_host, settings.api_port, 1, "management API")
    gateway = _Gateway(settings)
    try:
        gateway.prepare()
    except BaseException:
        api_socket.close()
        raise
    settings.pid_file.write_text(str(os.getpid()))
    store = Store(settings.state_dir / "ksrv.db")
    routes = RoutePublisher(settings.domain, parts=("InferenceService", "InferenceGraph"))
    nudges: list[Reconciler] = []

    def nudge() -> None:
        for reconciler in nudges:
            reconciler.nudge()

    fork_server = (
        ForkServer(settings.state_dir / "platform" / "forkserver.log", settings.python)
        if settings.enable_fork_server
        else None
    )
    platform = LocalPlatform(
        settings.state_dir / "platform",
        on_change=nudge,
        python=settings.python,
        gateway=settings.gateway_http,
        domain=settings.domain,
        fork_server=fork_server,
    )
    traffic = TrafficCollector()  # the gateways' per-revision counts, for the autoscaler
    autoscalers = Autoscalers(
        platform, traffic, config, max_replicas=local_render.LOCAL_MAX_REPLICAS
    )
    copies = ModelCopies(settings.state_dir / "localmodels")
    services = InferenceServiceReconciler(
        store,
        platform,
        routes,
        on_removed=nudge,
        autoscalers=autoscalers,
        copies=copies,
        shadows=traffic,
    )
    graphs = InferenceGraphReconciler(
        store, platform, routes, on_removed=nudge, autoscalers=autoscalers
    )
    caches = ModelCacheReconciler(store, copies, python=settings.python)
    metrics = ControlMetrics(platform)
    models = TrainedModelReconciler(store, platform.models_config_root, routes.snapshot)
    reconciler = Reconciler(
        store,
        [services, graphs, caches, models, *not_served_reconcilers(store, time.time)],
        metrics=metrics,
    )
    nudges.append(reconciler)
    # Writes reach the reconciler through the store's change feed; no nudge needed.
    logs = LogFiles(settings.state_dir)
    tokens = TokenAuthority(
        store,
        routes.set_tokens,
        is_required=settings.enable_auth,
        gateway_token=access.gateway_token(settings.state_dir) if settings.enable_auth else None,
    )
    if settings.enable_auth:
        access.bootstrap_admin(tokens, settings.state_dir)
    api = ManagementAPI(
        store,
        routes=routes,
        logs=logs,
        traffic=traffic,
        activate=autoscalers.activate,
        revisions=RevisionView(store, platform),
        tokens=tokens,
        metrics=metrics,
        scrape_targets=functools.partial(
            scrape_targets,
            platform,
            settings.gateway_http,
            f"{settings.api_host}:{settings.api_port}",
        ),
    )
    janitor = LogJanitor(logs.root, store, platform, settings.log_retention_s)
    dashboard = Dashboard(api, platform, *gateway_address(settings))
    server = HTTPServer(dashboard, MAX_BODY_BYTES, dashboard.too_large)
    await platform.start()
    tls = settings.tls.server_context() if settings.tls else None
    await server.start(settings.api_host, settings.api_port, api_socket, tls)
    if on_started is not None:
        on_started()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        loop.create_task(reconciler.run()),
        loop.create_task(gateway.supervise()),
        loop.create_task(janitor.run()),
        loop.create_task(autoscalers.run()),
        loop.create_task(dashboard.series.run()),
    ]
    logger.info(
        "control plane on %s, gateway on http://%s", settings.api_url, settings.gateway_http
    )
    try:
        await stop.wait()
    finally:
        logger.info("stopping: draining replicas")
        # The reconciler stops first: a pass after the drain would start replicas again.
        reconciler.stop()
        await asyncio.wait([tasks[0]], timeout=30)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)
        api.close()
        await server.shutdown(5.0)
        await dashboard.close()
        await platform.shutdown(stop_replicas=True)
        caches.shutdown()
        await models.close()
        await autoscalers.close()
        gateway.stop()
        store.close()
        settings.pid_file.unlink(missing_ok=True)


def gateway_address(settings: PlaneSettings) -> tuple[str, ssl.SSLContext | bool]:
    """How the control plane itself reaches the gateway (the dashboard's reads and "try it"
    calls): on loopback when it listens on every address, pinned to the platform's
    certificate under TLS."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    if settings.tls is None:
        return f"http://{host}:{settings.gateway_port}", True
    context = ssl.create_default_context(cafile=str(settings.tls.cert))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return f"https://{host}:{settings.gateway_port}", context


class _Gateway:
    """Keeps one gateway process running; adopts one a previous control plane left.

    Started and watched through `platforms.processes`, as replicas are: known by PID plus
    start time, reaped with `waitpid`, never a `Popen` that a restart would leave behind.
    The gateway's HTTP listening sockets are bound here and handed down
    (`listeners.inherited`): while a killed gateway restarts, connections wait in their
    backlog instead of being refused. A control plane that restarted takes them back from
    the gateway it adopts (`listeners.take_over`, through gateway.sock in the state
    directory). grpcio cannot serve a socket it is handed, so the gateway binds gRPC itself
    and a gRPC client sees UNAVAILABLE until the new gateway listens (a client with
    `wait_for_ready` waits instead)."""

    def __init__(self, settings: PlaneSettings) -> None:
        self.settings = settings
        self.pid: int | None = None
        self.started: int | None = None
        self.sockets: list[socket.socket] = []

    def prepare(self) -> None:
        """Bind the gateway's ports now, unless a running gateway can be adopted.

        Raises:
            ServerNotReady: a gateway port is in use.
        """
        pid = self._adopted_pid()
        if pid is None:
            self._bind()
            return
        self.sockets = listeners.take_over(self._handover_path)
        if not self.sockets:
            logger.warning(
                "gateway pid %d did not hand over its ports: while it restarts, connections "
                "to them are refused",
                pid,
            )

    @property
    def _handover_path(self) -> Path:
        return self.settings.state_dir / "gateway.sock"

    def _bind(self) -> None:
        settings = self.settings
        host = settings.host
        sockets = listeners.listeners(
            host, settings.gateway_port, settings.gateway_workers, "gateway HTTP"
        )
        try:
            if settings.gateway_grpc_port:
                listeners.check_free(host, settings.gateway_grpc_port, "gateway gRPC")
        except BaseException:
            listeners.close_all(sockets)
            raise
        self.sockets = sockets

    def _adopted_pid(self) -> int | None:
        """A gateway left by a previous control plane, if it serves what we would start;
        one on other ports or polling another API is stopped instead."""
        pid = _gateway_pid(self.settings.state_dir)
        if pid is None:
            return None
        if _argv(pid) != [arg.encode() for arg in self._command()[1:]]:
            logger.info("gateway pid %d runs with other settings: replacing it", pid)
            _terminate(pid)
            return None
        return pid

    def _command(self) -> list[str]:
        settings = self.settings
        return [
            settings.python, "-m", "ksrv.cli.main", "gateway",
            "--host", settings.host,
            "--http-port", str(settings.gateway_port),
            "--grpc-port", str(settings.gateway_grpc_port),
            "--routes-url", f"{settings.api_url}/ksrv/v1/routes",
            *(["--insecure-no-auth"] if settings.is_insecure_no_auth else []),
            *access.gateway_args(settings.state_dir, settings.enable_auth, settings.tls),
        ]  # fmt: skip

    async def supervise(self) -> None:
        while True:
            pid = self._adopted_pid()
            if pid is None:
                try:
                    pid = self._start()
                except KsrvError as exc:
                    logger.error("cannot start the gateway (retrying): %s", exc)
                    await asyncio.sleep(GATEWAY_RESTART_S)
                    continue
            self.pid, self.started = pid, processes.start_time(pid)
            since = time.monotonic()
            await self._wait_for_exit(pid)
            logger.warning("gateway exited; restarting it")
            # At once: connections wait in the sockets' backlog meanwhile. Only one that
            # died young waits, so a gateway that cannot start does not spin.
            if time.monotonic() - since < GATEWAY_RESTART_S:
                await asyncio.sleep(GATEWAY_RESTART_S)

    async def _wait_for_exit(self, pid: int) -> None:
        """Poll (and so reap our own child) until the gateway has exited."""
        while True:
            if processes.poll(pid, self.started) is not None:
                return
            await asyncio.sleep(GATEWAY_POLL_S)

    def _start(self) -> int:
        """Start a gateway on our sockets (bound now if an adopted gateway had the ports)."""
        settings = self.settings
        if not self.sockets:
            self._bind()
        env = {
            **os.environ,
            "KSRV_GATEWAY_WORKERS": str(settings.gateway_workers),
            listeners.LISTEN_FDS_ENV: str(len(self.sockets)),
            listeners.HANDOVER_ENV: str(self._handover_path),
            "OTEL_SERVICE_NAME": "ksrv-gateway",  # in traces (when OTEL_* turns them on)
        }
        fds = [sock.fileno() for sock in self.sockets]
        pid = processes.spawn(self._command(), env, settings.state_dir / "gateway.log", fds)
        settings.gateway_pid_file.write_text(str(pid))
        return pid

    def stop(self) -> None:
        """Stop the gateway, then close its ports."""
        pid = _gateway_pid(self.settings.state_dir)
        if pid is not None:
            _terminate(pid)
        self.settings.gateway_pid_file.unlink(missing_ok=True)
        self._handover_path.unlink(missing_ok=True)
        listeners.close_all(self.sockets)


def is_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    return processes.start_time(pid) is not None


def _argv(pid: int) -> list[bytes]:
    """The process's argv without its interpreter path ([] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:-1]
    except OSError:
        return []


def _gateway_pid(state_dir: Path) -> int | None:
    """The gateway the state directory records, if it still runs (not a reused pid)."""
    try:
        pid = int((state_dir / "gateway.pid").read_text())
    except (OSError, ValueError):
        return None
    argv = _argv(pid)
    is_gateway = argv[:3] == [b"-m", b"ksrv.cli.main", b"gateway"]
    return pid if is_gateway and is_alive(pid) else None


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM, wait up to `grace_s` (reaping it if it is our child), then SIGKILL."""
    started = processes.start_time(pid)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        processes.send(pid, sig, started)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if processes.poll(pid, started) is not None:
                return
            time.sleep(0.05)


def stop_leftovers(state_dir: Path, grace_s: float = 30.0) -> int:
    """`ksrv down` after the control plane died: stop the replicas and the gateway it left
    (each identified by pid and start time); the number of processes stopped."""
    stopped = 0
    for record in statefile.read(state_dir / "platform" / STATE_FILE):
        for replica in record.replicas:
            if replica.pid is not None and processes.is_running(replica.pid, replica.process_start):
                processes.send(replica.pid, signal.SIGTERM, replica.process_start)
                deadline = time.monotonic() + grace_s
                while processes.is_running(replica.pid, replica.process_start):
                    if time.monotonic() > deadline:
                        processes.send(replica.pid, signal.SIGKILL, replica.process_start)
                        break
                    time.sleep(0.05)
                processes.kill_group(replica.pid)
                stopped += 1
    statefile.write(state_dir / "platform" / STATE_FILE, [])
    gateway = _gateway_pid(state_dir)
    if gateway is not None:
        _terminate(gateway)
        stopped += 1
    (state_dir / "gateway.pid").unlink(missing_ok=True)
    (state_dir / "gateway.sock").unlink(missing_ok=True)
    return stopped
