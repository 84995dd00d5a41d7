"""One training step: network forward, pixel sampling, all loss terms, bank update.

The trainer holds the state (network, optimiser, memory bank); the losses are pure functions in
``losses.py``. Everything random in a step is drawn from a generator seeded by (seed, step), so a
resumed run computes exactly what the uninterrupted run would have.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn

from nbf_ros.config import NbfConfig, TrainConfig
from nbf_ros.geometry.camera import translation_to_weak_perspective
from nbf_ros.geometry.rotations import (axis_angle_to_matrix, matrix_to_rotation_6d,
                                        rotation_6d_to_matrix)
from nbf_ros.nets.bank import MemoryBank, apply_ema, bank_statistics
from nbf_ros.nets.heads import mean_pose6d
from nbf_ros.nets.model import NBFNet, NetOutput
from nbf_ros.training.losses import (background_loss, gaussian_heatmap_targets, heatmap_loss,
                                     regression_losses)
from nbf_ros.training.targets import make_feature_target
from nbf_ros.types import NUM_JOINTS

JointsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(rotmats B x 24 x 3 x 3, betas B x 10) -> body-model joints B x 24 x 3 with zero translation."""
OrientationFn = Callable[[torch.Tensor], torch.Tensor]
"""joints3d B x 24 x 3 (camera frame) -> NBV orientation weights B x K x O (rows sum to 1)."""


@dataclass
class BodyContext:
    """What training needs from the body model and the Neural Body Volume."""

    joints_fn: JointsFn
    orientation_weights: OrientationFn
    adjacency: torch.Tensor  # K x K bool, 1-hop kernel neighbours incl. self
    kernel_sites: torch.Tensor  # K x 3 rest-pose kernel positions (metres), for metrics
    kernel_part: torch.Tensor  # (K,) limb id of each kernel, for metrics


@dataclass
class StepResult:
    """Loss terms and the (detached) samples that update the bank after the backward pass.

    Attributes:
        total: scalar weighted loss (with graph).
        terms: unweighted terms and the train top-1, as floats.
        fg_features: N x D sampled foreground features; kernel_ids (N,); bin_weights N x O.
        bg_features: M x D sampled background features.
    """

    total: torch.Tensor
    terms: dict[str, float]
    fg_features: torch.Tensor
    kernel_ids: torch.Tensor
    bin_weights: torch.Tensor
    bg_features: torch.Tensor


@dataclass
class FeatureTerms:
    """The feature losses of one batch and the samples they used (``Trainer.feature_terms``).

    Attributes: contrast, background: scalar losses (with graph); fg_features N x D (with graph);
    kernel_ids (N,); bin_weights N x O; bg_features M x D (with graph).
    """

    contrast: torch.Tensor
    background: torch.Tensor
    fg_features: torch.Tensor
    kernel_ids: torch.Tensor
    bin_weights: torch.Tensor
    bg_features: torch.Tensor


def excluded_negatives(ctx: BodyContext, radius_m: float) -> torch.Tensor:
    """K x K bool: kernels that are not negatives of each other in the contrast.

    Always the 1-hop mesh neighbours (and each kernel itself), as in the paper; with
    ``radius_m`` > 0 also every kernel within that rest-pose distance: a tolerant contrast for
    feature maps too coarse to separate kernels a few centimetres apart.
    """
    if radius_m <= 0:
        return ctx.adjacency
    sites = ctx.kernel_sites.to(ctx.adjacency.device)
    return ctx.adjacency | (torch.cdist(sites, sites) <= radius_m)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The step's random source: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank)


def sample_pixels(kernel_index: torch.Tensor, max_fg: int, bg_per_image: int,
                  gen: torch.Generator) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Foreground (kernel >= 0) and background (-1) feature pixels to use in the losses.

    Args:
        kernel_index: B x h x w int64.
        max_fg: keep a uniform random subset of at most this many foreground pixels.
        bg_per_image: background pixels drawn per image (with replacement; images without
            background contribute none).
    Returns:
        ((b, y, x) foreground index tensors, (b, y, x) background index tensors).
    """
    b, h, w = kernel_index.shape
    fg = (kernel_index >= 0).nonzero(as_tuple=False)  # N x 3 (b, y, x)
    if fg.shape[0] > max_fg:
        fg = fg[torch.randperm(fg.shape[0], generator=gen)[:max_fg].to(fg.device)]
    bg_mask = (kernel_index < 0).reshape(b, h * w).float()
    has_bg = bg_mask.sum(1) > 0
    probs = torch.where(has_bg[:, None], bg_mask, torch.ones_like(bg_mask))
    flat = torch.multinomial(probs.cpu(), bg_per_image, replacement=True, generator=gen).to(kernel_index.device)
    rows = torch.arange(b, device=kernel_index.device)[:, None].expand_as(flat)
    keep = has_bg[:, None].expand_as(flat)
    rows, flat = rows[keep], flat[keep]
    return (fg[:, 0], fg[:, 1], fg[:, 2]), (rows, flat // w, flat % w)


def target_rotmats(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """B x 24 x 3 x 3 ground-truth rotations (global orient + 23 body joints)."""
    aa = torch.cat([batch["global_orient"], batch["body_pose"]], dim=1).reshape(-1, NUM_JOINTS, 3)
    return axis_angle_to_matrix(aa)


def target_cam(batch: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """B x 3 weak-perspective camera equivalent to the true translation in the crop camera."""
    cam = batch["crop_camera"]  # B x 4 (fx, fy, cx, cy)
    return translation_to_weak_perspective(batch["transl"], cam[:, 0], cam[:, 2:4], size)


@torch.no_grad()
def data_mean_body(batch: dict[str, torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HMR's start body from a batch of training samples: (pose6d 24 x 6, cam (3,)).

    Body joints: the per-joint mean of the true rotation matrices' 6D columns, re-orthonormalised.
    The root stays upright and facing the camera: with every yaw in the data, a mean root
    rotation is meaningless. The camera is the mean weak-perspective camera of the crops.
    """
    mean6d = matrix_to_rotation_6d(target_rotmats(batch)).mean(0)  # 24 x 6
    pose6d = matrix_to_rotation_6d(rotation_6d_to_matrix(mean6d))
    pose6d[0] = mean_pose6d()[0]
    return pose6d, target_cam(batch, size).mean(0)


class Trainer:
    """Network + memory bank + optimiser, and the step that updates all three.

    ``model`` is what runs the forward pass (the DDP wrapper under torchrun, else the net).
    """

    def __init__(self, cfg: NbfConfig, ctx: BodyContext, device: torch.device,
                 model: Optional[nn.Module] = None, net: Optional[NBFNet] = None) -> None:
        self.cfg = cfg
        self.tcfg: TrainConfig = cfg.train
        self.ctx = ctx
        self.device = device
        torch.manual_seed(self.tcfg.seed)
        self.net = net if net is not None else NBFNet(cfg.net).to(device)
        self.model = model if model is not None else self.net
        k = int(ctx.adjacency.shape[0])
        self.bank = MemoryBank(k, cfg.nbv.orientation_bins, cfg.net.feature_dim,
                               self.tcfg.background_bank_size, seed=self.tcfg.seed).to(device)
        self.adjacency = excluded_negatives(ctx, self.tcfg.neighbour_radius_m).to(device)
        self.target = make_feature_target(self.tcfg.feature_target, ctx.adjacency.to(device),
                                          ctx.kernel_sites.to(device), self.adjacency,
                                          self.tcfg.surface_sigma_m, self.tcfg.part_count)
        with torch.no_grad():  # a patch's kernels start (and stay) with one shared entry
            self.bank.kernel_features.copy_(self.target.expand(
                self.target.class_bank(self.bank.kernel_features)))
        decay, no_decay = [], []
        for name, p in self.net.named_parameters():
            (no_decay if p.dim() <= 1 else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.tcfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=self.tcfg.lr)

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 5% of ``lr`` at ``steps``."""
        t = self.tcfg
        if step < t.warmup_steps:
            return t.lr * (step + 1) / t.warmup_steps
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
        return t.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def compute(self, batch: dict[str, torch.Tensor], step: int, rank: int = 0) -> StepResult:
        """Forward pass and all loss terms (the bank is read, not changed)."""
        t, w = self.tcfg, self.tcfg.loss
        size = self.cfg.net.crop_size
        gen = step_generator(t.seed, step, rank)
        out: NetOutput = self.model(batch["image"])
        f = self.feature_terms(out.features, batch, gen)
        pred_rot = rotation_6d_to_matrix(out.pose6d)
        pred_joints = self.ctx.joints_fn(pred_rot, out.betas)
        in_crop = ((batch["joints2d"] >= -0.5) & (batch["joints2d"] <= size - 0.5)).all(-1).float()
        reg = regression_losses(pred_joints, pred_rot, out.betas, out.cam, batch["joints3d"],
                                batch["joints2d"], in_crop, target_rotmats(batch), batch["betas"],
                                target_cam(batch, size), size)
        hm_targets = gaussian_heatmap_targets(batch["joints2d"], size, self.cfg.net.feature_stride,
                                              t.heatmap_sigma)
        hm = heatmap_loss(out.heatmaps, hm_targets, in_crop)
        terms = {"contrastive": f.contrast, "background": f.background, "joints3d": reg.joints3d,
                 "joints2d": reg.joints2d, "rotations": reg.rotations, "betas": reg.betas,
                 "cam": reg.cam, "heatmaps": hm}
        total = sum(getattr(w, name) * value for name, value in terms.items())
        logged = {name: float(value.detach()) for name, value in terms.items()}
        logged["train_kernel_top1"] = self._top1(f.fg_features.detach(), f.kernel_ids)
        return StepResult(total, logged, f.fg_features.detach(), f.kernel_ids, f.bin_weights,
                          f.bg_features.detach())

    def feature_terms(self, features: torch.Tensor, batch: dict[str, torch.Tensor],
                      gen: torch.Generator) -> "FeatureTerms":
        """Pixel sampling, kernel contrast and background term of B x D x h x w unit features
        against the bank (read, not changed); batch needs kernel_index and joints3d. Shared by
        the U-Net and the trunk feature head (``training/head_train.py``)."""
        t = self.tcfg
        with torch.no_grad():
            orient = self.ctx.orientation_weights(batch["joints3d"])  # B x K x O
        (fb, fy, fx), (bb, by, bx) = sample_pixels(batch["kernel_index"], t.max_contrast_pixels,
                                                   t.background_pixels_per_image, gen)
        feats = features.permute(0, 2, 3, 1)  # B x h x w x D
        fg_feats, bg_feats = feats[fb, fy, fx], feats[bb, by, bx]
        kid = batch["kernel_index"][fb, fy, fx]
        bins = orient[fb, kid]
        bank = self.bank.kernel_features
        contrast = self.target.loss(fg_feats, kid, bins, bank, self.bank.valid_background(),
                                    t.temperature, t.background_negative_weight)
        prototype = self._prototype(bg_feats)
        bg = background_loss(bg_feats, self.target.class_bank(bank), prototype, t.temperature)
        return FeatureTerms(contrast, bg, fg_feats, kid, bins, bg_feats)

    def train_step(self, batch: dict[str, torch.Tensor], step: int, rank: int = 0) -> dict[str, float]:
        """One optimiser step; returns the logged terms plus total loss and learning rate."""
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        result = self.compute(batch, step, rank)
        if not torch.isfinite(result.total):
            raise FloatingPointError(f"step {step}: non-finite loss {result.terms}")
        self.optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        if self.tcfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.tcfg.grad_clip)
        self.optimizer.step()
        # The bank moves only after backward: the loss graph still needs the bank it was computed with.
        self._update_bank(result.fg_features, result.kernel_ids, result.bin_weights, result.bg_features)
        return {"loss": float(result.total.detach()), "lr": lr, **result.terms}

    def _prototype(self, bg_feats: torch.Tensor) -> torch.Tensor:
        if int(self.bank.background_count) > 0:
            return self.bank.background_prototype()
        if bg_feats.shape[0] == 0:
            return torch.nn.functional.normalize(torch.ones(self.bank.shape[2], device=self.device), dim=0)
        return torch.nn.functional.normalize(bg_feats.detach().mean(0), dim=0)

    @torch.no_grad()
    def _top1(self, feats: torch.Tensor, kid: torch.Tensor) -> float:
        if feats.shape[0] == 0:
            return 0.0
        classes = self.target.class_bank(self.bank.kernel_features)
        c, o, d = classes.shape
        best = (feats @ classes.reshape(c * o, d).T).argmax(1) // o
        return float((best == self.target.class_of_kernel[kid]).float().mean())

    @torch.no_grad()
    def _update_bank(self, feats: torch.Tensor, kid: torch.Tensor, bins: torch.Tensor,
                     bg_feats: torch.Tensor) -> None:
        target = self.target
        counts, wsum, fsum = bank_statistics(feats, target.class_of_kernel[kid], bins, target.num_classes)
        if dist.is_available() and dist.is_initialized():
            for tensor in (counts, wsum, fsum):
                dist.all_reduce(tensor)
            bg_feats = _all_gather_rows(bg_feats)
        moved = apply_ema(target.class_bank(self.bank.kernel_features), counts, wsum, fsum,
                          self.tcfg.bank_momentum)
        self.bank.kernel_features.copy_(target.expand(moved))
        self.bank.push_background(bg_feats)

    def state(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "bank": self.bank.state_dict(),
                "optimizer": self.optimizer.state_dict()}


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate N_r x D tensors from all ranks (row counts may differ)."""
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    biggest = int(max(int(s) for s in sizes))
    padded = torch.zeros(biggest, x.shape[1], dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s)] for g, s in zip(gathered, sizes)], dim=0)
