"""Reading aligned depth images from files (``nbf-ros estimate --depth``).

Formats (docs/depth.md): a 16-bit single-channel PNG in millimetres (0 = no data; what
``rs-save-to-disk`` and most RGB-D recorders write), or a 2D float32/float64 ``.npy`` in metres
(0, negative or NaN = no data). Returned as H x W float32 metres, NaN = no data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbf_ros.geometry.depth import DepthError, depth_to_metres
from nbf_ros.inference.io import InputError


def load_depth(path: str | Path) -> np.ndarray:
    """Read a depth file -> H x W float32 metres (NaN = no data); InputError for anything else
    (missing, unreadable, an 8-bit or colour PNG, a .npy of another shape or dtype)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such depth file")
    if p.suffix.lower() == ".npy":
        try:
            raw = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: not a readable .npy depth file ({exc})") from None
        if raw.dtype not in (np.float32, np.float64):
            raise InputError(f"{p}: a .npy depth must be float metres, got {raw.dtype}")
    else:
        import cv2

        data = np.fromfile(p, dtype=np.uint8)
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if raw is None:
            raise InputError(f"{p}: not a readable depth image")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise InputError(f"{p}: a depth image must be a 16-bit single-channel PNG in millimetres, "
                             f"got {raw.dtype} with shape {raw.shape}")
    try:
        return depth_to_metres(raw)
    except DepthError as exc:
        raise InputError(f"{p}: {exc}") from None
