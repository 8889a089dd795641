"""Switch conditions in GJSON as KServe writes them (docs/samples/graph/switch.yaml and the e2e
graphs): Go's bare query values are read as gjson-py needs them."""

from __future__ import annotations

import pytest

from ksrv.graph.conditions import matches, normalise


@pytest.mark.parametrize(
    ("document", "condition", "expected"),
    [
        # docs/samples/graph/switch.yaml
        ({"source": "client"}, "[@this].#(source==client)", True),
        ({"source": "server"}, "[@this].#(source==client)", False),
        ({"instances": [{"intval": 3}, {"intval": 11}]}, "instances.#(intval>10)", True),
        ({"instances": [{"intval": 3}]}, "instances.#(intval>10)", False),
        ({"instances": [{"strval": "a red-server b"}]}, "instances.#(strval%*red-server*)", True),
        ({"instances": [{"strval": "blue"}]}, "instances.#(strval%*red-server*)", False),
        # test/e2e/graph/test-resources/ig_test_switch_scenario_4.yaml
        ({"decision_picker": "ERROR"}, "[@this].#(decision_picker==ERROR)", True),
        ({"decision_picker": "NO_MATCH"}, "[@this].#(decision_picker==ERROR)", False),
        # plain paths: anything found is a match, null and [] included (Go's Exists())
        ({"a": {"b": None}}, "a.b", True),
        ({"a": []}, "a", True),
        ({"a": 1}, "b", False),
        ({"inputs": [{"name": "x"}]}, 'inputs.#(name=="x")', True),
        ({"inputs": [{"name": "x"}]}, "inputs.#(name!=x)", False),
        ({"a": "x"}, "[@this].#(a=x)", True),
        ({"a": 1.5}, "[@this].#(a>=1.5)", True),
    ],
)
def test_kserves_conditions_match_as_in_kserves_router(document, condition, expected):
    assert matches(document, condition) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("[@this].#(source==client)", '[@this].#(source=="client")'),
        ("instances.#(strval%*red*)", 'instances.#(strval%"*red*")'),
        ("instances.#(intval>10)#", "instances.#(intval>10)#"),
        ('a.#(b=="x y")', 'a.#(b=="x y")'),
        ("a.#(b==true)", "a.#(b==true)"),
        ("a.#(b=c)", 'a.#(b=="c")'),
        ("a.#(b.#(c==d))", 'a.#(b.#(c=="d"))'),
        ("a.b", "a.b"),
    ],
)
def test_bare_query_values_are_quoted_and_json_literals_kept(condition, expected):
    assert normalise(condition) == expected


def test_a_condition_gjson_cannot_read_never_matches():
    assert matches({"a": 1}, "a.#(") is False
