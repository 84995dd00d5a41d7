"""The paper's occlusion protocol on crops with exact 3D truth (method.md, Evaluation protocol).

3DPW-AdvOcc: a square texture occluder of side 40 or 80 (in 224-px crop units, scaled to our
crop) slides over the crop with stride 10 (same units); per image the position with the worst
regression-only MPJPE is kept. Everything here works on crops (S x S x 3 uint8), so it applies
to any regressor that maps a batch of crops to joints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from nbf_ros.evaluation.metrics import root_aligned_error

PAPER_CROP = 224.0


@dataclass(frozen=True)
class Patch:
    """A square occluder: top-left corner (x, y) and side, in crop pixels."""

    x: int
    y: int
    side: int


def patch_grid(crop_size: int, side_224: float, stride_224: float = 10.0) -> list[Patch]:
    """All occluder positions of the protocol for a crop of ``crop_size`` pixels."""
    scale = crop_size / PAPER_CROP
    side = max(1, int(round(side_224 * scale)))
    stride = max(1, int(round(stride_224 * scale)))
    starts = range(0, crop_size - side + 1, stride)
    return [Patch(x, y, side) for y in starts for x in starts]


def paste_patch(crop: np.ndarray, patch: Patch, texture: np.ndarray) -> np.ndarray:
    """A copy of ``crop`` with ``texture`` (at least side x side x 3) pasted at ``patch``."""
    out = crop.copy()
    out[patch.y:patch.y + patch.side, patch.x:patch.x + patch.side] = texture[:patch.side, :patch.side]
    return out


def joints_under_patch(joints2d: np.ndarray, patch: Patch) -> np.ndarray:
    """(J,) bool: joints whose 2D position lies under the occluder."""
    u, v = joints2d[:, 0], joints2d[:, 1]
    return ((u >= patch.x - 0.5) & (u < patch.x + patch.side - 0.5)
            & (v >= patch.y - 0.5) & (v < patch.y + patch.side - 0.5))


def worst_patch(crop: np.ndarray, texture: np.ndarray, patches: list[Patch], truth3d: np.ndarray,
                regress: Callable[[np.ndarray], np.ndarray], batch: int = 64) -> tuple[Patch, float]:
    """The occluder position with the worst regression MPJPE (root-aligned), and that MPJPE.

    Args:
        regress: maps N x S x S x 3 uint8 crops to N x J x 3 joints (camera frame).
    """
    worst, worst_err = patches[0], -1.0
    for start in range(0, len(patches), batch):
        chunk = patches[start:start + batch]
        crops = np.stack([paste_patch(crop, p, texture) for p in chunk])
        errors = root_aligned_error(regress(crops), truth3d[None]).mean(-1)
        i = int(np.argmax(errors))
        if errors[i] > worst_err:
            worst, worst_err = chunk[i], float(errors[i])
    return worst, worst_err
