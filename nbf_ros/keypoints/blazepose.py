"""BlazePose (33 landmarks) -> SMPL's 24 joints, and crop keypoints for the fitter.

BlazePose GHUM (Bazarevsky et al. 2020; the landmark model runs in-process from
``models/blazepose_{lite,full}.onnx``, ``keypoints/landmarks.py``) gives 33 landmarks per
person: image pixels with a confidence, and "world" landmarks in metres with the origin between
the hips and camera optical axes (x right, y down, z away from the camera).

Every SMPL joint is an affine combination of landmarks (``SMPL_FROM_BLAZEPOSE``), so one 24 x 33
matrix maps 2D pixels and 3D metres alike. Joints BlazePose measures directly (hips, knees,
ankles, shoulders, elbows, wrists) copy a landmark. The others are placed with ratios measured
on our body model in its rest pose (``models/nbf_body.npz``, see docs/landmarks.md, and the
test that recomputes them): pelvis, spine1-3 on the mid-hip -> mid-shoulder segment; neck and
head on mid-shoulder -> mid-ear; collars beside the neck; feet between heel and toe; hands at
the middle of the index and pinky landmarks.

Confidence of a joint = min visibility of its landmarks x ``JOINT_RELIABILITY``: 1 for the
measured and the well-defined derived joints, 0.5 for hands and feet (BlazePose's hand/foot
landmarks sit elsewhere than SMPL's joints), 0 for spine1-3 and the collars (a position
interpolated along a torso that can bend is a guess, not an observation: the fitter must not be
pulled towards it). Their positions are still given (the 3D hint needs all 24).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from nbf_ros.geometry.camera import CropBox
from nbf_ros.types import JOINT_NAMES, NUM_JOINTS

NUM_LANDMARKS = 33
LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
_L = {name: i for i, name in enumerate(LANDMARK_NAMES)}

# Ratios measured on the rest pose of models/nbf_body.npz (tests/test_blazepose_mapping.py
# recomputes them): position of a joint along a segment between landmark midpoints, 0 = start, 1 = end.
PELVIS_ON_HIPS_TO_SHOULDERS = 0.03
SPINE1_ON_HIPS_TO_SHOULDERS = 0.34
SPINE2_ON_HIPS_TO_SHOULDERS = 0.52
SPINE3_ON_HIPS_TO_SHOULDERS = 0.82
NECK_ON_SHOULDERS_TO_EARS = 0.41
HEAD_ON_SHOULDERS_TO_EARS = 0.86
COLLAR_ON_SHOULDERS_TO_EARS = 0.11
COLLAR_TOWARDS_SHOULDER = 0.13  # lateral: fraction of mid-shoulder -> own shoulder
FOOT_ON_HEEL_TO_TOE = 0.77


def _mid(a: str, b: str) -> dict[str, float]:
    return {a: 0.5, b: 0.5}


def _along(start: dict[str, float], end: dict[str, float], t: float) -> dict[str, float]:
    """Weights of start + t (end - start) for two weighted landmark sets."""
    return _combine((1.0 - t, start), (t, end))


def _combine(*terms: tuple[float, dict[str, float]]) -> dict[str, float]:
    """Weights of sum_i c_i x (weighted landmark set i)."""
    out: dict[str, float] = {}
    for coef, weights in terms:
        for name, w in weights.items():
            out[name] = out.get(name, 0.0) + coef * w
    return out


def _collar(side: str) -> dict[str, float]:
    """Beside the neck: up from mid-shoulder towards the ears, out towards the own shoulder."""
    shoulders, ears = _mid("left_shoulder", "right_shoulder"), _mid("left_ear", "right_ear")
    base = _along(shoulders, ears, COLLAR_ON_SHOULDERS_TO_EARS)
    lateral = COLLAR_TOWARDS_SHOULDER
    return _combine((1.0, base), (lateral, {f"{side}_shoulder": 1.0}), (-lateral, shoulders))


def _smpl_recipes() -> dict[str, dict[str, float]]:
    hips, shoulders = _mid("left_hip", "right_hip"), _mid("left_shoulder", "right_shoulder")
    ears = _mid("left_ear", "right_ear")
    recipes = {name: {name: 1.0} for name in (
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")}
    recipes.update({
        "pelvis": _along(hips, shoulders, PELVIS_ON_HIPS_TO_SHOULDERS),
        "spine1": _along(hips, shoulders, SPINE1_ON_HIPS_TO_SHOULDERS),
        "spine2": _along(hips, shoulders, SPINE2_ON_HIPS_TO_SHOULDERS),
        "spine3": _along(hips, shoulders, SPINE3_ON_HIPS_TO_SHOULDERS),
        "neck": _along(shoulders, ears, NECK_ON_SHOULDERS_TO_EARS),
        "head": _along(shoulders, ears, HEAD_ON_SHOULDERS_TO_EARS),
        "left_collar": _collar("left"), "right_collar": _collar("right"),
    })
    for side in ("left", "right"):
        recipes[f"{side}_foot"] = _along({f"{side}_heel": 1.0}, {f"{side}_foot_index": 1.0},
                                         FOOT_ON_HEEL_TO_TOE)
        recipes[f"{side}_hand"] = _mid(f"{side}_index", f"{side}_pinky")
    return recipes


def _mapping_matrix() -> tuple[np.ndarray, np.ndarray]:
    """24 x 33 affine weights (rows sum to 1) and the 24 x 33 mask of landmarks each joint uses."""
    recipes = _smpl_recipes()
    weights = np.zeros((NUM_JOINTS, NUM_LANDMARKS))
    for j, name in enumerate(JOINT_NAMES):
        for landmark, w in recipes[name].items():
            weights[j, _L[landmark]] += w
    return weights, np.abs(weights) > 1e-12


SMPL_FROM_BLAZEPOSE, _USES = _mapping_matrix()
"""24 x 33: SMPL joint j = sum_k SMPL_FROM_BLAZEPOSE[j, k] * landmark k (pixels or metres)."""

_RELIABILITY = {"spine1": 0.0, "spine2": 0.0, "spine3": 0.0, "left_collar": 0.0,
                "right_collar": 0.0, "left_hand": 0.5, "right_hand": 0.5, "left_foot": 0.5,
                "right_foot": 0.5}
JOINT_RELIABILITY = np.array([_RELIABILITY.get(name, 1.0) for name in JOINT_NAMES])
"""(24,) factor on each joint's confidence: how well its BlazePose recipe matches the SMPL joint."""


@dataclass
class BlazePoseResult:
    """One BlazePose estimate in image pixels (one person).

    Attributes:
        landmarks: 33 x 2 image pixels (pixel-centre convention of geometry/camera.py).
        visibility: (33,) in [0, 1]: how much to trust each landmark (``landmarks.py`` gives
            visibility x presence: in the crop and not occluded).
        world: 33 x 3 metres, origin between the hips, camera optical axes.
        mask: H x W float32 person segmentation in [0, 1], or None when not requested.
    """

    landmarks: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    mask: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        _check_shape("landmarks", self.landmarks, (NUM_LANDMARKS, 2))
        _check_shape("visibility", self.visibility, (NUM_LANDMARKS,))
        _check_shape("world", self.world, (NUM_LANDMARKS, 3))


@dataclass
class SmplKeypoints:
    """BlazePose mapped onto SMPL's 24 joints for one person (JOINT_NAMES order).

    Attributes:
        box: (4,) person box [x0, y0, x1, y1] image pixels (pixel-edge coordinates).
        score: mean landmark confidence (``BlazePoseResult.visibility``).
        joints2d: 24 x 2 image pixels.
        confidence: (24,) in [0, 1] (0 = do not use; see module docstring).
        joints3d: 24 x 3 metres, root (pelvis) relative, camera optical axes: an initial body
            hint, not a metric position (BlazePose gives no depth of the person).
        source: the raw BlazePose estimate.
    """

    box: np.ndarray
    score: float
    joints2d: np.ndarray
    confidence: np.ndarray
    joints3d: np.ndarray
    source: BlazePoseResult


def _check_shape(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(np.shape(value)) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(np.shape(value))}")


def map_points(points: np.ndarray) -> np.ndarray:
    """... x 33 x D landmark positions -> ... x 24 x D SMPL joints (D = 2 pixels or 3 metres)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2] != NUM_LANDMARKS:
        raise ValueError(f"map_points: expected ... x {NUM_LANDMARKS} x D, got {points.shape}")
    # j = SMPL joint, k = landmark: out[..., j, d] = W[j, k] points[..., k, d]
    return np.einsum("jk,...kd->...jd", SMPL_FROM_BLAZEPOSE, points)


def map_confidence(visibility: np.ndarray) -> np.ndarray:
    """... x 33 visibility -> ... x 24 joint confidence (min over used landmarks x reliability)."""
    visibility = np.asarray(visibility, dtype=np.float64)
    if visibility.ndim < 1 or visibility.shape[-1] != NUM_LANDMARKS:
        raise ValueError(f"map_confidence: expected ... x {NUM_LANDMARKS}, got {visibility.shape}")
    vis = np.clip(visibility, 0.0, 1.0)[..., None, :]  # ... x 1 x 33
    lowest = np.where(_USES, vis, np.inf).min(axis=-1)  # ... x 24
    return lowest * JOINT_RELIABILITY


def to_smpl(result: BlazePoseResult, box: np.ndarray) -> SmplKeypoints:
    """Map one BlazePose estimate to SMPL's joints (2D pixels, confidence, root-relative 3D)."""
    joints3d = map_points(result.world)
    return SmplKeypoints(box=np.asarray(box, dtype=np.float64).reshape(4),
                         score=float(np.mean(np.clip(result.visibility, 0.0, 1.0))),
                         joints2d=map_points(result.landmarks),
                         confidence=map_confidence(result.visibility),
                         joints3d=joints3d - joints3d[0:1], source=result)


def crop_keypoints(keypoints: SmplKeypoints, crop: CropBox, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints for the fitter's ``Observation``: 1 x 24 x 2 crop pixels and 1 x 24 confidence.

    ``crop``/``size`` are the pipeline's crop of this person (``CropBox.around_bbox``,
    ``net.crop_size``); joints outside the crop keep their position (the robust loss handles them).
    """
    affine = crop.affine(size)  # 2 x 3, image pixel centres -> crop pixel centres
    uv = keypoints.joints2d @ affine[:, :2].T + affine[:, 2]
    return (torch.from_numpy(uv).float()[None],
            torch.from_numpy(np.asarray(keypoints.confidence)).float()[None])
