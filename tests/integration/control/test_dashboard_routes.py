"""The dashboard's routes on a real HTTPServer, called with httpx: its files, the apply
endpoint (the API's own field errors), the series, and the "try it" proxy to a gateway.

The gateway here is a real HTTP server on loopback that answers with what it received (the
browser test drives the real one); it shows exactly what the proxy forwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from ksrv.control import admission
from ksrv.control.api_server import ManagementAPI
from ksrv.control.api_tokens import TokenAuthority
from ksrv.control.dashboard import LATENCY_HEADER, Dashboard
from ksrv.control.plane import PlaneSettings, gateway_address
from ksrv.control.store import Store
from ksrv.errors import ResourceInvalid
from ksrv.http.server import HTTPServer, Request, Response
from ksrv.http.tls import TLSFiles
from tests.api_server_support import running_api
from tests.conftest import KSRV, free_port
from tests.tls_support import make_pki

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""
BROKEN = ISVC.replace("name: iris", "name: broken").replace("storageUri", "storgeUri")
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"


class NoReplicas:
    def observe(self) -> dict:
        return {}


async def echo(request: Request) -> Response:
    """What the gateway received, as JSON."""
    seen = {
        "method": request.method,
        "target": request.target.decode(),
        "body": request.body.decode(),
        "authorization": request.headers.get("authorization"),
    }
    return Response(json.dumps(seen).encode(), 201, [(b"content-type", b"application/json")])


@contextmanager
def echo_gateway(port: int, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = HTTPServer(echo, 1 << 20, lambda size: Response(b"", 413))
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start("127.0.0.1", port, tls=tls))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def gateway() -> Iterator[str]:
    with echo_gateway(free_port()) as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "ksrv.db")
    yield opened
    opened.close()


def serve(api: ManagementAPI, gateway_url: str) -> Iterator[tuple[str, Dashboard]]:
    dashboard = Dashboard(api, NoReplicas(), gateway_url)
    with running_api(dashboard) as running:  # type: ignore[arg-type]
        yield running.url, dashboard
        asyncio.run_coroutine_threadsafe(dashboard.close(), running.loop).result(10)


@pytest.fixture
def site(store: Store, gateway: str) -> Iterator[tuple[str, Dashboard]]:
    yield from serve(ManagementAPI(store), gateway)


def test_the_page_and_its_files_are_served_with_a_strict_content_policy(site):
    url, _ = site
    assert httpx.get(f"{url}/").headers["location"] == "/dashboard/"
    page = httpx.get(f"{url}/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (
        httpx.get(f"{url}/dashboard/app.js").headers["content-type"].startswith("text/javascript")
    )
    assert httpx.get(f"{url}/dashboard/nothing.js").status_code == 404
    assert httpx.post(f"{url}/dashboard/app.js").status_code == 405
    assert httpx.get(f"{url}/healthz").text == "ok"  # the API still answers beside it


def test_apply_dry_run_shows_the_field_errors_of_admission_and_stores_nothing(site, store):
    url, _ = site
    answer = httpx.post(f"{url}/ksrv/v1/apply?namespace=team&dryRun=All", content=BROKEN)
    assert answer.status_code == 422
    [result] = answer.json()["items"]
    assert (result["kind"], result["name"], result["namespace"]) == (
        "InferenceService", "broken", "team"
    )  # fmt: skip
    causes = [(c["field"], c["message"]) for c in result["status"]["details"]["causes"]]
    with pytest.raises(ResourceInvalid) as refused:
        admission.admit(yaml.safe_load(BROKEN))
    assert causes == admission.field_errors(refused.value)
    good = httpx.post(f"{url}/ksrv/v1/apply?namespace=team&dryRun=All", content=ISVC)
    assert good.json()["items"][0]["outcome"] == "created"
    assert store.list("InferenceService", "team") == []


def test_apply_stores_every_document_and_reports_each(site, store):
    url, _ = site
    text = ISVC + "---\n" + ISVC.replace("name: iris", "name: other\n  namespace: elsewhere")
    answer = httpx.post(f"{url}/ksrv/v1/apply?namespace=team", content=text)
    assert answer.status_code == 200
    assert [(r["namespace"], r["name"], r["outcome"]) for r in answer.json()["items"]] == [
        ("team", "iris", "created"),
        ("elsewhere", "other", "created"),
    ]
    again = httpx.post(f"{url}/ksrv/v1/apply?namespace=team", content=ISVC)
    assert again.json()["items"][0]["outcome"] == "unchanged"
    assert [d["metadata"]["name"] for d in store.list("InferenceService", "team")] == ["iris"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("kind: Pod\nmetadata: {name: x}\n", "unknown kind 'Pod'"),
        ("kind: InferenceService\nmetadata: {}\n", "no metadata.name"),
    ],
)
def test_apply_refuses_a_document_it_cannot_place_with_a_400_item(site, text, why):
    url, _ = site
    answer = httpx.post(f"{url}/ksrv/v1/apply", content=text)
    assert answer.status_code == 400
    assert why in answer.json()["items"][0]["status"]["message"]


def test_apply_of_text_that_is_not_yaml_is_a_400_status(site):
    url, _ = site
    answer = httpx.post(f"{url}/ksrv/v1/apply", content="a: [unclosed")
    assert answer.status_code == 400 and answer.json()["kind"] == "Status"
    assert httpx.post(f"{url}/ksrv/v1/apply", content="").status_code == 400
    assert httpx.post(f"{url}/ksrv/v1/apply", content="- a list\n").status_code == 400
    assert httpx.get(f"{url}/ksrv/v1/apply").status_code == 405


def test_series_are_served_per_namespace(site):
    url, dashboard = site
    exposition = (
        "# TYPE revision_request_count_total counter\nrevision_request_count_total{"
        'namespace_name="default",service_name="iris",response_code_class="2xx"} 4.0\n'
    )
    dashboard.series.sample(exposition, 10.0)
    dashboard.series.sample(exposition.replace("4.0", "8.0"), 12.0)
    body = httpx.get(f"{url}/ksrv/v1/namespaces/default/series").json()
    assert body["kind"] == "SeriesList" and body["intervalSeconds"] == 2.0
    [iris] = body["items"]
    assert [p["rps"] for p in iris["points"]] == [0.0, 2.0]
    assert httpx.get(f"{url}/ksrv/v1/namespaces/other/series").json()["items"] == []
    since = httpx.get(f"{url}/ksrv/v1/series", params={"since": 11}).json()
    assert [p["t"] for p in since["items"][0]["points"]] == [12.0]
    assert httpx.get(f"{url}/ksrv/v1/series", params={"since": "x"}).status_code == 400


def test_try_it_requests_go_to_the_gateway_path_of_the_service_and_are_timed(site):
    url, _ = site
    answer = httpx.post(
        f"{url}/ksrv/v1/namespaces/team/proxy/iris/v1/models/iris:predict?verbose=1",
        content=b'{"instances": [[1, 2, 3, 4]]}',
        headers={"authorization": "Bearer abc", "content-type": "application/json"},
    )
    assert answer.status_code == 201  # the gateway's own status, passed on
    assert float(answer.headers[LATENCY_HEADER]) > 0
    seen = answer.json()
    assert seen["target"] in (
        "/serving/team/iris/v1/models/iris:predict?verbose=1",
        "/serving/team/iris/v1/models/iris%3Apredict?verbose=1",
    )
    assert (seen["body"], seen["authorization"]) == ('{"instances": [[1, 2, 3, 4]]}', "Bearer abc")
    root = httpx.post(f"{url}/ksrv/v1/namespaces/team/proxy/graph", content=b"{}")
    assert root.json()["target"] == "/serving/team/graph"
    escape = httpx.get(f"{url}/ksrv/v1/namespaces/team/proxy/iris/%2E%2E/x")
    assert escape.status_code == 400
    assert httpx.delete(f"{url}/ksrv/v1/namespaces/team/proxy/iris/x").status_code == 405


def test_try_it_with_the_gateway_down_is_a_502_status(store):
    dead = f"http://127.0.0.1:{free_port()}"
    for url, _ in serve(ManagementAPI(store), dead):
        answer = httpx.post(f"{url}/ksrv/v1/namespaces/default/proxy/iris/v2/models/iris/infer")
        assert answer.status_code == 502 and answer.json()["kind"] == "Status"


def test_with_tokens_required_the_data_needs_one_and_the_page_does_not(store, gateway):
    tokens = TokenAuthority(store, is_required=True)
    admin = tokens.create({"name": "admin", "role": "admin"})["token"]
    team = tokens.create({"name": "team", "role": "admin", "namespace": "team"})["token"]
    api = ManagementAPI(store, tokens=tokens)
    for url, _ in serve(api, gateway):
        assert httpx.get(f"{url}/dashboard/").status_code == 200
        assert httpx.get(f"{url}/ksrv/v1/series").status_code == 401
        as_team = {"authorization": f"Bearer {team}"}
        assert httpx.get(f"{url}/ksrv/v1/series", headers=as_team).status_code == 403
        assert httpx.get(f"{url}/ksrv/v1/namespaces/team/series", headers=as_team).is_success
        proxy = f"{url}/ksrv/v1/namespaces/other/proxy/iris/v2"
        assert httpx.get(proxy, headers=as_team).status_code == 403
        assert httpx.post(f"{url}/ksrv/v1/apply", content="not: [yaml").status_code == 401
        # Each applied document is checked as the API checks its own call.
        applied = httpx.post(f"{url}/ksrv/v1/apply?namespace=other", content=ISVC, headers=as_team)
        assert applied.status_code == 403 and applied.json()["kind"] == "Status"
        elsewhere = ISVC.replace("name: iris", "name: iris\n  namespace: other")
        applied = httpx.post(f"{url}/ksrv/v1/apply?namespace=team", content=elsewhere,
                             headers=as_team)  # fmt: skip
        assert applied.status_code == 403 and applied.json()["items"][0]["code"] == 403
        as_admin = {"authorization": f"Bearer {admin}"}
        applied = httpx.post(f"{url}/ksrv/v1/apply?namespace=other", content=ISVC, headers=as_admin)
        assert applied.json()["items"][0]["outcome"] == "created"
        listed = httpx.get(url + ISVCS.format(ns="other"), headers=as_admin)
        assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["iris"]


def test_ksrv_dashboard_prints_the_url_without_a_browser(site, tmp_path):
    url, _ = site
    env = {**os.environ, "KSRV_STATE_DIR": str(tmp_path)}
    command = [*KSRV, "dashboard", "--no-browser", "--server", url]
    shown = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [f"dashboard: {url}/dashboard/"]
    dead = [*KSRV, "dashboard", "--no-browser", "--server", f"http://127.0.0.1:{free_port()}"]
    down = subprocess.run(dead, capture_output=True, text=True, env=env, timeout=60)
    assert down.returncode == 1 and "is `ksrv up` running?" in down.stderr


def test_the_control_plane_reaches_a_tls_gateway_pinned_to_the_platform_certificate(
    store, tmp_path
):
    pki = make_pki(tmp_path)
    files = TLSFiles(pki.cert, pki.key)
    port = free_port()
    settings = PlaneSettings(tmp_path, host="0.0.0.0", gateway_port=port, tls=files)
    url, verify = gateway_address(settings)
    assert url == f"https://127.0.0.1:{port}"
    with echo_gateway(port, files.server_context()):
        dashboard = Dashboard(ManagementAPI(store), NoReplicas(), url, verify)

        async def read() -> str:
            try:
                return await dashboard.gateway_metrics()
            finally:
                await dashboard.close()

        assert json.loads(asyncio.run(read()))["target"] == "/metrics"
