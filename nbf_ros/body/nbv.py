"""Neural Body Volume (NBV): Gaussian kernels attached to the body mesh (method.md steps 3-4).

This module has two layers:
- pure numpy *kernel layout* functions (which vertices carry kernels, which vertex belongs to
  which kernel, which limb a kernel belongs to), computed once from the rest mesh; the synthetic
  data generator and the trainer use them without torch;
- the torch ``NeuralBodyVolume`` module that turns a posed body into kernel centres, precisions
  and pose-dependent (orientation-binned) features for the renderer.

Joint indices are SMPL's 24 (``nbf_ros.types.JOINT_NAMES``).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from nbf_ros.types import NUM_JOINTS

# The paper's 9 limbs as (start joint, end joint) in SMPL joint indices; a limb's 3D direction is
# normalise(joint[end] - joint[start]). Index in this tuple = limb id used by ``kernel_parts``.
LIMBS: tuple[tuple[int, int], ...] = (
    (0, 12),   # 0 torso: pelvis -> neck
    (16, 18),  # 1 left upper arm: left_shoulder -> left_elbow
    (17, 19),  # 2 right upper arm: right_shoulder -> right_elbow
    (18, 20),  # 3 left lower arm: left_elbow -> left_wrist
    (19, 21),  # 4 right lower arm: right_elbow -> right_wrist
    (1, 4),    # 5 left thigh: left_hip -> left_knee
    (2, 5),    # 6 right thigh: right_hip -> right_knee
    (4, 7),    # 7 left calf: left_knee -> left_ankle
    (5, 8),    # 8 right calf: right_knee -> right_ankle
)
LIMB_NAMES: tuple[str, ...] = (
    "torso", "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm",
    "left_thigh", "right_thigh", "left_calf", "right_calf",
)
NUM_LIMBS = len(LIMBS)

# Limb of the vertices each joint skins. A joint's skinning weight moves the vertices of the bone
# that starts at that joint: hip -> thigh, knee -> calf, shoulder -> upper arm, elbow -> lower arm.
# Body ends follow the limb they hang from (ankle/foot -> calf, wrist/hand -> lower arm); the
# pelvis, spine, neck, collars and head belong to the torso (the head has no limb of its own in
# the paper, and the neck-head segment rarely turns far from the torso's direction).
JOINT_TO_LIMB: tuple[int, ...] = (
    0,  # pelvis
    5,  # left_hip
    6,  # right_hip
    0,  # spine1
    7,  # left_knee
    8,  # right_knee
    0,  # spine2
    7,  # left_ankle
    8,  # right_ankle
    0,  # spine3
    7,  # left_foot
    8,  # right_foot
    0,  # neck
    0,  # left_collar
    0,  # right_collar
    0,  # head
    1,  # left_shoulder
    2,  # right_shoulder
    3,  # left_elbow
    4,  # right_elbow
    3,  # left_wrist
    4,  # right_wrist
    3,  # left_hand
    4,  # right_hand
)


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty V x 3 array, got shape {points.shape}")
    return points


def _check_ids(ids: np.ndarray, num_vertices: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"kernel_vertex_ids must be a non-empty 1-D integer array, got {ids.shape}")
    if ids.min() < 0 or ids.max() >= num_vertices:
        raise ValueError(f"kernel_vertex_ids out of range [0, {num_vertices})")
    return ids.astype(np.int64)


def select_kernel_vertices(rest_vertices: np.ndarray, num_kernels: int, seed: int = 0) -> np.ndarray:
    """Uniformly spread kernel sites on the rest mesh by farthest-point sampling.

    The paper downsamples SMPL's vertices uniformly (ratio ~8); farthest-point sampling gives
    an even spacing on our mesh whatever its vertex density, and is deterministic for a seed
    (the seed only picks the first vertex).

    Args:
        rest_vertices: V x 3 rest-pose (template) vertices.
        num_kernels: K, 1 <= K <= V (NBVConfig.num_kernels, 858 by default).
        seed: picks the starting vertex.
    Returns:
        (K,) int64 vertex indices, in sampling order (no repeats).
    """
    verts = _check_points(rest_vertices, "rest_vertices")
    if not 1 <= num_kernels <= verts.shape[0]:
        raise ValueError(f"num_kernels must be in [1, {verts.shape[0]}], got {num_kernels}")
    chosen = np.empty(num_kernels, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(verts.shape[0])
    dist_sq = np.sum((verts - verts[chosen[0]]) ** 2, axis=1)
    for i in range(1, num_kernels):
        chosen[i] = int(np.argmax(dist_sq))
        dist_sq = np.minimum(dist_sq, np.sum((verts - verts[chosen[i]]) ** 2, axis=1))
    return chosen


def assign_vertices_to_kernels(rest_vertices: np.ndarray, kernel_vertex_ids: np.ndarray) -> np.ndarray:
    """Nearest kernel (in the rest pose) of every vertex: per-pixel kernel identity for training.

    Args:
        rest_vertices: V x 3.
        kernel_vertex_ids: (K,) indices into the vertices.
    Returns:
        (V,) int64 kernel index in [0, K); a kernel's own vertex maps to that kernel.
    """
    verts = _check_points(rest_vertices, "rest_vertices")
    ids = _check_ids(kernel_vertex_ids, verts.shape[0])
    _, nearest = cKDTree(verts[ids]).query(verts, k=1)
    nearest = np.asarray(nearest, dtype=np.int64)
    nearest[ids] = np.arange(ids.size)  # exact ties (duplicate positions) resolve to the owner
    return nearest


def kernel_parts(lbs_weights: np.ndarray, kernel_vertex_ids: np.ndarray) -> np.ndarray:
    """Limb id (index into ``LIMBS``) of each kernel.

    A kernel's skinning weights are summed per limb through ``JOINT_TO_LIMB`` (head, neck,
    collars and spine -> torso; ankles/feet -> calf; wrists/hands -> lower arm) and the limb with
    the largest total wins, so a vertex near a joint goes to the segment that moves it most.

    Args:
        lbs_weights: V x 24 skinning weights.
        kernel_vertex_ids: (K,) vertex indices.
    Returns:
        (K,) int64 limb ids in [0, 9).
    """
    weights = np.asarray(lbs_weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != NUM_JOINTS:
        raise ValueError(f"lbs_weights must be V x {NUM_JOINTS}, got {weights.shape}")
    ids = _check_ids(kernel_vertex_ids, weights.shape[0])
    joint_to_limb = np.zeros((NUM_JOINTS, NUM_LIMBS))
    joint_to_limb[np.arange(NUM_JOINTS), JOINT_TO_LIMB] = 1.0
    return np.argmax(weights[ids] @ joint_to_limb, axis=1).astype(np.int64)
