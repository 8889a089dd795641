"""Standard mode's Gateway API HTTPRoutes against KServe's httproute_reconciler (names, hosts,
headers, timeouts, the gRPC rule, the explain rule, path rules, canary weights); expected
values written from KServe's source."""

from __future__ import annotations

import pytest

from ksrv.errors import ResourceInvalid
from ksrv.k8s.context import Readiness
from tests.k8s_standard import custom, find, isvc, names, render_objects, with_ingress
from tests.k8s_support import assert_valid

GATEWAY = with_ingress(enable_gateway_api=True)
PARENT = {
    "group": "gateway.networking.k8s.io",
    "kind": "Gateway",
    "namespace": "kserve",
    "name": "kserve-ingress-gateway",
}
HEADERS = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {
        "set": [
            {"name": "KServe-Isvc-Name", "value": "foo"},
            {"name": "KServe-Isvc-Namespace", "value": "ns"},
        ]
    },
}
GRPC_MATCH = {
    "path": {"type": "RegularExpression", "value": r"^/inference\.GRPCInferenceService/.*$"},
    "headers": [
        {"type": "RegularExpression", "name": "content-type", "value": "^application/grpc.*"}
    ],
}


def path(regex: str) -> dict:
    return {"path": {"type": "RegularExpression", "value": regex}}


def rule(match: dict, service: str, port: int = 80, timeout: str | None = "60s", **backend) -> dict:
    found = {
        "matches": [match],
        "filters": [HEADERS],
        "backendRefs": [
            {"kind": "Service", "name": service, "namespace": "ns", "port": port, **backend}
        ],
    }
    if timeout:
        found["timeouts"] = {"request": timeout}
    return found


def routes(document, config=GATEWAY, readiness=None) -> list[dict]:
    found = [o for o in render_objects(document, config, readiness) if o["kind"] == "HTTPRoute"]
    assert_valid(found)
    return found


def test_predictor_route_and_top_level_route():
    found = routes(isvc())
    assert found == [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "foo-predictor",
                "namespace": "ns",
                "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
            },
            "spec": {
                "parentRefs": [PARENT],
                "hostnames": ["foo-predictor-ns.example.com"],
                "rules": [rule(path("^/.*$"), "foo-predictor")],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "foo",
                "namespace": "ns",
                "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
            },
            "spec": {
                "parentRefs": [PARENT],
                "hostnames": ["foo-ns.example.com"],
                "rules": [rule(path("^/.*$"), "foo-predictor")],
            },
        },
    ]


def test_no_ingress_object_when_the_gateway_api_is_on():
    kinds = {o["kind"] for o in render_objects(isvc(), GATEWAY)}
    assert "Ingress" not in kinds


def test_a_service_with_http_and_grpc_ports_gets_the_grpc_rule_first():
    document = isvc(custom(("http", 8080), ("grpc", 8081)))
    route = find(routes(document), "HTTPRoute", "foo-predictor")
    assert route["spec"]["rules"] == [
        rule(GRPC_MATCH, "foo-predictor", 8081),
        rule(path("^/.*$"), "foo-predictor", 80),
    ]


def test_a_grpc_only_service_gets_one_catch_all_on_80():
    route = find(routes(isvc(custom(("grpc", 9000)))), "HTTPRoute", "foo-predictor")
    assert route["spec"]["rules"] == [rule(path("^/.*$"), "foo-predictor", 80)]


def test_timeouts_come_from_the_component_or_are_left_out():
    document = isvc(custom(("http", 8080), timeout=120))
    assert find(routes(document), "HTTPRoute", "foo")["spec"]["rules"][0]["timeouts"] == {
        "request": "120s"
    }
    config = with_ingress(enable_gateway_api=True, disable_http_route_timeout=True)
    for route in routes(document, config):
        assert all("timeouts" not in r for r in route["spec"]["rules"])


def test_transformer_and_explainer_routes_and_the_top_level_explain_rule():
    document = isvc(
        transformer=custom(("http", 8080), timeout=30),
        explainer=custom(("http", 8080), timeout=90),
    )
    found = routes(document)
    assert names(found) == [
        ("HTTPRoute", "foo-predictor"), ("HTTPRoute", "foo-transformer"),
        ("HTTPRoute", "foo-explainer"), ("HTTPRoute", "foo"),
    ]  # fmt: skip
    transformer = find(found, "HTTPRoute", "foo-transformer")["spec"]
    assert transformer["hostnames"] == ["foo-transformer-ns.example.com"]
    assert transformer["rules"] == [rule(path("^/.*$"), "foo-transformer", timeout="30s")]
    explainer = find(found, "HTTPRoute", "foo-explainer")["spec"]
    assert explainer["hostnames"] == ["foo-explainer-ns.example.com"]
    top = find(found, "HTTPRoute", "foo")["spec"]
    assert top["rules"] == [
        rule(path(r"^/v1/models/[\w-]+:explain$"), "foo-explainer", timeout="90s"),
        rule(path("^/.*$"), "foo-transformer", timeout="30s"),
    ]


def test_path_template_adds_the_ingress_domain_and_path_rules():
    config = with_ingress(
        enable_gateway_api=True, path_template="/serving/{{ .Namespace }}/{{ .Name }}/"
    )
    top = find(routes(isvc(explainer=custom(("http", 8080))), config), "HTTPRoute", "foo")["spec"]
    assert top["hostnames"] == ["foo-ns.example.com", "example.com"]
    assert top["rules"] == [
        rule(path(r"^/v1/models/[\w-]+:explain$"), "foo-explainer"),
        rule(path("^/.*$"), "foo-predictor"),
        rule(path(r"/serving/ns/foo(/v1/models/[\w-]+:explain)$"), "foo-explainer"),
        rule(path("/serving/ns/foo/"), "foo-predictor"),
    ]


def test_additional_ingress_domains_add_valid_top_level_hosts_once():
    config = with_ingress(
        enable_gateway_api=True,
        additional_ingress_domains=("models.org", "models.org", "bad_domain"),
    )
    top = find(routes(isvc(), config), "HTTPRoute", "foo")["spec"]
    assert top["hostnames"] == ["foo-ns.example.com", "foo-ns.models.org"]


def test_labels_and_annotations_skip_the_disallowed_lists():
    document = isvc(
        labels={"team": "a", "networking.knative.dev/visibility": "x"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "n"},
    )
    for route in routes(document):
        assert route["metadata"]["labels"] == {"team": "a"}
        assert route["metadata"]["annotations"] == {
            "serving.kserve.io/deploymentMode": "Standard",
            "note": "n",
        }


def test_a_named_predictor_keeps_the_stable_route_name_and_host():
    route = find(routes(isvc(custom(("http", 8080), name="blue"))), "HTTPRoute", "foo-predictor")
    assert route["spec"]["hostnames"] == ["foo-predictor-ns.example.com"]
    assert route["spec"]["rules"] == [rule(path("^/.*$"), "foo-blue-predictor")]


def test_routes_wait_for_their_components():
    document = isvc(transformer=custom(("http", 8080)))
    readiness = Readiness(components=frozenset({"predictor"}))
    assert names(routes(document, readiness=readiness)) == [("HTTPRoute", "foo-predictor")]
    assert routes(document, readiness=Readiness(components=frozenset())) == []


def canaried() -> dict:
    blue = {
        "trafficPercent": 20,
        "predictor": {
            "name": "blue",
            "containers": [{"name": "kserve-container", "image": "example.com/model:2"}],
        },
    }
    green = {"trafficPercent": 10, "predictor": {"name": "green"}}
    predictor = custom(("http", 8080), ("grpc", 8081))
    return isvc(predictor, explainer=custom(("http", 8080)), canary=[blue, green])


def test_canary_weights_split_the_predictor_rules():
    found = routes(canaried())
    predictor = find(found, "HTTPRoute", "foo-predictor")["spec"]["rules"]
    for index, port in enumerate((8081, 80)):
        backend = {"kind": "Service", "namespace": "ns", "port": port}
        assert predictor[index]["backendRefs"] == [
            {**backend, "name": "foo-predictor", "weight": 70},
            {**backend, "name": "foo-blue-predictor", "weight": 20},
            {**backend, "name": "foo-green-predictor", "weight": 10},
        ]
    top = find(found, "HTTPRoute", "foo")["spec"]["rules"]
    assert top[0]["backendRefs"] == [
        {"kind": "Service", "name": "foo-explainer", "namespace": "ns", "port": 80}
    ]
    assert [b["weight"] for b in top[1]["backendRefs"]] == [70, 20, 10]


def test_only_ready_canaries_take_traffic():
    readiness = Readiness(canaries=frozenset({"green"}))
    route = find(routes(canaried(), readiness=readiness), "HTTPRoute", "foo-predictor")
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][1]["backendRefs"]] == [
        ("foo-predictor", 90),
        ("foo-green-predictor", 10),
    ]
    readiness = Readiness(canaries=frozenset())
    route = find(routes(canaried(), readiness=readiness), "HTTPRoute", "foo-predictor")
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][1]["backendRefs"]] == [
        ("foo-predictor", 100)
    ]


def test_a_gateway_that_is_not_namespace_slash_name_is_an_error_naming_the_key():
    config = with_ingress(enable_gateway_api=True, kserve_ingress_gateway="kserve-gateway")
    with pytest.raises(ResourceInvalid, match="kserveIngressGateway"):
        render_objects(isvc(), config)
