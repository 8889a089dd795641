"""Fuzz the router's request path with any body a caller may send: JSON of any shape through a
Switch (KServe's conditions), a mapped Sequence and an Ensemble, and bytes that are not JSON.
Every answer is the graph's or a 400, never a 500 (a router bug)."""

from __future__ import annotations

import asyncio
import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksrv.graph import app, headers, spec
from ksrv.graph.client import Answer, Target
from ksrv.http.server import Request

FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
KEYS = ["instances", "predictions", "inputs", "source", "intval", "strval", "name", "data"]
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
GRAPH = {
    "nodes": {
        "root": {
            "routerType": "Switch",
            "steps": [
                {"nodeName": "mapped", "condition": "[@this].#(source==client)"},
                {"nodeName": "both", "condition": "instances.#(intval>10)"},
                {"nodeName": "both", "condition": "instances.#(strval%*red-server*)"},
                {"nodeName": "mapped", "condition": 'inputs.#(name=="x")'},
            ],
        },
        "mapped": {
            "routerType": "Sequence",
            "steps": [
                {"serviceUrl": "http://echo/", "mapPredictionsToInstances": True},
                {"serviceUrl": "http://echo/", "data": "$response", "condition": "predictions"},
            ],
        },
        "both": {
            "routerType": "Ensemble",
            "steps": [{"serviceUrl": "http://echo/"}, {"name": "raw", "serviceUrl": "http://raw/"}],
        },
    }
}


class Services:
    """`echo` answers V1's shape of what it got; `raw` answers bytes that are not JSON."""

    async def post(self, target: Target, body: bytes, headers, deadline) -> Answer:
        if target.host == "raw":
            return Answer(200, b"\xff not json", b"text/plain")
        document = orjson.loads(body)
        instances = document.get("instances") if isinstance(document, dict) else None
        return Answer(200, orjson.dumps({"predictions": instances}), b"application/json")


ROUTER = app.Router(
    app.RouterSettings(spec.parse_graph(json.dumps(GRAPH)), propagate=headers.DEFAULT_PATTERNS),
    caller=Services(),
)


def _answer(body: bytes) -> tuple[int, bytes]:
    request = Request("POST", "/", None, body, b"/", [(b"host", b"graph")], "127.0.0.1")
    loop = asyncio.new_event_loop()
    try:
        response = loop.run_until_complete(ROUTER.handle(request))
    finally:
        loop.close()
    return response.status, response.body


@FUZZ
@given(json_values)
def test_any_json_body_gets_the_graphs_answer_never_a_500(document):
    status, body = _answer(json.dumps(document).encode())
    assert status in (200, 404, 502), (status, body)
    orjson.loads(body)  # every answer the router writes itself is JSON


@FUZZ
@given(st.binary(max_size=40))
def test_any_bytes_are_the_graphs_answer_or_a_400(body):
    status, _ = _answer(body)
    assert status in (200, 400, 404, 502)
