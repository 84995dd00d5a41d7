"""Which kernel-pixel pairs can matter: exact screen bounds, pair enumeration, per-pixel top-M.

Nothing here is differentiated: selection is piecewise constant, gradients flow through the
terms recomputed for the kept pairs (``rasterize``).

Screen bounds (derived, not guessed). The rays with q < thr are those meeting the ellipsoid
E = {x : (x - mu)'A(x - mu) <= thr}; their image is the conic outline of E. Its horizontal extent
is bounded by the planes x = x0 z through the camera centre tangent to E. A plane n'x = 0 is
tangent to E iff (n'mu)^2 = thr n'Sn (S = A^-1); with n = (1, 0, -x0) this is the quadratic
    alpha x0^2 - 2 beta x0 + gamma = 0,
    alpha = mu_z^2 - thr S_zz,  beta = mu_x mu_z - thr S_xz,  gamma = mu_x^2 - thr S_xx,
and rays hit E exactly for x0 between its roots when alpha > 0 (E entirely in front of the camera,
so the outline is a bounded ellipse). The discriminant is expanded without cancellation:
    beta^2 - alpha gamma = thr (mu_z^2 S_xx - 2 mu_x mu_z S_xz + mu_x^2 S_zz) - thr^2 (S_xx S_zz - S_xz^2).
Same for y. When E reaches z <= 0 (alpha <= 0) the outline is unbounded and the kernel gets the whole
image (conservative); when E lies entirely behind the camera it gets no pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nbf_ros.render.voge import candidate_mask, ray_kernel_terms

# Bounds are widened by this many pixels so that float32 rounding of q near the threshold can
# never drop a pair that the dense path would keep (q changes by ~10 per pixel at the boundary
# for body-sized kernels; rounding moves it by ~1e-4).
_BOUND_PAD_PX = 0.01


@dataclass
class PixelBounds:
    """Inclusive integer pixel box of each kernel's q < threshold region; empty when u0 > u1."""

    u0: torch.Tensor  # B x K int64
    u1: torch.Tensor
    v0: torch.Tensor
    v1: torch.Tensor


def _axis_extent(mu_a: torch.Tensor, mu_z: torch.Tensor, s_aa: torch.Tensor, s_az: torch.Tensor,
                 s_zz: torch.Tensor, thr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roots (lo, hi) of the tangent-plane quadratic along one image axis, and alpha."""
    alpha = mu_z * mu_z - thr * s_zz
    beta = mu_a * mu_z - thr * s_az
    disc = (thr * (mu_z * mu_z * s_aa - 2.0 * mu_a * mu_z * s_az + mu_a * mu_a * s_zz)
            - thr * thr * (s_aa * s_zz - s_az * s_az)).clamp(min=0.0)
    safe_alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
    root = disc.sqrt()
    return (beta - root) / safe_alpha, (beta + root) / safe_alpha, alpha


def _to_pixels(lo: torch.Tensor, hi: torch.Tensor, focal: torch.Tensor, centre: torch.Tensor,
               size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-coordinate interval -> inclusive pixel-centre index interval, clipped."""
    limit = float(size + 1)  # keeps the float -> int64 conversion finite and in range
    p0 = (focal * lo + centre - _BOUND_PAD_PX).clamp(-1.0, limit).ceil()
    p1 = (focal * hi + centre + _BOUND_PAD_PX).clamp(-1.0, limit).floor()
    return p0.clamp(min=0).long(), p1.clamp(max=size - 1).long()


@torch.no_grad()
def screen_bounds(means: torch.Tensor, precisions: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                  cx: torch.Tensor, cy: torch.Tensor, height: int, width: int,
                  threshold: float) -> PixelBounds:
    """Exact pixel bounding box of each kernel's q < threshold outline (see module doc).

    Args:
        means: B x K x 3; precisions: B x K x 3 x 3; fx..cy: (B,) intrinsics in pixels.
    Returns:
        PixelBounds with B x K inclusive boxes clipped to the image.
    """
    mu = means.double()
    precisions = precisions.double()
    cov = torch.linalg.inv(0.5 * (precisions + precisions.transpose(-1, -2)))  # as voge.kernel_table
    mx, my, mz = mu.unbind(-1)
    sxx, syy, szz = cov[..., 0, 0], cov[..., 1, 1], cov[..., 2, 2]
    sxz, syz = cov[..., 0, 2], cov[..., 1, 2]
    x_lo, x_hi, alpha = _axis_extent(mx, mz, sxx, sxz, szz, threshold)
    y_lo, y_hi, _ = _axis_extent(my, mz, syy, syz, szz, threshold)
    col = lambda t: t.double()[:, None]  # noqa: E731  (B,) -> B x 1
    u0, u1 = _to_pixels(x_lo, x_hi, col(fx), col(cx), width)
    v0, v1 = _to_pixels(y_lo, y_hi, col(fy), col(cy), height)
    bounded = alpha > 0
    behind = mz + (threshold * szz).sqrt() <= 0
    full = ~bounded & ~behind
    zero = torch.zeros_like(u0)
    u0 = torch.where(full, zero, torch.where(behind, zero + width, u0))
    u1 = torch.where(full, zero + width - 1, torch.where(behind, zero - 1, u1))
    v0 = torch.where(full, zero, v0)
    v1 = torch.where(full, zero + height - 1, v1)
    return PixelBounds(u0, u1, v0, v1)


@dataclass
class PixelPairs:
    """Flat list of (kernel, pixel) pairs: kernel = b * K + k, pixel = b * H * W + v * W + u."""

    kernel: torch.Tensor  # N int64
    u: torch.Tensor       # N int64
    v: torch.Tensor       # N int64
    batch: torch.Tensor   # N int64


def enumerate_pairs(bounds: PixelBounds, num_kernels: int) -> PixelPairs:
    """All pixels inside each kernel's box. Sizing the result needs one host sync (N)."""
    box_w = (bounds.u1 - bounds.u0 + 1).clamp(min=0).reshape(-1)
    box_h = (bounds.v1 - bounds.v0 + 1).clamp(min=0).reshape(-1)
    count = box_w * box_h
    total = int(count.sum())
    kernel = torch.repeat_interleave(torch.arange(count.numel(), device=count.device), count,
                                     output_size=total)
    per_kernel = torch.stack([torch.cumsum(count, 0) - count, box_w, bounds.u0.reshape(-1),
                              bounds.v0.reshape(-1)])
    start, row_len, u0, v0 = per_kernel.index_select(1, kernel).unbind(0)  # one gather
    offset = torch.arange(total, device=count.device) - start
    row = torch.div(offset, row_len, rounding_mode="floor")
    u = u0 + (offset - row * row_len)
    return PixelPairs(kernel, u, v0 + row, torch.div(kernel, num_kernels, rounding_mode="floor"))


def _sort_by_pixel_then_depth(pixel: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Permutation ordering pairs by pixel, then by depth (front to back); exact, integer sorts.

    Positive IEEE floats order like their bit patterns read as integers, and CPU integer sorts
    are radix sorts (several times faster than float sorts). float32 depths pack with the pixel
    into one int64 key; float64 depths take two stable passes.
    """
    if depth.dtype == torch.float32:
        key = (pixel << 31) | depth.view(torch.int32).long()
        return torch.sort(key).indices
    by_depth = torch.sort(depth.view(torch.int64), stable=True).indices
    by_pixel = torch.sort(pixel[by_depth], stable=True).indices
    return by_depth[by_pixel]


@torch.no_grad()
def select_culled(table: torch.Tensor, pairs: PixelPairs, px: torch.Tensor, py: torch.Tensor,
                  max_per_pixel: int, threshold: float) -> torch.Tensor:
    """Per pixel, the ``max_per_pixel`` candidate kernels with the smallest peak depth l.

    Args:
        table: 9 x (B*K) kernel rows (``voge.kernel_table``).
        pairs: the pairs to test (from ``enumerate_pairs``).
        px: B x W ray x of each pixel column; py: B x H ray y of each pixel row.
    Returns:
        (B*H*W) x M int64 kernel index within its batch element (0..K-1), front to back, -1 empty.
    """
    (batch, width), height = px.shape, py.shape[1]
    num_kernels = table.shape[1] // batch
    b = pairs.batch
    ray_x = px.reshape(-1).index_select(0, b * width + pairs.u)
    ray_y = py.reshape(-1).index_select(0, b * height + pairs.v)
    _, depth, q = ray_kernel_terms(table.index_select(1, pairs.kernel), ray_x, ray_y)
    keep = candidate_mask(depth, q, threshold).nonzero().squeeze(1)
    pixel = ((b * height + pairs.v) * width + pairs.u).index_select(0, keep)
    depth, kernel = depth.index_select(0, keep), pairs.kernel.index_select(0, keep)
    order = _sort_by_pixel_then_depth(pixel, depth)
    pixel, kernel = pixel.index_select(0, order), kernel.index_select(0, order)
    num_pixels = batch * height * width
    count = torch.bincount(pixel, minlength=num_pixels)
    rank = torch.arange(pixel.numel(), device=pixel.device) - (torch.cumsum(count, 0) - count)[pixel]
    slot = rank < max_per_pixel
    ids = torch.full((num_pixels, max_per_pixel), -1, dtype=torch.long, device=pixel.device)
    ids[pixel[slot], rank[slot]] = kernel[slot] % num_kernels
    return ids
