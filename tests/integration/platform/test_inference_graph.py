"""InferenceGraphs on the local platform: a real `ksrv up`, real InferenceServices (tiny sklearn
models and toy custom models), each graph's router as supervised replicas, called through the
gateway on KServe's hosts and path.

The graph waits for the services it names (Ready=False naming the first missing one, and the
gateway answers 503 with the reason), serves once they are Ready, goes not Ready again when
one is deleted, and its router stops when the graph is deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

TOYS = Path(__file__).resolve().parents[2] / "graph_toys.py"
IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def iris(name: str, model_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "storageUri": str(model_dir)}}},
    }  # fmt: skip


def toy(name: str, model: str, **env: str) -> dict[str, Any]:
    container = {"name": "kserve-container", "image": "ksrv-graph-toys",
                 "command": ["ksrv", "serve", f"{TOYS}:{model}"],
                 "env": [{"name": k, "value": v} for k, v in env.items()]}  # fmt: skip
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"containers": [container]}},
    }


def graph(name: str, nodes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodes": nodes, **spec},
    }


def graph_document(platform: LocalKsrv, name: str) -> dict[str, Any]:
    path = (
        f"{platform.api}/apis/serving.kserve.io/v1alpha1/namespaces/default/inferencegraphs/{name}"
    )
    response = platform.http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def ready_condition(platform: LocalKsrv, name: str) -> dict[str, Any]:
    conditions = graph_document(platform, name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def wait_graph(platform: LocalKsrv, name: str, status: str, reason: str = "") -> dict[str, Any]:
    def reached() -> bool:
        found = ready_condition(platform, name)
        return found.get("status") == status and (not reason or found.get("reason") == reason)

    try:
        wait_until(reached, f"{name} Ready={status} {reason}", timeout_s=120)
    except AssertionError:
        raise AssertionError(
            f"{json.dumps(graph_document(platform, name), indent=1)}\n{platform.log()[-3000:]}"
        ) from None
    return graph_document(platform, name)


def wait_routed(platform: LocalKsrv, name: str) -> None:
    """Until the gateway (which takes each new route table within its long poll) reaches the
    graph's router: the router's own `/readyz` through the graph's path."""
    url = f"{platform.gateway}/serving/default/{name}/readyz"
    wait_until(lambda: platform.http.get(url).status_code == 200, f"{name} routed", 30)


def call(platform: LocalKsrv, name: str, body: dict[str, Any], host: str | None = None):
    if host is None:
        return platform.http.post(f"{platform.gateway}/serving/default/{name}", json=body)
    return platform.http.post(platform.gateway, json=body, headers={"Host": host})


@pytest.fixture(scope="module")
def services(ksrv_platform, model_dirs):
    """The services most graphs here use, Ready."""
    ksrv_platform.apply(
        [
            iris("iris-a", model_dirs["sklearn"]),
            toy("success", "Success"),
            toy("left", "Target", target="left"),
            toy("right", "Target", target="right"),
        ],
        "--wait",
    )
    return ksrv_platform


def test_a_graph_waits_for_its_service_serves_once_ready_and_waits_again_when_it_goes(
    ksrv_platform, services, model_dirs
):
    chain = graph("chain", {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "success"},
        {"serviceName": "iris-late", "data": "$request"},
    ]}})  # fmt: skip
    ksrv_platform.apply([chain])
    waiting = wait_graph(ksrv_platform, "chain", "False", "InferenceServiceNotFound")
    message = next(c for c in waiting["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "iris-late" in message
    assert "url" not in waiting["status"]
    early = call(ksrv_platform, "chain", {"instances": IRIS_ROWS})
    assert early.status_code == 503 and "iris-late" in early.text, early.text

    ksrv_platform.apply([iris("iris-late", model_dirs["sklearn"])])
    ready = wait_graph(ksrv_platform, "chain", "True")
    wait_routed(ksrv_platform, "chain")
    status = ready["status"]
    assert status["url"] == "http://chain-default.example.com"
    assert status["address"]["url"] == f"{ksrv_platform.gateway}/serving/default/chain"
    types = [(c["type"], c["status"]) for c in status["conditions"]]
    assert types == [("ConfigurationsReady", "True"), ("RoutesReady", "True"),
                     ("Ready", "True"), ("Stopped", "False")]  # fmt: skip
    for host in (None, "chain-default.example.com", "chain.default.example.com"):
        answer = call(ksrv_platform, "chain", {"instances": IRIS_ROWS}, host)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": [1, 1]}

    ksrv_platform.cli("delete", "isvc", "iris-late")
    gone = wait_graph(ksrv_platform, "chain", "False", "InferenceServiceNotFound")
    assert "iris-late" in next(c for c in gone["status"]["conditions"]
                               if c["type"] == "Ready")["message"]  # fmt: skip
    # The router keeps running; the step it cannot reach fails the call, naming the service.
    assert ksrv_platform.routed_replicas("chain") == {"chain-router-00001": 1}

    ksrv_platform.apply([iris("iris-late", model_dirs["sklearn"])])
    wait_graph(ksrv_platform, "chain", "True")
    pids = ksrv_platform.replica_pids()["chain-router-00001"]
    ksrv_platform.cli("delete", "ig", "chain")
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "router stopped")
    assert call(ksrv_platform, "chain", {"instances": IRIS_ROWS}).status_code == 404


def test_switch_on_two_router_replicas_sends_to_the_first_match_and_404_for_none(
    ksrv_platform, services
):
    switch = graph("pick", {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "left", "condition": "[@this].#(side==left)"},
        {"serviceName": "right", "condition": "[@this].#(side==right)"},
    ]}}, minReplicas=2)  # fmt: skip
    ksrv_platform.apply([switch])
    wait_graph(ksrv_platform, "pick", "True")
    wait_routed(ksrv_platform, "pick")
    wait_until(lambda: ksrv_platform.routed_replicas("pick") == {"pick-router-00001": 2},
               "two router replicas")  # fmt: skip
    for side in ("left", "right"):
        answer = call(ksrv_platform, "pick", {"side": side})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [{"target": side}]
    unmatched = call(ksrv_platform, "pick", {"side": "up"})
    assert unmatched.status_code == 404, unmatched.text


def test_a_changed_graph_gets_a_new_router_revision_and_the_old_one_stops(ksrv_platform, services):
    one = graph("flip", {"root": {"routerType": "Sequence", "steps": [{"serviceName": "left"}]}})
    ksrv_platform.apply([one])
    wait_graph(ksrv_platform, "flip", "True")
    old_pids = ksrv_platform.replica_pids()["flip-router-00001"]
    two = graph("flip", {"root": {"routerType": "Sequence", "steps": [{"serviceName": "right"}]}})
    ksrv_platform.apply([two])
    wait_until(
        lambda: ksrv_platform.routed_replicas("flip") == {"flip-router-00002": 1}, "new router"
    )
    # The gateway takes the new table within its long poll: then every call is the new graph's.
    right = [{"target": "right"}]
    wait_until(lambda: call(ksrv_platform, "flip", {}).json()["predictions"] == right,
               "the gateway sending to the new router")  # fmt: skip
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in old_pids), "old router gone")


def test_get_and_describe_ig_show_the_graph_its_steps_and_their_services(ksrv_platform, services):
    ensemble = graph("both", {"root": {"routerType": "Ensemble", "steps": [
        {"serviceName": "left", "name": "l"},
        {"serviceName": "success", "name": "s", "dependency": "Hard"},
        {"serviceUrl": "http://127.0.0.1:9/v1/models/x:predict", "name": "far"},
    ]}})  # fmt: skip
    output = ksrv_platform.apply([ensemble], "--wait")  # --wait waits for graphs too
    assert "condition met" in output, output
    assert ready_condition(ksrv_platform, "both")["status"] == "True"
    table = ksrv_platform.cli("get", "ig", "both")
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "URL", "READY", "AGE"]
    assert row.split()[:3] == ["both", "http://both-default.example.com", "True"]
    described = ksrv_platform.cli("describe", "ig", "both")
    print(described)
    assert "root (Ensemble)" in described
    lines = described.splitlines()
    left = next(line for line in lines if line.strip().startswith("l ")).split()
    assert left[:3] == ["l", "service", "left"] and "True" in left
    assert f"{ksrv_platform.gateway}/serving/default/left" in " ".join(left)
    far = next(line for line in lines if line.strip().startswith("far ")).split()
    assert far[1:3] == ["url", "http://127.0.0.1:9/v1/models/x:predict"]
    assert "router --graph-json" in ksrv_platform.cli("logs", "both", "-c", "router")
    revisions = ksrv_platform.cli("get", "revisions").splitlines()
    (row,) = [line.split() for line in revisions if line.startswith("both-router-")]
    # No INFERENCESERVICE nor TAGS: COMPONENT, TRAFFIC, ACTUAL, DESIRED, READY follow the name.
    assert row[:6] == ["both-router-00001", "router", "100%", "1", "1", "True"], revisions


def test_a_stopped_graph_stops_its_router_and_one_named_as_a_service_is_refused(
    ksrv_platform, services
):
    paused = graph("paused", {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "left"}]}})  # fmt: skip
    ksrv_platform.apply([paused], "--wait")
    pids = ksrv_platform.replica_pids()["paused-router-00001"]
    paused["metadata"]["annotations"] = {"serving.kserve.io/stop": "true"}
    ksrv_platform.apply([paused])
    stopped = wait_graph(ksrv_platform, "paused", "False", "Stopped")
    assert {"type": "Stopped", "status": "True"}.items() <= stopped["status"]["conditions"][
        1
    ].items()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "router stopped")
    ksrv_platform.cli("delete", "ig", "paused")

    clash = graph("left", {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "right"}]}})  # fmt: skip
    ksrv_platform.apply([clash])
    refused = wait_graph(ksrv_platform, "left", "False", "NameConflict")
    assert "InferenceService left" in refused["status"]["conditions"][0]["message"]
    service = f"{ksrv_platform.gateway}/serving/default/left/v1/models/left:predict"
    assert ksrv_platform.http.post(service, json={}).json()["predictions"] == [{"target": "left"}]
    ksrv_platform.cli("delete", "ig", "left")


def test_a_restarted_control_plane_adopts_the_router_and_the_graph_keeps_answering(
    ksrv_platform, services
):
    """Last in this module: it replaces the module's control plane by a restarted one."""
    one = graph("kept", {"root": {"routerType": "Sequence", "steps": [{"serviceName": "left"}]}})
    ksrv_platform.apply([one])
    wait_graph(ksrv_platform, "kept", "True")
    pids = ksrv_platform.replica_pids()["kept-router-00001"]
    ksrv_platform.kill()
    ports = (ksrv_platform.port, ksrv_platform.grpc_port, ksrv_platform.api_port)
    restarted = LocalKsrv(ksrv_platform.state_dir, ports).start()
    try:
        wait_graph(restarted, "kept", "True")
        wait_routed(restarted, "kept")
        assert restarted.replica_pids()["kept-router-00001"] == pids  # adopted, not restarted
        answer = call(restarted, "kept", {})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [{"target": "left"}]
    finally:
        restarted.stop()
