"""Adversarial-sample detection: a binary classifier told clean inputs from attacks on the
classifier the detector protects.

This is Metzen et al.'s binary input detector, which ART ships as `BinaryInputDetector` for
neural networks; for the tabular models ksrv serves it is built with scikit-learn: at load,
ART's SquareAttack (`runtimes/square_attack.py`) crafts an adversarial version of every
reference row against the classifier found beside the reference set (`classifier.joblib`),
and a random forest learns to tell the two apart. Without that file there is no adversarial
detection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from ksrv.runtimes import square_attack

CLASSIFIER_FILE: Final = "classifier.joblib"
# Enough to move most rows across a boundary of a model on standardised-scale features.
ATTACK_MAX_ITER: Final = 100
ATTACK_EPS: Final = 1.0


class AdversarialDetector:
    def __init__(self, classifier: Any, reference: np.ndarray, seed: int) -> None:
        from sklearn.ensemble import RandomForestClassifier

        classes = np.asarray(classifier.classes_)
        settings = square_attack.AttackSettings(
            nb_classes=len(classes), max_iter=ATTACK_MAX_ITER, eps=ATTACK_EPS, seed=seed
        )

        def predict_labels(rows: np.ndarray) -> np.ndarray:
            return np.searchsorted(classes, np.asarray(classifier.predict(rows)))

        adversarial = square_attack.generate(predict_labels, reference, None, settings)
        changed = predict_labels(adversarial) != predict_labels(reference)
        attacks = adversarial[changed]
        x = np.concatenate([reference, attacks])
        y = np.concatenate([np.zeros(len(reference)), np.ones(len(attacks))])
        self._detector = RandomForestClassifier(random_state=seed).fit(x, y)
        self.n_attacks = len(attacks)

    @classmethod
    def beside(
        cls, model_dir: Path, reference: np.ndarray, seed: int
    ) -> AdversarialDetector | None:
        """The detector for the classifier in `model_dir`, if there is one."""
        path = model_dir / CLASSIFIER_FILE if model_dir.is_dir() else None
        if path is None or not path.is_file():
            return None
        import joblib

        return cls(joblib.load(path), reference, seed)

    def is_adversarial(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._detector.predict(rows), dtype=bool)
