"""The `detector` runtime: a model server that is a sink for the payload logger.

Its storageUri holds the reference set: one `.npy` array or `.csv` file (a header row names
the features) of rows of numbers. Each request event (`POST /` with a CloudEvent, as
alibi-detect's server takes them) has its instances scored for outliers and added to the
drift window; response events are counted and left alone. The answer to an event is a
CloudEvent of the outlier result (`org.kubeflow.serving.inference.outlier`); with
`--sink-url` it, and each drift test (`...inference.drift`), is also POSTed there.
`GET /v1/models/{name}/report` answers the latest drift report; `:predict` scores V1
instances without adding them to the window. One lock orders the events: the window is a
sequence.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np
from prometheus_client import CollectorRegistry

from ksrv.errors import InvalidInput, StorageError
from ksrv.model.base import Headers
from ksrv.protocol import v1
from ksrv.runtimes import files
from ksrv.runtimes.detector import events
from ksrv.runtimes.detector.adversarial import AdversarialDetector
from ksrv.runtimes.detector.drift import DriftDetector, DriftReport, DriftSettings
from ksrv.runtimes.detector.metrics import DetectorMetrics
from ksrv.runtimes.detector.outliers import METHODS, OutlierScorer

logger = logging.getLogger(__name__)

OUTLIER_TYPE: Final = "org.kubeflow.serving.inference.outlier"
DRIFT_TYPE: Final = "org.kubeflow.serving.inference.drift"
SINK_TIMEOUT_S: Final = 5.0


def parse_args(args: tuple[str, ...] | list[str]) -> argparse.Namespace:
    """The runtime's flags (the InferenceService's `args`); a bad one is InvalidInput."""
    parser = argparse.ArgumentParser(prog="detector", add_help=False, exit_on_error=False)
    parser.add_argument("--window-size", type=int, default=100)
    parser.add_argument("--test-every", type=int, default=50)
    parser.add_argument("--p-val", type=float, default=0.05)
    parser.add_argument("--outlier-method", choices=METHODS, default="mahalanobis")
    parser.add_argument("--outlier-percentile", type=float, default=99.0)
    parser.add_argument("--feature-names", default="")
    parser.add_argument("--sink-url", "--reply-url", dest="sink_url", default="")
    parser.add_argument("--event-source", default="")
    parser.add_argument("--seed", type=int, default=0)
    try:
        parsed, unknown = parser.parse_known_args(list(args))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise InvalidInput(f"detector arguments: {exc}") from exc
    if unknown:
        raise InvalidInput(f"detector arguments: unknown {' '.join(unknown)}")
    if parsed.window_size < 2 or parsed.test_every < 1:
        raise InvalidInput("detector arguments: --window-size must be >= 2, --test-every >= 1")
    if not 0 < parsed.p_val < 1 or not 0 < parsed.outlier_percentile < 100:
        raise InvalidInput(
            "detector arguments: --p-val in (0, 1), --outlier-percentile in (0, 100)"
        )
    return parsed


class DetectorModel(files.FileModel):
    """Drift, outlier and (with a classifier beside the reference set) adversarial detection."""

    MODEL_EXTENSIONS = (".npy", ".csv")
    takes_runtime_args = True

    def __init__(
        self, name: str, model_dir: str | Path, args: tuple[str, ...] | list[str] = ()
    ) -> None:
        super().__init__(name, model_dir)
        self.args = parse_args(args)
        self.source = self.args.event_source or f"org.kubeflow.serving.{name}"
        self.metrics: DetectorMetrics | None = None
        self._sink: Any = None  # an httpx.Client once loaded with --sink-url
        self._lock = threading.Lock()
        self._events: dict[str, int] = {"request": 0, "response": 0, "other": 0}
        self._instances = 0
        self._outliers = 0
        self._adversarial = 0
        self._drift_tests = 0
        self._drifted_tests = 0
        self._latest: DriftReport | None = None

    def load(self) -> bool:
        reference, names = _read_reference(self.model_file(), self.args.feature_names)
        settings = DriftSettings(self.args.window_size, self.args.test_every, self.args.p_val)
        self.drift = DriftDetector(reference, settings, names)
        self.outliers = OutlierScorer(
            reference, self.args.outlier_method, self.args.outlier_percentile, self.args.seed
        )
        self.adversarial = AdversarialDetector.beside(self.model_dir, reference, self.args.seed)
        DriftDetector.warm_up()
        if self.args.sink_url:
            import httpx

            # One client for every event: building one costs tens of ms (its TLS context).
            self._sink = httpx.Client(timeout=SINK_TIMEOUT_S)
        self.ready = True
        return self.ready

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Create the detector's metrics on the server's registry (`server/event_sink.py`)."""
        self.metrics = metrics = DetectorMetrics(registry, self.name)
        for name in self.drift.feature_names:
            metrics.drift.labels(self.name, name).set(0)
        for kind in self._events:
            metrics.events.labels(self.name, kind)

    @property
    def n_features(self) -> int:
        return len(self.drift.feature_names)

    # -- events ----------------------------------------------------------------------------
    def receive_event(self, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], Any]:
        """Analyse one CloudEvent; the reply's CloudEvent headers and data."""
        event = events.parse_event(headers, body)
        kind = {events.REQUEST_TYPE: "request", events.RESPONSE_TYPE: "response"}.get(
            event.type, "other"
        )
        if kind != "request":
            with self._lock:
                self._count_event(kind)
            return {}, {"ignored": event.type}
        rows = events.instances(event.data, self.n_features)
        with self._lock:
            self._count_event(kind)
            result = self._score(rows)
            reports = self.drift.add(rows)
            for report in reports:
                self._record_drift(report)
        outlier = _detection(result, event, "OutlierDetector")
        self._send(OUTLIER_TYPE, outlier)
        for report in reports:
            self._send(DRIFT_TYPE, _detection({"data": report.as_dict()}, event, "DriftDetector"))
        return _reply_headers(OUTLIER_TYPE, self.source, event.id), outlier

    def _count_event(self, kind: str) -> None:
        self._events[kind] += 1
        if self.metrics is not None:
            self.metrics.events.labels(self.name, kind).inc()

    def _score(self, rows: np.ndarray) -> dict[str, Any]:
        scores = self.outliers.scores(rows)
        is_outlier = scores > self.outliers.threshold
        self._instances += len(rows)
        self._outliers += int(is_outlier.sum())
        data: dict[str, Any] = {
            "instance_score": scores.tolist(),
            "is_outlier": is_outlier.astype(int).tolist(),
            "threshold": self.outliers.threshold,
        }
        adversarial = None
        if self.adversarial is not None:
            adversarial = self.adversarial.is_adversarial(rows)
            self._adversarial += int(adversarial.sum())
            data["is_adversarial"] = adversarial.astype(int).tolist()
        if self.metrics is not None:
            self.metrics.instances.inc(len(rows))
            for score in scores:
                self.metrics.outlier_score.observe(float(score))
            self.metrics.outliers.inc(int(is_outlier.sum()))
            if adversarial is not None:
                self.metrics.adversarial.inc(int(adversarial.sum()))
        return {"data": data}

    def _record_drift(self, report: DriftReport) -> None:
        self._drift_tests += 1
        self._latest = report
        if report.is_drift:
            self._drifted_tests += 1
            flagged = [
                n for n, f in zip(report.feature_names, report.feature_drift, strict=True) if f
            ]
            logger.warning("drift detected model=%s features=%s mmd_p=%.3g", self.name,
                           flagged, report.mmd_p_value)  # fmt: skip
        metrics = self.metrics
        if metrics is None:
            return
        metrics.drift_tests.inc()
        for name, p, flag in zip(report.feature_names, report.ks_p_values, report.feature_drift,
                                 strict=True):  # fmt: skip
            metrics.drift_p_value.labels(self.name, name).set(p)
            metrics.drift.labels(self.name, name).set(int(flag))
        metrics.mmd_p_value.set(report.mmd_p_value)
        metrics.mmd_drift.set(int(report.is_mmd_drift))

    def _send(self, kind: str, data: dict[str, Any]) -> None:
        if self._sink is None:
            return
        import httpx

        headers = {**_reply_headers(kind, self.source, None), "content-type": "application/json"}
        try:
            response = self._sink.post(self.args.sink_url, json=data, headers=headers)
            if response.status_code >= 300:
                logger.warning("detection sink answered %s", response.status_code)
        except httpx.HTTPError as exc:
            logger.warning("detection sink %s unreachable: %s", self.args.sink_url, exc)

    def stop(self) -> None:
        if self._sink is not None:
            self._sink.close()
        super().stop()

    # -- V1 and the report -----------------------------------------------------------------
    def predict(self, payload: Any, headers: Headers | None = None) -> dict[str, Any]:  # type: ignore[override]
        """Outlier scores (and flags) of V1 `instances`, outside the drift window."""
        rows = events.instances(v1.check_request(payload), self.n_features)
        scores = self.outliers.scores(rows)
        predictions: dict[str, Any] = {
            "instance_score": scores.tolist(),
            "is_outlier": (scores > self.outliers.threshold).astype(int).tolist(),
        }
        if self.adversarial is not None:
            predictions["is_adversarial"] = (
                self.adversarial.is_adversarial(rows).astype(int).tolist()
            )
        return {"predictions": predictions}

    def report(self) -> dict[str, Any]:
        """Counts so far and the latest drift test (None before the window first fills)."""
        with self._lock:
            return {
                "name": self.name,
                "events": dict(self._events),
                "instances": self._instances,
                "drift_tests": self._drift_tests,
                "drifted_tests": self._drifted_tests,
                "drift": self._latest.as_dict() if self._latest is not None else None,
                "outliers": {
                    "method": self.outliers.method,
                    "percentile": self.outliers.percentile,
                    "threshold": self.outliers.threshold,
                    "count": self._outliers,
                },
                "adversarial": None if self.adversarial is None else {"count": self._adversarial},
            }


def _detection(result: dict[str, Any], event: events.Event, name: str) -> dict[str, Any]:
    """alibi-detect server's reply shape: `{"data": {...}, "meta": {...}}`."""
    return {**result, "meta": {"name": name, "event_id": event.id, "service": event.service}}


def _reply_headers(kind: str, source: str, event_id: str | None) -> dict[str, str]:
    import uuid

    return {"ce-specversion": "1.0", "ce-type": kind, "ce-source": source,
            "ce-id": event_id or str(uuid.uuid4())}  # fmt: skip


def _read_reference(path: Path, feature_names: str) -> tuple[np.ndarray, tuple[str, ...]]:
    header: list[str] = []
    try:
        if path.suffix == ".npy":
            reference = np.load(path, allow_pickle=False)
        else:
            with path.open() as text:
                first = text.readline()
            has_header = any(c.isalpha() for c in first.replace("e", "").replace("E", ""))
            header = [h.strip() for h in first.split(",")] if has_header else []
            reference = np.loadtxt(path, delimiter=",", skiprows=int(has_header), ndmin=2)
    except (OSError, ValueError) as exc:
        raise files.load_failure(path, "reference set", str(exc)) from exc
    if (
        reference.ndim != 2
        or reference.shape[0] < 2
        or not np.issubdtype(reference.dtype, np.number)
    ):
        raise StorageError(f"{path.name}: the reference set must be rows of numbers")
    names = [n for n in feature_names.split(",") if n] or header
    if names and len(names) != reference.shape[1]:
        raise InvalidInput(f"{len(names)} feature names for {reference.shape[1]} features")
    names = names or [f"feature_{i}" for i in range(reference.shape[1])]
    return reference.astype(np.float64), tuple(names)
