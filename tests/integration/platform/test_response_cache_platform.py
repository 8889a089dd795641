"""The response cache through a real `ksrv up`: the annotation turns it on in the replicas,
a new revision (a new process) starts empty, and bad values are refused at apply."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.conftest import wait_until
from tests.integration.platform.test_canary_rollout import V1, V2, constant_model, isvc, traffic
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(240)

CACHED = {"ksrv.dev/response-cache": "true", "ksrv.dev/response-cache-bytes": "1Mi"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    local = LocalKsrv(tmp_path_factory.mktemp("ksrv-cache"))
    local.start()
    try:
        yield local
    finally:
        local.stop()


def predict(
    http: httpx.Client, platform: LocalKsrv, name: str, **headers: str
) -> tuple[int, str | None]:
    url = f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict"
    response = http.post(url, json={"instances": [[1.0]]}, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["predictions"][0]), response.headers.get("ksrv-cache")


def test_the_annotation_turns_the_cache_on_and_a_new_revision_starts_empty(platform, tmp_path):
    name = "cached"
    v1_model, v2_model = constant_model(tmp_path / "v1", V1), constant_model(tmp_path / "v2", V2)
    platform.apply([isvc(name, v1_model, CACHED)], "--wait")
    with httpx.Client(timeout=30) as http:
        assert predict(http, platform, name) == (V1, "miss")
        assert predict(http, platform, name) == (V1, "hit")
        assert predict(http, platform, name, **{"cache-control": "no-cache"}) == (V1, None)
        platform.apply([isvc(name, v2_model, CACHED)])
        wait_until(
            lambda: (
                traffic(platform, name) == [(f"{name}-predictor-00002", 100)]
                and platform.routed_replicas(name) == {f"{name}-predictor-00002": 1}
            ),
            "the new revision to take all traffic alone",
            90,
        )
        assert predict(http, platform, name) == (V2, "miss")
        assert predict(http, platform, name) == (V2, "hit")


def test_without_the_annotation_there_is_no_cache(platform, tmp_path):
    name = "uncached"
    platform.apply([isvc(name, constant_model(tmp_path / "m", V1), {})], "--wait")
    with httpx.Client(timeout=30) as http:
        assert predict(http, platform, name) == (V1, None)
        assert predict(http, platform, name) == (V1, None)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("ksrv.dev/response-cache", "yes"),
        ("ksrv.dev/response-cache-bytes", "lots"),
        ("ksrv.dev/response-cache-bytes", "0"),
        ("ksrv.dev/response-cache-ttl", "-1"),
    ],
)
def test_bad_values_are_refused_at_apply_naming_the_annotation(platform, annotation, value):
    document = isvc("bad", "/nowhere", {**CACHED, annotation: value})
    output = platform.cli("apply", "-f", "-", stdin=yaml.safe_dump(document), check=False)
    assert f'metadata.annotations["{annotation}"]' in output
    assert "bad" not in platform.cli("get", "isvc")
