"""cli.jsonpath: kubectl's `-o jsonpath=` templates, checked against what kubectl prints."""

from __future__ import annotations

import pytest

from ksrv.cli.jsonpath import Template
from ksrv.errors import InvalidInput

ISVC = {
    "kind": "InferenceService",
    "metadata": {
        "name": "sklearn-iris",
        "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
    },
    "status": {
        "url": "http://sklearn-iris-default.example.com",
        "conditions": [
            {"type": "PredictorReady", "status": "True"},
            {"type": "Ready", "status": "Unknown"},
        ],
        "components": {"predictor": {"traffic": [{"percent": 100, "latestRevision": True}]}},
    },
}
LIST = {"kind": "List", "items": [ISVC, {"metadata": {"name": "other"}, "status": {}}]}

# template -> what kubectl prints for ISVC (as one object) or LIST
CASES = [
    ("{.status.url}", ISVC, "http://sklearn-iris-default.example.com"),
    ("{$.status.url}", ISVC, "http://sklearn-iris-default.example.com"),
    ('{.status.conditions[?(@.type=="Ready")].status}', ISVC, "Unknown"),
    ("{.status.conditions[?(@.type=='Ready')].status}", ISVC, "Unknown"),
    ("{.status.conditions[*].type}", ISVC, "PredictorReady Ready"),
    ("{.status.components.predictor.traffic[0].percent}", ISVC, "100"),
    ("{.status.components.predictor.traffic[0].latestRevision}", ISVC, "true"),
    ("{.metadata.annotations.serving\\.kserve\\.io/deploymentMode}", ISVC, "Serverless"),
    ("name={.metadata.name} missing={.spec.nothing}.", ISVC, "name=sklearn-iris missing=."),
    ("{.status.components.predictor.traffic[0]}", ISVC, '{"percent":100,"latestRevision":true}'),
    ("{.items[*].metadata.name}", LIST, "sklearn-iris other"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.url}{"\\n"}{end}', LIST,
     "sklearn-iris\thttp://sklearn-iris-default.example.com\nother\t\n"),
    ("{range .items[*]}[{range .status.conditions[*]}{.type},{end}]{end}", LIST,
     "[PredictorReady,Ready,][]"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "document", "printed"), CASES)
def test_templates_print_as_kubectl_prints_them(template, document, printed):
    assert Template(template).render(document) == printed


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{.status.url", "unclosed action"),
        ("{range .items[*]}{.metadata.name}", "{range} without {end}"),
        ("{.metadata.name}{end}", "unexpected {end}"),
        ("{.items[?(@.a==}", "error parsing jsonpath"),
    ],
)
def test_a_broken_template_is_invalid_input_naming_it(template, says):
    with pytest.raises(InvalidInput, match="error parsing jsonpath") as caught:
        Template(template)
    assert says in str(caught.value)
