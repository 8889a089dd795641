"""Tiny real models built at test time (no binaries are committed)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def sklearn_iris(directory: Path, filename: str = "model.joblib") -> Path:
    """A LogisticRegression trained on iris, saved as KServe's sklearn server expects."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(_iris_classifier(), directory / filename)
    return directory


@functools.cache
def _iris_classifier() -> Any:
    """Fitted once per test process: a fit takes a fraction of a second, more on a loaded
    machine, and some tests compare hundreds of answers."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(features, labels)


def iris_expected(rows: list[list[float]]) -> tuple[list[int], np.ndarray]:
    """Classes and probabilities the same model gives in-process, to compare with the server."""
    model = _iris_classifier()
    array = np.asarray(rows)
    return model.predict(array).tolist(), model.predict_proba(array)
