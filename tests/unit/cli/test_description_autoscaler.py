"""`ksrv describe` shows the autoscaler's last decision for a component."""

from __future__ import annotations

from ksrv.cli.description import description


def test_the_autoscalers_last_decision_is_one_line_under_its_component():
    document = {
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "default"},
        "status": {
            "components": {
                "predictor": {
                    "latestCreatedRevision": "iris-predictor-00001",
                    "autoscaler": {
                        "revisionName": "iris-predictor-00001", "mode": "panic",
                        "metric": "concurrency", "observedStable": 1.7, "observedPanic": 3.8,
                        "target": 0.7, "desiredReplicas": 3, "actualReplicas": 2,
                        "reason": "6 wanted; kept within min 1 / max 3",
                    },
                }
            }
        },
    }  # fmt: skip
    text = description(document, now=0.0)
    assert (
        "Autoscaler:  panic, concurrency 1.7 stable / 3.8 panic (target 0.7 per replica), "
        "2 ready, 3 desired: 6 wanted; kept within min 1 / max 3"
    ) in text
