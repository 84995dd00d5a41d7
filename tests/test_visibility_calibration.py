"""The visibility calibration's logistic fit: it recovers a known model, keeps the signs that make
the visibility monotone in its evidence, scores predictions correctly, and prints a config snippet
that loads back as printed."""
import sys
from pathlib import Path

import numpy as np

from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "visibility_calibration.py"
SIGNS = (1.0, -1.0, 1.0)  # self-visible, occluded, keypoint confidence (CUE_SIGNS' first three)


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
    fitted = cal.fit_logit(cues, truth, SIGNS)
    np.testing.assert_allclose(fitted, known, atol=0.3)  # the ridge (1e-3) shrinks the weights a little


def test_signs_are_kept_when_the_data_disagree():
    cal = load_calibration()
    cues, truth = sample((0.0, -2.0, 2.0, 1.0))  # self-visibility and occlusion backwards
    bias, w_self, w_occ, w_kp = cal.fit_logit(cues, truth, SIGNS)
    assert w_self == 0.0 and w_occ == 0.0  # clamped at the bound, not flipped
    assert w_kp > 0.5


def test_quality_numbers_on_a_known_case():
    cal = load_calibration()
    p = np.array([0.9, 0.8, 0.2, 0.6, 0.7])
    truth = np.array([True, True, False, False, True])
    by_object = np.array([False, False, False, True, False])  # joint 2 is self-occluded
    q = cal.quality(p, truth, by_object)
    assert q["visible_recall"] == 1.0 and q["hidden_recall"] == 0.5
    assert q["hidden_auc"] == 1.0  # every hidden joint below every visible one
    # Object-hidden (joint 3, 0.6) against the visible ones (0.9, 0.8, 0.7): self-occluded left out.
    assert q["object_auc"] == 1.0 and q["object_joints"] == 1
    np.testing.assert_allclose(q["brier"], np.mean([0.01, 0.04, 0.04, 0.36, 0.09]))
    swapped = cal.quality(np.array([0.9, 0.8, 0.2, 0.75, 0.7]), truth, by_object)
    assert swapped["object_auc"] == 2 / 3  # above one of the three visible joints


def test_the_printed_config_snippet_loads_back_as_printed(tmp_path):
    from nbf_ros.config import load_config

    cal = load_calibration()
    models = {"image": tuple(0.25 * i - 1 for i in range(14)), "depth": tuple(-0.5 * i for i in range(17))}
    path = tmp_path / "vis.yaml"
    path.write_text("fit:\n" + cal.format_models(models) + "\n")
    loaded = load_config(path).fit
    for kind, field in cal.CONFIG_FIELDS.items():
        np.testing.assert_allclose(getattr(loaded, field), np.round(models[kind], 3))
