"""File formats at the edge of the pipeline: images, ROS camera_info YAML, the estimate JSON.

Every loader raises :class:`InputError` with a one-line message naming the file and the problem,
so that the CLI can print it and exit non-zero, and the node can report it in diagnostics.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nbf_ros.errors import NbfError
from nbf_ros.types import CameraIntrinsics, FrameResult


class InputError(NbfError, ValueError):
    """Bad input from the outside world (unreadable image, malformed calibration, ...)."""


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (grey and 16-bit images are converted)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such image file")
    data = np.fromfile(p, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        raise InputError(f"{p}: not a readable image (unsupported or corrupt file)")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def validate_intrinsics(camera: CameraIntrinsics, what: str = "intrinsics") -> CameraIntrinsics:
    """Raise InputError unless fx, fy > 0 and all values finite."""
    values = [camera.fx, camera.fy, camera.cx, camera.cy]
    if not all(math.isfinite(float(v)) for v in values):
        raise InputError(f"{what}: non-finite value in fx, fy, cx, cy = {values}")
    if camera.fx <= 0 or camera.fy <= 0:
        raise InputError(f"{what}: focal lengths must be positive (fx={camera.fx}, fy={camera.fy})")
    if camera.width <= 0 or camera.height <= 0:
        raise InputError(f"{what}: image size must be positive ({camera.width} x {camera.height})")
    return camera


def load_camera_info_yaml(path: str | Path) -> CameraIntrinsics:
    """Parse a ROS camera_info YAML (camera_calibration's output) into intrinsics.

    Uses ``camera_matrix`` (K). Distortion is not modelled: the image is assumed rectified
    (use the rectified image topic on a robot), and a warning-worthy case is left to the caller.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such camera_info file")
    try:
        data = yaml.safe_load(p.read_text())
        width, height = int(data["image_width"]), int(data["image_height"])
        k = np.asarray(data["camera_matrix"]["data"], dtype=np.float64)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: not a camera_info YAML (need image_width, image_height, "
                         f"camera_matrix.data): {exc}") from exc
    if k.size != 9:
        raise InputError(f"{p}: camera_matrix.data must have 9 values, got {k.size}")
    camera = CameraIntrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), width, height)
    return validate_intrinsics(camera, str(p))


def estimate_json(images: list[tuple[str, int, int, FrameResult]], model: dict[str, str]) -> dict[str, Any]:
    """The interfaces.md OUT.json document."""
    return {
        "images": [{"path": path, "width": int(w), "height": int(h),
                    "people": [p.to_json() for p in result.people]}
                   for path, w, h, result in images],
        "model": dict(model),
    }


def write_json(document: dict[str, Any], path: str | Path) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(document, indent=1, allow_nan=True))
