"""Per-joint visibility: what the fit, BlazePose's person mask and an aligned depth image say
about each joint, and the calibrated logistic model a safety consumer thresholds.

Why a separate module: the cues are pure functions of tensors the fitter already has (kernel
positions, the final render, the outlier map, the mask and depth on the feature grid); keeping
them here lets ``benchmarks/visibility_calibration.py`` and the tests use exactly the runtime's
definitions (docs/visibility_landmarks.md).

The cues, in the order of ``VISIBILITY_CUES`` (24 x C per person, ``FitResult.visibility_cues``):

- base (any front end): ``self_visible``: share of the joint's nearest kernels that pass a soft
  z-test against the rendered surface (normalised by ``fit.facing_fraction``); ``occluded``: the
  outlier map's share of those; ``keypoint_confidence``: the 2D keypoint's confidence;
- image: ``mask``: BlazePose's person probability at the joint's self-visible kernels (its mask
  leaves occluders out, so a joint the body renders in front but the mask does not cover is likely
  behind an object); ``mask_at_joint``: the same at the joint's own pixel; ``outlier_at_joint``:
  the outlier probability there; ``inside``: the joint projects inside the crop; ``agreement``:
  cosine of observed and model features at its self-visible kernels (a hidden joint's kernels
  see the occluder's features); ``outlier_kernels``: mean outlier probability at all its
  kernels; ``keypoint_distance``: distance of the 2D keypoint from the fitted joint's projection
  (crop widths, clipped to [0, 0.5]: the 2D detector guesses where a hidden joint is, and the
  fit does not always follow); ``outlier_at_keypoint``: the outlier probability at the 2D
  keypoint; ``outlier_around_joint``: the largest outlier probability of the 3 x 3 pixels
  around the joint; ``behind_render``: how far (metres, clipped to [0, 0.5]) the joint lies
  behind the fitted body's own rendered surface at its pixel (self-occlusion);
- depth: ``depth_occluded``: share of the self-visible kernels behind which the sensor sees
  something more than ``fit.depth_occluder_margin_m`` nearer; ``depth_gap``: how far (metres,
  clipped to [0, 1]) the joint lies behind the surface the sensor sees at its pixel;
  ``depth_gap_at_keypoint``: the same at its 2D keypoint's pixel.

Three models, each a logistic of a prefix of the cues (so a model never reads a cue its input
cannot have): ``fit.visibility_logit_depth`` (all cues) for people with depth,
``fit.visibility_logit_image`` (base + image cues) for the others, both calibrated with
BlazePose's front end (keypoints, landmark start; people it misses included, whose mask cues
are ``NO_MASK`` and keypoints the heatmaps'); ``fit.visibility_logit`` (base cues) when the
keypoints are the network's heatmaps (``fit.keypoint_source: network``, config/hog.yaml with its
own calibration, docs/visibility.md).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

VISIBILITY_CUES = ("self_visible", "occluded", "keypoint_confidence",
                   "mask", "mask_at_joint", "outlier_at_joint", "inside",
                   "agreement", "outlier_kernels", "keypoint_distance",
                   "outlier_at_keypoint", "outlier_around_joint", "behind_render",
                   "depth_occluded", "depth_gap", "depth_gap_at_keypoint")
# Sign of each cue's weight in every model: more evidence of being seen never lowers visibility.
CUE_SIGNS = (1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0)
BASE_CUES, IMAGE_CUES, ALL_CUES = 3, 13, 16
BEHIND_RENDER_MAX_M = 0.5
KEYPOINT_DISTANCE_MAX = 0.5
# What an absent input gives its cues: no evidence against the joint being seen.
NO_MASK = 1.0
DEPTH_GAP_MAX_M = 1.0


def visibility_from_cues(cues: torch.Tensor, logit: Sequence[float]) -> torch.Tensor:
    """... x C joint cues (``VISIBILITY_CUES`` order) -> ... P(visible).

    ``logit`` = (bias, w_1 .. w_k) with k <= C: ``sigmoid(bias + sum_i w_i cue_i)`` over the
    first k cues. A logistic model, so the number a safety consumer thresholds is a calibrated
    probability (fitted on validation people, docs/visibility_landmarks.md)."""
    count = len(logit) - 1
    if count > cues.shape[-1]:
        raise ValueError(f"visibility model has {count} weights but only {cues.shape[-1]} cues")
    weights = torch.tensor(list(logit[1:]), dtype=cues.dtype)
    return torch.sigmoid(logit[0] + (cues[..., :count] * weights).sum(-1))


def model_for(keypoint_source: str, has_depth: bool, base: Sequence[float], image: Sequence[float],
              depth: Sequence[float]) -> Sequence[float]:
    """The model for an observation: with depth the full one; without, the image one for
    BlazePose's front end and the base one for the network's heatmap keypoints (whose
    calibration, config/hog.yaml, knows only the base cues)."""
    if has_depth:
        return depth
    return base if keypoint_source == "network" else image


def weighted_share(values: torch.Tensor, weight: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Per joint the ``weight``-weighted mean of ``values`` (both 24 x k), ``fallback`` (24)
    where the weights vanish (no kernel of the joint is self-visible)."""
    total = weight.sum(1)
    mean = (weight * values).sum(1) / total.clamp(min=1e-6)
    return torch.where(total > 1e-3, mean, fallback)


def image_cues(mask: Optional[torch.Tensor], kernel_mask: Optional[torch.Tensor],
               joint_mask: Optional[torch.Tensor], joint_outlier: torch.Tensor, joint_inside: torch.Tensor,
               selfvis: torch.Tensor) -> torch.Tensor:
    """24 x 4 (mask, mask_at_joint, outlier_at_joint, inside).

    ``kernel_mask`` / ``selfvis``: 24 x k the person mask and self-visibility at each joint's
    kernels; ``joint_mask``, ``joint_outlier``, ``joint_inside``: 24 at the joint's pixel. Without
    a mask (``mask`` None) both mask cues are ``NO_MASK``."""
    if mask is None:
        seen = torch.full_like(joint_outlier, NO_MASK)
        at_joint = seen
    else:
        at_joint = joint_mask * joint_inside
        seen = weighted_share(kernel_mask, selfvis, at_joint)
    return torch.stack([seen, at_joint, joint_outlier, joint_inside], -1)


def depth_gap_cue(joint_z: torch.Tensor, observed_z: torch.Tensor) -> torch.Tensor:
    """24 metres the joint lies behind the observed surface at its pixel, clipped to [0,
    ``DEPTH_GAP_MAX_M``]; 0 (no evidence) where the sensor saw nothing there."""
    gap = (joint_z - observed_z).clamp(0.0, DEPTH_GAP_MAX_M)
    return torch.where(torch.isfinite(gap), gap, torch.zeros_like(gap))


def fit_cues(agree: torch.Tensor, outlier: torch.Tensor, selfvis: torch.Tensor, keypoints: torch.Tensor,
             projected: torch.Tensor, crop_width: float) -> torch.Tensor:
    """24 x 3 (agreement, outlier_kernels, keypoint_distance).

    ``agree``, ``outlier``, ``selfvis``: 24 x k at each joint's kernels; ``keypoints`` and
    ``projected``: 24 x 2 crop pixels (the 2D detector's, the fitted joints')."""
    agreement = weighted_share(agree, selfvis, agree.mean(1))
    distance = ((keypoints - projected).norm(dim=-1) / crop_width).clamp(0.0, KEYPOINT_DISTANCE_MAX)
    return torch.stack([agreement, outlier.mean(1), torch.nan_to_num(distance, nan=KEYPOINT_DISTANCE_MAX)], -1)


def behind_render_cue(joint_z: torch.Tensor, surface_z: torch.Tensor) -> torch.Tensor:
    """24 metres the joint lies behind the fitted body's rendered surface at its pixel, clipped
    to [0, ``BEHIND_RENDER_MAX_M``] (0 where nothing is rendered: the surface is far)."""
    return (joint_z - surface_z).clamp(0.0, BEHIND_RENDER_MAX_M)
