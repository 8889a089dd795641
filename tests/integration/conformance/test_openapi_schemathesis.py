"""schemathesis against the official OIP REST OpenAPI document (../shared/specs).

The document is adapted in memory only where tools need it (its own SOURCE.md says so):
`${NAME}` templates become `{NAME}`, path parameters are pinned to the served model so
requests reach it, and the infer body is required.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

SPEC = Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "rest_predict_v2.yaml"
if not SPEC.is_file():
    pytest.skip(f"the OIP OpenAPI document is not at {SPEC}", allow_module_level=True)


def adapted_spec() -> dict:
    text = SPEC.read_text().replace("${MODEL_NAME}", "{MODEL_NAME}")
    text = text.replace("${MODEL_VERSION}", "{MODEL_VERSION}")
    document = yaml.safe_load(text)
    for path in document["paths"].values():
        for parameter in path.get("parameters", []):
            pinned = "iris" if parameter["name"] == "MODEL_NAME" else "1"
            parameter["schema"] = {"type": "string", "enum": [pinned]}
        post = path.get("post")
        if post and "requestBody" in post:
            post["requestBody"]["required"] = True
    return document


schema = schemathesis.openapi.from_dict(adapted_spec())


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_documented_operation_conforms(case, iris_server):
    case.call_and_validate(
        base_url=iris_server.url,
        checks=[not_a_server_error, response_schema_conformance],
    )
