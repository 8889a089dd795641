"""Standard mode's Ingress against KServe's kube_ingress_reconciler (hosts, backends, when it
is made); expected values written from KServe's source."""

from __future__ import annotations

import pytest

from ksrv.errors import ResourceInvalid
from ksrv.k8s.context import Readiness
from tests.k8s_standard import custom, find, isvc, render_objects, with_ingress
from tests.k8s_support import assert_valid


def rule(host: str, service: str) -> dict:
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {
        "host": host,
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }


def ingress_of(document, config=None, readiness=None) -> dict:
    found = find(render_objects(document, config, readiness), "Ingress", "foo")
    assert_valid([found])
    return found


def test_predictor_only_ingress():
    assert ingress_of(isvc()) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "foo",
            "namespace": "ns",
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {
            "ingressClassName": "istio",
            "rules": [
                rule("foo-ns.example.com", "foo-predictor"),
                rule("foo-predictor-ns.example.com", "foo-predictor"),
            ],
        },
    }


def test_with_a_transformer_the_top_host_goes_to_it_and_its_own_host_to_the_predictor():
    document = isvc(transformer=custom(("http", 8080)))
    assert ingress_of(document)["spec"]["rules"] == [
        rule("foo-ns.example.com", "foo-transformer"),
        rule("foo-transformer-ns.example.com", "foo-predictor"),
        rule("foo-predictor-ns.example.com", "foo-predictor"),
    ]


def test_with_an_explainer_its_host_goes_to_it():
    document = isvc(explainer=custom(("http", 8080)))
    assert ingress_of(document)["spec"]["rules"] == [
        rule("foo-ns.example.com", "foo-predictor"),
        rule("foo-explainer-ns.example.com", "foo-explainer"),
        rule("foo-predictor-ns.example.com", "foo-predictor"),
    ]


def test_with_transformer_and_explainer():
    document = isvc(transformer=custom(("http", 8080)), explainer=custom(("http", 8080)))
    assert ingress_of(document)["spec"]["rules"] == [
        rule("foo-explainer-ns.example.com", "foo-explainer"),
        rule("foo-ns.example.com", "foo-transformer"),
        rule("foo-transformer-ns.example.com", "foo-predictor"),
        rule("foo-predictor-ns.example.com", "foo-predictor"),
    ]


def test_a_named_predictors_host_and_backend_use_its_name():
    document = isvc(custom(("http", 8080), name="blue"))
    assert ingress_of(document)["spec"]["rules"] == [
        rule("foo-ns.example.com", "foo-blue-predictor"),
        rule("foo-blue-predictor-ns.example.com", "foo-blue-predictor"),
    ]


def test_class_domain_and_template_come_from_the_config():
    config = with_ingress(
        ingress_class_name="nginx",
        ingress_domain="models.example.org",
        domain_template="{{ .Name }}.{{ .Namespace }}.{{ .Annotations.zone }}.{{ .IngressDomain }}",
    )
    found = ingress_of(isvc(annotations={"zone": "eu"}), config)
    assert found["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in found["spec"]["rules"]] == [
        "foo.ns.eu.models.example.org",
        "foo-predictor.ns.eu.models.example.org",
    ]


@pytest.mark.parametrize(
    ("components", "extra", "is_made"),
    [
        (frozenset(), {}, False),
        (frozenset({"predictor"}), {}, True),
        (frozenset({"predictor"}), {"transformer": custom(("http", 8080))}, False),
        (frozenset({"predictor", "transformer"}), {"transformer": custom(("http", 8080))}, True),
        (frozenset({"predictor"}), {"explainer": custom(("http", 8080))}, False),
        (frozenset({"predictor", "explainer"}), {"explainer": custom(("http", 8080))}, True),
    ],
)
def test_the_ingress_waits_for_its_components(components, extra, is_made):
    objects = render_objects(isvc(**extra), readiness=Readiness(components=components))
    assert any(o["kind"] == "Ingress" for o in objects) is is_made
    assert any(o["kind"] == "Deployment" for o in objects)


@pytest.mark.parametrize(
    ("document", "config"),
    [
        (isvc(labels={"networking.kserve.io/visibility": "cluster-local"}), None),
        (isvc(), with_ingress(ingress_domain="svc.cluster.local")),
        (isvc(), with_ingress(disable_ingress_creation=True)),
    ],
    ids=["cluster-local label", "cluster-local domain", "disableIngressCreation"],
)
def test_no_ingress_when_internal_or_disabled(document, config):
    assert not [o for o in render_objects(document, config) if o["kind"] == "Ingress"]


def test_a_template_that_gives_no_domain_name_is_an_error_naming_it():
    config = with_ingress(domain_template="{{ .Name }}_{{ .Namespace }}")
    with pytest.raises(ResourceInvalid, match="domainTemplate"):
        render_objects(isvc(), config)


def test_an_empty_ingress_class_is_left_out():
    assert "ingressClassName" not in ingress_of(isvc(), with_ingress(ingress_class_name=""))["spec"]
