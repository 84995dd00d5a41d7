"""Person confidence (nbf_ros/fitting/confidence.py): cues and the calibrated logistic map."""
import math

import numpy as np
import pytest

from nbf_ros.config import FitConfig
from nbf_ros.fitting.confidence import CUE_NAMES, confidence_cues, person_confidence


def test_cues_are_flag_logit_median_confidence_and_log_loss():
    conf = np.linspace(0.0, 1.0, 33)
    cues = confidence_cues(0.8, conf, 0.05)
    assert cues.shape == (len(CUE_NAMES),)
    np.testing.assert_allclose(cues, [math.log(0.8 / 0.2), 0.5, math.log(0.05)])
    extreme = confidence_cues(1.0, conf, 0.0)  # a flag of exactly 1, a zero objective: finite
    assert np.all(np.isfinite(extreme))


def test_confidence_is_the_logistic_of_the_weighted_cues():
    cues = np.array([2.0, 0.9, -3.0])
    coef = (0.5, 0.4, 1.5, -0.7)
    z = 0.5 + 0.4 * 2.0 + 1.5 * 0.9 - 0.7 * -3.0
    assert person_confidence(cues, coef, 0.3) == pytest.approx(1.0 / (1.0 + math.exp(-z)))
    assert person_confidence(None, coef, 0.3) == 0.3  # no landmarks: the fallback
    assert person_confidence(np.array([np.nan, 0.9, -3.0]), coef, 0.3) == 0.3
    more_sure = person_confidence(cues + [1.0, 0.0, 0.0], coef, 0.3)  # a higher pose flag
    assert more_sure > person_confidence(cues, coef, 0.3)


def test_shipped_coefficients_rank_by_flag_and_objective():
    """The default calibration: a surer pose flag raises the confidence, a worse landmark
    objective lowers it (the signs the validation fit found, docs/confidence.md)."""
    cfg = FitConfig()
    base = confidence_cues(0.9, np.full(33, 0.8), 0.05)
    assert 0.0 < person_confidence(base, cfg.person_confidence, cfg.confidence_without_landmarks) < 1.0
    surer = confidence_cues(0.999, np.full(33, 0.8), 0.05)
    worse = confidence_cues(0.9, np.full(33, 0.8), 0.5)
    conf = lambda c: person_confidence(c, cfg.person_confidence, cfg.confidence_without_landmarks)  # noqa: E731
    assert conf(surer) > conf(base) > conf(worse)
