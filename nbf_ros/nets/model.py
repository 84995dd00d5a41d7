"""NBFNet: the U-Net that gives 3D-aware features, joint heatmaps and an initial body estimate.

No file I/O here (weights are loaded by ``nbf_ros.nets.weights.load_network``); ``forward``
has no data-dependent Python control flow, so ``torch.onnx.export`` traces the full network
(use :class:`ExportWrapper`, which returns a tuple in ``OUTPUT_NAMES`` order).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nbf_ros.config import NetConfig
from nbf_ros.nets.backbone import UNetBackbone
from nbf_ros.nets.heads import (DenseHead, IterativeRegressor, l2_normalize_channels,
                                regressor_spatial_size)
from nbf_ros.types import NUM_JOINTS

OUTPUT_NAMES: tuple[str, ...] = ("features", "pose6d", "betas", "cam", "heatmaps")
INPUT_NAME = "crops"


@dataclass
class NetOutput:
    """What the network predicts for a batch of B crops of side S (feature side h = S / 4).

    Attributes:
        features: B x D x h x h, unit length along D (cosine similarity = dot product).
        pose6d: B x 24 x 6 rotations (index 0 = global orientation in the crop camera's optical
            frame, 1..23 = SMPL body joints); convert with
            ``nbf_ros.geometry.rotations.rotation_6d_to_matrix``.
        betas: B x 10 shape coefficients.
        cam: B x 3 weak-perspective (s, tx, ty) in the convention of ``nbf_ros.geometry.camera``
            (``weak_perspective_to_translation`` with the crop camera gives the translation).
        heatmaps: B x 24 x h x h joint *logits*; a softmax over the h*h pixels of each joint is
            its location distribution (see ``heatmap_keypoints``).
    """

    features: torch.Tensor
    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    heatmaps: torch.Tensor

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in OUTPUT_NAMES)


class NBFNet(nn.Module):
    """U-Net (ResNet-style encoder) with feature, heatmap and regression heads.

    forward(crop: B x 3 x S x S float in [0, 1], S = cfg.crop_size) -> NetOutput.
    Input normalisation (to roughly zero mean, unit spread) happens inside, so every backend gets
    the same raw [0, 1] crop.
    """

    def __init__(self, cfg: NetConfig = NetConfig()) -> None:
        super().__init__()
        if cfg.feature_stride != 4:
            raise ValueError(f"NBFNet produces stride-4 features; NetConfig.feature_stride={cfg.feature_stride}")
        if cfg.crop_size % 32 != 0:
            raise ValueError(f"NetConfig.crop_size must be a multiple of 32, got {cfg.crop_size}")
        self.cfg = cfg
        self.backbone = UNetBackbone(cfg.base_channels, cfg.encoder_blocks)
        c = self.backbone.out_channels
        self.feature_head = DenseHead(c, cfg.head_channels, cfg.feature_dim)
        self.heatmap_head = DenseHead(c, cfg.head_channels, NUM_JOINTS)
        self.regressor = IterativeRegressor(self.backbone.deep_channels,
                                            regressor_spatial_size(cfg.crop_size),
                                            cfg.regressor_reduced_channels, cfg.regressor_hidden,
                                            cfg.regressor_iterations)
        # Crops are in [0, 1]; centre and scale them once here (fixed, not learned).
        self.register_buffer("pixel_mean", torch.full((1, 3, 1, 1), 0.5), persistent=False)
        self.register_buffer("pixel_scale", torch.full((1, 3, 1, 1), 1.0 / 0.25), persistent=False)

    def forward(self, crop: torch.Tensor) -> NetOutput:
        self._check_input(crop)
        decoded, deep = self.backbone((crop - self.pixel_mean) * self.pixel_scale)
        features = l2_normalize_channels(self.feature_head(decoded))
        heatmaps = self.heatmap_head(decoded)
        pose6d, betas, cam = self.regressor(deep)
        return NetOutput(features, pose6d, betas, cam, heatmaps)

    def _check_input(self, crop: torch.Tensor) -> None:
        # Skipped while tracing for export: the traced graph has fixed spatial shapes anyway.
        if torch.jit.is_tracing():
            return
        size = self.cfg.crop_size
        if crop.dim() != 4 or crop.shape[1] != 3 or crop.shape[2] != size or crop.shape[3] != size:
            raise ValueError(f"NBFNet expects B x 3 x {size} x {size} crops, got {tuple(crop.shape)}")


class ExportWrapper(nn.Module):
    """NBFNet with a tuple output (``OUTPUT_NAMES`` order) for torch.onnx.export / TensorRT."""

    def __init__(self, net: NBFNet) -> None:
        super().__init__()
        self.net = net
        # A new Module is in training mode; export restores the wrapper's mode afterwards, which
        # would silently switch an eval-mode net to training. Mirror the net's mode instead.
        self.train(net.training)

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net(crop).as_tuple()


def heatmap_keypoints(heatmaps: torch.Tensor, stride: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmax joint locations and confidences from heatmap logits.

    Args:
        heatmaps: B x J x h x w logits (NetOutput.heatmaps).
        stride: crop pixels per heatmap pixel.
    Returns:
        (uv B x J x 2 in crop pixels (pixel-centre convention), confidence B x J = the peak
        probability's share relative to a 3x3 neighbourhood mass, in [0, 1]).
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be B x J x h x w, got {tuple(heatmaps.shape)}")
    b, j, h, w = heatmaps.shape
    prob = torch.softmax(heatmaps.reshape(b, j, h * w), dim=-1).reshape(b, j, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device)
    u = (prob.sum(2) * xs).sum(-1)
    v = (prob.sum(3) * ys).sum(-1)
    # Feature pixel i covers crop pixels [i*stride, (i+1)*stride): its centre is i*stride + (stride-1)/2.
    uv = torch.stack([u, v], dim=-1) * stride + (stride - 1) / 2.0
    local = torch.nn.functional.avg_pool2d(prob, 3, stride=1, padding=1) * 9.0
    confidence = local.reshape(b, j, h * w).max(dim=-1).values.clamp(0.0, 1.0)
    return uv, confidence
