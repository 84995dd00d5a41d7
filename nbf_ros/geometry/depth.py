"""Depth images: units, validity and resampling onto a person's crop grid (numpy only).

The one place where a depth image's conventions are decided:
- in memory a depth image is H x W float32 **metres**, NaN where the sensor has no data;
- ``16UC1`` / 16-bit PNG depth is millimetres, 0 = no data (the RealSense / Orbbec / Kinect
  convention); ``32FC1`` / float ``.npy`` depth is metres, 0, negative or non-finite = no data;
- the depth image is registered to the colour image (the same pixel grid and intrinsics: the
  driver's ``aligned_depth_to_color`` topic), so it has the colour image's size.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from nbf_ros.errors import NbfError
from nbf_ros.geometry.camera import CropBox

MM_PER_M = 1000.0
FLYING_JUMP_M = 0.10
"""A pixel whose depth differs from a 4-neighbour's by more than this (and ``FLYING_RELATIVE``
of its depth) sits on a depth edge, where time-of-flight and stereo sensors report flying pixels
between the two surfaces: it is dropped."""
FLYING_RELATIVE = 0.03


class DepthError(NbfError, ValueError):
    """A depth image that cannot be used for this frame; ``reason`` is a short diagnostics key
    (``encoding``, ``size``, ``late``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """H x W depth in its stored unit -> H x W float32 metres, NaN = no data (a new array).

    uint16 is millimetres (0 = no data); float32/float64 is metres (<= 0 or non-finite = no
    data). Other dtypes or shapes raise DepthError.
    """
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.size == 0:
        raise DepthError("shape", f"a depth image must be H x W, got shape {depth.shape}")
    if depth.dtype == np.uint16:
        out = depth.astype(np.float32) / np.float32(MM_PER_M)
        out[depth == 0] = np.nan
        return out
    if depth.dtype in (np.float32, np.float64):
        out = depth.astype(np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            out[~(np.isfinite(out) & (out > 0))] = np.nan
        return out
    raise DepthError("encoding", f"depth must be uint16 millimetres or float metres, got {depth.dtype}")


def metres_to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """H x W metres (NaN = no data) -> uint16 millimetres (0 = no data; > 65.535 m = no data)."""
    mm = np.round(np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0) * MM_PER_M)
    mm[(mm < 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)


def check_registered(depth: np.ndarray, width: int, height: int) -> None:
    """DepthError ``size`` unless ``depth`` has the colour image's size (registered)."""
    if depth.shape[:2] != (height, width):
        raise DepthError("size", f"depth image is {depth.shape[1]} x {depth.shape[0]}, the colour "
                         f"image {width} x {height}: depth must be registered to the colour image "
                         "(aligned_depth_to_color)")


def drop_flying_pixels(depth_m: np.ndarray, jump_m: float = FLYING_JUMP_M,
                       relative: float = FLYING_RELATIVE) -> np.ndarray:
    """H x W metres with the pixels on depth edges set to NaN (a new array).

    A pixel is dropped when a 4-neighbour differs by more than max(jump_m, relative x depth):
    both sides of a silhouette edge lose one pixel, which is what removes the flying pixels a
    sensor interpolates between foreground and background there.
    """
    out = np.array(depth_m, dtype=np.float32, copy=True)
    padded = np.pad(out, 1, constant_values=np.nan)
    centre = padded[1:-1, 1:-1]
    limit = np.maximum(jump_m, relative * np.nan_to_num(centre, nan=0.0))
    edge = np.zeros(out.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        other = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
        with np.errstate(invalid="ignore"):
            edge |= np.abs(centre - other) > limit
    out[edge] = np.nan
    return out


def crop_grid_points(crop: CropBox, crop_size: int, grid: int, samples: int) -> np.ndarray:
    """grid x grid x samples^2 x 2 image pixel positions (u, v) covering each cell of a
    grid x grid map over the crop (the fitter's feature map: cell j spans crop pixels
    [j s, (j + 1) s) with s = crop_size / grid), ``samples`` x ``samples`` per cell."""
    stride = crop_size / grid
    offsets = (np.arange(samples) + 0.5) / samples  # within a cell, in cells
    edges = (np.arange(grid)[:, None] + offsets[None, :]) * stride  # grid x samples crop edge coords
    centres = (edges - 0.5).reshape(-1)  # crop pixel-centre coordinates
    uu, vv = np.meshgrid(centres, centres)  # (grid*samples) x (grid*samples), v rows
    image = crop.crop_to_image(np.stack([uu, vv], -1), crop_size)
    image = image.reshape(grid, samples, grid, samples, 2).transpose(0, 2, 1, 3, 4)
    return image.reshape(grid, grid, samples * samples, 2)


def sample_on_crop(image: np.ndarray, crop: CropBox, crop_size: int, grid: int,
                   samples: int = 3, reduce: str = "median") -> np.ndarray:
    """An H x W image (depth metres with NaN holes, or a mask) resampled onto a grid x grid map
    over ``crop`` -> grid x grid float32.

    Each cell takes ``samples`` x ``samples`` nearest image pixels (no interpolation across depth
    edges) and reduces them: ``median`` (NaN-aware: a cell with some holes keeps the median of
    the rest; all holes or outside the image -> NaN) or ``mean`` (outside the image counts 0).
    """
    points = np.rint(crop_grid_points(crop, crop_size, grid, samples)).astype(np.int64)
    h, w = image.shape[:2]
    inside = (points[..., 0] >= 0) & (points[..., 0] < w) & (points[..., 1] >= 0) & (points[..., 1] < h)
    u, v = np.clip(points[..., 0], 0, w - 1), np.clip(points[..., 1], 0, h - 1)
    values = np.asarray(image, np.float32)[v, u]
    if reduce == "mean":
        return np.where(inside, values, 0.0).mean(-1).astype(np.float32)
    if reduce != "median":
        raise ValueError(f"reduce must be 'median' or 'mean', got {reduce!r}")
    values = np.where(inside, values, np.nan)
    out = np.full(values.shape[:2], np.nan, np.float32)
    some = np.isfinite(values).any(-1)
    out[some] = np.nanmedian(values[some], axis=-1)
    return out


def depth_for_crop(depth_m: np.ndarray, crop: CropBox, crop_size: int, grid: int,
                   mask: Optional[np.ndarray] = None, samples: int = 3
                   ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The person's observed depth (grid x grid metres, NaN = none) on the fitter's feature grid
    (``depth_m``: the frame's depth with flying pixels already dropped, ``drop_flying_pixels``),
    and the person mask (H x W probability, image pixels) on the same grid (None without one)."""
    grid_depth = sample_on_crop(depth_m, crop, crop_size, grid, samples)
    grid_mask = None if mask is None else sample_on_crop(mask, crop, crop_size, grid, samples, "mean")
    return grid_depth, grid_mask
