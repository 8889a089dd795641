"""`explainer.art` plans ksrv's ART explainer: KServe's flags after `--`, where the local
renderer keeps them behind its injected arguments."""

from __future__ import annotations

from ksrv.api import default_runtimes
from ksrv.api.inference_service import InferenceService
from ksrv.control import plan
from ksrv.control.platforms import local_render


def art_service(art: dict) -> InferenceService:
    return InferenceService.model_validate({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "storageUri": "/models/iris"}},
                 "explainer": {"art": art}},
    })  # fmt: skip


def explainer_plan(art: dict) -> plan.ComponentPlan:
    planned = plan.desired_state(art_service(art), default_runtimes.default_runtimes())
    return planned.components["explainer"]


def test_explainer_art_plans_ksrvs_art_explainer_with_kserves_flags():
    planned = explainer_plan({"type": "SquareAttack", "config": {"nb_classes": "3",
                                                                 "max_iter": "50"}})  # fmt: skip

    assert planned.error is None
    assert planned.workload == plan.CustomContainer(
        command=("ksrv", "serve"),
        args=("--explainer", "art", "--", "--adversary_type", "SquareAttack",
              "--max_iter", "50", "--nb_classes", "3"),
        image=None, working_dir=None,
    )  # fmt: skip
    assert planned.predictor == plan.PredictorLink("default", "iris", "v1")
    assert len(planned.notes) == 1 and "kserve/art-explainer image" in planned.notes[0]


def test_an_art_storage_uri_is_reported_as_not_used():
    planned = explainer_plan({"config": {"nb_classes": "3"}, "storageUri": "gs://b/m"})

    assert planned.notes[1].startswith("spec.explainer.art.storageUri: not used")


def test_explainer_art_without_a_type_is_kserves_default_and_its_args_come_last():
    planned = explainer_plan({"config": {"nb_classes": "3"}, "args": ["--seed", "1"]})

    assert isinstance(planned.workload, plan.CustomContainer)
    assert planned.workload.args[3:] == (
        "--adversary_type", "SquareAttack", "--nb_classes", "3", "--seed", "1"
    )  # fmt: skip


def test_the_local_render_puts_its_injected_arguments_before_the_runtimes_own():
    planned = explainer_plan({"config": {"nb_classes": "3"}})

    revision = local_render.render(planned, "iris", "127.0.0.1:9/serving/default/iris-predictor",
                                   "python")  # fmt: skip

    command = list(revision.command)
    at = command.index("--")
    assert command[:6] == ["python", "-m", "ksrv.cli.main", "serve", "--explainer", "art"]
    assert {"--model-name", "--predictor-host", "--http-port"} <= set(command[:at])
    assert command[at:] == ["--", "--adversary_type", "SquareAttack", "--nb_classes", "3"]
