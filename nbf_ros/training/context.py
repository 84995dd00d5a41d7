"""The body-side inputs of training: joints of predicted bodies, NBV orientation weights, and the
kernel neighbourhood, built from the embedded body model and the Neural Body Volume."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from smplx.lbs import batch_rigid_transform, vertices2joints

from nbf_ros.body.model import BodyModel, load_body_model
from nbf_ros.config import NbfConfig, resolve_path
from nbf_ros.training.bank import kernel_adjacency
from nbf_ros.training.trainer import BodyContext

if TYPE_CHECKING:
    from nbf_ros.body.nbv import NeuralBodyVolume


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
