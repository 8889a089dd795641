"""`ksrv serve --model-format NAME[:VERSION]` chooses its runtime by KServe's selection rules."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

pytest.importorskip("sklearn")


def test_serve_with_a_versioned_model_format_serves_the_model(start_server, iris_dir):
    server = start_server(
        ["--model-format", "sklearn:1", "--model-dir", str(iris_dir), "--model-name", "iris"]
    )
    body = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    response = httpx.post(f"{server.url}/v1/models/iris:predict", json=body, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2


def test_serve_with_an_unsupported_version_stops_with_one_clear_line(iris_dir):
    result = subprocess.run(
        [sys.executable, "-m", "ksrv.cli.main", "serve", "--model-format", "sklearn:3",
         "--model-dir", str(iris_dir), "--http-port", "0", "--grpc-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "No runtime found to support specified framework/version sklearn:3" in result.stderr
    assert "Traceback" not in result.stderr
