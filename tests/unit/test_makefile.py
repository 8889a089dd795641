"""The Makefile's install steps, read with `make -n -B` (prints every recipe, runs none):
`make run` installs only the demo's extra, `make test` every extra, under separate stamps."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def recipes(*args: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_run_installs_only_the_sklearn_extra_and_uses_the_given_ports():
    run = recipes("run", "PORT=18080", "GRPC_PORT=18081", "API_PORT=18090")
    installs = [line for line in run.splitlines() if "pip install" in line]
    assert installs == [
        '.venv/bin/pip install --quiet --no-compile --disable-pip-version-check -e ".[sklearn]"'
    ]
    assert "touch .venv/.installed-run" in run and "touch .venv/.installed\n" not in run
    assert "ksrv up --detach --port 18080 --grpc-port 18081 --api-port 18090" in run
    assert "ksrv apply --server http://127.0.0.1:18090" in run


def test_make_test_installs_every_extra_under_its_own_stamp():
    test = recipes("test")
    install = next(line for line in test.splitlines() if "pip install --quiet -e" in line)
    for extra in ("sklearn", "torch", "tensorflow", "test", "dev"):
        assert extra in install
    assert "touch .venv/.installed\n" in test and ".installed-run" not in test
