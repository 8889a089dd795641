"""Shadow traffic through a real `ksrv up`: copies of half the requests reach the latest
revision while the rolled-out one answers every request (`ksrv.dev/shadow-percent`).

The gateway's copy draw is seeded (`KSRV_GATEWAY_SEED`, its own stream `shadow-{seed}`), so
how many of the 200 requests are drawn for a copy is known in advance.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.integration.platform.test_canary_rollout import (
    V1,
    V2,
    answer,
    constant_model,
    isvc,
    predictor_status,
)
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(240)

SEED = 14
SHADOW = {"ksrv.dev/shadow-percent": "50"}
REQUESTS = 200


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    local = LocalKsrv(tmp_path_factory.mktemp("ksrv-shadow"))
    local.env["KSRV_GATEWAY_SEED"] = str(SEED)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def shadow_route(platform: LocalKsrv, name: str) -> dict[str, Any] | None:
    table = platform.http.get(f"{platform.api}/ksrv/v1/routes", params={"after": 0}).json()
    for service in table["services"]:
        if (service["namespace"], service["name"]) == ("default", name):
            shadow: dict[str, Any] | None = service["components"]["predictor"].get("shadow")
            return shadow
    return None


def test_shadow_gets_copies_the_rolled_out_revision_answers_and_removal_promotes(
    platform, tmp_path
):
    name, v1, v2 = "shadow", "shadow-predictor-00001", "shadow-predictor-00002"
    models = {V1: constant_model(tmp_path / "v1", V1), V2: constant_model(tmp_path / "v2", V2)}
    platform.apply([isvc(name, models[V1], {})], "--wait")
    platform.apply([isvc(name, models[V2], SHADOW)])
    wait_until(
        lambda: (route := shadow_route(platform, name)) is not None and len(route["replicas"]) == 1,
        "the latest revision routed as the shadow with a ready replica",
        90.0,
    )
    status = predictor_status(platform, name)
    assert status["latestRolledoutRevision"] == v1
    assert [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [(v2, 0), (v1, 100)]

    with httpx.Client(timeout=30) as http:
        answers = Counter(answer(http, platform, name) for _ in range(REQUESTS))
    assert answers == {V1: REQUESTS}  # the shadow never answers

    draws = random.Random(f"shadow-{SEED}")
    drawn = sum(draws.random() * 100.0 < 50 for _ in range(REQUESTS))

    def counted() -> dict[str, Any]:
        found: dict[str, Any] = predictor_status(platform, name).get("shadow") or {}
        return found

    wait_until(
        lambda: counted().get("sent", 0) + counted().get("skipped", 0) == drawn,
        f"the status to count the {drawn} copies drawn",
        30.0,
    )
    shadow = counted()
    print(f"{REQUESTS} requests, {drawn} copies drawn, status {shadow}")
    assert shadow["revisionName"] == v2 and shadow["percent"] == 50
    assert shadow["errors"] == 0  # v2 answered every copy it got, 2xx
    # The gateway had the shadow's replica before the first request (the route was waited
    # for), so nothing was skipped.
    assert shadow["skipped"] == 0 and shadow["sent"] == drawn
    described = platform.cli("describe", "isvc", name)
    assert f"Shadow: {v2} gets 50% as copies: {drawn} sent, 0 errors, 0 skipped" in described

    # Removing the annotation lets the normal rollout promote the latest.
    platform.apply([isvc(name, models[V2], {})])
    wait_until(
        lambda: predictor_status(platform, name).get("latestRolledoutRevision") == v2,
        "the promotion",
        90.0,
    )
    assert "shadow" not in predictor_status(platform, name)
    with httpx.Client(timeout=30) as http:
        wait_until(lambda: answer(http, platform, name) == V2, "answers from v2")


def test_a_bad_shadow_percent_is_an_invalid_spec_naming_the_annotation(platform, tmp_path):
    name = "badshadow"
    model = constant_model(tmp_path / "m", V1)
    platform.apply([isvc(name, model, {"ksrv.dev/shadow-percent": "150"})])

    def ready() -> dict[str, Any]:
        conditions = platform.isvc(name).get("status", {}).get("conditions", [])
        return {c["type"]: c for c in conditions}.get("Ready", {})

    wait_until(lambda: ready().get("reason") == "InvalidSpec", "Ready=False InvalidSpec")
    assert ready()["status"] == "False"
    assert 'metadata.annotations["ksrv.dev/shadow-percent"]' in ready()["message"]
