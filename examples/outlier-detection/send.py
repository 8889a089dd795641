"""Send iris-like rows through the gateway, then rows whose petal length moved by 3 standard
deviations, and print what the detector made of each phase."""

import sys
import time

import httpx
import numpy as np
from sklearn.datasets import load_iris

GATEWAY = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
PREDICT = f"{GATEWAY}/serving/default/iris/v1/models/iris:predict"
REPORT = f"{GATEWAY}/serving/default/iris-outlier-detector/v1/models/iris-outlier-detector/report"


def rows(n: int, rng: np.random.Generator, shift_sigmas: float = 0.0) -> np.ndarray:
    data = load_iris().data
    sigma = data.std(axis=0)
    picked = data[rng.integers(0, len(data), n)] + rng.normal(0, 0.05 * sigma, (n, 4))
    picked[:, 2] += shift_sigmas * sigma[2]
    return picked


def phase(http: httpx.Client, batch: np.ndarray, expected: int) -> dict:
    for row in batch:
        http.post(PREDICT, json={"instances": [row.tolist()]}).raise_for_status()
    while (report := http.get(REPORT).json())["events"]["request"] < expected:
        time.sleep(0.1)  # the logger sends in the background
    return report


def main() -> None:
    rng = np.random.default_rng(0)
    with httpx.Client(timeout=30) as http:
        start = http.get(REPORT).json()["events"]["request"]
        normal = phase(http, rows(500, rng), start + 500)
        print("after 500 normal rows: drifted tests", normal["drifted_tests"], "of",
              normal["drift_tests"])  # fmt: skip
        shifted = phase(http, rows(500, rng, 3.0), start + 1000)
        flags = {n: f["is_drift"] for n, f in shifted["drift"]["features"].items()}
        print("after 500 shifted rows: drifted tests", shifted["drifted_tests"], "features", flags)
        print("outliers so far:", shifted["outliers"]["count"])


if __name__ == "__main__":
    main()
