"""The detector runtime's pure parts: its flags, the events' instances, the drift window,
the outlier threshold; and the ART explainer's flags."""

from __future__ import annotations

import numpy as np
import pytest

from ksrv.errors import InvalidInput
from ksrv.runtimes import art_explainer
from ksrv.runtimes.detector import events, model
from ksrv.runtimes.detector.drift import DriftDetector, DriftSettings
from ksrv.runtimes.detector.outliers import OutlierScorer

pytest.importorskip("hyppo")
pytest.importorskip("sklearn")

FEATURES = ("a", "b")


def reference(n: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window-size=1"], "--window-size must be >= 2"),
        (["--p-val=2"], "--p-val in (0, 1)"),
        (["--outlier-method=knn"], "invalid choice"),
        (["--colour=blue"], "unknown --colour=blue"),
    ],
)
def test_bad_detector_flags_are_refused_naming_the_flag(args, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.parse_args(args)


def test_the_detector_flags_default_to_a_window_of_100_tested_every_50():
    parsed = model.parse_args([])
    assert (parsed.window_size, parsed.test_every, parsed.p_val) == (100, 50, 0.05)
    assert model.parse_args(["--reply-url", "http://x/"]).sink_url == "http://x/"


@pytest.mark.parametrize(
    "data",
    [
        {"instances": [[1, 2], [3, 4]]},
        {"inputs": [[1, 2], [3, 4]]},
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
    ],
)
def test_v1_and_v2_bodies_give_their_rows(data):
    assert events.instances(data, 2).tolist() == [[1, 2], [3, 4]]


def test_a_single_row_is_one_instance_and_a_wrong_width_is_refused():
    assert events.instances({"instances": [1, 2]}, 2).shape == (1, 2)
    with pytest.raises(InvalidInput, match="rows of 2 numbers"):
        events.instances({"instances": [[1, 2, 3]]}, 2)


def test_the_window_is_tested_once_full_and_then_every_test_every_instances():
    detector = DriftDetector(reference(), DriftSettings(window_size=50, test_every=25), FEATURES)
    rows = reference(n=100, seed=1)

    assert detector.add(rows[:49]) == []
    first = detector.add(rows[49:50])
    later = detector.add(rows[50:100])

    assert [r.instances_seen for r in first + later] == [50, 75, 100]
    assert all(not r.is_drift for r in first + later)
    assert first[0].window_size == 50 and first[0].feature_threshold == 0.025


def test_a_shifted_feature_is_flagged_and_the_other_is_not():
    detector = DriftDetector(reference(), DriftSettings(window_size=100, test_every=100), FEATURES)
    rows = reference(n=100, seed=2)
    rows[:, 1] += 3.0

    (report,) = detector.add(rows)

    assert report.feature_drift == (False, True)
    assert report.is_mmd_drift and report.is_drift
    assert report.as_dict()["features"]["b"]["is_drift"] == 1


@pytest.mark.parametrize("method", ["mahalanobis", "isolation-forest"])
def test_an_outliers_score_is_above_the_reference_percentile(method):
    scorer = OutlierScorer(reference(), method, 99.0, seed=0)
    scores = scorer.scores(np.array([[0.0, 0.0], [8.0, -8.0]]))
    assert scores[0] < scorer.threshold < scores[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nb_classes is required"),
        (["--nb_classes", "3", "--adversary_type", "FGSM"], "only SquareAttack"),
        (["--nb_classes", "1"], "nb_classes >= 2"),
    ],
)
def test_bad_art_explainer_flags_are_refused(args, message):
    with pytest.raises(InvalidInput, match=message):
        art_explainer.parse_args(args)


def test_kserves_art_flags_are_read():
    settings = art_explainer.parse_args(["--nb_classes", "10", "--max_iter", "5", "--eps=1"])
    assert (settings.nb_classes, settings.max_iter, settings.eps) == (10, 5, 1.0)
