"""How revisions print: `ksrv get revisions` (table, wide, name) and `ksrv describe isvc`."""

from __future__ import annotations

import calendar
import time

from ksrv.cli import tables
from ksrv.cli.description import description

NOW = calendar.timegm(time.strptime("2026-01-01T00:01:00Z", "%Y-%m-%dT%H:%M:%SZ"))


def revision(name: str, percent: int | None, tag: str | None, ready: str = "True",
             reason: str = "", autoscaler: dict | None = None) -> dict:  # fmt: skip
    status: dict = {
        "actualReplicas": 1,
        "desiredReplicas": 2,
        "conditions": [
            {"type": "Active", "status": "True"},
            {"type": "ContainerHealthy", "status": ready},
            {"type": "Ready", "status": ready, **({"reason": reason} if reason else {})},
            {"type": "ResourcesAvailable", "status": "True"},
        ],
        "traffic": {"percent": percent or 0, **({"tag": tag} if tag else {})},
    }
    if autoscaler is not None:
        status["autoscaler"] = autoscaler
    return {
        "apiVersion": "ksrv.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "serving.kserve.io/inferenceservice": "iris",
                "component": "predictor",
                "serving.knative.dev/configurationGeneration": name[-1],
            },
        },
        "status": status,
    }


LATEST = revision("iris-predictor-00002", 20, "latest", "False", "ExitCode1")
PREVIOUS = revision("iris-predictor-00001", 80, "prev")


def test_the_table_shows_traffic_tags_replicas_and_readiness():
    assert tables.table("Revision", [LATEST, PREVIOUS], NOW, False, False).splitlines() == [
        "NAME                   INFERENCESERVICE   COMPONENT   TRAFFIC   TAGS     ACTUAL"
        "   DESIRED   READY   REASON      AGE",
        "iris-predictor-00002   iris               predictor   20%       latest   1     "
        "   2         False   ExitCode1   60s",
        "iris-predictor-00001   iris               predictor   80%       prev     1     "
        "   2         True                60s",
    ]


def test_the_wide_table_adds_generation_conditions_and_the_autoscalers_mode():
    scaled = revision("iris-predictor-00003", 100, None, autoscaler={"mode": "panic"})
    rows = tables.table("Revision", [scaled, PREVIOUS], NOW, True, False).splitlines()
    assert rows[0].split()[-4:] == ["GENERATION", "CONDITIONS", "AUTOSCALER", "AGE"]
    assert rows[1].endswith("3            4 OK / 4     panic        60s")
    assert rows[2].endswith("1            4 OK / 4     -            60s")


def isvc() -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
        "status": {"url": "http://iris-default.example.com", "conditions": []},
    }


def section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith(" "))
    return lines[start:end]


def test_describe_lists_the_services_revisions_with_the_autoscalers_last_decision():
    decision = {"mode": "stable", "metric": "concurrency", "observedStable": 1.5,
                "observedPanic": 2.0, "target": 1.0, "desiredReplicas": 2,
                "reason": "stable window average"}  # fmt: skip
    latest = revision("iris-predictor-00002", 20, "latest", autoscaler=decision)
    text = description(isvc(), NOW, [latest, PREVIOUS])
    assert section(text, "Revisions:") == [
        "  NAME                   COMPONENT   TRAFFIC   TAG      ACTUAL   DESIRED   READY   REASON",
        "  iris-predictor-00002   predictor   20%       latest   1        2         True",
        "  iris-predictor-00001   predictor   80%       prev     1        2         True",
        "  Autoscaler (last decision):",
        "    iris-predictor-00002   stable, concurrency 1.5 stable / 2.0 panic, target 1.0, "
        "2 desired: stable window average",
        "    iris-predictor-00001   -",
    ]


def test_describe_says_none_without_revisions_and_leaves_the_section_out_when_unknown():
    assert section(description(isvc(), NOW, []), "Revisions:") == ["  <none>"]
    assert "Revisions:" not in description(isvc(), NOW).splitlines()


def test_describe_shows_a_keda_query_decision_as_its_one_value():
    decision = {"mode": "external", "metric": "sum(ksrv_llm_tokens_in_flight)",
                "observedStable": 410.0, "observedPanic": 410.0, "target": 250.0,
                "desiredReplicas": 2, "reason": "2 wanted"}  # fmt: skip
    latest = revision("iris-predictor-00002", 100, None, autoscaler=decision)
    lines = section(description(isvc(), NOW, [latest]), "Revisions:")
    assert lines[-1] == (
        "    iris-predictor-00002   external, sum(ksrv_llm_tokens_in_flight) = 410.0, "
        "target 250.0, 2 desired: 2 wanted"
    )
