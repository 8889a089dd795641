"""Issue 17's metrics bar: a real Prometheus scrapes a model server and the gateway during a
load, and its query API returns KServe's histogram names with `model_name` and request counts
equal to the requests sent.

Prometheus is Debian's `prometheus` package (`make test` installs it where apt can); its
config is `ksrv prometheus-config`'s, so the targets it scrapes are the ones the management
API discovers for it. The gateway runs two workers: its counts are the sum over both.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.platform_support import LocalKsrv, example, with_storage

pytestmark = pytest.mark.timeout(240)

REQUESTS = 40
NAME = "sklearn-iris"
KSERVE_HISTOGRAMS = (
    "request_preprocess_seconds",
    "request_predict_seconds",
    "request_postprocess_seconds",
)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no `prometheus` binary: apt-get install prometheus (make test does as root)")
    return binary


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    state = tmp_path_factory.mktemp("ksrv-metrics")
    platform = LocalKsrv(state, args=("--gateway-workers", "2")).start()
    try:
        yield platform
    finally:
        platform.stop()


class Prometheus:
    """A real Prometheus on a free port, with its own storage, stopped at the end."""

    def __init__(self, binary: str, config: str, root: Path) -> None:
        (root / "prometheus.yml").write_text(config)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = root / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=5)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        try:
            result = self.query(expression)
        except httpx.HTTPError:
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, platform: LocalKsrv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    config = platform.cli("prometheus-config", "--scrape-interval", "1s")
    prometheus = Prometheus(prometheus_binary, config, tmp_path_factory.mktemp("prometheus"))
    try:
        yield prometheus
    finally:
        prometheus.stop()


def test_prometheus_counts_every_request_at_the_gateway_and_the_model_server(
    platform, prometheus, iris_dir
):
    document = with_storage(
        example("kserve__docs__samples__v1beta1__sklearn__v1__sklearn.yaml")[0], str(iris_dir)
    )
    platform.apply([document])
    platform.wait_ready(NAME)
    url = f"{platform.gateway}/serving/default/{NAME}/v1/models/{NAME}:predict"
    for _ in range(REQUESTS):
        answer = platform.http.post(url, json={"instances": [[6.8, 2.8, 4.8, 1.4]]})
        assert answer.status_code == 200, answer.text

    gateway_count = f'sum(revision_request_count_total{{service_name="{NAME}"}})'
    server_count = f'sum(ksrv_requests_total{{model_name="{NAME}",protocol="v1",code="200"}})'
    wait_until(
        lambda: (
            prometheus.value(gateway_count) == REQUESTS
            and prometheus.value(server_count) == REQUESTS
        ),
        f"Prometheus to count {REQUESTS} requests (log: {prometheus.log.read_text()[-2000:]})",
        timeout_s=60,
    )
    [answered] = prometheus.query(f'revision_request_count_total{{service_name="{NAME}"}}')
    labels = answered["metric"]
    assert labels["namespace_name"] == "default"
    assert labels["configuration_name"] == f"{NAME}-predictor"
    assert labels["response_code"] == "200" and labels["response_code_class"] == "2xx"
    assert labels["revision_name"].startswith(f"{NAME}-predictor-")
    assert labels["ksrv_role"] == "gateway"

    for histogram in KSERVE_HISTOGRAMS:
        [series] = prometheus.query(f'{histogram}_count{{model_name="{NAME}"}}')
        assert float(series["value"][1]) == REQUESTS  # one request at a time: none merged
        assert series["metric"]["inferenceservice"] == NAME
        assert series["metric"]["ksrv_role"] == "model-server"
    assert prometheus.value(f'sum(revision_request_latencies_count{{service_name="{NAME}"}})') == (
        REQUESTS
    )
    # The control plane is scraped on its own schedule: its first scrape may predate the replica.
    ready = f'ksrv_revision_ready_replicas{{service_name="{NAME}"}}'
    wait_until(lambda: prometheus.value(ready) == 1, "Prometheus to see the ready replica", 60)
    assert prometheus.value(f'ksrv_gateway_requests_in_flight{{service_name="{NAME}"}}') == 0
