"""A real local platform for tests: `ksrv up` on free ports, driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import KSRV, free_port

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLES = SHARED / "examples-kserve"


class LocalKsrv:
    """`ksrv up` in the foreground as our child; every replica it starts dies with it."""

    def __init__(
        self,
        state_dir: Path,
        ports: tuple[int, int, int] | None = None,
        args: tuple[str, ...] = (),
        ca: Path | None = None,
    ) -> None:
        """`ports`: gateway HTTP, gateway gRPC and API (free ones by default); `args`: more
        `ksrv up` flags; `ca`: the CA of the certificate `args` serve TLS with (https)."""
        self.state_dir = state_dir
        self.port, self.grpc_port, self.api_port = ports or (free_port(), free_port(), free_port())
        self.args = args
        scheme = "https" if ca else "http"
        self.gateway = f"{scheme}://127.0.0.1:{self.port}"
        self.api = f"{scheme}://127.0.0.1:{self.api_port}"
        self.env = {**os.environ, "KSRV_SERVER": self.api, "KSRV_STATE_DIR": str(state_dir)}
        if ca:
            self.env["KSRV_CA_FILE"] = str(ca)
        self.process: subprocess.Popen[bytes] | None = None
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        self.http = httpx.Client(timeout=30.0, verify=verify)

    def start(self) -> LocalKsrv:
        with open(self.state_dir / "up.log", "ab") as log:
            self.process = self._popen(log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if self.http.get(f"{self.api}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"ksrv up did not answer:\n{self.log()}")

    def _popen(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *KSRV,
                "up",
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
                "--api-port",
                str(self.api_port),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.state_dir / "up.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the control plane only: replicas and the gateway keep running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.http.close()

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [*KSRV, *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=180
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ksrv {' '.join(args)} failed ({result.returncode}):\n{result.stdout}"
                f"\n{result.stderr}\n--- control plane log ---\n{self.log()[-4000:]}"
            )
        return result.stdout + result.stderr

    def apply(self, documents: list[dict[str, Any]] | str, *extra: str) -> str:
        text = documents if isinstance(documents, str) else yaml.safe_dump_all(documents)
        return self.cli("apply", "-f", "-", *extra, stdin=text)

    def isvc(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return json.loads(self.cli("get", "isvc", name, "-n", namespace, "-o", "json"))

    def wait_ready(self, name: str, namespace: str = "default", timeout_s: float = 90) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            isvc = self.isvc(name, namespace)
            conditions = {c["type"]: c for c in isvc.get("status", {}).get("conditions", [])}
            if conditions.get("Ready", {}).get("status") == "True":
                return isvc
            if time.monotonic() > deadline:
                raise AssertionError(f"{namespace}/{name} not ready: {json.dumps(isvc, indent=1)}")
            time.sleep(0.2)

    def routed_replicas(self, name: str, namespace: str = "default") -> dict[str, int]:
        """revision -> replicas the published route table sends `namespace/name` to."""
        table = self.http.get(f"{self.api}/ksrv/v1/routes", params={"after": 0}).json()
        routed: dict[str, int] = {}
        for service in table["services"]:
            if (service["namespace"], service["name"]) == (namespace, name):
                for component in service["components"].values():
                    for backend in component["backends"]:
                        routed[backend["revision"]] = len(backend["replicas"])
        return routed

    def replica_pids(self) -> dict[str, list[int]]:
        """revision -> pids of its replicas, from the platform's state file."""
        state = json.loads((self.state_dir / "platform" / "platform.json").read_text())
        pids: dict[str, list[int]] = {}
        for revision in state.get("revisions", []):
            name = revision["spec"]["revision"]
            pids[name] = [r["pid"] for r in revision.get("replicas", []) if r.get("pid")]
        return pids


def example(name: str) -> list[dict[str, Any]]:
    """The documents of one shared KServe example file."""
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def with_storage(document: dict[str, Any], uri: str) -> dict[str, Any]:
    """The document with its predictor's storageUri replaced by a local copy."""
    predictor = document["spec"]["predictor"]
    spec = predictor.get("model") or next(
        value
        for key, value in predictor.items()
        if isinstance(value, dict) and "storageUri" in value
    )
    spec["storageUri"] = uri
    return document
