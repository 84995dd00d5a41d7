"""Neural Body Volume (NBV): Gaussian kernels attached to the body mesh (method.md steps 3-4).

Released code vs paper (both supported, chosen by ``NBVConfig``): the code uses one isotropic
precision for all kernels and O=3 "code3" orientation bins; the paper rotates covariances with
the joints ("anisotropic": skin-tangent discs rotated by each kernel's blended skinning
rotation) and reports O=4 as best ("sphere" bins: fixed directions in the camera frame).

This module has two layers:
- pure numpy *kernel layout* functions (which vertices carry kernels, which vertex belongs to
  which kernel, which limb a kernel belongs to), computed once from the rest mesh; the synthetic
  data generator and the trainer use them without torch;
- the torch ``NeuralBodyVolume`` module that turns a posed body into kernel centres, precisions
  and pose-dependent (orientation-binned) features for the renderer.

Joint indices are SMPL's 24 (``nbf_ros.types.JOINT_NAMES``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from nbf_ros.config import NBVConfig
from nbf_ros.geometry.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from nbf_ros.types import NUM_JOINTS

if TYPE_CHECKING:  # the layout functions need neither smplx nor the model file
    from nbf_ros.body.model import BodyModel, BodyOutput

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


# ----------------------------------------------------------------------------- torch module
ORIENTATION_SCHEMES = ("sphere", "code3")
# code3 bins (released code): camera-z component p of the unit limb direction against +-0.3.
CODE3_THRESHOLD = 0.3
CODE3_BINS = ("toward", "side", "away")  # p < -0.3 (points at the camera), |p| <= 0.3, p > 0.3
# Kernel spacing: mean distance to this many nearest kernels in the rest pose.
_SPACING_NEIGHBOURS = 6


@dataclass
class KernelState:
    """The NBV of a batch of B posed bodies (camera optical frame, metres).

    Attributes:
        means: B x K x 3 kernel centres (posed vertices at the kernel sites).
        precisions: B x K x 3 x 3 precision A of each kernel (density exp(-(x-mu)'A(x-mu))).
        orientation_weights: B x K x O soft bin weights, rows sum to 1.
        limb_directions: B x 9 x 3 unit limb directions (``LIMBS``) in the camera frame.
    """

    means: torch.Tensor
    precisions: torch.Tensor
    orientation_weights: torch.Tensor
    limb_directions: torch.Tensor


def sphere_bin_directions(num_bins: int) -> np.ndarray:
    """O x 3 fixed unit directions (camera frame) of the "sphere" orientation bins.

    O=2: towards/away from the camera (-z, +z); O=4: a regular tetrahedron with one vertex
    pointing at the camera (-z); otherwise a Fibonacci lattice (near-uniform on the sphere).
    """
    if num_bins < 2:
        raise ValueError(f"the sphere scheme needs at least 2 bins, got {num_bins}")
    if num_bins == 2:
        return np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    if num_bins == 4:
        ring = np.sqrt(8.0 / 9.0)
        angles = np.deg2rad([90.0, 210.0, 330.0])
        others = np.stack([ring * np.cos(angles), ring * np.sin(angles), np.full(3, 1.0 / 3.0)], 1)
        return np.concatenate([[[0.0, 0.0, -1.0]], others], 0)
    i = np.arange(num_bins) + 0.5
    z = 1.0 - 2.0 * i / num_bins
    phi = np.pi * (1.0 + np.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def orientation_weights(directions: torch.Tensor, num_bins: int, scheme: str, sharpness: float,
                        bin_directions: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Soft, differentiable orientation-bin weights of unit directions.

    Args:
        directions: ... x 3 unit limb directions in the camera frame.
        num_bins: O. O = 1 gives all ones (no pose dependence).
        scheme: "code3" (O must be 3): bins ``CODE3_BINS`` by p = direction z, weights
            sigmoid(s (p - 0.3)) for "away", sigmoid(s (-0.3 - p)) for "toward" and the rest for
            "side" (never negative: the two sigmoids sum to < 1 for |p| <= 1 at s = 10);
            "sphere": softmax over bins of s * cos(direction, bin direction).
        sharpness: s (NBVConfig.orientation_sharpness).
        bin_directions: O x 3 for "sphere" (default ``sphere_bin_directions(O)``).
    Returns:
        ... x O weights summing to 1.
    """
    if num_bins == 1:
        return torch.ones(*directions.shape[:-1], 1, dtype=directions.dtype, device=directions.device)
    if scheme == "code3":
        if num_bins != 3:
            raise ValueError(f"the code3 scheme has 3 bins, got {num_bins}")
        p = directions[..., 2]
        away = torch.sigmoid(sharpness * (p - CODE3_THRESHOLD))
        toward = torch.sigmoid(sharpness * (-CODE3_THRESHOLD - p))
        return torch.stack([toward, 1.0 - toward - away, away], dim=-1)
    if scheme != "sphere":
        raise ValueError(f"unknown orientation scheme {scheme!r}; choose from {ORIENTATION_SCHEMES}")
    if bin_directions is None:
        bin_directions = torch.as_tensor(sphere_bin_directions(num_bins), dtype=directions.dtype,
                                         device=directions.device)
    return torch.softmax(sharpness * directions @ bin_directions.T, dim=-1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """V x 3 area-weighted unit vertex normals of a triangle mesh."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def rest_precisions(rest_vertices: np.ndarray, faces: np.ndarray, kernel_vertex_ids: np.ndarray,
                    normal_precision: float, spacing_fraction: float) -> np.ndarray:
    """K x 3 x 3 anisotropic rest-pose precisions: flat discs tangent to the skin.

    Along the surface normal the precision is ``normal_precision`` (the isotropic value: the
    body's thickness cue stays as sharp as the released code's); in the tangent plane the
    standard deviation is ``spacing_fraction`` x the local kernel spacing h (mean distance to
    the nearest kernels), i.e. precision 1 / (2 (f h)^2), so neighbouring kernels overlap
    evenly however dense the sampling is locally. The default fraction 0.25 makes the median
    tangent precision close to the isotropic 4000: wider discs would reach far with small
    weights, and VoGE's "M nearest by peak depth" rule would then keep those tails instead of
    the kernels a ray really crosses (0.5 lost two thirds of a body's coverage at M = 10).
    """
    verts = _check_points(rest_vertices, "rest_vertices")
    ids = _check_ids(kernel_vertex_ids, verts.shape[0])
    centres = verts[ids]
    neighbours = min(_SPACING_NEIGHBOURS, ids.size - 1)
    if neighbours < 1:
        spacing = np.full(ids.size, 1.0 / np.sqrt(normal_precision))
    else:
        dist, _ = cKDTree(centres).query(centres, k=neighbours + 1)
        spacing = dist[:, 1:].mean(axis=1)
    tangent_precision = 1.0 / (2.0 * (spacing_fraction * spacing) ** 2)
    normal = vertex_normals(verts, np.asarray(faces, dtype=np.int64))[ids]
    outer = normal[:, :, None] * normal[:, None, :]
    return tangent_precision[:, None, None] * (np.eye(3) - outer) + normal_precision * outer


class NeuralBodyVolume(torch.nn.Module):
    """Gaussian kernels on the body with orientation-binned feature vectors (method.md 3-4).

    Stateless over poses: ``forward(body_output)`` turns a posed body into a ``KernelState``;
    all model data are buffers (kernel sites, limbs, rest precisions, feature bank), so they
    follow ``.to()`` and are saved in ``state_dict`` (the trainer's EMA bank included).
    """

    def __init__(self, body_model: "BodyModel", config: NBVConfig = NBVConfig(), seed: int = 0) -> None:
        """Lay kernels out on ``body_model``'s template mesh (farthest-point sampling, seed 0)
        and draw a random unit feature bank with ``seed``."""
        super().__init__()
        _check_config(config)
        self.config = config
        template = body_model.smpl.v_template.detach().cpu().double().numpy()
        weights = body_model.lbs_weights.detach().cpu().double().numpy()
        ids = select_kernel_vertices(template, config.num_kernels)
        dtype = body_model.smpl.v_template.dtype
        self.register_buffer("kernel_vertex_ids", torch.from_numpy(ids))
        self.register_buffer("kernel_part", torch.from_numpy(kernel_parts(weights, ids)))
        self.register_buffer("kernel_lbs_weights", torch.from_numpy(weights[ids]).to(dtype))
        rest = rest_precisions(template, body_model.faces, ids, config.isotropic_precision,
                               config.anisotropic_spacing_fraction)
        self.register_buffer("rest_precision", torch.from_numpy(rest).to(dtype))
        generator = torch.Generator().manual_seed(seed)
        bank = torch.randn(config.num_kernels, config.orientation_bins, config.feature_dim,
                           generator=generator, dtype=torch.float64)
        self.register_buffer("feature_bank", F.normalize(bank, dim=-1).to(dtype))
        bins = sphere_bin_directions(config.orientation_bins) if config.orientation_scheme == "sphere" \
            and config.orientation_bins > 1 else np.zeros((config.orientation_bins, 3))
        self.register_buffer("bin_directions", torch.from_numpy(bins).to(dtype))
        self.register_buffer("limb_joints", torch.tensor(LIMBS, dtype=torch.long))

    @property
    def num_kernels(self) -> int:
        return int(self.kernel_vertex_ids.shape[0])

    def set_feature_bank(self, bank: torch.Tensor) -> None:
        """Replace the K x O x D bank (e.g. from a trained checkpoint); rows are L2-normalised."""
        expected = tuple(self.feature_bank.shape)
        if tuple(bank.shape) != expected:
            raise ValueError(f"feature bank must be {expected}, got {tuple(bank.shape)}")
        self.feature_bank.copy_(F.normalize(bank.to(self.feature_bank), dim=-1))

    def forward(self, body: "BodyOutput") -> KernelState:
        """Kernel centres, precisions and orientation weights of B posed bodies.

        Args:
            body: BodyOutput with vertices B x V x 3, joints B x 24 x 3 and joint_transforms
                B x 24 x 4 x 4 (camera frame).
        """
        if body.vertices.ndim != 3 or body.joints.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError("body output must have vertices B x V x 3 and joints B x 24 x 3")
        means = body.vertices.index_select(1, self.kernel_vertex_ids)
        return self.kernel_state(means, body)

    def kernel_state(self, means: torch.Tensor, body: "BodyOutput") -> KernelState:
        """Like ``forward`` with the kernel centres B x K x 3 given (e.g. from
        ``BodyModel.pose_subset``, which poses only the kernel vertices); ``body.vertices`` unused."""
        if means.ndim != 3 or means.shape[1] != self.num_kernels:
            raise ValueError(f"means must be B x {self.num_kernels} x 3, got {tuple(means.shape)}")
        limbs = body.joints[:, self.limb_joints[:, 1]] - body.joints[:, self.limb_joints[:, 0]]
        limbs = F.normalize(limbs, dim=-1)  # B x 9 x 3
        cfg = self.config
        weights = orientation_weights(limbs.index_select(1, self.kernel_part), cfg.orientation_bins,
                                      cfg.orientation_scheme, cfg.orientation_sharpness,
                                      self.bin_directions)
        return KernelState(means, self._precisions(body), weights, limbs)

    def _precisions(self, body: "BodyOutput") -> torch.Tensor:
        batch = body.vertices.shape[0]
        shape = (batch, self.num_kernels, 3, 3)
        if self.config.covariance == "isotropic":
            eye = torch.eye(3, dtype=body.vertices.dtype, device=body.vertices.device)
            return (self.config.isotropic_precision * eye).expand(shape)
        rotations = body.joint_transforms[..., :3, :3]  # B x 24 x 3 x 3
        # Skinning rotation of each kernel: R_k = orthonormalise(sum_j w_kj R_j).
        blended = torch.einsum("kj,bjmn->bkmn", self.kernel_lbs_weights, rotations)
        rot = rotation_6d_to_matrix(matrix_to_rotation_6d(blended))
        return rot @ self.rest_precision @ rot.transpose(-1, -2)

    def kernel_features(self, state: KernelState) -> torch.Tensor:
        """B x K x D unit features: the orientation-weighted sum of each kernel's bank vectors."""
        mixed = torch.einsum("bko,kod->bkd", state.orientation_weights, self.feature_bank)
        return F.normalize(mixed, dim=-1)


def _check_config(config: NBVConfig) -> None:
    if config.num_kernels < 1 or config.feature_dim < 1 or config.orientation_bins < 1:
        raise ValueError("NBVConfig needs num_kernels, feature_dim and orientation_bins >= 1")
    if config.orientation_bins > 1:
        if config.orientation_scheme == "code3" and config.orientation_bins != 3:
            raise ValueError("NBVConfig: orientation_scheme 'code3' needs orientation_bins = 3")
        if config.orientation_scheme not in ORIENTATION_SCHEMES:
            raise ValueError(f"NBVConfig: unknown orientation_scheme {config.orientation_scheme!r}")
    if config.covariance not in ("isotropic", "anisotropic"):
        raise ValueError(f"NBVConfig: unknown covariance {config.covariance!r}")
