"""Training losses: kernel contrast (CoKe), background term, regression and heatmap losses.

All functions are pure (tensors in, scalar tensor out) so they can be tested against brute-force
references; the trainer decides which pixels are sampled and how the terms are weighted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nbf_ros.types import NUM_JOINTS


def kernel_contrastive_loss(features: torch.Tensor, kernel_ids: torch.Tensor,
                            bin_weights: torch.Tensor, bank: torch.Tensor,
                            background_bank: torch.Tensor, excluded: torch.Tensor,
                            temperature: float, background_weight: float) -> torch.Tensor:
    """Mean over N foreground pixels of the orientation-weighted InfoNCE loss against the bank.

    For a pixel with feature f at kernel k, bin weights w_o, and s(x) = f.x / T:
        negatives  = bank[j, o'] for every kernel j not in excluded[k] (k itself and its 1-hop
                     neighbours; all bins), and every background feature b_m with weight
                     ``background_weight`` (its logit is shifted by log(weight));
        loss_o     = -log( e^{s(bank[k,o])} / (e^{s(bank[k,o])} + sum_neg e^{s(neg)}) )
                   = softplus(logsumexp(negatives) - s(bank[k,o]))
        loss       = sum_o w_o loss_o.
    The kernel's other bins are neither positives nor negatives of bin o (they describe the same
    surface point seen with the limb turned elsewhere).

    Args:
        features: N x D unit image features.
        kernel_ids: (N,) int64 kernel of each pixel.
        bin_weights: N x O orientation weights (rows sum to 1).
        bank: K x O x D unit kernel features (no gradient flows into it).
        background_bank: M x D unit background features (M may be 0).
        excluded: K x K bool, True where kernel j is not a negative of kernel k (diagonal True).
        temperature: softmax temperature (0.07).
        background_weight: weight of each background negative (5e-3).
    Returns:
        scalar loss (0 if N = 0).
    """
    n, d = features.shape
    k, o, _ = bank.shape
    if n == 0:
        return features.sum() * 0.0
    sim = (features @ bank.reshape(k * o, d).T).reshape(n, k, o) / temperature
    positives = sim[torch.arange(n, device=features.device), kernel_ids]  # N x O
    negatives = sim.masked_fill(excluded[kernel_ids][:, :, None], float("-inf")).reshape(n, k * o)
    if background_bank.shape[0] > 0:
        bg = features @ background_bank.T / temperature + math.log(background_weight)
        negatives = torch.cat([negatives, bg], dim=1)
    neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)
    return (bin_weights * F.softplus(neg_lse - positives)).sum(1).mean()


def background_loss(features: torch.Tensor, bank: torch.Tensor, prototype: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """Push sampled background features away from every kernel feature, towards the clutter feature.

    loss = mean_p softplus(logsumexp_{k,o}(f_p . bank[k,o] / T) - f_p . prototype / T): a softmax
    in which the (mean) background feature is the positive and all K x O kernel features are
    negatives, which is what the fitting's clutter model needs (background closer to the
    prototype than to any kernel).

    Args:
        features: N x D unit background features.
        bank: K x O x D.
        prototype: (D,) unit background feature.
    """
    if features.shape[0] == 0:
        return features.sum() * 0.0
    kernel_logits = features @ bank.reshape(-1, bank.shape[-1]).T / temperature
    pos = features @ prototype / temperature
    return F.softplus(torch.logsumexp(kernel_logits, dim=1) - pos).mean()


def gaussian_heatmap_targets(joints2d: torch.Tensor, size: int, stride: int,
                             sigma: float) -> torch.Tensor:
    """B x J x h x h normalised Gaussians at the joints (feature-pixel units), h = size / stride.

    Joints are crop pixels (pixel-centre convention); feature pixel i covers crop pixels
    [i*stride, (i+1)*stride), so its centre is at i*stride + (stride - 1) / 2.
    """
    h = size // stride
    grid = (torch.arange(h, dtype=joints2d.dtype, device=joints2d.device) * stride
            + (stride - 1) / 2.0)
    du = (grid[None, None, :] - joints2d[..., 0:1]) / stride  # B x J x h
    dv = (grid[None, None, :] - joints2d[..., 1:2]) / stride
    g = torch.exp(-0.5 * (dv[..., :, None] ** 2 + du[..., None, :] ** 2) / sigma ** 2)
    return g / g.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)


def heatmap_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spatial-softmax cross-entropy per joint, weighted (B x J weights, 0 = ignore).

    Args:
        logits: B x J x h x w heatmap logits.
        targets: B x J x h x w distributions (each sums to 1).
        weights: B x J.
    """
    log_prob = torch.log_softmax(logits.flatten(2), dim=-1)
    ce = -(targets.flatten(2) * log_prob).sum(-1)  # B x J
    return (ce * weights).sum() / weights.sum().clamp(min=1.0)


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor, size: int) -> torch.Tensor:
    """B x J x 3 body points (zero translation) -> B x J x 2 crop pixels under cam (s, tx, ty).

    n = s (X_xy + t_xy) in normalised crop coordinates, u = (n + 1) size / 2 - 0.5
    (the convention of ``nbf_ros.geometry.camera``).
    """
    n = cam[:, None, 0:1] * (points[..., :2] + cam[:, None, 1:3])
    return (n + 1.0) * (size / 2.0) - 0.5


@dataclass
class RegressionTerms:
    """Unweighted regression losses (scalars)."""

    joints3d: torch.Tensor
    joints2d: torch.Tensor
    rotations: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor


def regression_losses(pred_joints: torch.Tensor, pred_rotmats: torch.Tensor, pred_betas: torch.Tensor,
                      pred_cam: torch.Tensor, gt_joints3d: torch.Tensor, gt_joints2d: torch.Tensor,
                      joint_weights: torch.Tensor, gt_rotmats: torch.Tensor, gt_betas: torch.Tensor,
                      gt_cam: torch.Tensor, size: int) -> RegressionTerms:
    """MSE losses of the regression head against ground truth.

    Args:
        pred_joints: B x 24 x 3 body-model joints of the prediction with zero translation.
        pred_rotmats / gt_rotmats: B x 24 x 3 x 3.
        pred_betas / gt_betas: B x 10.
        pred_cam / gt_cam: B x 3 weak-perspective cameras.
        gt_joints3d: B x 24 x 3 (any translation; compared pelvis-relative).
        gt_joints2d: B x 24 x 2 crop pixels.
        joint_weights: B x 24 (e.g. 1 inside the crop, 0 outside).
        size: crop size in pixels (2D errors are measured in normalised units, 2 = crop side).
    """
    if pred_joints.shape[1:] != (NUM_JOINTS, 3) or gt_joints3d.shape != pred_joints.shape:
        raise ValueError(f"joints must be B x {NUM_JOINTS} x 3, got {tuple(pred_joints.shape)} "
                         f"and {tuple(gt_joints3d.shape)}")
    rel_pred = pred_joints - pred_joints[:, :1]
    rel_gt = gt_joints3d - gt_joints3d[:, :1]
    j3d = ((rel_pred - rel_gt) ** 2).sum(-1).mean()
    uv = weak_perspective_project(pred_joints, pred_cam, size)
    err2d = (((uv - gt_joints2d) * (2.0 / size)) ** 2).sum(-1)
    j2d = (err2d * joint_weights).sum() / joint_weights.sum().clamp(min=1.0)
    rot = ((pred_rotmats - gt_rotmats) ** 2).sum((-2, -1)).mean()
    return RegressionTerms(j3d, j2d, rot, ((pred_betas - gt_betas) ** 2).mean(),
                           ((pred_cam - gt_cam) ** 2).mean())
