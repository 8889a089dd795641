"""PMML (JVM-backed) and MLflow pyfunc models served for real, compared with the frameworks."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.models import IRIS_ROWS

PMML = """<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header description="linear regression built by the test"/>
  <DataDictionary numberOfFields="3">
    <DataField name="x1" optype="continuous" dataType="double"/>
    <DataField name="x2" optype="continuous" dataType="double"/>
    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
  <RegressionModel functionName="regression" modelName="lin">
    <MiningSchema>
      <MiningField name="x1"/>
      <MiningField name="x2"/>
      <MiningField name="y" usageType="target"/>
    </MiningSchema>
    <RegressionTable intercept="0.5">
      <NumericPredictor name="x1" coefficient="2.0"/>
      <NumericPredictor name="x2" coefficient="-1.5"/>
    </RegressionTable>
  </RegressionModel>
</PMML>
"""
ROWS = [[1.0, 2.0], [3.0, 0.0], [-1.5, 4.25]]


@pytest.fixture(scope="module")
def pmml_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pmml")
    (directory / "model.pmml").write_text(PMML)
    return directory


def jpmml_in_process(path: Path) -> list[float]:
    """The evaluator's own answer, in a child process: JPype's import hooks would otherwise
    stay in this one (they shadow modules such as pyarrow for later tests)."""
    script = (
        "import json, sys, pandas as pd\n"
        "from jpmml_evaluator import make_evaluator\n"
        "e = make_evaluator(sys.argv[1], backend='jpype').verify()\n"
        f"print(json.dumps(e.evaluateAll(pd.DataFrame({ROWS!r}, columns=['x1', 'x2']))"
        "['y'].tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pmml_model_answers_as_the_jpmml_evaluator_does(start_server, pmml_dir):
    pytest.importorskip("jpmml_evaluator")
    expected = jpmml_in_process(pmml_dir / "model.pmml")
    server = start_server(["--model-format", "pmml", "--model-dir", str(pmml_dir)])
    v1 = httpx.post(f"{server.url}/v1/models/model:predict", json={"instances": ROWS}, timeout=30)
    assert v1.status_code == 200, v1.text
    assert [row["y"] for row in v1.json()["predictions"]] == expected
    records = [{"x1": a, "x2": b} for a, b in ROWS]
    by_name = httpx.post(f"{server.url}/v1/models/model:predict", json={"instances": records})
    assert [row["y"] for row in by_name.json()["predictions"]] == expected
    body = {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP64",
                        "data": [v for row in ROWS for v in row]}]}  # fmt: skip
    v2 = httpx.post(f"{server.url}/v2/models/model/infer", json=body).json()
    assert v2["outputs"][0]["name"] == "y"
    assert v2["outputs"][0]["data"] == expected
    metadata = httpx.get(f"{server.url}/v2/models/model").json()
    assert metadata["inputs"][0]["shape"] == [-1, 2]
    bad = httpx.post(f"{server.url}/v1/models/model:predict", json={"instances": [[1.0]]})
    assert bad.status_code == 400


@pytest.fixture(scope="module")
def mlflow_dir(tmp_path_factory) -> Path:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    directory = tmp_path_factory.mktemp("mlflow") / "iris"
    with warnings.catch_warnings():  # MLflow's own type-hint chatter is not ours to fix
        warnings.simplefilter("ignore")
        mlflow_sklearn.save_model(model, str(directory), serialization_format="cloudpickle")
    return directory


def test_mlflow_pyfunc_model_answers_as_pyfunc_does(start_server, mlflow_dir):
    pyfunc = pytest.importorskip("mlflow.pyfunc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pyfunc.load_model(str(mlflow_dir)).predict(np.asarray(IRIS_ROWS)).tolist()
    server = start_server(
        ["--model-format", "mlflow", "--model-dir", str(mlflow_dir), "--model-name", "iris"]
    )
    v1 = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert v1.json() == {"predictions": expected}
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                        "data": [v for row in IRIS_ROWS for v in row]}]}  # fmt: skip
    v2 = httpx.post(f"{server.url}/v2/models/iris/infer", json=body).json()
    assert v2["outputs"][0]["data"] == expected
    bad = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": [[1, 2]]})
    assert bad.status_code == 400
