"""Heads on the U-Net: dense features, joint heatmaps, and the iterative body-parameter regressor.

Regressor choice: HMR-style iterative error feedback (3 refinements from a mean body), not PARE's
part attention. Reasons: it is a few fully connected layers on a fixed-size input (trivial for
ONNX/TensorRT, no spatial softmax over 24 attention maps), it trains stably from scratch, and the
occlusion robustness that PARE buys with attention is what the neural body fitting stage provides
in this method anyway. The regressor reads the deepest encoder map *flattened* (after a 1x1
reduction) rather than globally pooled: without ImageNet pretraining, keeping where things are in
the crop makes pose and camera much easier to learn.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from nbf_ros.nets.backbone import ConvBNReLU
from nbf_ros.types import NUM_BETAS, NUM_JOINTS

POSE6D_SIZE = NUM_JOINTS * 6
CAM_SIZE = 3
PARAM_SIZE = POSE6D_SIZE + NUM_BETAS + CAM_SIZE
# Initial weak-perspective scale: a 1.7 m person filling a crop of 1.2 x its height spans
# 2 / 1.2 normalised units, so s = (2 / 1.2) / 1.7 ~ 1.0.
INIT_CAM_SCALE = 1.0


def mean_pose6d() -> torch.Tensor:
    """24 x 6 start pose: upright, facing the camera (global orient (pi, 0, 0)), joints at rest.

    R = diag(1, -1, -1) for the root, identity for the joints; 6D = the first two columns.
    """
    pose = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(NUM_JOINTS, 1)
    pose[0] = torch.tensor([1.0, 0.0, 0.0, 0.0, -1.0, 0.0])
    return pose


class DenseHead(nn.Module):
    """3x3 ConvBNReLU then a 1x1 projection: B x C x h x w -> B x out x h x w."""

    def __init__(self, c_in: int, hidden: int, c_out: int) -> None:
        super().__init__()
        self.body = ConvBNReLU(c_in, hidden)
        self.proj = nn.Conv2d(hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


class IterativeRegressor(nn.Module):
    """HMR-style iterative error feedback from a mean body.

    forward(deep: B x C x h x w) -> (pose6d B x 24 x 6, betas B x 10, cam B x 3).
    Each of ``iterations`` steps predicts a correction from [image code, current estimate]; the
    loop count is a constant, so export traces it into a fixed unrolled graph.
    """

    def __init__(self, c_in: int, spatial: int, reduced: int, hidden: int, iterations: int) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(c_in, reduced, kernel=1)
        code = reduced * spatial * spatial
        self.encode = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(inplace=True))
        self.refine = nn.Sequential(nn.Linear(hidden + PARAM_SIZE, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.delta = nn.Linear(hidden, PARAM_SIZE)
        # Small initial corrections so training starts from the mean body (as HMR does).
        nn.init.xavier_uniform_(self.delta.weight, gain=0.01)
        nn.init.zeros_(self.delta.bias)
        self.iterations = iterations
        init = torch.cat([mean_pose6d().flatten(), torch.zeros(NUM_BETAS),
                          torch.tensor([INIT_CAM_SCALE, 0.0, 0.0])])
        self.register_buffer("init_params", init)

    @torch.no_grad()
    def set_initial(self, pose6d: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor) -> None:
        """Replace the start body (HMR starts from the training data's mean body).

        Args: pose6d 24 x 6, betas (10,), cam (3,).
        """
        if pose6d.shape != (NUM_JOINTS, 6) or betas.shape != (NUM_BETAS,) or cam.shape != (CAM_SIZE,):
            raise ValueError(f"expected 24 x 6, (10,), (3,); got {tuple(pose6d.shape)}, "
                             f"{tuple(betas.shape)}, {tuple(cam.shape)}")
        self.init_params.copy_(torch.cat([pose6d.flatten(), betas, cam]).to(self.init_params))

    def forward(self, deep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        code = self.encode(self.reduce(deep).flatten(1))
        params = self.init_params.unsqueeze(0).expand(deep.shape[0], -1)
        for _ in range(self.iterations):
            params = params + self.delta(self.refine(torch.cat([code, params], dim=1)))
        pose6d = params[:, :POSE6D_SIZE].reshape(-1, NUM_JOINTS, 6)
        betas = params[:, POSE6D_SIZE:POSE6D_SIZE + NUM_BETAS]
        cam = params[:, POSE6D_SIZE + NUM_BETAS:]
        return pose6d, betas, cam


def l2_normalize_channels(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Unit-length feature vectors along dim 1 (B x D x h x w); eps keeps zeros finite."""
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + eps * eps)


def regressor_spatial_size(crop_size: int) -> int:
    """Side of the deepest map (stride 32) for a crop size; the regressor's input size depends on it."""
    return int(math.ceil(crop_size / 32))


