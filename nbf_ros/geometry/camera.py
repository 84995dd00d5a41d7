"""Pinhole projection, crops and the weak-perspective <-> full-perspective camera conversion.

Conventions (used everywhere, defined only here):
- 3D points live in the camera optical frame (REP-103: x right, y down, z forward), metres.
  The body model's output frame *is* that frame: its parameters are expressed directly in camera
  coordinates (an upright person facing the camera has global_orient ~ (pi, 0, 0)).
- Pixel (u, v) is the centre of pixel column u, row v; the image spans [-0.5, W - 0.5].
- A crop is an axis-aligned square of side ``side`` image pixels starting at (x0, y0) (pixel edge
  coordinates), resampled to ``size`` x ``size`` pixels.
- Weak perspective (what the regression head predicts, HMR-style): normalised crop coordinates
  n = (u_crop + 0.5) / size * 2 - 1 in [-1, 1], and n = s * (X_xy + t_xy) for body points X with
  zero translation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nbf_ros.types import CameraIntrinsics


def project_points(points, fx, fy, cx, cy, min_depth: float | None = 1e-3):
    """Pinhole projection of ... x 3 points (camera frame) to ... x 2 pixels; the one formula for
    torch tensors (network, fitter) and numpy arrays (rasteriser, data generator) alike.

    Intrinsics may be floats or tensors/arrays broadcastable to points[..., 0]. Depth is clamped to
    ``min_depth`` so points behind the camera do not produce inf/NaN (they project far away);
    ``min_depth=None`` projects exactly, for callers that check z themselves.
    """
    is_tensor = isinstance(points, torch.Tensor)
    z = points[..., 2]
    if min_depth is not None:
        z = z.clamp(min=min_depth) if is_tensor else np.maximum(z, min_depth)
    u = fx * points[..., 0] / z + cx
    v = fy * points[..., 1] / z + cy
    return torch.stack([u, v], dim=-1) if is_tensor else np.stack([u, v], axis=-1)


def intrinsics_for_image(camera: CameraIntrinsics | None, width: int, height: int, *,
                         rescale: bool = True) -> CameraIntrinsics:
    """The intrinsics to use for one ``width`` x ``height`` image.

    None -> the documented default for that size. A camera without a size (a CameraInfo with
    width/height 0, which some drivers send) -> its K with the image size. Otherwise, with
    ``rescale`` (a ROS stream: K belongs to the calibrated size, so a resized image scales it)
    the intrinsics scaled to the image; without it (the CLI: the fx, fy, cx, cy the user gives are
    meant for the images given) the same K with the image size.
    """
    if camera is None:
        return CameraIntrinsics.default_for(width, height)
    if rescale and camera.width > 0 and camera.height > 0:
        if (camera.width, camera.height) == (width, height):
            return camera
        camera = camera.scaled(width / camera.width, height / camera.height)
    return CameraIntrinsics(camera.fx, camera.fy, camera.cx, camera.cy, width, height)


def project(points: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """... x 3 camera-frame points -> ... x 2 pixels with ``camera``, no depth clamp (callers that
    may see points behind the camera check z first)."""
    return project_points(points, camera.fx, camera.fy, camera.cx, camera.cy, min_depth=None)


@dataclass(frozen=True)
class CropBox:
    """A square crop of an image: top-left pixel-edge corner (x0, y0), side in image pixels."""

    x0: float
    y0: float
    side: float

    @staticmethod
    def around_bbox(bbox: np.ndarray | list[float], scale: float = 1.2) -> "CropBox":
        """Square crop centred on a person box [x0, y0, x1, y1], its longer side times ``scale``."""
        x0, y0, x1, y1 = [float(v) for v in bbox]
        side = max(x1 - x0, y1 - y0, 1.0) * scale
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        return CropBox(cx - side / 2.0, cy - side / 2.0, side)

    def affine(self, size: int) -> np.ndarray:
        """2 x 3 matrix mapping image pixel centres to crop pixel centres (for cv2.warpAffine)."""
        s = size / self.side
        # u_c + 0.5 = s (u + 0.5 - x0)
        return np.array([[s, 0.0, s * (0.5 - self.x0) - 0.5], [0.0, s, s * (0.5 - self.y0) - 0.5]])

    def crop_intrinsics(self, camera: CameraIntrinsics, size: int) -> CameraIntrinsics:
        """Intrinsics of the virtual camera that sees exactly the crop at ``size`` pixels."""
        s = size / self.side
        return CameraIntrinsics(camera.fx * s, camera.fy * s, s * (camera.cx + 0.5 - self.x0) - 0.5,
                                s * (camera.cy + 0.5 - self.y0) - 0.5, size, size)

    def crop_to_image(self, uv_crop: np.ndarray, size: int) -> np.ndarray:
        """... x 2 crop pixels -> image pixels."""
        s = self.side / size
        return (np.asarray(uv_crop) + 0.5) * s + np.array([self.x0, self.y0]) - 0.5


def extract_crop(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Resample the crop (zero padding outside the image) to size x size; keeps dtype/channels."""
    import cv2  # local: cv2 import is slow and not needed by pure-geometry users

    return cv2.warpAffine(image, box.affine(size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def weak_perspective_to_translation(cam: torch.Tensor, focal: torch.Tensor | float,
                                    principal: torch.Tensor, size: int) -> torch.Tensor:
    """Full-perspective translation from a weak-perspective crop camera.

    Args:
        cam: B x 3 (s, tx, ty) as predicted for the crop (normalised coordinates, see module doc).
        focal: focal length of the crop camera in crop pixels (float or B tensor).
        principal: B x 2 principal point of the crop camera in crop pixels.
        size: crop size in pixels.
    Returns:
        B x 3 translation (metres) such that the pinhole projection of X + T matches s (X + t) at
        the depth of the body (the weak-perspective plane): tz = 2 f / (size s).
    """
    s = cam[:, 0].clamp(min=1e-4)
    tz = 2.0 * focal / (size * s)
    offset = (size / 2.0 - 0.5) - principal  # B x 2, image-centre minus principal point
    txy = cam[:, 1:3] + offset * (tz / focal)[:, None]
    return torch.cat([txy, tz[:, None]], dim=1)


def translation_to_weak_perspective(transl: torch.Tensor, focal: torch.Tensor | float,
                                    principal: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`weak_perspective_to_translation` (B x 3 -> B x 3 (s, tx, ty))."""
    tz = transl[:, 2].clamp(min=1e-4)
    s = 2.0 * focal / (size * tz)
    offset = (size / 2.0 - 0.5) - principal
    txy = transl[:, :2] - offset * (tz / focal)[:, None]
    return torch.cat([s[:, None], txy], dim=1)
