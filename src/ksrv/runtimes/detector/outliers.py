"""Outlier scores per instance, fitted on the reference set.

Mahalanobis distance to the reference set's mean and covariance (scikit-learn's
`EmpiricalCovariance` fits them, scipy's `cdist` measures), or an isolation forest's anomaly
score (`IsolationForest`, negated so that higher means more anomalous for both). An instance
is an outlier when its score is above the given percentile of the reference set's own scores.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from ksrv.errors import InvalidInput

METHODS: Final = ("mahalanobis", "isolation-forest")


class OutlierScorer:
    """Scores rows; `threshold` is the reference set's `percentile`-th score."""

    def __init__(self, reference: np.ndarray, method: str, percentile: float, seed: int) -> None:
        if method not in METHODS:
            raise InvalidInput(f"--outlier-method must be one of {', '.join(METHODS)}")
        self.method = method
        self._estimator: Any
        if method == "mahalanobis":
            from sklearn.covariance import EmpiricalCovariance

            self._estimator = EmpiricalCovariance().fit(reference)
        else:
            from sklearn.ensemble import IsolationForest

            self._estimator = IsolationForest(random_state=seed).fit(reference)
        self.percentile = percentile
        self.threshold = float(np.percentile(self.scores(reference), percentile))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        if self.method == "mahalanobis":
            # scipy's distance to the fitted mean: what `EmpiricalCovariance.mahalanobis`
            # computes (squared), without its per-call input validation (ms per event).
            from scipy.spatial.distance import cdist

            center = self._estimator.location_[np.newaxis]
            distances = cdist(rows, center, "mahalanobis", VI=self._estimator.precision_)
            return np.asarray(distances[:, 0], dtype=np.float64)
        return -np.asarray(self._estimator.score_samples(rows), dtype=np.float64)
