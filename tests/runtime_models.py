"""Tiny real models for the framework runtimes, built at test time (no binaries committed).

Each builder writes one model file into `directory` and returns the directory. Tests compare
the server's answers with the framework's own prediction from the same file.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]]
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features, labels


def xgboost_iris(directory: Path, filename: str = "model.bst") -> Path:
    """A 3-class `multi:softprob` booster on iris (answers class probabilities)."""
    import xgboost

    features, labels = _iris()
    matrix = xgboost.DMatrix(features, label=labels)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    booster = xgboost.train(params, matrix, num_boost_round=4)
    directory.mkdir(parents=True, exist_ok=True)
    if filename.endswith(".bst"):
        # KServe's name; XGBoost warns about the extension, so write UBJSON bytes directly.
        (directory / filename).write_bytes(booster.save_raw("ubj"))
    else:
        booster.save_model(directory / filename)
    return directory


def lightgbm_iris(directory: Path, filename: str = "model.bst") -> Path:
    """A 3-class LightGBM booster on iris with named features."""
    import lightgbm

    features, labels = _iris()
    dataset = lightgbm.Dataset(features, label=labels, feature_name=IRIS_FEATURES)
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "num_threads": 1,
        "verbose": -1,
    }
    booster = lightgbm.train(params, dataset, num_boost_round=4)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / filename))
    return directory


def onnx_linear(directory: Path, filename: str = "model.onnx") -> Path:
    """`features` FP32 [N, 4] -> `scores` = features @ W + B and `probabilities` = softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["product"]),
            helper.make_node("Add", ["product", "B"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
        ],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _save_onnx(onnx, helper, graph, directory / filename)


def onnx_pair(directory: Path, filename: str = "model.onnx") -> Path:
    """Two inputs of different types: `total` = `left` (FP32) + float(`right` (INT64))."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["right"], ["right_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["left", "right_float"], ["total"]),
        ],
        "pair",
        [
            helper.make_tensor_value_info("left", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("right", TensorProto.INT64, [None, 2]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 2])],
    )
    return _save_onnx(onnx, helper, graph, directory / filename)


def _save_onnx(onnx, helper, graph, path: Path) -> Path:
    # An IR version and opset every onnxruntime of the last years can run.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path.parent


def torchscript_linear(directory: Path, filename: str = "model.pt") -> Path:
    """A softmax regression fitted on iris for a few steps, saved as TorchScript."""
    import torch

    torch.manual_seed(0)
    features, labels = _iris()
    inputs = torch.tensor(features, dtype=torch.float32)
    targets = torch.tensor(labels, dtype=torch.int64)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(module(inputs)), targets)
        loss.backward()
        optimizer.step()
    _save_torchscript(module.eval(), directory / filename)
    return directory


def torchscript_pair(directory: Path, filename: str = "model.pt") -> Path:
    """`forward(left, right)` -> (`left + right`, `left.sum(1) * right.sum(1)`), scripted."""
    import torch

    class Pair(torch.nn.Module):
        def forward(self, left: torch.Tensor, right: torch.Tensor):
            return left + right, left.sum(1) * right.sum(1)

    _save_torchscript(Pair(), directory / filename)
    return directory


def _save_torchscript(module, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with torchscript_allowed():
        torch.jit.save(torch.jit.script(module), str(path))


@contextlib.contextmanager
def torchscript_allowed():
    """torch 2.13 deprecates TorchScript; it is still the format KServe users hand over."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*torch\.jit\..* is deprecated", DeprecationWarning)
        yield


def tensorflow_linear(directory: Path, version: str | None = "1") -> Path:
    """A SavedModel (in TF Serving's numbered layout unless `version` is None):
    `features` FP32 [N, 4] -> `scores` and `probabilities`."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Linear(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
            self.bias = tf.Variable(rng.normal(size=(3,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, features):
            scores = tf.matmul(features, self.weights) + self.bias
            return {"scores": scores, "probabilities": tf.nn.softmax(scores)}

    module = Linear()
    path = directory / version if version else directory
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return directory


def tensorflow_pair(directory: Path) -> Path:
    """Two inputs of different types -> `total` (FP32) and `sign` (BYTES: b"pos" / b"neg")."""
    import tensorflow as tf

    class Pair(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="left"),
                tf.TensorSpec([None, 2], tf.int64, name="right"),
            ]
        )
        def serve(self, left, right):
            total = left + tf.cast(right, tf.float32)
            sign = tf.where(tf.reduce_sum(total, axis=1) > 0, b"pos", b"neg")
            return {"total": total, "sign": sign}

    module = Pair()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory
