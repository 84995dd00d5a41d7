"""Evaluation metrics, one copy each: joint errors (MPJPE, PA-MPJPE, PCKh), ROC AUC (visibility,
confidence) and feature quality against the memory bank.

Used by the trainer's periodic validation, the occlusion protocol (``evaluation.occlusion``),
the demo's scoring and the benchmarks. Joint errors take torch tensors or numpy arrays
(``root_aligned_error``) or have a numpy form (``procrustes_aligned``) over the same code, so
every number of the project is computed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

Joints = TypeVar("Joints", np.ndarray, torch.Tensor)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform (scale, rotation, translation) of pred onto target, per batch element.

    Umeyama's closed form: centre both sets, SVD of the 3 x 3 cross-covariance, reflection fixed
    by the determinant sign. pred, target: B x J x 3 -> aligned pred B x J x 3.
    """
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both be B x J x 3, got {tuple(pred.shape)}, {tuple(target.shape)}")
    mu_p, mu_t = pred.mean(1, keepdim=True), target.mean(1, keepdim=True)
    p, t = pred - mu_p, target - mu_t
    cov = t.transpose(1, 2) @ p  # B x 3 x 3, sum_j t_j p_j^T
    u, s, vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vh))
    d = torch.ones_like(s)
    d[:, 2] = sign
    rot = u @ torch.diag_embed(d) @ vh  # maps centred pred onto centred target
    scale = (s * d).sum(-1) / (p * p).sum((1, 2)).clamp(min=1e-12)
    return scale[:, None, None] * p @ rot.transpose(1, 2) + mu_t


def procrustes_aligned(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """J x 3 prediction after the similarity transform that best fits it to ``truth`` (numpy,
    float64; ``procrustes_align`` on a batch of one)."""
    aligned = procrustes_align(torch.from_numpy(pred[None]).double(), torch.from_numpy(truth[None]).double())
    return aligned[0].numpy()


def root_aligned_error(pred: Joints, truth: Joints, root: int = 0) -> Joints:
    """... x J x 3 -> ... x J per-joint distances after aligning the root joints (input units).

    Takes numpy arrays (the benchmarks) or torch tensors (training's validation) alike.
    """
    diff = (pred - pred[..., root:root + 1, :]) - (truth - truth[..., root:root + 1, :])
    return diff.norm(dim=-1) if isinstance(diff, torch.Tensor) else np.linalg.norm(diff, axis=-1)


def mpjpe(pred: torch.Tensor, target: torch.Tensor, root: int = 0) -> torch.Tensor:
    """B per-sample mean joint error after aligning the roots (same units as the input)."""
    return root_aligned_error(pred, target, root).mean(-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """B per-sample mean joint error after Procrustes alignment."""
    return (procrustes_align(pred, target) - target).norm(dim=-1).mean(-1)


def pck_head(pred2d: np.ndarray, truth2d: np.ndarray, neck: int = 12, head: int = 15,
             alpha: float = 0.5) -> np.ndarray:
    """(J,) bool: 2D joints within alpha x head size of the truth.

    Head size = 2 x the neck-to-head-joint distance of the truth (SMPL's head joint sits at the
    middle of the head, so this is about the head's height, as in PCKh).
    """
    head_size = 2.0 * np.linalg.norm(truth2d[head] - truth2d[neck])
    return np.linalg.norm(pred2d - truth2d, axis=-1) <= alpha * head_size


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the ``positive`` cases: the chance that a random
    positive scores above a random negative, ties counting half (nan without both classes).

    The Mann-Whitney U statistic from average ranks: O(n log n), the same number as comparing
    every pair.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).reshape(-1)
    positive = np.asarray(positive, bool).reshape(-1)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


NEAR_M = 0.10
"""A predicted kernel this close (rest pose) to the true one counts as 'within 10 cm' (the
feasibility probe's second number, method.md)."""
LATERAL_M = 0.05
"""A kernel this far from the body's midplane (rest pose, |x|) is on the left or the right side:
the pixels the left/right swap rate counts."""


@dataclass
class FeatureCounts:
    """Counts over pixels; ratios give the accuracies reported in docs/training.md."""

    fg_pixels: int = 0
    kernel_correct: int = 0
    neighbour_correct: int = 0
    within_10cm: int = 0
    part_correct: int = 0
    # Sum over foreground pixels of the share of kernels less similar than the true one (each
    # kernel at its best bin): 0.5 on average is chance, 1.0 perfect; a graded readout of the
    # features that top-1 hides.
    rank_sum: float = 0.0
    # Per-bin counts of the true bins of correctly identified kernel pixels: the majority bin's
    # share is the accuracy of always guessing the most common bin (the baseline of bin_acc).
    true_bin_counts: list[int] = field(default_factory=list)
    bin_correct: int = 0
    bg_pixels: int = 0
    bg_correct: int = 0
    # Foreground pixels of a lateral kernel (``LATERAL_M``), and those whose nearest kernel is
    # lateral on the other side of the body: left/right confusions, which the fit cannot undo.
    lateral_pixels: int = 0
    side_swapped: int = 0

    def add(self, other: "FeatureCounts") -> None:
        for name in self.__dataclass_fields__:
            if name != "true_bin_counts":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        n = max(len(self.true_bin_counts), len(other.true_bin_counts))
        pad = lambda c: list(c) + [0] * (n - len(c))  # noqa: E731
        self.true_bin_counts = [a + b for a, b in zip(pad(self.true_bin_counts), pad(other.true_bin_counts))]

    def summary(self) -> dict[str, float]:
        fg, bg = max(self.fg_pixels, 1), max(self.bg_pixels, 1)
        return {"kernel_top1": self.kernel_correct / fg,
                "kernel_top1_within_1hop": self.neighbour_correct / fg,
                "kernel_top1_within_10cm": self.within_10cm / fg,
                "part_top1": self.part_correct / fg,
                "kernel_rank_percentile": self.rank_sum / fg,
                "bin_acc_given_kernel": self.bin_correct / max(self.kernel_correct, 1),
                "bin_majority_baseline": max(self.true_bin_counts, default=0) / max(self.kernel_correct, 1),
                "background_acc": self.bg_correct / bg,
                "left_right_swap": self.side_swapped / max(self.lateral_pixels, 1)}


@torch.no_grad()
def feature_counts(features: torch.Tensor, kernel_index: torch.Tensor, bin_weights: torch.Tensor,
                   bank: torch.Tensor, prototype: torch.Tensor, adjacency: torch.Tensor,
                   kernel_sites: torch.Tensor, kernel_part: torch.Tensor) -> FeatureCounts:
    """Nearest-bank-entry classification of every feature pixel.

    A foreground pixel (kernel k >= 0) is correct when its most similar entry among all K x O
    kernel features belongs to kernel k; its bin is correct when that entry's bin is the argmax of
    the pose's orientation weights for k. A background pixel is correct when it is more similar to
    the background prototype than to every kernel feature.

    Args:
        features: B x D x h x w unit features.
        kernel_index: B x h x w int64 (-1 = background / occluder).
        bin_weights: B x K x O orientation weights of each sample's pose.
        bank: K x O x D.
        prototype: (D,) background feature.
        adjacency: K x K bool (1-hop neighbours incl. self).
        kernel_sites: K x 3 rest-pose kernel positions (metres) for the within-10-cm rate.
        kernel_part: (K,) limb id of each kernel: "part_top1" counts a nearest kernel on the right
            limb (a 9-way readout of the same features: what a coarser part contrast must reach).
    "left_right_swap": of the pixels of kernels off the midplane, the share whose nearest kernel
    lies on the other side of the body (x of the rest-pose sites has the other sign).
    """
    b, d, h, w = features.shape
    k, o, _ = bank.shape
    flat = features.permute(0, 2, 3, 1).reshape(-1, d)
    ids = kernel_index.reshape(-1)
    batch = torch.arange(b, device=features.device).repeat_interleave(h * w)
    sim = flat @ bank.reshape(k * o, d).T  # P x (K*O)
    best = sim.argmax(1)
    best_k, best_o = best // o, best % o
    fg = ids >= 0
    counts = FeatureCounts(fg_pixels=int(fg.sum()), bg_pixels=int((~fg).sum()))
    if counts.fg_pixels:
        kid, bk, bo = ids[fg], best_k[fg], best_o[fg]
        right = bk == kid
        true_bin = bin_weights[batch[fg], kid].argmax(-1)
        counts.kernel_correct = int(right.sum())
        counts.neighbour_correct = int(adjacency[kid, bk].sum())
        counts.within_10cm = int(((kernel_sites[kid] - kernel_sites[bk]).norm(dim=-1) <= NEAR_M).sum())
        counts.part_correct = int((kernel_part[kid] == kernel_part[bk]).sum())
        side_true, side_pred = kernel_sites[kid, 0], kernel_sites[bk, 0]
        lateral = side_true.abs() > LATERAL_M
        counts.lateral_pixels = int(lateral.sum())
        counts.side_swapped = int((lateral & (side_pred.abs() > LATERAL_M) & (side_true * side_pred < 0)).sum())
        per_kernel = sim[fg].reshape(-1, k, o).max(-1).values  # N x K
        true_sim = per_kernel.gather(1, kid[:, None])
        counts.rank_sum = float((per_kernel < true_sim).float().mean(1).sum())
        counts.bin_correct = int((right & (bo == true_bin)).sum())
        counts.true_bin_counts = torch.bincount(true_bin[right], minlength=o).tolist()
    if counts.bg_pixels:
        bg_sim = flat[~fg] @ prototype
        counts.bg_correct = int((bg_sim > sim[~fg].max(1).values).sum())
    return counts
