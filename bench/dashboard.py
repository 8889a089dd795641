"""Time to first render of the web dashboard, with no services and with 100 of them.

Starts a real local platform (`ksrv up`) on free ports, opens `/dashboard/` in headless
Chromium (Debian's `chromium` + `chromium-driver`) `--rounds` times, and reads the page's own
`ksrv-first-render` mark (Performance API: milliseconds from the start of the navigation to
the resource tables drawn from the API's answers). The baseline is the same page on the same
platform before anything is applied; then `--services` InferenceServices are applied for real
(`ksrv apply`, one multi-document file), each with KServe's `serving.kserve.io/stop`
annotation, so they are stored, reconciled and listed with a status but start no replica, and
the page is timed again. Prints medians and the ratio. The bar (issue 20) is under 1 s.

    python bench/dashboard.py [--rounds 7] [--services 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import browser  # noqa: E402
from tests.platform_support import LocalKsrv  # noqa: E402

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  annotations:
    serving.kserve.io/stop: "true"
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""


def first_render_ms(driver: Any, url: str) -> tuple[float, int]:
    """One fresh navigation: (ms to the page's first render mark, table rows drawn)."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = driver.execute_script(
            "const m = performance.getEntriesByName('ksrv-first-render');"
            "return m.length ? [m[0].startTime,"
            " document.querySelectorAll('#resources tbody tr[data-key]').length] : null;"
        )
        if found:
            return float(found[0]), int(found[1])
        time.sleep(0.01)
    raise RuntimeError("the page never rendered")


def timed(driver: Any, url: str, rounds: int, expected_rows: int) -> list[float]:
    first_render_ms(driver, url)  # warm-up: the browser's own start-up is not the page's
    times = []
    for _ in range(rounds):
        ms, rows = first_render_ms(driver, url)
        if rows != expected_rows:
            raise RuntimeError(f"{rows} rows drawn, {expected_rows} expected")
        times.append(ms)
    return times


def wait_reconciled(platform: LocalKsrv, count: int, timeout_s: float = 120) -> None:
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = platform.http.get(platform.api + path).json()["items"]
        if len(items) == count and all(i.get("status", {}).get("conditions") for i in items):
            return
        time.sleep(0.2)
    raise RuntimeError("the services were not reconciled in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--services", type=int, default=100)
    args = parser.parse_args()
    why = browser.missing()
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory(prefix="ksrv-bench-dashboard-") as state:
        platform = LocalKsrv(Path(state)).start()
        driver = browser.chromium()
        try:
            url = f"{platform.api}/dashboard/"
            empty = timed(driver, url, args.rounds, 0)
            text = "---\n".join(ISVC.format(name=f"svc-{i:03d}") for i in range(args.services))
            platform.apply(text)
            wait_reconciled(platform, args.services)
            full = timed(driver, url, args.rounds, args.services)
        finally:
            driver.quit()
            platform.stop()
    assets = sum(len(body) for body in _assets().values())
    print(f"assets: {assets} bytes ({assets / 1024:.1f} KiB)")
    print(f"first render, 0 services:   median {statistics.median(empty):6.1f} ms  {_all(empty)}")
    print(f"first render, {args.services} services: median {statistics.median(full):6.1f} ms  "
          f"{_all(full)}")  # fmt: skip
    print(f"ratio {statistics.median(full) / statistics.median(empty):.2f}x  (bar: < 1000 ms)")


def _all(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.0f}" for t in times) + "]"


def _assets() -> dict[str, bytes]:
    from ksrv.control import dashboard

    return dashboard.assets()


if __name__ == "__main__":
    main()
