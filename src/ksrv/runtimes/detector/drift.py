"""Drift of live inputs against a reference set, over a sliding window.

Two tests, each from a library made for it: Kolmogorov-Smirnov per feature (scipy's
`ks_2samp`, Bonferroni-corrected over the features, as alibi-detect's `KSDrift` does) and a
multivariate Maximum Mean Discrepancy test (hyppo's `MMD`, Gaussian kernel, its chi-square
approximation of the null). The window holds the last `window_size` instances; a test runs
each time `test_every` new instances have arrived once the window is full, so a report
always describes one full window.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class DriftSettings:
    window_size: int = 100
    test_every: int = 50
    p_val: float = 0.05
    """Significance of each test; the per-feature tests share it (Bonferroni)."""


@dataclass(frozen=True, slots=True)
class DriftReport:
    """One test of the window against the reference set."""

    instances_seen: int
    window_size: int
    feature_names: tuple[str, ...]
    ks_p_values: tuple[float, ...]
    ks_distances: tuple[float, ...]
    feature_threshold: float
    mmd_statistic: float
    mmd_p_value: float
    p_val: float

    @property
    def feature_drift(self) -> tuple[bool, ...]:
        return tuple(p < self.feature_threshold for p in self.ks_p_values)

    @property
    def is_mmd_drift(self) -> bool:
        return self.mmd_p_value < self.p_val

    @property
    def is_drift(self) -> bool:
        return any(self.feature_drift) or self.is_mmd_drift

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON: alibi-detect's `data` fields (`is_drift`, `p_val`, `distance`,
        `threshold`) plus per-feature flags and the MMD test."""
        return {
            "is_drift": int(self.is_drift),
            "p_val": list(self.ks_p_values),
            "distance": list(self.ks_distances),
            "threshold": self.feature_threshold,
            "features": {
                name: {"p_val": p, "distance": d, "is_drift": int(flag)}
                for name, p, d, flag in zip(
                    self.feature_names,
                    self.ks_p_values,
                    self.ks_distances,
                    self.feature_drift,
                    strict=True,
                )
            },
            "mmd": {
                "statistic": self.mmd_statistic,
                "p_val": self.mmd_p_value,
                "threshold": self.p_val,
                "is_drift": int(self.is_mmd_drift),
            },
            "instances_seen": self.instances_seen,
            "window_size": self.window_size,
        }


class DriftDetector:
    """Keeps the window and tests it; not thread-safe (the runtime serialises calls)."""

    def __init__(
        self, reference: np.ndarray, settings: DriftSettings, feature_names: tuple[str, ...]
    ) -> None:
        self.reference = reference
        self.settings = settings
        self.feature_names = feature_names
        self._window: collections.deque[np.ndarray] = collections.deque(maxlen=settings.window_size)
        self._seen = 0
        self._since_test = 0

    @staticmethod
    def warm_up() -> None:
        """Import hyppo and compile its kernels now (numba: seconds on a first run), so the
        first window is not the one that pays."""
        from hyppo.ksample import MMD

        rng = np.random.default_rng(0)
        MMD().test(rng.normal(size=(25, 2)), rng.normal(size=(25, 2)), auto=True)

    def add(self, rows: np.ndarray) -> list[DriftReport]:
        """Add instances in order; the reports of the tests they completed (usually none)."""
        reports = []
        for row in rows:
            self._window.append(row)
            self._seen += 1
            self._since_test += 1
            is_full = len(self._window) == self.settings.window_size
            if is_full and self._since_test >= self.settings.test_every:
                self._since_test = 0
                reports.append(self.test(np.stack(self._window)))
        return reports

    def test(self, window: np.ndarray) -> DriftReport:
        """Test `window` against the reference set."""
        from hyppo.ksample import MMD
        from scipy.stats import ks_2samp

        ks = [ks_2samp(self.reference[:, i], window[:, i]) for i in range(window.shape[1])]
        mmd = MMD().test(self.reference, window, auto=True)
        return DriftReport(
            instances_seen=self._seen,
            window_size=len(window),
            feature_names=self.feature_names,
            ks_p_values=tuple(float(result.pvalue) for result in ks),
            ks_distances=tuple(float(result.statistic) for result in ks),
            feature_threshold=self.settings.p_val / window.shape[1],
            mmd_statistic=float(mmd.stat),
            mmd_p_value=float(mmd.pvalue),
            p_val=self.settings.p_val,
        )
