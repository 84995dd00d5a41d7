"""How much to trust one published person: a calibrated probability that the body is right.

A safety stack ranks and gates people by ``Person.confidence``, so it has to mean something:
here it is the probability that the person's root-aligned joint error (MPJPE) is below
``CONFIDENCE_MPJPE_MM``, from cues of the start body that measurably rank people by their error
(benchmarks/confidence_calibration.py, docs/confidence.md):

- BlazePose's pose flag (its own belief that the crop holds a whole, readable person), as a logit;
- the median of its 33 landmarks' visibility x presence;
- how badly our body explains its landmarks: the log of the body-from-landmarks objective at the
  end of its fit (inconsistent landmarks = a confused reading).

``confidence = sigmoid(bias + w_flag * logit(flag) + w_conf * median + w_loss * log(loss))``, the
four numbers fitted by logistic regression on validation people (``fit.person_confidence``). A
person without BlazePose landmarks (the regression head's start) gets the fixed
``fit.confidence_without_landmarks``: the share of such people under the error bound.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

CONFIDENCE_MPJPE_MM = 150.0
"""The error bound the confidence is calibrated for: P(MPJPE < 150 mm)."""
CUE_NAMES = ("pose_flag_logit", "landmark_confidence_median", "log_landmark_fit_loss")
_FLAG_CLIP = 1e-4  # pose flags of exactly 0 or 1 would give infinite logits
_LOSS_FLOOR = 1e-6


def confidence_cues(pose_flag: float, landmark_confidence: np.ndarray, fit_loss: float) -> np.ndarray:
    """(3,) cues of one person (``CUE_NAMES``), from BlazePose's pose flag, its (33,) landmark
    visibility x presence and the final body-from-landmarks objective of the chosen reading."""
    flag = min(max(float(pose_flag), _FLAG_CLIP), 1.0 - _FLAG_CLIP)
    return np.array([math.log(flag / (1.0 - flag)), float(np.median(landmark_confidence)),
                     math.log(max(float(fit_loss), _LOSS_FLOOR))])


def person_confidence(cues: Optional[np.ndarray], coefficients: Sequence[float], fallback: float) -> float:
    """P(MPJPE < CONFIDENCE_MPJPE_MM) from the cues (None, or any non-finite cue: ``fallback``).

    Args:
        coefficients: (bias, w_flag, w_conf, w_loss), as ``fit.person_confidence``.
    """
    if cues is None or not np.all(np.isfinite(cues)):
        return float(fallback)
    bias, *weights = coefficients
    z = bias + float(np.dot(weights, cues))
    return float(1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0))))
