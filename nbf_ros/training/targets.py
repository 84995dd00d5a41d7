"""What the contrast teaches each foreground pixel: its kernel, a soft surface embedding, or a patch.

The paper's CoKe contrast makes every kernel x orientation bin its own class (~3,400 classes), and
pushes apart every pair of kernels that are not 1-hop mesh neighbours. When that contrast cannot
become discriminative within a CPU training budget, two alternatives keep the method's point
(3D-aware, pose-dependent through the orientation bins, contrastive against a memory bank):

* ``surface``: a continuous surface embedding (as DensePose-CSE): the pixel's target is a
  distribution over all kernels, Gaussian in geodesic distance on the rest-pose surface, so
  kernels a few centimetres apart are taught similar features and far ones different features;
* ``part``: coarser classes: geodesic surface patches, each patch's kernels sharing one bank entry
  per orientation bin.

The bank stays K x O x D in every case (``FeatureTarget.expand`` copies a patch's entry to its
kernels), so the renderer and the fitting read the same format whichever target trained it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from nbf_ros.training.losses import kernel_contrastive_loss

TARGETS = ("kernel", "surface", "part")


def kernel_geodesic_distances(adjacency: torch.Tensor, sites: torch.Tensor) -> torch.Tensor:
    """K x K shortest-path distances (metres) over the kernel graph of the rest-pose surface.

    Edges join 1-hop neighbour kernels (``context.kernel_adjacency``) and weigh their straight-line
    distance, so a path follows the skin: two kernels on the inner thighs are far apart although
    they are close in space. Kernels in different components get the largest finite distance.

    Args:
        adjacency: K x K bool (diagonal ignored).
        sites: K x 3 rest-pose kernel positions.
    """
    adj = adjacency.cpu().numpy().copy()
    np.fill_diagonal(adj, False)
    pts = sites.detach().cpu().double().numpy()
    rows, cols = np.nonzero(adj)
    lengths = np.linalg.norm(pts[rows] - pts[cols], axis=1)
    graph = csr_matrix((np.maximum(lengths, 1e-9), (rows, cols)), shape=adj.shape)
    dist = dijkstra(graph, directed=False)
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max() if finite.any() else 0.0
    return torch.from_numpy(dist).float()


def surface_soft_targets(geodesic: torch.Tensor, sigma_m: float) -> torch.Tensor:
    """K x K rows summing to 1: q(j | k) proportional to exp(-g_kj^2 / (2 sigma^2))."""
    if sigma_m <= 0:
        raise ValueError(f"train.surface_sigma_m must be positive, got {sigma_m}")
    logits = -0.5 * (geodesic / sigma_m) ** 2
    return torch.softmax(logits, dim=1)


def geodesic_patches(geodesic: torch.Tensor, count: int) -> torch.Tensor:
    """(K,) patch id of each kernel: farthest-point centres in geodesic distance, nearest centre.

    Deterministic: the first centre is the kernel farthest (on average) from all others.
    """
    k = geodesic.shape[0]
    if not 1 <= count <= k:
        raise ValueError(f"train.part_count must be in [1, {k}], got {count}")
    centres = [int(geodesic.mean(1).argmax())]
    nearest = geodesic[centres[0]].clone()
    for _ in range(count - 1):
        nxt = int(nearest.argmax())
        centres.append(nxt)
        nearest = torch.minimum(nearest, geodesic[nxt])
    return geodesic[centres].argmin(0)


def soft_contrastive_loss(features: torch.Tensor, kernel_ids: torch.Tensor,
                          bin_weights: torch.Tensor, bank: torch.Tensor,
                          background_bank: torch.Tensor, soft_targets: torch.Tensor,
                          temperature: float, background_weight: float) -> torch.Tensor:
    """Cross-entropy of a softmax over all K x O bank entries (and background) against soft targets.

    For a pixel at kernel k with bin weights w_o: target(j, o) = q(j | k) w_o; logits
    s(j, o) = f . bank[j, o] / T; each background feature is a further class with logit
    f . b_m / T + log(weight) and target 0. loss = -sum_{j,o} target(j, o) log softmax(s)(j, o).

    Args:
        features: N x D unit image features.
        kernel_ids: (N,) int64.
        bin_weights: N x O (rows sum to 1).
        bank: K x O x D unit features (no gradient).
        background_bank: M x D (M may be 0).
        soft_targets: K x K rows summing to 1.
    Returns:
        scalar (0 if N = 0).
    """
    n, d = features.shape
    k, o, _ = bank.shape
    if n == 0:
        return features.sum() * 0.0
    logits = features @ bank.reshape(k * o, d).T / temperature  # N x KO
    if background_bank.shape[0] > 0:
        bg = features @ background_bank.T / temperature + math.log(background_weight)
        lse = torch.logsumexp(torch.cat([logits, bg], dim=1), dim=1, keepdim=True)
    else:
        lse = torch.logsumexp(logits, dim=1, keepdim=True)
    target = (soft_targets[kernel_ids][:, :, None] * bin_weights[:, None, :]).reshape(n, k * o)
    return -(target * (logits - lse)).sum(1).mean()


@dataclass
class FeatureTarget:
    """The classes of the contrast and how they map onto kernels.

    Attributes:
        kind: "kernel", "surface" or "part".
        class_of_kernel: (K,) class of each kernel (identity unless "part").
        num_classes: C.
        excluded: C x C bool, classes that are not negatives of each other (for the hard contrast).
        representative: (C,) one kernel per class (its bank row holds the class's entry).
        soft: K x K soft targets ("surface" only).
    """

    kind: str
    class_of_kernel: torch.Tensor
    num_classes: int
    excluded: torch.Tensor
    representative: torch.Tensor
    soft: Optional[torch.Tensor] = None

    def class_bank(self, bank: torch.Tensor) -> torch.Tensor:
        """C x O x D entries of the classes from the K x O x D bank."""
        return bank if self.kind != "part" else bank.index_select(0, self.representative)

    def expand(self, class_bank: torch.Tensor) -> torch.Tensor:
        """K x O x D bank from C x O x D class entries."""
        return class_bank if self.kind != "part" else class_bank.index_select(0, self.class_of_kernel)

    def loss(self, features: torch.Tensor, kernel_ids: torch.Tensor, bin_weights: torch.Tensor,
             bank: torch.Tensor, background_bank: torch.Tensor, temperature: float,
             background_weight: float) -> torch.Tensor:
        """The contrastive term for N foreground pixels (see the module docstring)."""
        if self.kind == "surface":
            return soft_contrastive_loss(features, kernel_ids, bin_weights, bank, background_bank,
                                         self.soft, temperature, background_weight)
        return kernel_contrastive_loss(features, self.class_of_kernel[kernel_ids], bin_weights,
                                       self.class_bank(bank), background_bank, self.excluded,
                                       temperature, background_weight)


def make_feature_target(kind: str, adjacency: torch.Tensor, sites: torch.Tensor,
                        excluded_kernels: torch.Tensor, sigma_m: float,
                        part_count: int) -> FeatureTarget:
    """Build the target of ``train.feature_target``.

    Args:
        kind: one of ``TARGETS``.
        adjacency: K x K bool 1-hop kernel neighbours.
        sites: K x 3 rest-pose kernel positions.
        excluded_kernels: K x K bool negatives mask of the kernel contrast (1-hop, maybe radius).
        sigma_m: geodesic Gaussian width for "surface".
        part_count: number of patches for "part".
    """
    if kind not in TARGETS:
        raise ValueError(f"train.feature_target must be one of {TARGETS}, got {kind!r}")
    k = adjacency.shape[0]
    dev = adjacency.device
    identity = torch.arange(k, device=dev)
    if kind == "kernel":
        return FeatureTarget(kind, identity, k, excluded_kernels, identity)
    geodesic = kernel_geodesic_distances(adjacency, sites)
    if kind == "surface":
        return FeatureTarget(kind, identity, k, excluded_kernels, identity,
                             surface_soft_targets(geodesic, sigma_m).to(dev))
    patches = geodesic_patches(geodesic, part_count).to(dev)
    first = [int(np.flatnonzero(patches.cpu().numpy() == c)[0]) for c in range(part_count)]
    representative = torch.tensor(first, dtype=torch.int64, device=dev)
    excluded = torch.eye(part_count, dtype=torch.bool, device=dev)
    return FeatureTarget(kind, patches, part_count, excluded, representative)


def class_ids_of_features(features: torch.Tensor, class_bank: torch.Tensor) -> torch.Tensor:
    """(N,) nearest class of each N x D feature among C x O x D entries (max over bins)."""
    c, o, d = class_bank.shape
    return (F.normalize(features, dim=-1) @ class_bank.reshape(c * o, d).T).argmax(1) // o
