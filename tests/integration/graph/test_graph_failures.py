"""Steps that fail: KServe's e2e graph scenarios (Hard and Soft in a Sequence, an Ensemble, a
Switch and a Splitter) with KServe's answers, a real model server answering 500, a service that
cannot be reached, and steps or graphs that run out of time."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import free_port

SUCCESS = {"predictions": [{"message": "SUCCESS"}]}
NOT_FOUND = {"detail": "Intentional 404 code"}
ERROR_PICK = {"decision_picker": "ERROR", "key1": {"name": "abc"}}
SUCCESS_PICK = {"decision_picker": "SUCCESS", "key1": {"name": "abc"}}


def _steps(router_type: str, *steps: dict) -> dict:
    return {"routerType": router_type, "steps": list(steps)}


@pytest.mark.parametrize(
    ("dependency", "status", "body", "ran"),
    [
        ("Hard", 404, NOT_FOUND, "root/rootStep1=404"),  # ig_test_seq_scenario_3
        ("Soft", 200, SUCCESS, "root/rootStep1=404,root/rootStep2=200"),
    ],
)
def test_a_failed_hard_step_stops_the_sequence_with_its_answer_a_soft_one_does_not(
    start_router, step_service, dependency, status, body, ran
):
    router = start_router(
        {
            "root": _steps(
                "Sequence",
                {
                    "name": "rootStep1",
                    "serviceUrl": step_service.url + "/status/404",
                    "dependency": dependency,
                },
                {
                    "name": "rootStep2",
                    "serviceUrl": step_service.url + "/success",
                    "dependency": "Soft",
                },
            )
        }
    )
    response = httpx.post(router.url, json={"instances": [[1]]})
    assert (response.status_code, response.json()) == (status, body)
    assert response.headers["ksrv-graph-steps"] == ran
    if dependency == "Hard":
        assert response.headers["ksrv-graph-error"] == "step root/rootStep1 (Hard) answered 404"
    else:
        assert "ksrv-graph-error" not in response.headers


def test_an_ensemble_merges_soft_failures_and_answers_a_hard_one(start_router, step_service):
    soft = start_router(  # ig_test_ensemble_scenario_7
        {
            "root": _steps(
                "Ensemble",
                {"name": "rootStep1", "serviceUrl": step_service.url + "/success"},
                {"name": "rootStep2", "serviceUrl": step_service.url + "/status/404"},
            )
        }
    )
    response = httpx.post(soft.url, json=SUCCESS_PICK)
    assert response.json() == {"rootStep1": SUCCESS, "rootStep2": NOT_FOUND}
    hard = start_router(  # ig_test_ensemble_scenario_8
        {
            "root": _steps(
                "Ensemble",
                {
                    "name": "rootStep1",
                    "serviceUrl": step_service.url + "/status/404",
                    "dependency": "Hard",
                },
                {"name": "rootStep2", "serviceUrl": step_service.url + "/success"},
                {"name": "rootStep3", "serviceUrl": step_service.url + "/success"},
            )
        }
    )
    response = httpx.post(hard.url, json=SUCCESS_PICK)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert response.headers["ksrv-graph-error"] == "step root/rootStep1 (Hard) answered 404"


def test_a_switch_answers_as_its_chosen_step_did_or_404_when_none_matches(
    start_router, step_service
):
    router = start_router(  # ig_test_switch_scenario_4
        {
            "root": _steps(
                "Switch",
                {
                    "name": "rootStep1",
                    "serviceUrl": step_service.url + "/status/404",
                    "condition": "[@this].#(decision_picker==ERROR)",
                    "dependency": "Soft",
                },
                {
                    "name": "rootStep2",
                    "serviceUrl": step_service.url + "/success",
                    "condition": "[@this].#(decision_picker==SUCCESS)",
                    "dependency": "Soft",
                },
            )
        }
    )
    error = httpx.post(router.url, json=ERROR_PICK)
    assert (error.status_code, error.json()) == (404, NOT_FOUND)
    assert httpx.post(router.url, json=SUCCESS_PICK).json() == SUCCESS
    none = httpx.post(router.url, json={"decision_picker": "NO_MATCH", "key1": {"name": "abc"}})
    assert none.status_code == 404
    assert none.json() == {
        "error": "Failed to process request",
        "cause": "None of the routes matched with the switch condition",
    }


@pytest.mark.parametrize("inner", ["Switch", "Splitter"])
@pytest.mark.parametrize(
    ("dependency", "status", "body"),
    [("Soft", 200, SUCCESS), ("Hard", 404, NOT_FOUND)],  # scenarios 5, 9 and 6, 10
)
def test_a_failed_node_fails_the_sequence_only_through_a_hard_step(
    start_router, step_service, inner, dependency, status, body
):
    step = {
        "name": "node1Step1",
        "serviceUrl": step_service.url + "/status/404",
        "condition": "[@this].#(decision_picker==ERROR)",
        "dependency": dependency,
    }
    if inner == "Splitter":
        step["weight"] = 100
    router = start_router(
        {
            "root": _steps(
                "Sequence",
                {"name": "rootStep1", "nodeName": "node1", "dependency": dependency},
                {"name": "rootStep2", "serviceUrl": step_service.url + "/success"},
            ),
            "node1": _steps(inner, step),
        }
    )
    response = httpx.post(router.url, json=ERROR_PICK)
    assert (response.status_code, response.json()) == (status, body)


def test_a_hard_step_whose_model_server_answers_500_fails_the_graph_naming_the_step(
    start_router, toy_server
):
    failing = f"{toy_server.url}/v1/models/failing:predict"
    echo = f"{toy_server.url}/v1/models/echo:predict"
    hard = start_router(
        {
            "root": _steps(
                "Sequence",
                {"name": "broken", "serviceUrl": failing, "dependency": "Hard"},
                {"name": "echo", "serviceUrl": echo},
            )
        }
    )
    response = httpx.post(hard.url, json={"instances": [1]})
    assert response.status_code == 500
    assert "the toy model is broken" in response.json()["error"]  # the model server's answer
    assert response.headers["ksrv-graph-error"] == "step root/broken (Hard) answered 500"
    assert response.headers["ksrv-graph-steps"] == "root/broken=500"

    soft = start_router(
        {
            "root": _steps(
                "Sequence",
                {"name": "broken", "serviceUrl": failing},
                {"name": "echo", "serviceUrl": echo},
            )
        }
    )
    response = httpx.post(soft.url, json={"instances": [1]})
    assert (response.status_code, response.json()) == (200, {"predictions": [1]})
    assert response.headers["ksrv-graph-steps"] == "root/broken=500,root/echo=200"


def test_a_step_that_cannot_be_reached_answers_502_naming_it(start_router, step_service):
    nowhere = f"http://127.0.0.1:{free_port()}/v1/models/gone:predict"
    router = start_router(
        {
            "root": _steps(
                "Sequence",
                {"name": "gone", "serviceUrl": nowhere},
                {"name": "ok", "serviceUrl": step_service.url + "/success"},
            ),
        }
    )
    assert httpx.post(router.url, json={}).json() == SUCCESS  # Soft: skipped
    strict = start_router(
        {"root": _steps("Sequence", {"name": "gone", "serviceUrl": nowhere, "dependency": "Hard"})}
    )
    response = httpx.post(strict.url, json={})
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "Failed to process request"
    assert f"step root/gone ({nowhere}): cannot connect" in body["cause"]
    assert response.headers["ksrv-graph-error"] == "step root/gone (Hard) answered 502"


def test_a_step_past_its_own_timeout_answers_504_and_a_soft_one_is_skipped(
    start_router, step_service
):
    held = {"name": "held", "serviceUrl": step_service.url + "/hold"}
    after = {"name": "after", "serviceUrl": step_service.url + "/success"}
    soft = start_router({"root": _steps("Sequence", held, after)}, step_timeouts='{"held": 0.2}')
    response = httpx.post(soft.url, json={})
    assert response.json() == SUCCESS
    assert response.headers["ksrv-graph-steps"] == "root/held=504,root/after=200"

    hard = start_router(
        {"root": _steps("Sequence", {**held, "dependency": "Hard"}, after)},
        spec={"routerTimeouts": {"serviceClient": 1}},
        step_timeouts='{"root[0]": 0.2}',
    )
    response = httpx.post(hard.url, json={})
    assert response.status_code == 504
    assert response.json()["cause"] == (
        f"step root/held ({step_service.url}/hold): no answer within 0.2s"
    )


def test_a_graph_past_its_timeout_answers_504(start_router, step_service):
    router = start_router(
        {"root": _steps("Sequence", {"serviceUrl": step_service.url + "/hold"})},
        spec={"timeout": 1},
    )
    response = httpx.post(router.url, json={}, timeout=30)
    assert response.status_code == 504
    assert response.json() == {
        "error": "Failed to process request",
        "cause": "the graph did not answer within 1s",
    }


def test_a_request_head_slower_than_server_read_is_answered_408(start_router, step_service):
    router = start_router(
        {"root": _steps("Sequence", {"serviceUrl": step_service.url + "/success"})},
        spec={"routerTimeouts": {"serverRead": 1}},
    )
    with socket.create_connection(("127.0.0.1", router.router.http_port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: graph\r\n")  # and nothing more
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert step_service.seen == []


def test_an_ensemble_answers_a_failed_hard_step_without_waiting_for_the_rest(
    start_router, step_service
):
    router = start_router(
        {
            "root": _steps(
                "Ensemble",
                {
                    "name": "fails",
                    "serviceUrl": step_service.url + "/status/503",
                    "dependency": "Hard",
                },
                {"name": "held", "serviceUrl": step_service.url + "/hold"},
            )
        }
    )
    # /hold answers only once released (at teardown): the answer cannot have waited for it.
    response = httpx.post(router.url, json={}, timeout=30)
    assert (response.status_code, response.json()) == (503, {"detail": "Intentional 503 code"})
    assert response.headers["ksrv-graph-steps"] == "root/fails=503,root/held=0"
