"""A stereo RGB-D sensor's depth image from a rendered z-buffer (seeded, numpy only).

What real aligned depth looks like (RealSense D4xx-class active stereo, the common robot camera),
and what the pipeline must survive:
- depth is measured as disparity d = f b / z (f: focal in pixels, b: baseline), with sub-pixel
  noise and quantised to 1/``subpixel`` pixel: the error grows with z^2 (about 1 cm at 1 m,
  10-15 cm at 6 m for f = 600 px, b = 50 mm);
- no data (0) below the minimum range and beyond the maximum, in random holes (textureless or
  specular patches), and on a few random pixels;
- flying pixels: on depth edges the sensor reports a depth between the two surfaces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DepthSensor:
    """Sensor model parameters (defaults: a D435-like camera at 848 x 480)."""

    baseline_m: float = 0.05
    disparity_noise_px: float = 0.08
    """RMS sub-pixel disparity noise."""
    subpixel: int = 8
    """Disparity is quantised to 1 / subpixel pixel."""
    min_range_m: float = 0.3
    max_range_m: float = 10.0
    hole_blobs: tuple[int, int] = (0, 4)
    """Random elliptic holes per image (inclusive range)."""
    hole_radius: tuple[float, float] = (0.02, 0.08)
    """Hole radius as a fraction of the image side."""
    dropout: float = 0.02
    """Share of single pixels with no data."""
    flying_prob: float = 0.7
    """Probability that a depth-edge pixel reports a mix of the two surfaces."""
    edge_jump_m: float = 0.1
    """A depth step larger than this between neighbours is a depth edge."""

    def __post_init__(self) -> None:
        if not (self.baseline_m > 0 and self.subpixel >= 1 and 0 <= self.min_range_m < self.max_range_m
                and 0 <= self.dropout < 1 and 0 <= self.flying_prob <= 1):
            raise ValueError(f"DepthSensor: bad parameters {self}")


def quantised_depth(z: np.ndarray, focal_px: float, sensor: DepthSensor, rng: np.random.Generator) -> np.ndarray:
    """Depth through noisy, quantised disparity (same shape; inf/nan stay as they are)."""
    fb = focal_px * sensor.baseline_m
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = fb / z + rng.normal(0.0, sensor.disparity_noise_px, z.shape)
        disparity = np.round(disparity * sensor.subpixel) / sensor.subpixel
        out = np.where(disparity > 0, fb / disparity, np.inf)
    return np.where(np.isfinite(z), out, z)


def flying_pixels(z: np.ndarray, sensor: DepthSensor, rng: np.random.Generator) -> np.ndarray:
    """Pixels next to a depth edge take a random mix of their depth and the far neighbour's."""
    out = z.copy()
    finite = np.where(np.isfinite(z), z, sensor.max_range_m * 2)
    padded = np.pad(finite, 1, mode="edge")  # no edge across the image border
    h, w = z.shape
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        other = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        edge = np.abs(other - finite) > sensor.edge_jump_m
        pick = edge & (rng.random(z.shape) < sensor.flying_prob) & np.isfinite(out)
        mix = rng.random(z.shape)
        out[pick] = (mix * finite + (1.0 - mix) * other)[pick]
    return out


def holes(shape: tuple[int, int], sensor: DepthSensor, rng: np.random.Generator) -> np.ndarray:
    """H x W bool: pixels with no data (elliptic blobs and single-pixel dropout)."""
    h, w = shape
    mask = rng.random(shape) < sensor.dropout
    rows, cols = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(sensor.hole_blobs[0], sensor.hole_blobs[1] + 1))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(*sensor.hole_radius, size=2) * max(h, w)
        mask |= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
    return mask


def sensor_depth(z: np.ndarray, focal_px: float, rng: np.random.Generator,
                 sensor: DepthSensor = DepthSensor()) -> np.ndarray:
    """A rendered H x W z-buffer (metres, inf = nothing) -> what the sensor reports: H x W float32
    metres, NaN = no data. ``focal_px``: the sensor's focal length in its own pixels (sets the
    disparity, hence the quantisation and noise)."""
    z = np.asarray(z, np.float64)
    out = flying_pixels(z, sensor, rng)
    out = quantised_depth(out, focal_px, sensor, rng)
    out[(out < sensor.min_range_m) | (out > sensor.max_range_m) | ~np.isfinite(out)] = np.nan
    out[holes(z.shape, sensor, rng)] = np.nan
    return out.astype(np.float32)
