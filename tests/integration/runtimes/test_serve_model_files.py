"""`ksrv serve --model-format F` refuses a directory it cannot serve with one clear line.

KServe's runtimes require exactly one model file: two is an error, and a file the framework
cannot read stops the server before the port opens. Neither prints a traceback.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# format -> (a model file name, a second one it would also accept)
FORMATS = {
    "sklearn": ("model.joblib", "model.pkl"),
    "xgboost": ("model.bst", "model.json"),
    "lightgbm": ("model.bst", "model.txt"),
    "onnx": ("model.onnx", "other.onnx"),
    "pytorch": ("model.pt", "other.pt"),
}
FRAMEWORKS = {"onnx": "onnxruntime", "sklearn": "sklearn"}


def ksrv_serve(model_format: str, model_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ksrv.cli.main", "serve", "--model-format", model_format,
         "--model-dir", str(model_dir), "--http-port", "0", "--grpc-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("model_format", sorted(FORMATS))
def test_two_model_files_stop_the_server_naming_both(tmp_path, model_format):
    first, second = FORMATS[model_format]
    (tmp_path / first).write_bytes(b"one")
    (tmp_path / second).write_bytes(b"two")
    result = ksrv_serve(model_format, tmp_path)
    assert result.returncode == 2
    assert "More than one model file" in result.stderr
    assert first in result.stderr and second in result.stderr
    assert "Traceback" not in result.stderr


# Every runtime's unit tests check its load error; two suffice for what the CLI prints.
@pytest.mark.parametrize(
    ("model_format", "what"),
    [("onnx", "model.onnx is not a valid ONNX model"),
     ("sklearn", "model.joblib is not a valid joblib/pickle file")],
)  # fmt: skip
def test_an_unreadable_model_file_stops_the_server_with_the_reason(tmp_path, model_format, what):
    pytest.importorskip(FRAMEWORKS[model_format])
    (tmp_path / FORMATS[model_format][0]).write_bytes(b"this is not a model")
    result = ksrv_serve(model_format, tmp_path)
    assert result.returncode == 2
    assert f"ksrv serve: {what} (in {tmp_path}): " in result.stderr
    assert result.stderr.count(str(tmp_path)) == 1
    assert "Traceback" not in result.stderr


def test_importing_ksrv_and_its_runtimes_loads_no_framework():
    code = (
        "import sys, ksrv, ksrv.runtimes.registry as r\n"
        "for name in ('xgboost', 'lightgbm', 'onnx', 'pytorch', 'tensorflow'):\n"
        "    r.runtime_class(name)\n"
        "heavy = {'xgboost', 'lightgbm', 'onnxruntime', 'torch', 'tensorflow'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
