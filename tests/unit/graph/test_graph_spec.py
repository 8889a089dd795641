"""`--graph-json` read into the router's values: what runs, what is refused at start-up (with
the field named), and which timeout each step and request gets."""

from __future__ import annotations

import json

import pytest

from ksrv.errors import ResourceInvalid
from ksrv.graph import spec

URL = "http://svc.default.svc.cluster.local/v1/models/svc:predict"


def _json(nodes: dict, **fields) -> str:
    return json.dumps({"nodes": nodes, **fields})


def _errors(text: str, step_timeouts: str | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ResourceInvalid) as caught:
        spec.parse_graph(text, step_timeouts)
    return caught.value.field_errors


def test_graph_json_as_kserve_writes_it_is_read_into_nodes_and_steps():
    graph = spec.parse_graph(
        _json(
            {
                "root": {
                    "routerType": "Sequence",
                    "steps": [
                        {"name": "pre", "serviceName": "pre", "serviceUrl": URL},
                        {
                            "nodeName": "split",
                            "data": "$response",
                            "dependency": "Hard",
                            "mapPredictionsToInstances": True,
                        },
                    ],
                },
                "split": {
                    "routerType": "Splitter",
                    "steps": [
                        {"serviceUrl": URL, "weight": 30},
                        {"serviceUrl": URL, "weight": 70, "condition": "a"},
                    ],
                },
            },
            resources={},
        )
    )
    first, second = graph.root.steps
    assert (first.name, first.service_url, first.is_response, first.is_hard) == (
        "pre",
        URL,
        False,
        False,
    )
    assert (second.node_name, second.is_response, second.is_hard, second.maps_predictions) == (
        "split",
        True,
        True,
        True,
    )
    assert [s.weight for s in graph.nodes["split"].steps] == [30, 70]
    assert [s.label for s in graph.nodes["split"].steps] == ["split/0", "split/1"]
    assert first.label == "root/pre" and first.key == "pre"


@pytest.mark.parametrize(
    ("nodes", "path", "words"),
    [
        ({"other": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}]}}, "nodes", "root"),
        (
            {"root": {"routerType": "Sequence", "steps": [{"serviceName": "svc"}]}},
            "nodes.root.steps[0]",
            "serviceUrl",
        ),
        (
            {"root": {"routerType": "Sequence", "steps": [{"nodeName": "nowhere"}]}},
            "nodes.root.steps[0].nodeName",
            "nowhere",
        ),
        ({"root": {"routerType": "Ensemble", "steps": []}}, "nodes.root.steps", "at least one"),
        (
            {"root": {"routerType": "Splitter", "steps": [{"serviceUrl": URL, "weight": 60}]}},
            "nodes.root.steps",
            "sum to 60",
        ),
        (
            {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": "svc:80/x"}]}},
            "nodes.root.steps[0].serviceUrl",
            "http://",
        ),
        (
            {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": URL, "data": "$body"}]}},
            "nodes.root.steps[0].data",
            "$response",
        ),
        (
            {
                "root": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]},
                "a": {"routerType": "Sequence", "steps": [{"nodeName": "b"}]},
                "b": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]},
            },
            "nodes.a",
            "a -> b -> a",
        ),
    ],
)
def test_a_graph_the_router_cannot_run_is_refused_naming_the_field(nodes, path, words):
    errors = dict(_errors(_json(nodes)))
    assert path in errors, errors
    assert words in errors[path]


def test_a_router_type_kserve_does_not_have_is_refused_naming_the_field():
    errors = _errors(_json({"root": {"routerType": "Pipeline", "steps": []}}))
    assert any(path.startswith("nodes.root.routerType") for path, _ in errors)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_graph_json_that_is_not_a_json_object_is_refused(text):
    with pytest.raises(ResourceInvalid, match="--graph-json"):
        spec.parse_graph(text)


def test_timeouts_default_to_kserves_router_timeouts():
    graph = spec.parse_graph(
        _json({"root": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}]}})
    )
    assert graph.timeouts == spec.Timeouts(request_s=60.0, server_read_s=60.0, server_idle_s=180.0)
    assert graph.root.steps[0].timeout_s is None


def test_timeout_and_router_timeouts_set_the_request_deadline_and_each_service_call():
    text = _json(
        {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}]}},
        timeout=30,
        routerTimeouts={"serverRead": 5, "serverWrite": 120, "serverIdle": 9, "serviceClient": 7},
    )
    graph = spec.parse_graph(text)
    assert graph.timeouts == spec.Timeouts(request_s=30.0, server_read_s=5.0, server_idle_s=9.0)
    assert graph.root.steps[0].timeout_s == 7.0
    # serverWrite bounds the whole answer, as Go's WriteTimeout does, even past `timeout`
    shorter = spec.parse_graph(_json(json.loads(text)["nodes"], timeout=300))
    assert shorter.timeouts.request_s == 60.0


def test_step_timeouts_apply_by_name_then_node_and_index_then_star_over_service_client():
    text = _json(
        {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"name": "slow", "serviceUrl": URL},
                    {"serviceUrl": URL},
                    {"serviceUrl": URL},
                ],
            }
        },
        routerTimeouts={"serviceClient": 20},
    )
    graph = spec.parse_graph(text, '{"slow": 90, "root[1]": 0.5, "*": 3}')
    assert [step.timeout_s for step in graph.root.steps] == [90.0, 0.5, 3.0]
    assert spec.parse_graph(text).root.steps[2].timeout_s == 20.0


@pytest.mark.parametrize("value", ['{"a": 0}', '{"a": "5"}', '{"a": true}', "[5]", "{oops"])
def test_step_timeouts_that_are_not_positive_seconds_are_refused(value):
    text = _json({"root": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}]}})
    with pytest.raises(ResourceInvalid, match=r"ksrv\.dev/step-timeouts"):
        spec.parse_graph(text, value)
