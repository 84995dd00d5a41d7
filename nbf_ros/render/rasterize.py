"""``render_gaussians``: VoGE volume rendering of Gaussian kernels into feature images.

Stages (named after gsplat's): project/cull (exact screen bounds of each kernel), select (per
pixel, the M nearest candidate kernels, front to back), composite (closed-form VoGE weights,
feature sum). Two selection paths give the same result:
- ``"dense"`` evaluates every kernel-pixel pair with autograd and picks with ``topk``: the slow,
  obviously-correct reference twin;
- ``"culled"`` evaluates only pairs inside each kernel's exact screen box, without autograd,
  sorts them by (pixel, depth) and then recomputes the differentiable terms for the kept pairs
  only. Cost follows the pairs that matter; its output equals the dense one up to float error.
Selection is piecewise constant, so gradients flow only through the kept pairs' terms in both.
The maths and its conventions (unnormalised rays, dropped sqrt(pi/a)) are in ``voge.py``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from nbf_ros.config import RenderConfig
from nbf_ros.render.culling import enumerate_pairs, screen_bounds, select_culled
from nbf_ros.render.voge import (candidate_mask, composite, kernel_table, pixel_coordinates,
                                 ray_kernel_terms)
from nbf_ros.types import CameraIntrinsics

RenderMethod = Literal["culled", "dense"]
_FLOAT_TYPES = (torch.float32, torch.float64)


@dataclass
class RenderCamera:
    """Pinhole intrinsics per batch element, as tensors so that they can receive gradients.

    Attributes: fx, fy, cx, cy: (B,) in pixels of the rendered image (pixel centres at integers).
    """

    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor

    @staticmethod
    def from_intrinsics(intrinsics: CameraIntrinsics | Sequence[CameraIntrinsics], batch: int = 1,
                        dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu") -> "RenderCamera":
        """One CameraIntrinsics (repeated ``batch`` times) or one per batch element."""
        items = [intrinsics] * batch if isinstance(intrinsics, CameraIntrinsics) else list(intrinsics)
        values = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in items], dtype=dtype, device=device)
        return RenderCamera(*values.unbind(1))

    @property
    def batch_size(self) -> int:
        return int(self.fx.shape[0])


@dataclass
class RenderOutput:
    """What a render produced (B batch, H x W pixels, K kernels, M = max kernels per pixel).

    Attributes:
        features: B x H x W x C, sum_m W_m phi_m.
        coverage: B x H x W, min(sum_m W_m, 1): how much of the pixel the body explains.
        kernel_ids: B x H x W x M int64 kept kernels front to back (index in 0..K-1), -1 empty.
        weights: B x H x W x M their VoGE weights W_m (0 in empty slots).
        kernel_visibility: B x K, the largest weight the kernel gets in any pixel: ~1 for a kernel
            seen unoccluded through its centre, 0 for one hidden or outside the image. (The max,
            not the sum, so it does not grow with the resolution; sums come from
            ``sample_to_kernels``.) Not differentiable.
        pairs_evaluated: kernel-pixel pairs whose ray terms were computed (cost measure).
    """

    features: torch.Tensor
    coverage: torch.Tensor
    kernel_ids: torch.Tensor
    weights: torch.Tensor
    kernel_visibility: torch.Tensor
    pairs_evaluated: int

    @property
    def num_kernels(self) -> int:
        return int(self.kernel_visibility.shape[1])


def render_gaussians(means: torch.Tensor, precisions: torch.Tensor, features: torch.Tensor,
                     camera: RenderCamera | CameraIntrinsics, height: int, width: int,
                     config: RenderConfig = RenderConfig(),
                     method: RenderMethod = "culled",
                     kernel_ids: Optional[torch.Tensor] = None) -> RenderOutput:
    """Render B x K Gaussian kernels carrying C-d features into B x H x W feature images.

    Args:
        means: B x K x 3 kernel centres, camera optical frame (metres, z forward).
        precisions: B x K x 3 x 3 SPD precision matrices A (density exp(-(x-mu)'A(x-mu))).
        features: B x K x C per-kernel features.
        camera: RenderCamera with (B,) tensors, or one CameraIntrinsics whose width/height must
            equal (width, height) (e.g. ``CropBox.crop_intrinsics`` or ``CameraIntrinsics.scaled``).
        height, width: image size in pixels.
        config: threshold and M (``RenderConfig``).
        method: "culled" (fast) or "dense" (reference).
        kernel_ids: B x H x W x M kept kernels of an earlier culled render of the same bodies
            (``RenderOutput.kernel_ids``) to use instead of selecting them again: the terms
            and weights are computed exactly for the current kernels, only the choice of which
            kernels each pixel keeps is the earlier one. Selection (screen bounds, pair
            enumeration, the depth sort) is a quarter of an iteration's cost, and between
            nearby poses of a fit it barely changes (``fit.reselect_every``).
    Returns:
        RenderOutput; differentiable w.r.t. means, precisions, features and camera tensors.
    """
    camera = _check_inputs(means, precisions, features, camera, height, width, config, method)
    table = kernel_table(means, precisions)  # 9 x B x K
    px, py = _pixel_rays(camera, height, width)
    batch, num_kernels = means.shape[:2]
    if method == "dense":
        ids, peak, depth, sqrt_a, pixel_rows = _dense_terms(table, px, py, config)
        pairs = batch * num_kernels * height * width
    elif kernel_ids is not None:
        ids = _reused_ids(kernel_ids, batch, height, width, num_kernels, config)
        peak, depth, sqrt_a, pixel_rows = _kept_terms(ids, table, px, py)
        ids = ids.index_select(0, pixel_rows)
        pairs = int(peak.numel())
    else:
        bounds = screen_bounds(means, precisions, camera.fx, camera.fy, camera.cx, camera.cy,
                               height, width, config.activation_threshold)
        pair_list = enumerate_pairs(bounds, num_kernels)
        ids = select_culled(table.detach().reshape(table.shape[0], -1), pair_list, px.detach(),
                            py.detach(), config.max_kernels_per_pixel, config.activation_threshold)
        peak, depth, sqrt_a, pixel_rows = _kept_terms(ids, table, px, py)
        ids = ids.index_select(0, pixel_rows)
        pairs = int(pair_list.kernel.numel())
    weights = composite(peak, depth, sqrt_a)
    return _assemble(ids, weights, pixel_rows, features, height, width, pairs)


def _reused_ids(kernel_ids: torch.Tensor, batch: int, height: int, width: int, num_kernels: int,
                config: RenderConfig) -> torch.Tensor:
    """An earlier render's B x H x W x M kernel ids as the (B*H*W) x M selection, checked."""
    expected = (batch, height, width, config.max_kernels_per_pixel)
    if tuple(kernel_ids.shape) != expected or kernel_ids.dtype != torch.long:
        raise ValueError(f"kernel_ids must be a {expected} int64 tensor, got {tuple(kernel_ids.shape)} "
                         f"{kernel_ids.dtype}")
    if bool((kernel_ids >= num_kernels).any()):
        raise ValueError(f"kernel_ids refer to kernels beyond the {num_kernels} given")
    return kernel_ids.reshape(-1, expected[-1])


def _check_inputs(means: torch.Tensor, precisions: torch.Tensor, features: torch.Tensor,
                  camera: RenderCamera | CameraIntrinsics, height: int, width: int,
                  config: RenderConfig, method: str) -> RenderCamera:
    if means.ndim != 3 or means.shape[-1] != 3:
        raise ValueError(f"means must be B x K x 3, got {tuple(means.shape)}")
    batch, num_kernels = means.shape[:2]
    if num_kernels == 0:
        raise ValueError("need at least one kernel")
    if tuple(precisions.shape) != (batch, num_kernels, 3, 3):
        raise ValueError(f"precisions must be {batch} x {num_kernels} x 3 x 3, got {tuple(precisions.shape)}")
    if features.ndim != 3 or tuple(features.shape[:2]) != (batch, num_kernels):
        raise ValueError(f"features must be {batch} x {num_kernels} x C, got {tuple(features.shape)}")
    if means.dtype not in _FLOAT_TYPES or precisions.dtype != means.dtype or features.dtype != means.dtype:
        raise ValueError("means, precisions and features must share a float32/float64 dtype")
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ValueError(f"height and width must be positive ints, got {height!r}, {width!r}")
    if method not in ("culled", "dense"):
        raise ValueError(f"method must be 'culled' or 'dense', got {method!r}")
    if config.max_kernels_per_pixel < 1 or config.activation_threshold <= 0:
        raise ValueError("RenderConfig needs max_kernels_per_pixel >= 1 and activation_threshold > 0")
    if isinstance(camera, CameraIntrinsics):
        if (camera.width, camera.height) != (width, height):
            raise ValueError(f"intrinsics are for {camera.width} x {camera.height} pixels, "
                             f"rendering {width} x {height}: scale them first")
        camera = RenderCamera.from_intrinsics(camera, batch, means.dtype, means.device)
    for name in ("fx", "fy", "cx", "cy"):
        value = getattr(camera, name)
        if tuple(value.shape) != (batch,) or value.dtype != means.dtype:
            raise ValueError(f"camera.{name} must be a ({batch},) {means.dtype} tensor, got "
                             f"{tuple(value.shape)} {value.dtype}")
    return camera


def _pixel_rays(camera: RenderCamera, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray (px, py, 1) of every pixel column (B x W) and row (B x H)."""
    dtype, device = camera.fx.dtype, camera.fx.device
    u = torch.arange(width, dtype=dtype, device=device)[None]
    v = torch.arange(height, dtype=dtype, device=device)[None]
    col = lambda t: t[:, None]  # noqa: E731
    px, _ = pixel_coordinates(u, u, col(camera.fx), col(camera.fy), col(camera.cx), col(camera.cy))
    _, py = pixel_coordinates(v, v, col(camera.fx), col(camera.fy), col(camera.cx), col(camera.cy))
    return px, py


def _dense_terms(table: torch.Tensor, px: torch.Tensor, py: torch.Tensor, config: RenderConfig):
    """Reference selection: terms of all B x P x K pairs, top-M nearest candidates per pixel."""
    (batch, width), height = px.shape, py.shape[1]
    num_kernels = table.shape[-1]
    ray_x = px[:, None, :].expand(batch, height, width).reshape(batch, -1, 1)  # B x P x 1
    ray_y = py[:, :, None].expand(batch, height, width).reshape(batch, -1, 1)
    a, l, q = ray_kernel_terms(table[:, :, None, :], ray_x, ray_y)  # B x P x K
    key = torch.where(candidate_mask(l, q, config.activation_threshold), l, torch.full_like(l, torch.inf))
    slots = min(config.max_kernels_per_pixel, num_kernels)
    nearest, index = torch.topk(key, slots, dim=-1, largest=False, sorted=True)
    pick = lambda t: torch.gather(t, -1, index).reshape(-1, slots)  # noqa: E731  (B*P) x slots
    valid = torch.isfinite(nearest).reshape(-1, slots)
    peak = torch.where(valid, torch.exp(-pick(q)), torch.zeros_like(valid, dtype=q.dtype))
    depth, sqrt_a = pick(l), pick(a).sqrt()
    ids = torch.where(valid, index.reshape(-1, slots), torch.full_like(valid, -1, dtype=torch.long))
    pad = config.max_kernels_per_pixel - slots
    if pad:
        ids = torch.nn.functional.pad(ids, (0, pad), value=-1)
        peak, depth, sqrt_a = (torch.nn.functional.pad(t, (0, pad), value=v)
                               for t, v in ((peak, 0.0), (depth, 0.0), (sqrt_a, 1.0)))
    rows = torch.arange(ids.shape[0], device=ids.device)
    return ids, peak, depth, sqrt_a, rows


def _kept_terms(ids: torch.Tensor, table: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """Differentiable terms of the kept pairs, for pixels with at least one kept kernel.

    Args:
        ids: (B*H*W) x M kernel ids front to back, -1 empty (empty slots trail).
        table: 9 x B x K kernel rows; px: B x W, py: B x H pixel rays.
    Returns:
        (peak, depth, sqrt_a) Pa x M with peak 0 in empty slots, and the Pa active pixel rows.
    """
    width, height = px.shape[1], py.shape[1]
    num_kernels = table.shape[-1]
    rows = (ids[:, 0] >= 0).nonzero().squeeze(1)
    kept = ids.index_select(0, rows)
    valid = kept >= 0
    batch_of = torch.div(rows, height * width, rounding_mode="floor")
    pix = rows - batch_of * height * width
    col = pix % width
    row = torch.div(pix, width, rounding_mode="floor")
    ray_x = px.reshape(-1).index_select(0, batch_of * width + col)[:, None]  # Pa x 1
    ray_y = py.reshape(-1).index_select(0, batch_of * height + row)[:, None]
    kernel = (batch_of[:, None] * num_kernels + kept.clamp(min=0)).reshape(-1)
    rows_table = table.reshape(table.shape[0], -1).index_select(1, kernel).reshape(table.shape[0], *kept.shape)
    a, l, q = ray_kernel_terms(rows_table, ray_x, ray_y)  # Pa x M
    peak = torch.where(valid, torch.exp(-q), torch.zeros_like(q))
    return peak, l, a.sqrt(), rows


def _assemble(ids: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor, features: torch.Tensor,
              height: int, width: int, pairs: int) -> RenderOutput:
    """Scatter the active pixels' weights and features into full images; kernel visibility."""
    batch, num_kernels, channels = features.shape
    num_pixels = batch * height * width
    slots = ids.shape[1]
    batch_of = torch.div(rows, height * width, rounding_mode="floor")
    valid = ids >= 0
    kernel = torch.where(valid, batch_of[:, None] * num_kernels + ids,
                         torch.full_like(ids, batch * num_kernels))  # empty -> dump slot
    phi = features.reshape(-1, channels).index_select(
        0, kernel.clamp(max=batch * num_kernels - 1).reshape(-1)).reshape(*ids.shape, channels)
    pixel_features = (weights[:, :, None] * phi).sum(1)  # Pa x C
    out_features = features.new_zeros(num_pixels, channels).index_copy(0, rows, pixel_features)
    out_weights = weights.new_zeros(num_pixels, slots).index_copy(0, rows, weights)
    out_ids = ids.new_full((num_pixels, slots), -1).index_copy(0, rows, ids)
    with torch.no_grad():  # an indicator for callers; its gradient is not worth the cost
        visibility = weights.new_zeros(batch * num_kernels + 1).scatter_reduce(
            0, kernel.reshape(-1), weights.reshape(-1), "amax", include_self=True)
    coverage = out_weights.sum(-1).clamp(max=1.0)
    return RenderOutput(
        features=out_features.reshape(batch, height, width, channels),
        coverage=coverage.reshape(batch, height, width),
        kernel_ids=out_ids.reshape(batch, height, width, slots),
        weights=out_weights.reshape(batch, height, width, slots),
        kernel_visibility=visibility[:-1].reshape(batch, num_kernels),
        pairs_evaluated=pairs,
    )


def sample_to_kernels(render: RenderOutput, image_features: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse rendering: each kernel's weighted mean of the image features it explains.

    phi_k = sum_p W_pk F_p / sum_p W_pk (method.md step 5), using the render's kept kernels.

    Args:
        render: a RenderOutput (B x H x W x M ids and weights, K kernels).
        image_features: B x H x W x C, aligned with the rendered pixels.
    Returns:
        (B x K x C sampled features, 0 where the kernel got no weight; B x K weight sums).
    """
    batch, height, width, slots = render.kernel_ids.shape
    if image_features.ndim != 4 or tuple(image_features.shape[:3]) != (batch, height, width):
        raise ValueError(f"image_features must be {batch} x {height} x {width} x C, got "
                         f"{tuple(image_features.shape)}")
    num_kernels = render.num_kernels
    channels = image_features.shape[-1]
    ids = render.kernel_ids.reshape(batch, -1, slots)
    base = torch.arange(batch, device=ids.device)[:, None, None] * num_kernels
    kernel = torch.where(ids >= 0, base + ids, torch.full_like(ids, batch * num_kernels)).reshape(-1)
    weights = render.weights.reshape(-1)
    feats = image_features.reshape(batch, -1, 1, channels).expand(-1, -1, slots, -1).reshape(-1, channels)
    sums = image_features.new_zeros(batch * num_kernels + 1, channels).index_add(
        0, kernel, weights[:, None] * feats)
    mass = weights.new_zeros(batch * num_kernels + 1).index_add(0, kernel, weights)
    sums, mass = sums[:-1], mass[:-1]
    mean = torch.where(mass[:, None] > 0, sums / mass.clamp(min=torch.finfo(mass.dtype).tiny)[:, None],
                       torch.zeros_like(sums))
    return mean.reshape(batch, num_kernels, channels), mass.reshape(batch, num_kernels)
