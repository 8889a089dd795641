"""`ksrv get -o jsonpath|-w`, `ksrv get csr` and `ksrv logs -f` against a real management API
on 127.0.0.1: in-process (click's CliRunner) where one answer is enough, a `ksrv` subprocess
stopped with SIGINT (Ctrl-C) where the command keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksrv.cli.main import cli
from ksrv.control.api_server import ManagementAPI
from ksrv.control.store import Store
from tests.api_server_support import running_api
from tests.conftest import KSRV, wait_until

ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-iris", "namespace": "default"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://a"}}},
}
PREV, LATEST = "sklearn-iris-predictor-00001", "sklearn-iris-predictor-00002"
ROLLING_OUT = {
    "url": "http://sklearn-iris-default.example.com",
    "address": {"url": "http://127.0.0.1:8080/serving/default/sklearn-iris"},
    "conditions": [
        {"type": "PredictorReady", "status": "Unknown", "reason": "Starting"},
        {"type": "IngressReady", "status": "True"},
        {"type": "Ready", "status": "Unknown", "reason": "Starting"},
    ],
    "components": {
        "predictor": {
            "latestCreatedRevision": LATEST,
            "latestReadyRevision": PREV,
            "traffic": [
                {"revisionName": LATEST, "percent": 0, "latestRevision": True, "tag": "latest"},
                {"revisionName": PREV, "percent": 100, "latestRevision": False, "tag": "prev"},
            ],
        }
    },
}
READY = {
    **ROLLING_OUT,
    "conditions": [{"type": "Ready", "status": "True"}],
    "components": {
        "predictor": {
            "latestReadyRevision": LATEST,
            "traffic": [{"revisionName": LATEST, "percent": 100, "latestRevision": True}],
        }
    },
}


class OneLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def log_paths(self, namespace: str, name: str, component: str) -> list[Path]:
        return [self.path] if (namespace, name) == ("default", "sklearn-iris") else []


@pytest.fixture
def store() -> Store:
    store = Store(":memory:")
    store.apply(ISVC)
    return store


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "sklearn-iris-predictor-00001-0.log"
    path.write_text("starting\nready\n")
    return path


@pytest.fixture
def server(store, log) -> Iterator[str]:
    with running_api(ManagementAPI(store, logs=OneLog(log))) as running:
        yield running.url


@pytest.fixture
def ksrv(server):
    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--server", server])

    return run


class Running:
    """A `ksrv` subprocess whose stdout and stderr lines are collected as they arrive."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*KSRV, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # As a terminal's foreground command gets it: a suite started in the background by
            # a non-interactive shell (`make test &`) ignores SIGINT, and children inherit that.
            preexec_fn=_default_sigint,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; the exit code and stderr. A process still there 30 s later is killed and
        the test fails saying how it stood (its signal masks: was SIGINT ignored or blocked?),
        with its pipes closed, so no unclosed pipe surfaces in a later test."""
        self.process.send_signal(signal.SIGINT)
        stood = ""
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stood = _signal_state(self.process.pid)
            self.process.kill()
            self.process.wait()
        finally:
            for reader in self._readers:
                reader.join(10)
            assert self.process.stdout is not None and self.process.stderr is not None
            self.process.stdout.close()
            self.process.stderr.close()
        assert not stood, f"still running 30 s after Ctrl-C ({stood}); stderr: {self.errors}"
        return self.process.returncode, "\n".join(self.errors)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return str(exc)
    return ", ".join(line for line in status if line.startswith(("State", "Sig")))


def set_status(store: Store, status: dict) -> None:
    store.update_status("InferenceService", "default", "sklearn-iris", status)


def test_jsonpath_prints_status_url_bare_for_kserves_getting_started_recipe(ksrv, store):
    set_status(store, READY)
    url = ksrv("get", "isvc", "sklearn-iris", "-o", "jsonpath={.status.url}")
    assert url.exit_code == 0, url.output
    assert url.stdout == "http://sklearn-iris-default.example.com"
    assert url.stdout.split("/")[2] == "sklearn-iris-default.example.com"  # `cut -d/ -f3`
    rows = ksrv(
        "get",
        "isvc",
        "-o",
        'jsonpath={range .items[*]}{.metadata.name}{"\\t"}'
        '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    )
    assert rows.stdout == "sklearn-iris\tTrue\n"


@pytest.mark.parametrize(
    ("output", "says"),
    [("xml", "allowed formats: yaml, json, wide, jsonpath="), ("jsonpath={.a", "unclosed")],
)
def test_an_unknown_output_or_broken_template_is_a_usage_error(ksrv, output, says):
    result = ksrv("get", "isvc", "-o", output)
    assert result.exit_code == 2
    assert says in result.stderr


def test_a_rollout_under_way_shows_ready_unknown_with_prev_and_latest(ksrv, store):
    set_status(store, ROLLING_OUT)
    lines = ksrv("get", "isvc").stdout.splitlines()
    header, row = lines[0].split(), lines[1].split()
    assert header[:7] == ["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION",
                          "LATESTREADYREVISION"]  # fmt: skip
    assert row[:8] == [
        "sklearn-iris",
        "http://sklearn-iris-default.example.com",
        "Unknown",
        "100",
        "0",
        PREV,
        PREV,
        "http://127.0.0.1:8080/serving/default/sklearn-iris",
    ]


def test_get_csr_lists_the_runtimes_the_platform_installs(ksrv, tmp_path):
    lines = ksrv("get", "csr").stdout.splitlines()
    names = [line.split()[0] for line in lines[1:]]
    assert "ksrv-sklearn" in names and "ksrv-xgboost" in names
    formats = ksrv(
        "get", "csr", "ksrv-sklearn", "-o", "jsonpath={.spec.supportedModelFormats[*].name}"
    )
    assert formats.stdout == "sklearn sklearn"
    # One applied under a default's name takes its place (here: to disable it).
    replaced = tmp_path / "csr.yaml"
    replaced.write_text(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: ClusterServingRuntime\n"
        "metadata: {name: ksrv-sklearn}\nspec:\n  disabled: true\n"
        "  supportedModelFormats: [{name: sklearn, version: '1'}]\n"
        "  containers: [{name: kserve-container, image: ksrv}]\n"
    )
    assert ksrv("apply", "-f", str(replaced)).exit_code == 0
    rows = [line.split() for line in ksrv("get", "csr").stdout.splitlines()[1:]]
    assert [row[:2] for row in rows if row[0] == "ksrv-sklearn"] == [["ksrv-sklearn", "true"]]


@pytest.mark.timeout(60)
def test_get_watch_prints_a_row_again_when_it_changes_until_ctrl_c(server, store):
    watching = Running("get", "isvc", "-w", "--server", server)
    try:
        wait_until(lambda: len(watching.lines) >= 2, "the first listing")
        assert watching.lines[0].split()[0] == "NAME"
        assert watching.lines[1].split()[0] == "sklearn-iris"
        set_status(store, ROLLING_OUT)
        wait_until(lambda: any("Unknown" in line for line in watching.lines), "the rollout row")
        set_status(store, READY)
        wait_until(lambda: any(" True " in line for line in watching.lines), "the ready row")
    finally:
        code, stderr = watching.interrupt()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    rows = watching.lines[2:]
    assert [row.split()[2] for row in rows] == ["Unknown", "True"]
    assert sum(line.startswith("NAME") for line in watching.lines) == 1


@pytest.mark.timeout(60)
def test_a_watch_that_began_empty_prints_the_header_with_the_first_row(server, store):
    watching = Running("get", "isvc", "-n", "team", "-w", "--server", server)
    try:
        wait_until(lambda: "No resources found in team namespace." in watching.errors, "empty")
        store.apply({**ISVC, "metadata": {"name": "late", "namespace": "team"}})
        wait_until(lambda: len(watching.lines) >= 2, "the new row")
    finally:
        code, stderr = watching.interrupt()
    assert code == 0, stderr
    assert watching.lines[0].split()[:3] == ["NAME", "URL", "READY"]
    assert watching.lines[1].split()[0] == "late"


@pytest.mark.timeout(60)
def test_logs_follow_prints_appended_lines_until_ctrl_c(server, log):
    following = Running("logs", "sklearn-iris", "-f", "--server", server)
    try:
        wait_until(lambda: following.lines[:2] == ["starting", "ready"], "the log so far")
        with log.open("a") as file:
            file.write("GET /v1/models/sklearn-iris 200\n")
        wait_until(lambda: len(following.lines) == 3, "the appended line")
        assert following.lines[2] == "GET /v1/models/sklearn-iris 200"
    finally:
        code, stderr = following.interrupt()
    assert code == 0, stderr
    assert "Traceback" not in stderr
