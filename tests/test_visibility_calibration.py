"""The visibility calibration's logistic fit: it recovers a known model, keeps the signs that make
the visibility monotone in its evidence, and scores held-out predictions correctly."""
import sys
from pathlib import Path

import numpy as np

from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "visibility_calibration.py"


def load_calibration():
    sys.path.insert(0, str(SCRIPT.parent))
    return load_script(SCRIPT, "visibility_calibration_under_test")


def sample(logit, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    cues = rng.random((n, 3))
    z = logit[0] + cues @ np.asarray(logit[1:])
    truth = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    return cues, truth


def test_fit_recovers_a_known_logistic_model():
    cal = load_calibration()
    known = (-1.0, 3.0, -2.0, 1.5)
    cues, truth = sample(known)
    fitted = cal.fit_logit(cues, truth)
    np.testing.assert_allclose(fitted, known, atol=0.25)


def test_signs_are_kept_when_the_data_disagree():
    cal = load_calibration()
    cues, truth = sample((0.0, -2.0, 2.0, 1.0))  # self-visibility and occlusion backwards
    bias, w_self, w_occ, w_kp = cal.fit_logit(cues, truth)
    assert w_self == 0.0 and w_occ == 0.0  # clamped at the bound, not flipped
    assert w_kp > 0.5


def test_quality_numbers_on_a_known_case():
    cal = load_calibration()
    p = np.array([0.9, 0.8, 0.2, 0.6])
    truth = np.array([True, True, False, False])
    q = cal.quality(p, truth)
    assert q["accuracy"] == 0.75 and q["visible_recall"] == 1.0 and q["hidden_recall"] == 0.5
    assert q["auc"] == 1.0
    np.testing.assert_allclose(q["brier"], np.mean([0.01, 0.04, 0.04, 0.36]))
