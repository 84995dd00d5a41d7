"""Validation of a network + bank on labelled batches: regression errors and feature quality.

Shared by the trainer (periodic validation in metrics.jsonl) and ``benchmarks/train_eval.py``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from nbf_ros.config import NbfConfig
from nbf_ros.evaluation.metrics import FeatureCounts, feature_counts, mpjpe, pa_mpjpe
from nbf_ros.geometry.rotations import rotation_6d_to_matrix
from nbf_ros.nets.bank import MemoryBank
from nbf_ros.nets.model import NBFNet, heatmap_keypoints
from nbf_ros.training.trainer import BodyContext

MM_PER_M = 1000.0


@torch.no_grad()
def evaluate_batches(net: NBFNet, bank: MemoryBank, ctx: BodyContext,
                     batches: Iterable[dict[str, Any]], cfg: NbfConfig) -> dict[str, float]:
    """Mean metrics over the batches (each a collated dataset dict on the net's device).

    Returns keys: mpjpe_mm, pa_mpjpe_mm (regression head only, 24 SMPL joints, pelvis-aligned /
    Procrustes-aligned), heatmap_px (mean 2D error of the heatmap soft-argmax over in-crop
    joints, crop pixels), kernel_top1, kernel_top1_within_1hop, kernel_top1_within_10cm,
    bin_acc_given_kernel,
    background_acc (see ``feature_counts``), samples.
    """
    was_training = net.training
    net.eval()
    counts = FeatureCounts()
    errors, pa_errors, hm_err, hm_n, samples = [], [], 0.0, 0.0, 0
    prototype = bank.background_prototype() if int(bank.background_count) > 0 else \
        torch.nn.functional.normalize(torch.ones(bank.shape[2], device=bank.kernel_features.device), dim=0)
    size = cfg.net.crop_size
    for batch in batches:
        out = net(batch["image"])
        joints = ctx.joints_fn(rotation_6d_to_matrix(out.pose6d), out.betas)
        errors.append(mpjpe(joints, batch["joints3d"]) * MM_PER_M)
        pa_errors.append(pa_mpjpe(joints, batch["joints3d"]) * MM_PER_M)
        uv, _ = heatmap_keypoints(out.heatmaps, cfg.net.feature_stride)
        inside = ((batch["joints2d"] >= -0.5) & (batch["joints2d"] <= size - 0.5)).all(-1)
        hm_err += float(((uv - batch["joints2d"]).norm(dim=-1) * inside).sum())
        hm_n += float(inside.sum())
        counts.add(feature_counts(out.features, batch["kernel_index"],
                                  ctx.orientation_weights(batch["joints3d"]),
                                  bank.kernel_features, prototype, ctx.adjacency,
                                  ctx.kernel_sites, ctx.kernel_part))
        samples += batch["image"].shape[0]
    net.train(was_training)
    if samples == 0:
        return {}
    return {"mpjpe_mm": float(torch.cat(errors).mean()), "pa_mpjpe_mm": float(torch.cat(pa_errors).mean()),
            "heatmap_px": hm_err / max(hm_n, 1.0), **counts.summary(), "samples": float(samples)}


@torch.no_grad()
def evaluate_features(features_fn: Callable[[dict[str, Any]], torch.Tensor], bank: MemoryBank,
                      ctx: BodyContext, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Feature metrics only (``feature_counts``) of any feature source on labelled batches.

    ``features_fn(batch) -> B x D x h x w`` unit features; each batch needs kernel_index and
    joints3d. The trunk feature head is measured with this, the same counts as the U-Net's.
    """
    counts = FeatureCounts()
    prototype = _prototype(bank)
    samples = 0
    for batch in batches:
        feats = features_fn(batch)
        counts.add(feature_counts(feats, batch["kernel_index"], ctx.orientation_weights(batch["joints3d"]),
                                  bank.kernel_features, prototype, ctx.adjacency,
                                  ctx.kernel_sites, ctx.kernel_part))
        samples += feats.shape[0]
    return {**counts.summary(), "samples": float(samples)} if samples else {}


def _prototype(bank: MemoryBank) -> torch.Tensor:
    """The bank's background prototype; a fixed unit vector while the background bank is empty."""
    if int(bank.background_count) > 0:
        return bank.background_prototype()
    return torch.nn.functional.normalize(torch.ones(bank.shape[2], device=bank.kernel_features.device), dim=0)
