"""The body-side inputs of training: joints of predicted bodies, NBV orientation weights, and the
kernel neighbourhood, built from the embedded body model and the Neural Body Volume."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, vertices2joints

from nbf_ros.body.model import BodyModel, load_body_model
from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.training.trainer import BodyContext

if TYPE_CHECKING:
    from nbf_ros.body.nbv import NeuralBodyVolume


def kernel_adjacency(faces: np.ndarray, vertex_to_kernel: np.ndarray, num_kernels: int) -> torch.Tensor:
    """K x K bool: kernels that share a mesh edge (1-hop neighbours), plus the diagonal.

    Two kernels are neighbours when some mesh edge joins a vertex assigned to one and a vertex
    assigned to the other (assignment: ``nbf_ros.body.nbv.assign_vertices_to_kernels``). These
    pairs are excluded from each other's negatives in the contrastive loss: neighbouring kernels
    look alike and lie within a centimetre or two, so pushing them apart only adds noise.

    Args:
        faces: F x 3 vertex indices.
        vertex_to_kernel: (V,) kernel index per vertex.
        num_kernels: K.
    """
    faces = np.asarray(faces, dtype=np.int64)
    v2k = np.asarray(vertex_to_kernel, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be F x 3, got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= v2k.shape[0]):
        raise ValueError("faces index vertices outside vertex_to_kernel")
    if v2k.size and (v2k.min() < 0 or v2k.max() >= num_kernels):
        raise ValueError(f"vertex_to_kernel values must be in [0, {num_kernels})")
    adj = np.eye(num_kernels, dtype=bool)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ka, kb = v2k[faces[:, a]], v2k[faces[:, b]]
        adj[ka, kb] = True
        adj[kb, ka] = True
    return torch.from_numpy(adj)


def make_joints_fn(body: BodyModel):
    """(rotmats B x 24 x 3 x 3, betas B x 10) -> B x 24 x 3 joints with zero translation.

    SMPL's joints are the forward kinematics of the shaped rest joints (smplx's
    ``batch_rigid_transform``), so they need neither axis-angle (whose gradient is poor near
    pi, where an upright body facing the camera sits) nor the full vertex skinning.
    """
    def joints_fn(rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        rest_joints = vertices2joints(body.smpl.J_regressor, body.rest_vertices(betas))
        posed, _ = batch_rigid_transform(rotmats, rest_joints, body.parents, dtype=rotmats.dtype)
        return posed

    return joints_fn


def build_context(cfg: NbfConfig, device: torch.device) -> tuple[BodyContext, BodyModel, "NeuralBodyVolume"]:
    """Body model, NBV and the BodyContext the trainer uses (all on ``device``).

    Orientation weights of a training sample come from its true 3D joints through the NBV's own
    limb table, kernel limbs, bin directions and ``orientation_weights``, i.e. exactly the bins
    the fitting will use with the trained bank. Kernel order, neighbours and sites are the NBV's.
    """
    from nbf_ros.body.nbv import NeuralBodyVolume, orientation_weights
    from nbf_ros.data.scene import body_labels

    body = load_body_model(resolve_path(cfg.body.model_path), cfg.body.num_betas)
    nbv = NeuralBodyVolume(body, cfg.nbv)
    labels = body_labels(body, nbv.kernel_vertex_ids.numpy())
    adjacency = kernel_adjacency(labels.faces, labels.vertex_kernel, labels.num_kernels)
    sites = torch.as_tensor(labels.rest_vertices[labels.kernel_vertex_ids], dtype=torch.float32)
    body.to(device)
    nbv.to(device)
    c = cfg.nbv

    def orientation(joints3d: torch.Tensor) -> torch.Tensor:
        """B x 24 x 3 camera-frame joints -> B x K x O bin weights."""
        limbs = joints3d[:, nbv.limb_joints[:, 1]] - joints3d[:, nbv.limb_joints[:, 0]]
        limbs = torch.nn.functional.normalize(limbs, dim=-1).index_select(1, nbv.kernel_part)
        return orientation_weights(limbs, c.orientation_bins, c.orientation_scheme,
                                   c.orientation_sharpness, nbv.bin_directions)

    context = BodyContext(make_joints_fn(body), orientation, adjacency.to(device), sites.to(device),
                          nbv.kernel_part)
    return context, body, nbv
