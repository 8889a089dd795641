"""The executor's rules, driven by a caller that answers from a table (no sockets): Splitter
draws, `mapPredictionsToInstances`, Soft and Hard steps, conditions in a Sequence, and
steps that give no answer."""

from __future__ import annotations

import asyncio
import collections
import json
import random

import orjson
import pytest

from ksrv.errors import UpstreamFailed, UpstreamTimeout
from ksrv.graph import spec
from ksrv.graph.client import Answer, Target
from ksrv.graph.executor import (
    NO_MATCH,
    Executor,
    Payload,
    Run,
    pick_weighted,
    predictions_as_instances,
)


def _url(name: str) -> str:
    return f"http://{name}.default.svc.cluster.local/v1/models/{name}:predict"


class TableCaller:
    """Answers each service from `answers` (status, document) or raises what is there; records
    the bodies it was sent."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, object]] = []

    async def post(self, target: Target, body: bytes, headers, deadline) -> Answer:
        name = target.host.split(".")[0]
        self.sent.append((name, orjson.loads(body)))
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        status, document = answer
        return Answer(status, orjson.dumps(document), b"application/json")


def _run(nodes: dict, caller: TableCaller, request: object, rng=None):
    graph = spec.parse_graph(json.dumps({"nodes": nodes}))
    run = Run([])
    body = orjson.dumps(request)
    outcome = asyncio.run(Executor(graph, caller, rng).run(Payload(body), run))
    return outcome, [(record.label, record.status) for record in run.records]


def _step(name: str, **fields) -> dict:
    return {"name": name, "serviceUrl": _url(name), **fields}


def test_the_splitter_draw_follows_the_weights_within_five_percent_over_1000_draws():
    steps = spec.parse_graph(
        json.dumps(
            {
                "nodes": {
                    "root": {
                        "routerType": "Splitter",
                        "steps": [
                            _step("a", weight=20),
                            _step("b", weight=50),
                            _step("c", weight=30),
                        ],
                    }
                }
            }
        )
    ).root.steps
    rng = random.Random(7)
    counts = collections.Counter(pick_weighted(steps, rng).name for _ in range(1000))
    assert abs(counts["a"] - 200) <= 50 and abs(counts["b"] - 500) <= 50
    assert abs(counts["c"] - 300) <= 50

    def draws(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [pick_weighted(steps, rng).name for _ in range(20)]

    assert draws(7) == draws(7)  # a seeded router splits the same way every run


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"predictions": [1, 2], "model": "m"}, {"instances": [1, 2]}),
        ({"predictions": [], "x": 1}, {"predictions": [], "x": 1}),
        ({"outputs": [1]}, {"outputs": [1]}),
        ([1, 2], [1, 2]),
    ],
)
def test_predictions_become_instances_as_kserve_maps_them(document, expected):
    mapped = predictions_as_instances(Payload(orjson.dumps(document)))
    assert orjson.loads(mapped.body) == expected


def test_a_soft_failure_in_a_sequence_goes_on_and_a_hard_one_stops_it_with_its_answer():
    caller = TableCaller({"bad": (404, {"detail": "Intentional 404 code"}), "ok": (200, {"v": 1})})
    soft = {"root": {"routerType": "Sequence", "steps": [_step("bad"), _step("ok")]}}
    outcome, ran = _run(soft, caller, {"x": 1})
    assert (outcome.status, orjson.loads(outcome.body), outcome.failure) == (200, {"v": 1}, None)
    assert ran == [("root/bad", 404), ("root/ok", 200)]

    hard = {
        "root": {"routerType": "Sequence", "steps": [_step("bad", dependency="Hard"), _step("ok")]}
    }
    outcome, ran = _run(hard, caller, {"x": 1})
    assert (outcome.status, orjson.loads(outcome.body)) == (404, {"detail": "Intentional 404 code"})
    assert outcome.failure == "step root/bad (Hard) answered 404"
    assert ran == [("root/bad", 404)]


def test_a_hard_failure_deep_in_the_graph_is_named_where_it_happened():
    caller = TableCaller({"bad": (500, {"error": "boom"}), "ok": (200, {"v": 1})})
    nodes = {
        "root": {
            "routerType": "Sequence",
            "steps": [{"nodeName": "inner", "dependency": "Hard"}, _step("ok")],
        },
        "inner": {"routerType": "Splitter", "steps": [_step("bad", weight=100, dependency="Hard")]},
    }
    outcome, ran = _run(nodes, caller, {})
    assert outcome.status == 500
    assert outcome.failure == "step inner/bad (Hard) answered 500"
    assert ran == [("root/0", 500), ("inner/bad", 500)]


def test_a_sequence_step_whose_condition_misses_stops_with_the_previous_answer_as_200():
    caller = TableCaller({"a": (200, {"label": "cat"}), "b": (200, {"never": True})})
    nodes = {
        "root": {
            "routerType": "Sequence",
            "steps": [_step("a"), _step("b", condition="[@this].#(label==dog)")],
        }
    }
    outcome, ran = _run(nodes, caller, {})
    assert (outcome.status, orjson.loads(outcome.body)) == (200, {"label": "cat"})
    assert ran == [("root/a", 200)]


def test_the_ensemble_answers_with_the_first_failed_hard_step_in_step_order():
    caller = TableCaller({"a": (200, {"v": "a"}), "b": (503, {"e": "b"}), "c": (404, {"e": "c"})})
    nodes = {
        "root": {
            "routerType": "Ensemble",
            "steps": [_step("a"), _step("b", dependency="Hard"), _step("c", dependency="Hard")],
        }
    }
    outcome, _ = _run(nodes, caller, {})
    assert (outcome.status, orjson.loads(outcome.body)) == (503, {"e": "b"})
    assert outcome.failure == "step root/b (Hard) answered 503"


def test_steps_that_give_no_answer_answer_502_or_504_naming_the_step():
    caller = TableCaller(
        {"down": UpstreamFailed("cannot connect: refused"), "slow": UpstreamTimeout("late")}
    )
    nodes = {
        "root": {"routerType": "Ensemble", "steps": [_step("down"), {"serviceUrl": _url("slow")}]}
    }
    outcome, ran = _run(nodes, caller, {})
    merged = orjson.loads(outcome.body)
    assert outcome.status == 200  # both Soft: merged, as KServe merges Soft failures
    assert merged["down"]["error"] == "Failed to process request"
    assert "step root/down" in merged["down"]["cause"] and "refused" in merged["down"]["cause"]
    assert "step root/1" in merged["1"]["cause"]
    assert sorted(ran) == [("root/1", 504), ("root/down", 502)]


def test_a_switch_with_no_match_answers_404_with_kserves_body():
    caller = TableCaller({"a": (200, {})})
    nodes = {"root": {"routerType": "Switch", "steps": [_step("a", condition="[@this].#(k==v)")]}}
    outcome, ran = _run(nodes, caller, {"k": "other"})
    assert (outcome.status, outcome.body, ran) == (404, NO_MATCH, [])
    assert orjson.loads(NO_MATCH) == {
        "error": "Failed to process request",
        "cause": "None of the routes matched with the switch condition",
    }
