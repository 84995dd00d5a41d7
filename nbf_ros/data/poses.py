"""Human pose sampling in SMPL axis-angle for the synthetic generator.

The joint frame conventions, the anatomical limits the samples are clamped to and the left/right
mirror live in ``nbf_ros.body.pose_limits`` (runtime body maths the fitting shares).

The sampler (:class:`PoseSampler`) draws natural key poses (standing, walking and running
phases, reaching, bending, crouching, sitting, kneeling, arms crossed, pointing, waving, hands on
hips, carrying, ...), mirrors them, interpolates between two of them on the rotation manifold,
perturbs them with Gaussian noise and clamps the result to the limits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from nbf_ros.body.pose_limits import (BODY_JOINT_INDEX, JOINT_LIMITS, NUM_BODY_JOINTS,
                                      clamp_to_limits, mirror_body_pose)
from nbf_ros.types import NUM_BETAS

# --- key pose library -------------------------------------------------------------------------
# A key pose gives, per joint, a sequence of elementary rotations (axis, radians) applied to the
# bone in order (the first acts first), all in the rest frame. Composition matters for arms:
# "lower the arm, then swing it forward" is a rotation about z followed by one about x.
# Only the subject's left side and the midline are usually written; PoseSampler mirrors poses.
_Step = tuple[str, float]
KeyPose = dict[str, tuple[_Step, ...]]


def _arms_down(left: float = -1.3, right: float = 1.3) -> KeyPose:
    return {"left_shoulder": (("z", left),), "right_shoulder": (("z", right),)}


def _pose(*parts: KeyPose, **extra: tuple[_Step, ...]) -> KeyPose:
    out: KeyPose = {}
    for part in parts:
        out.update(part)
    out.update(extra)
    return out


def _walk(phase: float) -> KeyPose:
    """Walking at ``phase`` in [-1, 1]: left leg forward at +1 (arms swing opposite)."""
    swing = 0.45 * phase
    return _pose(
        left_hip=(("x", -swing),), right_hip=(("x", swing),),
        left_knee=(("x", 0.15 + 0.45 * max(-phase, 0.0)),),
        right_knee=(("x", 0.15 + 0.45 * max(phase, 0.0)),),
        left_shoulder=(("z", -1.35), ("x", 0.5 * swing)),
        right_shoulder=(("z", 1.35), ("x", -0.5 * swing)),
        left_elbow=(("y", -0.2),), right_elbow=(("y", 0.2),),
        spine1=(("y", 0.1 * phase),),
    )


def _run(phase: float) -> KeyPose:
    swing = 0.8 * phase
    return _pose(
        left_hip=(("x", -swing - 0.2),), right_hip=(("x", swing - 0.2),),
        left_knee=(("x", 0.4 + 1.2 * max(-phase, 0.0)),),
        right_knee=(("x", 0.4 + 1.2 * max(phase, 0.0)),),
        left_shoulder=(("z", -1.2), ("x", 0.7 * swing)),
        right_shoulder=(("z", 1.2), ("x", -0.7 * swing)),
        left_elbow=(("y", -1.4),), right_elbow=(("y", 1.4),),
        spine1=(("x", 0.2),),
    )


KEY_POSES: dict[str, KeyPose] = {
    "stand": _pose(_arms_down(), left_elbow=(("y", -0.1),), right_elbow=(("y", 0.1),)),
    "stand_relaxed": _pose(_arms_down(-1.2, 1.25), left_elbow=(("y", -0.3),),
                           right_elbow=(("y", 0.25),), left_knee=(("x", 0.1),),
                           left_hip=(("z", 0.1),), right_hip=(("z", -0.08),), head=(("x", 0.1),)),
    "a_pose": _arms_down(-0.8, 0.8),
    "t_pose": {},
    "walk_a": _walk(1.0),
    "walk_mid": _walk(0.3),
    "run_a": _run(1.0),
    "run_mid": _run(0.2),
    "reach_forward": _pose(_arms_down(), left_shoulder=(("z", -0.2), ("y", -1.3)),
                           spine1=(("x", 0.2),), spine2=(("x", 0.1),)),
    "reach_up": _pose(_arms_down(), left_shoulder=(("z", 1.2),), left_elbow=(("y", -0.2),),
                      spine2=(("z", -0.1),)),
    "both_arms_up": _pose(left_shoulder=(("z", 1.1),), right_shoulder=(("z", -1.1),),
                          left_elbow=(("y", -0.3),), right_elbow=(("y", 0.3),)),
    "reach_sideways": _pose(_arms_down(), left_shoulder=(("z", 0.1),), spine1=(("z", 0.2),),
                            right_hip=(("z", -0.1),)),
    "bend_forward": _pose(_arms_down(-1.4, 1.4), spine1=(("x", 0.7),), spine2=(("x", 0.4),),
                          spine3=(("x", 0.3),), left_hip=(("x", -0.4),), right_hip=(("x", -0.4),),
                          left_shoulder=(("z", -1.4), ("x", -0.6)), neck=(("x", -0.3),),
                          right_shoulder=(("z", 1.4), ("x", -0.6))),
    "pick_up": _pose(spine1=(("x", 0.6),), spine2=(("x", 0.3),), left_hip=(("x", -1.0),),
                     right_hip=(("x", -0.8),), left_knee=(("x", 1.2),), right_knee=(("x", 1.0),),
                     left_ankle=(("x", 0.3),), right_ankle=(("x", 0.3),),
                     left_shoulder=(("z", -1.4), ("x", -0.9)), right_shoulder=(("z", 1.4), ("x", -0.7))),
    "crouch": _pose(left_hip=(("x", -2.0), ("z", 0.3)), right_hip=(("x", -2.0), ("z", -0.3)),
                    left_knee=(("x", 2.3),), right_knee=(("x", 2.3),), left_ankle=(("x", 0.5),),
                    right_ankle=(("x", 0.5),), spine1=(("x", 0.4),),
                    left_shoulder=(("z", -1.1), ("x", -0.9)), right_shoulder=(("z", 1.1), ("x", -0.9)),
                    left_elbow=(("y", -0.6),), right_elbow=(("y", 0.6),)),
    "sit": _pose(_arms_down(), left_hip=(("x", -1.5),), right_hip=(("x", -1.5),),
                 left_knee=(("x", 1.5),), right_knee=(("x", 1.5),),
                 left_elbow=(("y", -1.0),), right_elbow=(("y", 1.0),),
                 left_shoulder=(("z", -1.3), ("x", -0.3)), right_shoulder=(("z", 1.3), ("x", -0.3))),
    "sit_leaning": _pose(_arms_down(), left_hip=(("x", -1.3), ("z", 0.2)),
                         right_hip=(("x", -1.4), ("z", -0.1)), left_knee=(("x", 1.2),),
                         right_knee=(("x", 1.7),), spine1=(("x", -0.2),), spine2=(("x", -0.1),),
                         left_shoulder=(("z", -1.2), ("x", 0.3))),
    "kneel": _pose(_arms_down(), left_hip=(("x", -1.5),), left_knee=(("x", 1.5),),
                   right_hip=(("x", 0.0),), right_knee=(("x", 1.6),), right_ankle=(("x", -0.5),)),
    "kneel_both": _pose(_arms_down(), left_hip=(("x", -0.2),), right_hip=(("x", -0.2),),
                        left_knee=(("x", 1.7),), right_knee=(("x", 1.7),),
                        left_ankle=(("x", -0.5),), right_ankle=(("x", -0.5),)),
    "arms_crossed": _pose(left_shoulder=(("z", -1.2), ("x", -0.5), ("y", -0.5)),
                          right_shoulder=(("z", 1.2), ("x", -0.5), ("y", 0.5)),
                          left_elbow=(("y", -2.2),), right_elbow=(("y", 2.2),)),
    "pointing": _pose(_arms_down(), left_shoulder=(("y", -1.1), ("z", 0.1)),
                      left_elbow=(("y", -0.05),), head=(("y", 0.3),), spine2=(("y", 0.2),)),
    "waving": _pose(_arms_down(), left_shoulder=(("z", 0.3),), left_elbow=(("y", -1.6),),
                    left_wrist=(("z", 0.3),), right_knee=(("x", 0.1),)),
    "hands_on_hips": _pose(left_shoulder=(("z", -1.0), ("y", 0.3)),
                           right_shoulder=(("z", 1.0), ("y", -0.3)),
                           left_elbow=(("y", -1.6),), right_elbow=(("y", 1.6),)),
    "carrying": _pose(left_shoulder=(("z", -1.3), ("x", -0.6)),
                      right_shoulder=(("z", 1.3), ("x", -0.6)),
                      left_elbow=(("y", -1.5),), right_elbow=(("y", 1.5),), spine1=(("x", -0.1),)),
    "carry_side": _pose(_arms_down(-1.45, 1.2), left_elbow=(("y", -0.1),), spine1=(("z", -0.15),),
                        right_elbow=(("y", 0.4),)),
    "phone": _pose(_arms_down(), left_shoulder=(("z", -1.2), ("x", -0.3)),
                   left_elbow=(("y", -2.3),), head=(("z", -0.2),), neck=(("x", 0.2),)),
    "look_around": _pose(_arms_down(), neck=(("y", 0.6),), head=(("y", 0.3),), spine2=(("y", 0.3),)),
    "step_up": _pose(_arms_down(), left_hip=(("x", -1.1),), left_knee=(("x", 1.3),),
                     right_ankle=(("x", 0.2),), spine1=(("x", 0.15),)),
    "lunge": _pose(_arms_down(), left_hip=(("x", -1.2),), left_knee=(("x", 1.4),),
                   right_hip=(("x", 0.5),), right_knee=(("x", 0.5),)),
    "stretch": _pose(left_shoulder=(("z", 1.25),), right_shoulder=(("z", -1.25),),
                     spine1=(("x", -0.3),), neck=(("x", -0.3),)),
    "lean_side": _pose(_arms_down(), spine1=(("z", 0.3),), spine2=(("z", 0.2),),
                       left_hip=(("z", -0.1),)),
}


def key_pose_vector(key: KeyPose) -> np.ndarray:
    """The (69,) axis-angle body pose of a key pose (unlisted joints at rest)."""
    pose = np.zeros((NUM_BODY_JOINTS, 3))
    for name, steps in key.items():
        if name not in BODY_JOINT_INDEX:
            raise ValueError(f"unknown joint {name!r} in a key pose")
        rot = Rotation.identity()
        for axis, angle in steps:
            rot = Rotation.from_euler(axis, angle) * rot  # later steps act after earlier ones
        pose[BODY_JOINT_INDEX[name]] = rot.as_rotvec()
    return pose.reshape(-1)


KEY_POSE_NAMES: tuple[str, ...] = tuple(KEY_POSES)
KEY_POSE_ARRAY: np.ndarray = np.stack([key_pose_vector(KEY_POSES[n]) for n in KEY_POSE_NAMES])
"""P x 69 axis-angle key poses, in ``KEY_POSE_NAMES`` order (before mirroring/clamping)."""


def slerp_body_pose(pose_a: np.ndarray, pose_b: np.ndarray, t: float) -> np.ndarray:
    """Per-joint spherical interpolation of two (69,) body poses at t in [0, 1] (shortest arc)."""
    qa = Rotation.from_rotvec(np.asarray(pose_a).reshape(-1, 3)).as_quat()  # 23 x 4 (x, y, z, w)
    qb = Rotation.from_rotvec(np.asarray(pose_b).reshape(-1, 3)).as_quat()
    dot = np.sum(qa * qb, axis=1)
    qb = np.where(dot[:, None] < 0, -qb, qb)
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    small = theta < 1e-6
    sin_t = np.where(small, 1.0, np.sin(theta))
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / sin_t)
    wb = np.where(small, t, np.sin(t * theta) / sin_t)
    q = wa[:, None] * qa + wb[:, None] * qb
    return Rotation.from_quat(q / np.linalg.norm(q, axis=1, keepdims=True)).as_rotvec().reshape(-1)


@dataclass(frozen=True)
class SampledPose:
    """One sampled body: pose (69,), shape (10,), root rotation relative to upright-facing."""

    body_pose: np.ndarray
    betas: np.ndarray
    key_names: tuple[str, ...]


class PoseSampler:
    """Draws natural human poses and shapes (numpy, deterministic given the generator).

    Args:
        noise_std: per-component Gaussian noise added to the key pose, radians.
        interp_prob: probability of blending two key poses (slerp at a uniform t).
        random_pose_prob: probability of a uniform pose inside ``random_pose_scale`` of the
            limits instead of a key pose (variety beyond the library; not all look natural).
        betas_std, betas_clip: shape coefficients ~ N(0, std) clipped to +-clip.
    """

    def __init__(self, noise_std: float = 0.12, interp_prob: float = 0.5,
                 random_pose_prob: float = 0.05, random_pose_scale: float = 0.35,
                 betas_std: float = 1.0, betas_clip: float = 2.5,
                 key_names: Optional[tuple[str, ...]] = None) -> None:
        names = KEY_POSE_NAMES if key_names is None else key_names
        unknown = [n for n in names if n not in KEY_POSES]
        if unknown:
            raise ValueError(f"unknown key pose(s) {unknown}; known: {list(KEY_POSE_NAMES)}")
        self.key_names = tuple(names)
        self.keys = np.stack([KEY_POSE_ARRAY[KEY_POSE_NAMES.index(n)] for n in self.key_names])
        self.noise_std = noise_std
        self.interp_prob = interp_prob
        self.random_pose_prob = random_pose_prob
        self.random_pose_scale = random_pose_scale
        self.betas_std = betas_std
        self.betas_clip = betas_clip

    def sample_body_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, tuple[str, ...]]:
        """One (69,) body pose inside ``JOINT_LIMITS`` and the names of the key poses used."""
        if rng.random() < self.random_pose_prob:
            lo, hi = JOINT_LIMITS[..., 0].reshape(-1), JOINT_LIMITS[..., 1].reshape(-1)
            mid = 0.5 * (lo + hi)
            pose = mid + (rng.random(lo.size) - 0.5) * (hi - lo) * self.random_pose_scale
            return clamp_to_limits(pose), ("random",)
        first = int(rng.integers(len(self.key_names)))
        pose = self._maybe_mirror(self.keys[first], rng)
        names: tuple[str, ...] = (self.key_names[first],)
        if rng.random() < self.interp_prob:
            second = int(rng.integers(len(self.key_names)))
            other = self._maybe_mirror(self.keys[second], rng)
            pose = slerp_body_pose(pose, other, float(rng.random()))
            names = names + (self.key_names[second],)
        pose = pose + rng.normal(0.0, self.noise_std, size=pose.shape)
        return clamp_to_limits(pose), names

    def sample_betas(self, rng: np.random.Generator) -> np.ndarray:
        """(10,) shape coefficients ~ N(0, betas_std) clipped to +-betas_clip."""
        return np.clip(rng.normal(0.0, self.betas_std, NUM_BETAS), -self.betas_clip, self.betas_clip)

    def sample(self, rng: np.random.Generator) -> SampledPose:
        pose, names = self.sample_body_pose(rng)
        return SampledPose(body_pose=pose, betas=self.sample_betas(rng), key_names=names)

    @staticmethod
    def _maybe_mirror(pose: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return mirror_body_pose(pose) if rng.random() < 0.5 else pose


# --- global orientation -----------------------------------------------------------------------
UPRIGHT_FACING_CAMERA = Rotation.from_rotvec([np.pi, 0.0, 0.0])
"""Root rotation of an upright person facing a level camera: body y (up) -> camera -y (up in the
image), body z (front) -> camera -z (towards the camera)."""


def upright_orientation(yaw: float, lean_pitch: float = 0.0, lean_roll: float = 0.0) -> Rotation:
    """Root rotation (body -> level camera frame) of a person turned by ``yaw`` about their own
    vertical axis (0 = facing the camera, pi/2 = facing image-right so that the camera sees their
    right side, pi = back view), leaning
    forward by ``lean_pitch`` and sideways by ``lean_roll`` (radians, about the body's x and z)."""
    body_turn = Rotation.from_euler("y", yaw)
    lean = Rotation.from_euler("x", lean_pitch) * Rotation.from_euler("z", lean_roll)
    return UPRIGHT_FACING_CAMERA * body_turn * lean
