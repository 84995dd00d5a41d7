"""Anatomical joint limits and left/right mirroring of SMPL body poses: runtime body maths.

The fitting uses them as priors (joint-limit box, flipped-twin start hypothesis); the synthetic
pose sampler (``nbf_ros.data.poses``) clamps and mirrors with the same tables, so the fitting
never allows less than the training poses used.

SMPL's body pose holds 23 axis-angle rotations (joints 1..23 of ``JOINT_NAMES``), each expressed
in the rest-pose frame of the body: x points to the subject's left, y up, z out of the front of
the body. With that frame:

- hip/knee/spine flexion is a rotation about x (hip flexion, leg forward: x < 0; knee bend:
  x > 0; spine bending forward: x > 0);
- the arms lie along +x (left) and -x (right) in the rest T-pose; lowering the left arm is z < 0,
  the right arm z > 0; swinging a T-pose arm forward is y < 0 (left) / y > 0 (right); elbow
  flexion is y < 0 (left) / y > 0 (right);
- mirroring a pose left <-> right swaps the paired joints and negates y and z.

``JOINT_LIMITS`` bounds each axis-angle *component* of each joint (radians). Per-component bounds
on axis-angle are an approximation of anatomical ranges (components are not Euler angles), chosen
wide enough to hold every key pose of the sampler's library and its mirror; they serve as a box
prior for the fitting (:func:`joint_limit_violation`) and as the clamp of the sampler.
"""
from __future__ import annotations

import numpy as np
import torch

from nbf_ros.types import JOINT_NAMES, NUM_JOINTS

NUM_BODY_JOINTS = NUM_JOINTS - 1  # body_pose excludes the root
BODY_JOINT_NAMES: tuple[str, ...] = JOINT_NAMES[1:]
BODY_JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}

# Limits of the subject's LEFT side and of the midline joints, (lo, hi) per axis x, y, z, radians.
# The right side is derived by mirroring (x kept, y and z negated and swapped), see _mirror_limits.
_LEFT_AND_MIDLINE_LIMITS: dict[str, tuple[tuple[float, float], ...]] = {
    "left_hip": ((-2.5, 0.7), (-0.9, 0.9), (-0.6, 1.3)),      # flexion(-)/extension, twist, abduction(+)
    "spine1": ((-0.5, 0.9), (-0.6, 0.6), (-0.5, 0.5)),        # forward bend(+), twist, side bend
    "left_knee": ((-0.1, 2.6), (-0.4, 0.4), (-0.2, 0.2)),     # flexion(+) only
    "spine2": ((-0.4, 0.6), (-0.5, 0.5), (-0.4, 0.4)),
    "left_ankle": ((-0.7, 0.9), (-0.4, 0.4), (-0.4, 0.4)),
    "spine3": ((-0.4, 0.6), (-0.5, 0.5), (-0.4, 0.4)),
    "left_foot": ((-0.5, 0.6), (-0.2, 0.2), (-0.2, 0.2)),     # toes
    "neck": ((-0.7, 0.8), (-0.9, 0.9), (-0.5, 0.5)),
    "left_collar": ((-0.4, 0.4), (-0.5, 0.4), (-0.4, 0.6)),
    "head": ((-0.6, 0.7), (-0.9, 0.9), (-0.5, 0.5)),
    "left_shoulder": ((-1.8, 1.8), (-2.2, 1.2), (-1.9, 1.3)),  # twist, forward(-), down(-)/up(+)
    "left_elbow": ((-1.2, 1.2), (-2.7, 0.15), (-0.5, 0.5)),    # flexion(-), pronation about x
    "left_wrist": ((-1.2, 1.2), (-0.8, 0.8), (-1.3, 1.3)),
    "left_hand": ((-0.4, 0.4), (-0.4, 0.4), (-0.6, 0.6)),
}


def mirror_name(name: str) -> str:
    """Name of the joint on the other side (midline joints map to themselves)."""
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def _mirror_limits(limits: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    (xl, xh), (yl, yh), (zl, zh) = limits
    return ((xl, xh), (-yh, -yl), (-zh, -zl))


def _build_joint_limits() -> np.ndarray:
    table = np.zeros((NUM_BODY_JOINTS, 3, 2))
    for name in BODY_JOINT_NAMES:
        if name in _LEFT_AND_MIDLINE_LIMITS:
            limits = _LEFT_AND_MIDLINE_LIMITS[name]
        else:
            limits = _mirror_limits(_LEFT_AND_MIDLINE_LIMITS[mirror_name(name)])
        table[BODY_JOINT_INDEX[name]] = np.asarray(limits)
    return table


JOINT_LIMITS: np.ndarray = _build_joint_limits()
"""23 x 3 x 2 (body joint, axis x/y/z, lo/hi) limits of each axis-angle component, radians.
Midline joints (spine, neck, head) are symmetric under mirroring by construction: their y and z
ranges are symmetric intervals."""

# Permutation and sign that mirror a body_pose (23 x 3) left <-> right.
MIRROR_PERMUTATION: np.ndarray = np.array([BODY_JOINT_INDEX[mirror_name(n)] for n in BODY_JOINT_NAMES])
MIRROR_SIGN: np.ndarray = np.array([1.0, -1.0, -1.0])
# The 24 joints (pelvis first) with left and right swapped: the labels a front/back-turned
# reading of the same 2D keypoints gives them.
MIRROR_JOINTS: np.ndarray = np.concatenate([[0], MIRROR_PERMUTATION + 1])


def mirror_body_pose(body_pose: np.ndarray) -> np.ndarray:
    """Mirror ... x 69 axis-angle body poses left <-> right (swap joints, negate y and z)."""
    pose = np.asarray(body_pose).reshape(*np.shape(body_pose)[:-1], NUM_BODY_JOINTS, 3)
    return (pose[..., MIRROR_PERMUTATION, :] * MIRROR_SIGN).reshape(np.shape(body_pose))


def clamp_to_limits(body_pose: np.ndarray) -> np.ndarray:
    """Clamp ... x 69 axis-angle body poses component-wise to ``JOINT_LIMITS``."""
    flat = JOINT_LIMITS.reshape(-1, 2)
    return np.clip(np.asarray(body_pose, dtype=np.float64), flat[:, 0], flat[:, 1])


def joint_limit_violation(body_pose: torch.Tensor) -> torch.Tensor:
    """Squared excess of each axis-angle component beyond ``JOINT_LIMITS``, summed per pose.

    Differentiable (zero gradient inside the box, linear-growing outside), for the fitting's
    joint-limit prior.

    Args:
        body_pose: B x 69 axis-angle.
    Returns:
        (B,) sum over the 69 components of relu(lo - x)^2 + relu(x - hi)^2, in rad^2.
    """
    if body_pose.ndim != 2 or body_pose.shape[1] != 3 * NUM_BODY_JOINTS:
        raise ValueError(f"body_pose must be B x {3 * NUM_BODY_JOINTS}, got {tuple(body_pose.shape)}")
    flat = torch.as_tensor(JOINT_LIMITS.reshape(-1, 2), dtype=body_pose.dtype, device=body_pose.device)
    below = torch.relu(flat[:, 0] - body_pose)
    above = torch.relu(body_pose - flat[:, 1])
    return (below * below + above * above).sum(dim=1)
