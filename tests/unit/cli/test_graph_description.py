"""`ksrv describe ig`: nodes, steps and the services behind them."""

from __future__ import annotations

from ksrv.cli.description import description

GRAPH = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "InferenceGraph",
    "metadata": {"name": "chain", "namespace": "ml", "creationTimestamp": "1970-01-01T00:00:00Z"},
    "spec": {"nodes": {
        "split": {"routerType": "Splitter", "steps": [
            {"serviceName": "a", "weight": 70}, {"serviceName": "gone", "weight": 30}]},
        "root": {"routerType": "Sequence", "steps": [
            {"name": "first", "nodeName": "split", "dependency": "Hard"},
            {"serviceUrl": "http://x/y", "data": "$response"}]},
    }},
}  # fmt: skip
SERVICE = {
    "metadata": {"name": "a"},
    "status": {"address": {"url": "http://127.0.0.1:8080/serving/ml/a"},
               "conditions": [{"type": "Ready", "status": "True"}]},
}  # fmt: skip


def section(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index("Nodes:") + 1 : lines.index("Spec:")]


def test_each_node_lists_its_steps_root_first_with_the_service_behind_each():
    nodes = [line.split() for line in section(description(GRAPH, 0.0, None, {"a": SERVICE}))]
    assert nodes == [
        ["root", "(Sequence):"],
        ["STEP", "TARGET", "DATA", "CONDITION/WEIGHT", "DEPENDENCY", "READY", "ADDRESS"],
        ["first", "node", "split", "$request", "Hard"],
        ["1", "url", "http://x/y", "$response", "Soft"],
        ["split", "(Splitter):"],
        ["STEP", "TARGET", "DATA", "CONDITION/WEIGHT", "DEPENDENCY", "READY", "ADDRESS"],
        ["0", "service", "a", "$request", "70", "Soft", "True",
         "http://127.0.0.1:8080/serving/ml/a"],
        ["1", "service", "gone", "$request", "30", "Soft", "<not", "found>"],
    ]  # fmt: skip


def test_other_kinds_have_no_nodes_section():
    assert "Nodes:" not in description(GRAPH, 0.0)
