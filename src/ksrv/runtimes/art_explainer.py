"""KServe's ART explainer (`explainer.art`): an adversarial example for a V1 predictor.

Like KServe's artserver, it sits beside a predictor (`--predictor-host`): `:predict` is
forwarded there, and `:explain` takes `{"instances": [input, label]}`, runs ART's
SquareAttack against the predictor's V1 `:predict` (a black box: only its labels are seen),
and answers `{"explanations": {"adversarial_example", "L2 error", "adversarial_prediction",
"prediction"}}`. The flags are KServe's (`--adversary_type SquareAttack`, `--nb_classes`,
`--max_iter`, from `explainer.art.config`), plus ART's `--eps`, `--p_init`, `--nb_restarts`
and `--seed`. An input of 1 or 3 dimensions is one instance (a row, an image), of 2 or 4 a
batch; the predictor gets each instance flattened, as KServe sends it.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ksrv.errors import InvalidInput
from ksrv.model.base import Headers, Model, PredictorConfig
from ksrv.protocol import v1
from ksrv.runtimes import remote_predictor, square_attack


def parse_args(args: tuple[str, ...] | list[str]) -> square_attack.AttackSettings:
    """KServe's artserver flags -> attack settings; InvalidInput for a bad one."""
    parser = argparse.ArgumentParser(prog="art", add_help=False, exit_on_error=False)
    parser.add_argument("--adversary_type", "--adversary-type", default="SquareAttack")
    parser.add_argument("--nb_classes", "--nb-classes", type=int, required=True)
    parser.add_argument("--max_iter", "--max-iter", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--p_init", "--p-init", type=float, default=0.8)
    parser.add_argument("--nb_restarts", "--nb-restarts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    try:
        parsed, unknown = parser.parse_known_args(list(args))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise InvalidInput(f"art explainer arguments: {exc} (nb_classes is required)") from exc
    if unknown:
        raise InvalidInput(f"art explainer arguments: unknown {' '.join(unknown)}")
    if parsed.adversary_type.lower() != "squareattack":
        raise InvalidInput(f"explainer.art.type {parsed.adversary_type!r}: only SquareAttack is "
                           "supported, as in KServe")  # fmt: skip
    if parsed.nb_classes < 2 or parsed.max_iter < 1:
        raise InvalidInput("art explainer arguments: nb_classes >= 2 and max_iter >= 1")
    return square_attack.AttackSettings(
        parsed.nb_classes, parsed.max_iter, parsed.eps, parsed.p_init, parsed.nb_restarts,
        parsed.seed,
    )  # fmt: skip


class ARTExplainer(Model):
    """Answers `:explain` with ART's SquareAttack on the predictor at `predictor_host`."""

    takes_runtime_args = True  # KServe's artserver flags, after `--`

    def __init__(
        self, name: str, predictor_host: str, args: tuple[str, ...] | list[str] = ()
    ) -> None:
        super().__init__(name, PredictorConfig(predictor_host=predictor_host))
        self.settings = parse_args(args)
        self.timeout_s = 60.0

    def load(self) -> bool:
        import art  # noqa: F401  (fail at start, not on the first request)

        self.ready = True
        return self.ready

    def explain(  # type: ignore[override]  # sync on purpose: it runs in the thread pool
        self, payload: Any, headers: Headers | None = None
    ) -> dict[str, Any]:
        import httpx

        inputs, labels, is_single = _request(v1.instances(v1.check_request(payload)))
        url = f"http://{self.predictor_host}/v1/models/{self.name}:predict"
        with httpx.Client(timeout=self.timeout_s) as http:

            def predict_labels(rows: np.ndarray) -> np.ndarray:
                flat = rows.reshape(len(rows), -1)
                body = {"instances": flat.tolist()}
                predictions = np.asarray(remote_predictor.predictions(http, url, body))
                if predictions.ndim == 2:  # probabilities: the most likely class
                    predictions = predictions.argmax(axis=1)
                return predictions.astype(np.int64)

            predicted = predict_labels(inputs)
            adversarial = square_attack.generate(predict_labels, inputs, labels, self.settings)
            adversarial_predicted = predict_labels(adversarial)
        l2 = np.linalg.norm((adversarial - inputs).reshape(len(inputs), -1), axis=1)

        def shaped(value: np.ndarray) -> Any:
            return value[0].tolist() if is_single else value.tolist()

        return {
            "explanations": {
                "adversarial_example": shaped(adversarial),
                "L2 error": shaped(l2),
                "adversarial_prediction": shaped(adversarial_predicted),
                "prediction": shaped(predicted),
            }
        }


def _request(instances: list[Any]) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """KServe's `[input, label]` -> a batch of inputs, their labels, whether it was one."""
    if not 1 <= len(instances) <= 2:
        raise InvalidInput("instances must be [input, label] (the label may be left out)")
    try:
        inputs = np.asarray(instances[0], dtype=np.float64)
        labels = None if len(instances) == 1 else np.asarray(instances[1], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("instances[0] must be numbers and instances[1] class indices") from exc
    if inputs.ndim not in (1, 2, 3, 4) or inputs.size == 0:
        raise InvalidInput("instances[0] must be a row, an image, or a batch of either")
    is_single = inputs.ndim in (1, 3)
    if is_single:
        inputs = inputs[np.newaxis]
    if labels is not None:
        labels = labels.reshape(-1)
        if len(labels) != len(inputs):
            raise InvalidInput("instances[1] must hold one label per input")
    return inputs, labels, is_single
