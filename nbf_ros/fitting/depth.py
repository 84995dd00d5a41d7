"""What an aligned depth image says about one person: metric position, a depth term, occluders.

Pure functions over tensors on the fitter's feature grid (B x h x w, metres, NaN = no data); the
observed depth is resampled onto that grid by ``geometry/depth.py``. Rendered depth is the
Neural Body Volume's weighted kernel depth (``fitter.rendered_depth``: inf off the body).

- ``metric_offset``: how far the body must move along the viewing ray so that its rendered
  surface lies on the observed one: the densest cluster of (observed - rendered) over the body's
  silhouette (and the person mask where BlazePose gave one), so an occluder's nearer surface or a
  background seen through gaps is outvoted rather than averaged in.
- ``depth_term``: Geman-McClure on rendered vs observed depth where the body is rendered and the
  sensor saw something: holes are skipped; flying pixels, occluders and the odd wrong pixel
  saturate instead of pulling.
- ``occluder_map``: observed depth clearly nearer than the body's surface: something in front.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from nbf_ros.types import BodyParams

MODE_BIN_M = 0.05
"""Histogram bin of the residual cluster search."""
MODE_WINDOW_M = 0.15
"""Residuals this close to the densest bin are averaged (median) into the offset."""
FAR_SHARE = 0.5
"""``residual_mode(farthest=True)``: a cluster behind the strongest one wins with this share of
its score (an occluder in front may hold more of the person's mask than the person does). The
fitter passes ``fit.depth_far_share``."""
PRIOR_FRACTION = 0.15
"""Spread of a monocular start's depth error, as a fraction of its depth (the prior of
``residual_mode``: monocular root errors are ~5-15 % of the distance, docs/depth.md)."""
COVERED = 0.5
"""Rendered coverage above which a pixel is on the body's silhouette."""


@dataclass
class DepthCrop:
    """Observed depth of one person on the fitter's feature grid.

    Attributes:
        depth: 1 x h x w metres, NaN where the sensor saw nothing (or a flying pixel was dropped).
        mask: 1 x h x w person probability (BlazePose's segmentation), or None.
    """

    depth: torch.Tensor
    mask: Optional[torch.Tensor] = None

    @staticmethod
    def from_numpy(depth: np.ndarray, mask: Optional[np.ndarray] = None) -> "DepthCrop":
        """h x w arrays -> a DepthCrop (float32 tensors with a batch of one)."""
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None]  # noqa: E731
        return DepthCrop(as_t(depth), None if mask is None else as_t(mask))

    @property
    def valid_pixels(self) -> int:
        return int(torch.isfinite(self.depth).sum())


def residual_mode(residual: np.ndarray, prior_sigma_m: float = math.inf, farthest: bool = False,
                  bin_m: float = MODE_BIN_M, window_m: float = MODE_WINDOW_M,
                  far_share: float = FAR_SHARE) -> float:
    """The centre of the strongest cluster of N residuals (metres): candidate centres every
    ``bin_m``, each scored by how many residuals lie within ``window_m`` of it times a Gaussian
    prior N(0, prior_sigma_m^2) on the move (the start is roughly right: an occluder's surface
    far in front or a wall far behind must outnumber the person clearly to win); the offset is
    the median of the residuals within ``window_m`` of the best centre.

    ``farthest``: the farthest cluster scoring at least ``far_share`` of the best instead (for
    pixels already known to be the person's, e.g. inside BlazePose's mask, where what lies in
    front of the person is an occluder and nothing of the background is left)."""
    residual = np.sort(np.asarray(residual, np.float64))
    centres = np.arange(residual[0], residual[-1] + bin_m, bin_m)
    support = (np.searchsorted(residual, centres + window_m, side="right")
               - np.searchsorted(residual, centres - window_m, side="left"))
    prior = np.exp(-0.5 * (centres / prior_sigma_m) ** 2) if math.isfinite(prior_sigma_m) else 1.0
    score = support * prior
    best = int(np.argmax(score))
    if farthest:
        best = int(np.nonzero(score >= far_share * score[best])[0].max())
    centre = centres[best]
    return float(np.median(residual[np.abs(residual - centre) <= window_m]))


def metric_offset(observed: torch.Tensor, rendered: torch.Tensor, coverage: torch.Tensor,
                  mask: Optional[torch.Tensor] = None, min_pixels: int = 8,
                  far_share: float = FAR_SHARE) -> Optional[float]:
    """Metres the body's surface lies in front of (negative) or behind the observed surface.

    Args:
        observed: 1 x h x w observed depth (NaN = none). rendered: 1 x h x w rendered body depth
            (inf off the body). coverage: 1 x h x w rendered coverage.
        mask: 1 x h x w person probability; where given, only pixels above 0.5 count.
        min_pixels: fewer usable pixels than this -> None (no metric evidence).
        far_share: with a mask, the farthest cluster with this share of the best score wins.
    """
    usable = torch.isfinite(observed) & torch.isfinite(rendered) & (coverage > COVERED)
    if mask is not None:
        usable &= mask > 0.5
    if int(usable.sum()) < min_pixels:
        return None
    residual = (observed - rendered)[usable].detach().double().numpy()
    distance = float(rendered[usable].median())
    return residual_mode(residual, PRIOR_FRACTION * distance, farthest=mask is not None, far_share=far_share)


def along_ray(params: BodyParams, pelvis: torch.Tensor, offset_m: float) -> BodyParams:
    """The body moved along the ray through its pelvis so that the pelvis depth changes by
    ``offset_m`` (image position kept). pelvis: 1 x 3 camera-frame pelvis of ``params``."""
    z = pelvis[:, 2:3].clamp(min=1e-3)
    scale = (z + offset_m).clamp(min=0.05) / z
    return params.replace(transl=params.transl + pelvis * (scale - 1.0))


def occluder_map(observed: torch.Tensor, rendered: torch.Tensor, margin_m: float) -> torch.Tensor:
    """B x h x w bool: the sensor saw a surface more than ``margin_m`` in front of the rendered
    body (no gradient: a classification, not a term)."""
    with torch.no_grad():
        return torch.isfinite(observed) & torch.isfinite(rendered) & (observed < rendered - margin_m)


def depth_term(rendered: torch.Tensor, coverage: torch.Tensor, observed: torch.Tensor,
               sigma_m: float) -> torch.Tensor:
    """B robust depth losses in [0, 1): mean Geman-McClure r^2 / (r^2 + sigma^2) of
    r = rendered - observed over the body's silhouette pixels where the sensor saw something;
    0 where there is no such pixel.

    Occluded pixels are not left out: their residual saturates (cost ~1, no gradient), so they
    do not pull the body, and a body pushed behind everything (all pixels "occluded", explained
    away by the outlier model) is not cheaper than one lying on the surface the sensor sees.

    rendered: B x h x w (inf off the body); coverage: B x h x w; observed: B x h x w (NaN = none).
    """
    if rendered.shape != observed.shape or coverage.shape != observed.shape:
        raise ValueError(f"depth_term: shapes differ: rendered {tuple(rendered.shape)}, coverage "
                         f"{tuple(coverage.shape)}, observed {tuple(observed.shape)}")
    with torch.no_grad():
        use = (coverage > COVERED) & torch.isfinite(observed) & torch.isfinite(rendered)
    filled = torch.nan_to_num(observed, nan=0.0)
    residual = torch.where(use, rendered, filled) - filled  # no inf/nan enters the graph
    rho = residual ** 2 / (residual ** 2 + sigma_m ** 2)
    return (rho * use).flatten(1).sum(1) / use.flatten(1).sum(1).clamp(min=1)
