"""Iris for the detector tests: a reference set file, seeded iris-like rows, shifted rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SHIFTED = 2  # petal_length
OUTLIER = [5.0, 3.4, 6.5, 0.2]  # a setosa's sepals with a virginica's petal length


def iris() -> np.ndarray:
    from sklearn.datasets import load_iris

    return np.asarray(load_iris().data)


def reference_csv(directory: Path) -> Path:
    """`reference.csv` with a header naming the features: the detector's storageUri."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savetxt(directory / "reference.csv", iris(), delimiter=",", header=",".join(FEATURES),
               comments="", fmt="%.2f")  # fmt: skip
    return directory


def iris_like(n: int, rng: np.random.Generator, shift_sigmas: float = 0.0) -> np.ndarray:
    """`n` iris rows drawn with replacement, jittered by 5% of each feature's spread; with
    `shift_sigmas`, petal length moved by that many of its standard deviations."""
    data = iris()
    sigma = data.std(axis=0)
    rows = data[rng.integers(0, len(data), n)] + rng.normal(0, 0.05 * sigma, (n, data.shape[1]))
    rows[:, SHIFTED] += shift_sigmas * sigma[SHIFTED]
    return rows
