"""`ksrv up` / `ksrv down`: start and stop the local platform (control plane + gateway)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from ksrv.cli import exposure, telemetry
from ksrv.cli.exposure import checked_tls, tls_options
from ksrv.control import plane
from ksrv.errors import KsrvError

DEFAULT_STATE_DIR = Path(os.environ.get("KSRV_STATE_DIR", Path.home() / ".ksrv"))
START_TIMEOUT_S = 60.0
logger = logging.getLogger(__name__)


def _state_dir_option(function: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_STATE_DIR,
        show_default=True,
        help="Where resources (SQLite), replica state and logs live (env KSRV_STATE_DIR).",
    )(function)


@click.command()
@_state_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Gateway address to bind.")
@click.option(
    "--api-host",
    default="127.0.0.1",
    show_default=True,
    help="Management API address to bind (keep it loopback while the gateway is public).",
)
@click.option("--port", default=8080, show_default=True, help="Gateway HTTP port.")
@click.option("--grpc-port", default=8081, show_default=True, help="Gateway gRPC port.")
@click.option(
    "--gateway-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes sharing its ports (handed to `ksrv gateway --workers`).",
)
@click.option("--api-port", default=8090, show_default=True, help="Management API port.")
@click.option("--domain", default="example.com", show_default=True, help="Ingress domain.")
@click.option("--detach", is_flag=True, help="Run in the background; `ksrv down` stops it.")
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--log-retention-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    envvar="KSRV_LOG_RETENTION_DAYS",
    help="Remove a deleted service's replica logs this long after their last line (0: never).",
)
@click.option(
    "--fork-server/--no-fork-server",
    "enable_fork_server",
    default=True,
    show_default=True,
    envvar="KSRV_FORK_SERVER",
    help="Fork model-server replicas from a warm process instead of starting each afresh "
    "(env KSRV_FORK_SERVER).",
)
@click.option(
    "--autoscaler-config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar="KSRV_AUTOSCALER_CONFIG",
    help="Knative's config-autoscaler ConfigMap (YAML): platform-wide autoscaling defaults.",
)
@click.option(
    "--auth",
    "enable_auth",
    is_flag=True,
    envvar="KSRV_AUTH",
    help="Require bearer tokens on the management API (an admin token is written to "
    "STATE_DIR/admin.token on first start; `ksrv token create` makes more).",
)
@tls_options
@telemetry.otlp_option
@exposure.insecure_option
def up(
    state_dir: Path,
    host: str,
    api_host: str,
    port: int,
    grpc_port: int,
    gateway_workers: int,
    api_port: int,
    domain: str,
    detach: bool,
    log_level: str,
    log_retention_days: float,
    enable_fork_server: bool,
    autoscaler_config: Path | None,
    enable_auth: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    is_insecure_no_auth: bool,
) -> None:
    """Start the local platform: apply InferenceServices to it with `ksrv apply`."""
    tls = checked_tls(tls_cert, tls_key)
    warning = exposure.check(
        {"gateway": host, "management API": api_host}, is_insecure_no_auth, enable_auth, bool(tls)
    )
    # The control plane starts `ksrv gateway` with this environment; its --workers reads it.
    os.environ["KSRV_GATEWAY_WORKERS"] = str(gateway_workers)
    settings = plane.PlaneSettings(
        state_dir=state_dir.resolve(),
        host=host,
        api_host=api_host,
        api_port=api_port,
        gateway_port=port,
        gateway_grpc_port=grpc_port,
        domain=domain,
        gateway_workers=gateway_workers,
        log_retention_s=log_retention_days * 24 * 3600,
        is_insecure_no_auth=is_insecure_no_auth,
        enable_fork_server=enable_fork_server,
        autoscaler_config=autoscaler_config.resolve() if autoscaler_config else None,
        enable_auth=enable_auth,
        tls=tls,
    )
    if warning:
        click.echo(warning, err=True)
    running = _running_pid(settings.pid_file)
    if running is not None:
        click.echo(f"ksrv is already up (pid {running}); management API {settings.api_url}")
        return
    if detach:
        _start_detached(settings, log_level)
        return
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if warning:
        logger.warning(warning)
    try:
        _run(settings)
    except KsrvError as exc:  # a port in use
        click.echo(f"ksrv up: {exc}", err=True)
        sys.exit(2)


def _run(settings: plane.PlaneSettings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a core dependency
        asyncio.run(plane.run(settings, on_started=lambda: _say_up(settings)))
    else:
        uvloop.run(plane.run(settings, on_started=lambda: _say_up(settings)))


@click.command()
@_state_dir_option
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for drain.")
def down(state_dir: Path, timeout: float) -> None:
    """Stop the local platform: drain and stop every replica, then the gateway."""
    pid_file = state_dir.resolve() / "ksrv.pid"
    pid = _running_pid(pid_file)
    if pid is None:
        # The control plane may have died and left replicas and the gateway running.
        stopped = plane.stop_leftovers(state_dir.resolve(), grace_s=timeout)
        if stopped:
            click.echo(f"ksrv's control plane was not running; stopped {stopped} process(es) "
                       "it had left")  # fmt: skip
        else:
            click.echo("ksrv is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while plane.is_alive(pid):
        if time.monotonic() > deadline:
            click.echo(f"ksrv (pid {pid}) did not stop within {timeout:g}s", err=True)
            sys.exit(1)
        time.sleep(0.1)
    click.echo("ksrv is down")


def _start_detached(settings: plane.PlaneSettings, log_level: str) -> None:
    """Start `ksrv up` in its own session; return once its management API and its gateway
    both answer, or exit 1 with the reason (what its log said) when it died or hung."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / "ksrv.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ksrv.cli.main",
                "up",
                "--state-dir",
                str(settings.state_dir),
                "--host",
                settings.host,
                "--api-host",
                settings.api_host,
                *([exposure.INSECURE_FLAG] if settings.is_insecure_no_auth else []),
                "--port",
                str(settings.gateway_port),
                "--grpc-port",
                str(settings.gateway_grpc_port),
                "--gateway-workers",
                str(settings.gateway_workers),
                "--api-port",
                str(settings.api_port),
                "--domain",
                settings.domain,
                "--log-level",
                log_level,
                "--log-retention-days",
                str(settings.log_retention_s / (24 * 3600)),
                "--fork-server" if settings.enable_fork_server else "--no-fork-server",
                *(
                    ["--autoscaler-config", str(settings.autoscaler_config)]
                    if settings.autoscaler_config
                    else []
                ),
                *(["--auth"] if settings.enable_auth else []),
                *(
                    ["--tls-cert", str(settings.tls.cert), "--tls-key", str(settings.tls.key)]
                    if settings.tls
                    else []
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    checks = {
        "management API": f"{settings.api_url}/healthz",
        "gateway": f"{settings.api_url.partition(':')[0]}://{settings.gateway_http}"
        "/ksrv/gateway/health",
    }
    verify = _pinned(settings.tls.cert) if settings.tls else True
    deadline = time.monotonic() + START_TIMEOUT_S
    while checks and time.monotonic() < deadline:
        if process.poll() is not None:
            click.echo(f"ksrv up failed (exit {process.returncode}):", err=True)
            click.echo(_log_tail(log_path, offset), err=True)
            click.echo(f"(log: {log_path})", err=True)
            sys.exit(1)
        # Only once it wrote its pid (its ports are bound) is an answer its own, not one
        # from another server on the port.
        if _running_pid(settings.pid_file) == process.pid:
            checks = {what: url for what, url in checks.items() if not _answers(url, verify)}
        if checks:
            time.sleep(0.1)
    if checks:
        process.terminate()
        missing = " and ".join(checks)
        click.echo(f"ksrv up: the {missing} did not answer within {START_TIMEOUT_S:g}s; "
                   f"stopped it. Its log:", err=True)  # fmt: skip
        click.echo(_log_tail(log_path, offset), err=True)
        click.echo(_log_tail(settings.state_dir / "gateway.log", 0), err=True)
        sys.exit(1)
    _say_up(settings)
    click.echo(f"running in the background (pid {process.pid}); logs in {log_path}")


def _log_tail(path: Path, offset: int, max_lines: int = 15) -> str:
    """The last lines `path` gained after `offset` (the reason a start failed)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-max_lines:])


def _say_up(settings: plane.PlaneSettings) -> None:
    scheme = "https" if settings.tls else "http"
    click.echo(
        f"ksrv is up: gateway {scheme}://{settings.gateway_http} (gRPC {settings.host}:"
        f"{settings.gateway_grpc_port}), management API {settings.api_url}, "
        f"state in {settings.state_dir}"
    )
    click.echo(f"dashboard: {settings.dashboard_url} (or run `ksrv dashboard`)")
    if settings.enable_auth:
        click.echo(
            "the management API requires tokens: `ksrv` commands on this machine use the admin "
            f"token in {settings.state_dir / 'admin.token'} (ksrv token create makes more)"
        )


def _pinned(cert: Path) -> ssl.SSLContext:
    """Trust exactly the certificate we serve (the platform's own, on a loopback name)."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _answers(url: str, verify: ssl.SSLContext | bool) -> bool:
    try:
        return httpx.get(url, timeout=1.0, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return pid if plane.is_alive(pid) else None
