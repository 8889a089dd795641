"""`ksrv up` and `ksrv gateway` refuse a non-loopback address unless `--insecure-no-auth`,
then warn; the management API stays on loopback while the gateway is public. Real `ksrv`
subprocesses; where they bind is read from the kernel's socket table (/proc/net/tcp)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import KSRV, free_port, wait_until

LISTEN = "0A"


def listening(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at `port`."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if int(hex_port, 16) == port and fields[3] == LISTEN:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def run(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KSRV, *args], capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (("--host", "0.0.0.0"), "the gateway on 0.0.0.0"),
        (("--api-host", "0.0.0.0"), "the management API on 0.0.0.0"),
        (("--host", "0.0.0.0", "--detach"), "the gateway on 0.0.0.0"),
    ],
)
def test_up_refuses_a_public_address_without_insecure_no_auth(tmp_path, flags, refused):
    ports = ("--port", str(free_port()), "--api-port", str(free_port()))
    result = run("up", "--state-dir", str(tmp_path / "state"), *ports, *flags)
    assert result.returncode == 1, result.stderr
    assert f"refusing to bind {refused}" in result.stderr
    assert "no authentication" in result.stderr and "--insecure-no-auth" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


def test_gateway_refuses_a_public_address_without_insecure_no_auth():
    result = run(
        "gateway", "--host", "0.0.0.0", "--http-port", str(free_port()), "--grpc-port", "0"
    )
    assert result.returncode == 1
    assert "refusing to bind the gateway on 0.0.0.0" in result.stderr


@pytest.mark.timeout(90)
def test_a_public_gateway_with_insecure_no_auth_warns_and_keeps_the_api_on_loopback(tmp_path):
    port, grpc_port, api_port = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    stderr_path = tmp_path / "up.err"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [*KSRV, "up", "--state-dir", str(state), "--host", "0.0.0.0", "--insecure-no-auth",
             "--port", str(port), "--grpc-port", str(grpc_port), "--api-port", str(api_port)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: listening(port) and listening(api_port), "the gateway and the API")
        assert listening(api_port) == {"127.0.0.1"}
        assert listening(port) == {"0.0.0.0"}
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200
        err = stderr_path.read_text()
        # On stderr and in the log, by `ksrv up` and by the gateway it starts (its own log).
        assert "WARNING: serving the gateway on 0.0.0.0 without authentication" in err
        assert "WARNING ksrv.cli.up" in err
        gateway_log = state / "gateway.log"
        wait_until(lambda: "WARNING ksrv.cli.gateway" in gateway_log.read_text(), "gateway log")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
