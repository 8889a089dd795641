"""The detector's Prometheus metrics, registered on the model server's registry.

Names under `ksrv_detector_`, labelled by the detector's `model_name` (and `feature` for the
per-feature drift); a drift gauge holds the latest test's value.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Outlier scores (Mahalanobis distances, isolation-forest scores) are mostly below 10.
SCORE_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 50.0)


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        own = registry
        label = ["model_name"]
        self.events = Counter("ksrv_detector_events", "CloudEvents received, by type",
                              [*label, "type"], registry=own)  # fmt: skip
        self.instances = Counter("ksrv_detector_instances", "instances analysed", label,
                                 registry=own).labels(model_name)  # fmt: skip
        self.drift_tests = Counter("ksrv_detector_drift_tests", "drift tests run", label,
                                   registry=own).labels(model_name)  # fmt: skip
        self.drift_p_value = Gauge("ksrv_detector_drift_p_value", "latest per-feature KS "
                                   "p-value", [*label, "feature"], registry=own)  # fmt: skip
        self.drift = Gauge("ksrv_detector_drift", "1 when the latest test flagged the feature",
                           [*label, "feature"], registry=own)  # fmt: skip
        self.mmd_p_value = Gauge("ksrv_detector_mmd_p_value", "latest MMD test p-value",
                                 label, registry=own).labels(model_name)  # fmt: skip
        self.mmd_drift = Gauge("ksrv_detector_mmd_drift", "1 when the latest MMD test flagged "
                               "drift", label, registry=own).labels(model_name)  # fmt: skip
        self.outlier_score = Histogram("ksrv_detector_outlier_score", "outlier score per "
                                       "instance", label, buckets=SCORE_BUCKETS,
                                       registry=own).labels(model_name)  # fmt: skip
        self.outliers = Counter("ksrv_detector_outliers", "instances flagged as outliers",
                                label, registry=own).labels(model_name)  # fmt: skip
        self.adversarial = Counter("ksrv_detector_adversarial", "instances flagged as adversarial",
                                   label, registry=own).labels(model_name)  # fmt: skip
        self.model_name = model_name
