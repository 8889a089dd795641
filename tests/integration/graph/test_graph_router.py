"""The router against real model servers (`ksrv serve`: the toy models and a real sklearn iris),
V1 and V2 bodies: Sequence, nodeName, Switch (KServe's sample conditions), Ensemble and a seeded
Splitter, with the steps that ran named in `ksrv-graph-steps`."""

from __future__ import annotations

import collections

import httpx

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]  # KServe's e2e graph input
V2_BODY = {"inputs": [{"name": "a", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.5]}]}


def _v1(server, model: str) -> str:
    return f"{server.url}/v1/models/{model}:predict"


def _v2(server, model: str) -> str:
    return f"{server.url}/v2/models/{model}/infer"


def test_a_sequence_sends_the_request_or_the_previous_answer_mapped_to_instances(
    start_router, toy_server, step_service
):
    router = start_router(
        {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"name": "first", "serviceUrl": _v1(toy_server, "echo")},
                    {
                        "name": "second",
                        "serviceUrl": step_service.url + "/echo",
                        "data": "$response",
                        "mapPredictionsToInstances": True,
                    },
                    {"name": "third", "serviceUrl": step_service.url + "/echo"},
                ],
            }
        }
    )
    request = {"instances": [[1, 2]], "tag": "original"}
    response = httpx.post(router.url, json=request)
    assert response.status_code == 200
    assert response.json() == {"received": request}  # the last step's answer
    assert [body for _, _, body in step_service.seen] == [{"instances": [[1, 2]]}, request]
    assert response.headers["ksrv-graph-steps"] == "root/first=200,root/second=200,root/third=200"
    assert response.headers["content-type"] == "application/json"


def test_a_step_naming_a_node_runs_that_node_and_the_next_step_gets_its_answer(
    start_router, toy_server
):
    router = start_router(
        {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"nodeName": "models"},
                    {"serviceUrl": _v1(toy_server, "echo"), "data": "$response"},
                ],
            },
            "models": {
                "routerType": "Sequence",
                "steps": [{"name": "echo", "serviceUrl": _v1(toy_server, "echo")}],
            },
        }
    )
    response = httpx.post(router.url, json={"instances": [7]})
    # models/echo answers {"predictions": [7]}; echo of that (no instances) predicts [].
    assert response.json() == {"predictions": []}
    assert response.headers["ksrv-graph-steps"] == "root/0=200,models/echo=200,root/1=200"


def test_a_switch_takes_the_first_step_whose_condition_matches_else_kserves_404(
    start_router, step_service
):
    # The conditions of KServe's docs/samples/graph/switch.yaml.
    router = start_router(
        {
            "root": {
                "routerType": "Switch",
                "steps": [
                    {
                        "serviceUrl": step_service.url + "/one",
                        "condition": "[@this].#(source==client)",
                    },
                    {
                        "serviceUrl": step_service.url + "/two",
                        "condition": "instances.#(intval>10)",
                    },
                    {
                        "serviceUrl": step_service.url + "/three",
                        "condition": "instances.#(strval%*red-server*)",
                    },
                ],
            }
        }
    )
    requests = [
        {"source": "client", "instances": [{"intval": 11}]},
        {"instances": [{"intval": 3}, {"intval": 12}]},
        {"instances": [{"strval": "the red-server one"}]},
    ]
    for request in requests:
        assert httpx.post(router.url, json=request).json() == {"received": request}
    assert [path for path, _, _ in step_service.seen] == ["/one", "/two", "/three"]

    unmatched = httpx.post(router.url, json={"source": "server", "instances": [{"intval": 1}]})
    assert unmatched.status_code == 404
    assert unmatched.json() == {
        "error": "Failed to process request",
        "cause": "None of the routes matched with the switch condition",
    }
    assert unmatched.headers["ksrv-graph-steps"] == ""
    assert len(step_service.seen) == 3


def test_an_ensemble_merges_answers_under_step_names_or_indexes(
    start_router, toy_server, iris_server
):
    router = start_router(
        {
            "root": {
                "routerType": "Ensemble",
                "steps": [
                    {"name": "echo", "serviceUrl": _v1(toy_server, "echo")},
                    {"serviceUrl": _v1(iris_server, "iris")},
                ],
            }
        }
    )
    response = httpx.post(router.url, json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    assert response.json() == {"echo": {"predictions": IRIS_ROWS}, "1": {"predictions": [1, 1]}}
    assert response.headers["ksrv-graph-steps"] == "root/echo=200,root/1=200"


def test_v2_bodies_go_through_a_switch_and_an_ensemble(start_router, toy_server, iris_server):
    router = start_router(
        {
            "root": {
                "routerType": "Switch",
                "steps": [
                    {"nodeName": "iris", "condition": "inputs.#(name==input-0)"},
                    {"nodeName": "toys", "condition": "inputs.#(datatype==FP32)"},
                ],
            },
            "toys": {
                "routerType": "Ensemble",
                "steps": [
                    {"name": "echo", "serviceUrl": _v2(toy_server, "echo")},
                    {"name": "sum", "serviceUrl": _v2(toy_server, "sum")},
                ],
            },
            "iris": {
                "routerType": "Sequence",
                "steps": [{"name": "iris", "serviceUrl": _v2(iris_server, "iris")}],
            },
        }
    )
    toys = httpx.post(router.url, json=V2_BODY).json()
    assert toys["echo"]["outputs"][0]["data"] == [1.0, 2.0, 3.5]
    assert toys["sum"]["outputs"] == [
        {"name": "total", "shape": [1], "datatype": "FP64", "data": [6.5]}
    ]
    iris_request = {
        "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]
    }
    response = httpx.post(router.url, json=iris_request)
    assert response.json()["outputs"][0]["data"] == [1, 1]
    assert response.headers["ksrv-graph-steps"] == "root/0=200,iris/iris=200"


def test_a_seeded_splitter_keeps_to_its_weights_within_five_percent_over_1000_requests(
    start_router, toy_server
):
    router = start_router(
        {
            "root": {
                "routerType": "Splitter",
                "steps": [
                    {"name": "a", "serviceUrl": _v1(toy_server, "echo"), "weight": 30},
                    {"name": "b", "serviceUrl": _v1(toy_server, "echo"), "weight": 70},
                ],
            }
        },
        seed=1234,
    )
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=router.url) as client:
        for _ in range(1000):
            response = client.post("/", json={"instances": [1]})
            assert response.json() == {"predictions": [1]}
            counts[response.headers["ksrv-graph-steps"]] += 1
    assert set(counts) == {"root/a=200", "root/b=200"}
    assert abs(counts["root/a=200"] - 300) <= 50
    assert abs(counts["root/b=200"] - 700) <= 50


def test_readiness_and_a_body_that_is_not_json(start_router, step_service):
    router = start_router(
        {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": step_service.url + "/echo"}]}}
    )
    assert httpx.get(router.url + "/readyz").status_code == 200
    for body in (b"{not json", b"", b"\xff\xfe"):
        response = httpx.post(router.url + "/v1/models/anything:predict", content=body)
        assert response.status_code == 400
        assert "not JSON" in response.json()["error"]
    assert step_service.seen == []
