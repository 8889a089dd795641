"""ART's SquareAttack on a black-box classifier, for image and tabular instances alike.

SquareAttack perturbs squares of an image, so it only takes 4-D input (batch, height, width,
channels); a tabular row of F features is laid out as a one-channel square image of side
max(5, ceil(sqrt(F))), zero-padded (side 5 keeps ART's square sizes below the image's side
for any `p_init`), and the padding is cut off before each call of the classifier. The
global numpy generator, which ART draws from, is seeded under a lock so that an attack
with a seed is repeatable.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_SEEDED = threading.Lock()
MIN_SIDE = 5


@dataclass(frozen=True, slots=True)
class AttackSettings:
    """KServe's `explainer.art.config` keys (`nb_classes`, `max_iter`) and ART's own."""

    nb_classes: int
    max_iter: int = 1000
    eps: float = 0.3
    p_init: float = 0.8
    nb_restarts: int = 1
    seed: int | None = None


def generate(
    predict_labels: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    labels: np.ndarray | None,
    settings: AttackSettings,
) -> np.ndarray:
    """Adversarial versions of `rows` (same shape) against `predict_labels` (rows -> class
    indices); `labels` are the true classes (None: the classifier's own predictions)."""
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    original_shape = rows.shape
    images, unpack = _as_images(rows)

    def one_hot(batch: np.ndarray) -> np.ndarray:
        predicted = np.asarray(predict_labels(unpack(batch)), dtype=np.int64).reshape(-1)
        return np.eye(settings.nb_classes)[predicted]

    classifier = BlackBoxClassifierNeuralNetwork(
        one_hot, images.shape[1:], settings.nb_classes, channels_first=False,
        clip_values=(-np.inf, np.inf),
    )  # fmt: skip
    attack = SquareAttack(
        estimator=classifier, max_iter=settings.max_iter, eps=settings.eps,
        p_init=settings.p_init, nb_restarts=settings.nb_restarts, verbose=False,
    )  # fmt: skip
    with _SEEDED:
        if settings.seed is not None:
            np.random.seed(settings.seed)
        adversarial = attack.generate(x=images, y=labels)
    return np.asarray(unpack(adversarial)).reshape(original_shape)


def _as_images(rows: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """4-D images for ART, and how to get the rows back from a batch of them."""
    rows = rows.astype(np.float32)
    if rows.ndim == 4:
        return rows, lambda batch: batch
    if rows.ndim == 3:  # one-channel images without the channel axis
        return rows[..., np.newaxis], lambda batch: batch[..., 0]
    flat = rows.reshape(len(rows), -1)
    features = flat.shape[1]
    side = max(MIN_SIDE, math.ceil(math.sqrt(features)))
    padded = np.zeros((len(rows), side * side), dtype=np.float32)
    padded[:, :features] = flat
    return padded.reshape(len(rows), side, side, 1), lambda batch: batch.reshape(len(batch), -1)[
        :, :features
    ]
