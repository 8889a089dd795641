"""Route table matching (hosts, paths, :explain) and the weighted traffic split."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ksrv.errors import InvalidInput
from ksrv.gateway.routes import parse_table


def _backend(revision: str, percent: float, replicas: int) -> dict:
    return {
        "revision": revision,
        "percent": percent,
        "tag": "",
        "replicas": [
            {"http": f"127.0.0.1:{41000 + i}", "grpc": f"127.0.0.1:{42000 + i}"}
            for i in range(replicas)
        ],
    }


TABLE = {
    "version": 3,
    "domain": "example.com",
    "services": [
        {
            "namespace": "default",
            "name": "sklearn-iris",
            "timeout_s": 60.0,
            "entry": "transformer",
            "components": {
                "transformer": {"backends": [_backend("t-1", 100, 1)]},
                "predictor": {
                    "backends": [_backend("p-2", 90, 1), _backend("p-1", 10, 1)],
                },
                "explainer": {"backends": [_backend("e-1", 100, 1)]},
            },
        },
        {
            "namespace": "team",
            "name": "plain",
            "entry": "predictor",
            "components": {"predictor": {"backends": [_backend("q-1", 100, 2)]}},
        },
    ],
}


@pytest.fixture
def table():
    return parse_table(TABLE)


@pytest.mark.parametrize(
    ("host", "component"),
    [
        ("sklearn-iris.default.example.com", "transformer"),
        ("sklearn-iris-default.example.com", "transformer"),
        ("sklearn-iris.default.example.com:8080", "transformer"),
        ("SKLEARN-IRIS.default.example.com", "transformer"),
        ("sklearn-iris-predictor.default.example.com", "predictor"),
        ("sklearn-iris-predictor-default.example.com:80", "predictor"),
        ("sklearn-iris-transformer.default.example.com", "transformer"),
        ("sklearn-iris-explainer-default.example.com", "explainer"),
        ("plain.team.example.com", "predictor"),
    ],
)
def test_hosts_route_to_the_entry_or_the_named_component(table, host, component):
    match = table.match(host, b"/v1/models/m:predict")
    assert match is not None
    assert match.component.name == component
    assert match.target == b"/v1/models/m:predict"


@pytest.mark.parametrize(
    ("target", "service", "component", "forwarded"),
    [
        (b"/serving/default/sklearn-iris/v2/models/m/infer", "sklearn-iris", "transformer",
         b"/v2/models/m/infer"),
        (b"/serving/default/sklearn-iris-predictor/v2/health/ready?x=1", "sklearn-iris",
         "predictor", b"/v2/health/ready?x=1"),
        (b"/serving/team/plain", "plain", "predictor", b"/"),
        (b"/serving/team/plain?a=b", "plain", "predictor", b"/?a=b"),
    ],
)  # fmt: skip
def test_paths_route_and_lose_their_prefix(table, target, service, component, forwarded):
    match = table.match("127.0.0.1:8080", target)
    assert match is not None
    assert (match.service.name, match.component.name, match.target) == (
        service,
        component,
        forwarded,
    )


def test_explain_on_the_entry_goes_to_the_explainer(table):
    host = "sklearn-iris.default.example.com"
    assert table.match(host, b"/v1/models/m:explain").component.name == "explainer"
    assert table.match(host, b"/v1/models/m:explain?x=1").component.name == "explainer"
    predictor = "sklearn-iris-predictor.default.example.com"
    assert table.match(predictor, b"/v1/models/m:explain").component.name == "predictor"


def test_explain_without_an_explainer_stays_on_the_entry(table):
    assert table.match("plain.team.example.com", b"/v1/models/m:explain").component.name == (
        "predictor"
    )


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("nope.default.example.com", b"/v1/models/m:predict"),
        ("sklearn-iris.default.other.org", b"/v1/models/m:predict"),
        ("", b"/serving/default/nope/v1/models/m:predict"),
        ("", b"/serving/default"),
        ("plain-explainer.team.example.com", b"/"),
        ("", b"/v2/health/ready"),
    ],
)
def test_unknown_hosts_and_paths_match_nothing(table, host, target):
    assert table.match(host, target) is None


def test_split_honours_percent(table):
    component = table.match("sklearn-iris-predictor.default.example.com", b"/").component
    rng = random.Random(7)
    counts = Counter(component.choose(rng).revision for _ in range(10_000))
    assert 850 <= counts["p-1"] <= 1150
    assert counts["p-1"] + counts["p-2"] == 10_000


def _component(*backends: dict):
    document = {
        "version": 1,
        "domain": "d",
        "services": [
            {
                "namespace": "n",
                "name": "s",
                "entry": "predictor",
                "components": {"predictor": {"backends": list(backends)}},
            }
        ],
    }
    return parse_table(document).match("s.n.d", b"/").component


def test_an_empty_backend_gives_its_share_to_the_others():
    component = _component(_backend("a", 90, 0), _backend("b", 5, 1), _backend("c", 5, 1))
    rng = random.Random(1)
    counts = Counter(component.choose(rng).revision for _ in range(2000))
    assert set(counts) == {"b", "c"}
    assert 800 <= counts["b"] <= 1200


def test_a_backend_at_zero_percent_takes_no_traffic_even_when_it_alone_has_replicas():
    # Rolled back to 0 while the previous revision restarts: hold, do not send to the canary.
    component = _component(_backend("a", 100, 0), _backend("b", 0, 1), _backend("c", 0, 1))
    assert component.choose(random.Random(1)) is None


def _tagged(revision: str, percent: float, replicas: int, tag: str) -> dict:
    return {**_backend(revision, percent, replicas), "tag": tag}


TAGGED = {
    "version": 1,
    "domain": "example.com",
    "services": [
        {
            "namespace": "default",
            "name": "iris",
            "entry": "predictor",
            "components": {
                "predictor": {
                    "backends": [_tagged("r2", 0, 1, "latest"), _tagged("r1", 100, 1, "prev")]
                },
            },
        },
        # Named like a tag host of `iris`: its own names win over the tag's.
        {
            "namespace": "default",
            "name": "prev-iris",
            "entry": "predictor",
            "components": {"predictor": {"backends": [_backend("x1", 100, 1)]}},
        },
    ],
}


@pytest.mark.parametrize(
    ("host", "target", "tag", "revision"),
    [
        ("latest-iris-predictor-default.example.com", b"/v1/models/iris:predict", "", "r2"),
        ("latest-iris-predictor.default.example.com", b"/", "", "r2"),
        ("iris-default.example.com", b"/", "latest", "r2"),
        ("iris-predictor-default.example.com", b"/", "latest", "r2"),
        ("iris-default.example.com", b"/", "prev", "r1"),
        ("", b"/serving/default/latest-iris-predictor/v1/models/iris", "", "r2"),
        ("", b"/serving/default/iris/v1/models/iris", "latest", "r2"),
        ("iris-default.example.com", b"/", "", "r1"),  # 0% for the main route
        ("iris-default.example.com", b"/", "nosuchtag", "r1"),  # unknown tag: as if none
        ("prev-iris-predictor-default.example.com", b"/", "", "x1"),  # a service's own host
    ],
)
def test_a_tag_host_or_header_reaches_that_revision_alone(host, target, tag, revision):
    table = parse_table(TAGGED)
    match = table.match(host, target, tag)
    assert match is not None
    rng = random.Random(3)
    assert {match.component.choose(rng).revision for _ in range(50)} == {revision}


def test_a_tagged_revision_without_replicas_is_held_not_unknown():
    document = {**TAGGED, "services": [dict(TAGGED["services"][0])]}
    document["services"][0]["components"] = {
        "predictor": {"backends": [_tagged("r2", 20, 0, "latest"), _tagged("r1", 80, 1, "prev")]}
    }
    table = parse_table(document)
    match = table.match("latest-iris-predictor-default.example.com", b"/")
    assert match is not None and match.component.choose(random.Random(1)) is None
    main = table.match("iris-default.example.com", b"/")
    assert main is not None and main.component.choose(random.Random(1)).revision == "r1"


def test_no_replica_anywhere_chooses_nothing():
    component = _component(_backend("a", 50, 0), _backend("b", 50, 0))
    assert component.choose(random.Random(1)) is None


def test_a_malformed_table_is_invalid_input():
    with pytest.raises(InvalidInput, match="route table is malformed"):
        parse_table({"domain": "d", "services": []})
    with pytest.raises(InvalidInput):
        parse_table({"version": 1, "domain": "d", "services": [{"name": "x"}]})


def test_a_component_may_carry_its_own_timeout():
    from ksrv.gateway.routes import parse_table

    table = parse_table(
        {"version": 1, "domain": "example.com", "services": [{
            "namespace": "default", "name": "x", "timeout_s": 60, "entry": "predictor",
            "components": {"predictor": {"backends": []},
                           "explainer": {"backends": [], "timeout_s": 300}}}]}
    )  # fmt: skip
    match = table.match("x.default.example.com", b"/v1/models/x:explain")
    assert match is not None and match.component.timeout_s == 300.0
    match = table.match("x.default.example.com", b"/v1/models/x:predict")
    assert match is not None and match.component.timeout_s is None


def test_a_repeated_request_gets_the_same_match_and_misses_are_not_remembered():
    table = parse_table(
        {
            "version": 1,
            "domain": "example.com",
            "services": [
                {
                    "namespace": "ns",
                    "name": "svc",
                    "components": {"predictor": {"backends": []}},
                }
            ],
        }
    )
    first = table.match("", b"/serving/ns/svc/v2/models/m/infer")
    assert first is not None
    assert table.match("", b"/serving/ns/svc/v2/models/m/infer") is first
    assert table.match("nope.example.com", b"/x") is None
    assert table.match("svc.ns.example.com", b"/x:explain").component.name == "predictor"
    assert table.match("", b"/serving/ns/svc/" + b"x" * 1000) is not None
    assert len(table._remembered) == 2
