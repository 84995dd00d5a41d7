"""VoGE closed-form ray/Gaussian maths (method.md step 5), shared by the dense and culled paths.

A kernel k is the density exp(-(x - mu)' A (x - mu)) with precision A (3 x 3, SPD). Along the
pixel ray x = t d (camera at the origin) it is exp(-q) exp(-a (t - l)^2) with
    a = d'Ad,   l = mu'Ad / a (where the peak is),   q = min_t (x - mu)'A(x - mu).

Conventions chosen here (and why):
- d = ((u - cx) / fx, (v - cy) / fy, 1) is NOT normalised, so l is the depth (camera z) of the
  peak. Every quantity the image depends on (q, and (l_m - l_k) sqrt(a_k)) is invariant to the
  scale of d, so normalising would change nothing but cost.
- The exact line integral of a kernel is exp(-q) sqrt(pi / a); like the released code we drop
  sqrt(pi / a): each kernel's optical depth along a ray is exactly exp(-q). Equivalently the
  renderer ray-marches the per-ray normalised density sqrt(a_u / pi) exp(-(x-mu)'A(x-mu)) with
  a_u = d'Ad for unit d. This keeps the image invariant to scaling the whole scene about the
  camera (mu -> s mu, A -> A / s^2), and makes a lone kernel seen through its centre weigh 1.
Numerics: with A = L L' (Cholesky), e = L'd and y = L'mu, we use a = |e|^2, l = (y.e)/a and the
Lagrange identity q = |y x e|^2 / a, which avoids the cancellation of mu'A mu - (mu'Ad)^2/a
(both ~4e4 for a kernel 3 m away at precision 4000, their difference ~20).
"""
from __future__ import annotations

import math

import torch

# W_m = T_m exp(-q_m) / exp(-0.5): a lone kernel seen through its centre has T = exp(-1/2), W = 1.
_WEIGHT_NORMALISER = math.exp(0.5)


def kernel_table(means: torch.Tensor, precisions: torch.Tensor) -> torch.Tensor:
    """Cholesky factor L (A = L L', lower) and whitened centre y = L' mu, packed per kernel.

    Args:
        means: ... x 3; precisions: ... x 3 x 3 SPD. Its symmetric part (A + A')/2 is used, so
            the gradient is symmetric and matches finite differences of any single entry.
    Returns:
        9 x ... table, rows L00, L10, L20, L11, L21, L22, y0, y1, y2 (component first, so that
        gathering kernels gives contiguous rows).
    """
    lower = torch.linalg.cholesky(0.5 * (precisions + precisions.transpose(-1, -2)))
    y = torch.einsum("...ji,...j->...i", lower, means)  # y_i = sum_j L_ji mu_j
    parts = [lower[..., 0, 0], lower[..., 1, 0], lower[..., 2, 0], lower[..., 1, 1],
             lower[..., 2, 1], lower[..., 2, 2], y[..., 0], y[..., 1], y[..., 2]]
    return torch.stack(parts, dim=0)


def pixel_coordinates(u: torch.Tensor, v: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                      cx: torch.Tensor, cy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray d = (px, py, 1) through the pixel centres (u, v): returns (px, py) (args broadcast)."""
    return (u - cx) / fx, (v - cy) / fy


def ray_kernel_terms(table: torch.Tensor, px: torch.Tensor, py: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per ray/kernel pair: a = d'Ad, l (peak depth) and q (minimal activation on the ray).

    Written as plain elementwise products (no reductions) so that the dense and the culled
    paths, which call it on differently shaped tensors, get bit-identical values and hence the
    same candidate sets and depth order.

    Args:
        table: 9 x ... kernel rows (``kernel_table``), broadcast against px and py.
        px, py: ray d = (px, py, 1).
    Returns:
        (a, l, q), each of the broadcast shape.
    """
    l00, l10, l20, l11, l21, l22, y0, y1, y2 = table.unbind(0)
    e0 = l00 * px + l10 * py + l20  # e = L'd
    e1 = l11 * py + l21
    e2 = l22
    a = e0 * e0 + e1 * e1 + e2 * e2
    b = y0 * e0 + y1 * e1 + y2 * e2
    c0 = y1 * e2 - y2 * e1  # y x e
    c1 = y2 * e0 - y0 * e2
    c2 = y0 * e1 - y1 * e0
    return a, b / a, (c0 * c0 + c1 * c1 + c2 * c2) / a


def candidate_mask(l: torch.Tensor, q: torch.Tensor, threshold: float) -> torch.Tensor:
    """A kernel is a candidate for a ray when its activation can exceed exp(-threshold) in front
    of the camera: q < threshold and peak depth l > 0."""
    return (q < threshold) & (l > 0)


def composite(peak: torch.Tensor, depth: torch.Tensor, sqrt_a: torch.Tensor) -> torch.Tensor:
    """VoGE weights of each pixel's kept kernels.

    Args:
        peak: P x M exp(-q) of the kept kernels, 0 in empty slots.
        depth: P x M peak depths l (any finite value in empty slots).
        sqrt_a: P x M sqrt(d'Ad) (any finite value in empty slots).
    Returns:
        P x M weights W_m = T_m exp(-q_m) / exp(-0.5), with
        T_m = exp(-sum_k exp(-q_k) (1 + erf((l_m - l_k) sqrt(a_k))) / 2), the sum over the kept
        kernels of the pixel (including k = m, whose half mass counts: erf(0) = 0).
    """
    # cdf[p, m, k] = share of kernel k's optical depth in front of l_m
    cdf = 0.5 * (1.0 + torch.erf((depth[:, :, None] - depth[:, None, :]) * sqrt_a[:, None, :]))
    tau = (cdf * peak[:, None, :]).sum(-1)  # elementwise: a batched M x M bmm is slower here
    return torch.exp(-tau) * peak * _WEIGHT_NORMALISER
