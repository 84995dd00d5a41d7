"""Draw people on an image, in the one palette that every view of a person uses: the overlays
of ``nbf-ros estimate --overlay`` and of videos, the node's and the bag replay's
``~/debug_image``, and the RViz markers (``ros/conversions.py``). What a user sees in a saved
overlay is what RViz shows: bones in the skeleton colour, joints on the visibility scale (red
occluded .. green visible), the person box and its label (id, confidence, distance).

Colours are RGB in 0..1, the scale RViz takes; ``to_rgb8`` turns one into the 0..255 ints OpenCV
draws with. OpenCV is imported on first drawing, so the palette is cheap to import.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from nbf_ros.types import JOINT_PARENTS, FrameResult, Person

# -- palette (RGB, 0..1) ---------------------------------------------------------------------------
VISIBLE_RGB = (0.1, 0.85, 0.2)
"""A fully visible joint; in between visible and occluded, see ``visibility_colour``."""
OCCLUDED_RGB = (0.95, 0.25, 0.1)
SKELETON_RGB = (0.2, 0.6, 1.0)
"""Bones (overlays and RViz) and the body surface (RViz)."""
TEXT_RGB = (1.0, 1.0, 1.0)
"""The RViz label."""
BOX_RGB = (1.0, 1.0, 0.0)
"""The person box and its label in the overlays."""
LINE_PX_PER_SIDE = 240
"""Strokes are one pixel wide per this many pixels of the image's shorter side (2 px at 480p), so
an overlay reads the same on a 320 x 240 and on a 4K image."""


def to_rgb8(colour: Sequence[float]) -> tuple[int, int, int]:
    """RGB(A) in 0..1 -> (r, g, b) ints in 0..255 for OpenCV; truncates, as the images always did
    (exact for the k / 255 colours above)."""
    return tuple(int(255 * c) for c in colour[:3])  # type: ignore[return-value]


def visibility_colour(visibility: float) -> tuple[float, float, float, float]:
    """Visibility 0 (occluded, red) .. 1 (visible, green) -> RGBA in 0..1 (NaN counts as 0)."""
    v = float(visibility)
    v = 0.0 if not math.isfinite(v) else min(max(v, 0.0), 1.0)
    rgb = (1.0 - v) * np.asarray(OCCLUDED_RGB) + v * np.asarray(VISIBLE_RGB)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)


def person_label(person: Person) -> str:
    """'id 3 | conf 0.87 | 2.41 m' (distance = range of the pelvis from the camera centre)."""
    distance = float(np.linalg.norm(np.asarray(person.joints3d, dtype=np.float64)[0]))
    return f"id {int(person.id)} | conf {float(person.confidence):.2f} | {distance:.2f} m"


# -- shared strokes --------------------------------------------------------------------------------
def _bones(image: np.ndarray, pts: np.ndarray, ok: np.ndarray, colour: tuple, thickness: int) -> None:
    """A line from each joint to its parent where both are ``ok`` (24 x 2 int pixels)."""
    import cv2

    for child, parent in enumerate(JOINT_PARENTS):
        if parent >= 0 and ok[child] and ok[parent]:
            cv2.line(image, tuple(pts[parent]), tuple(pts[child]), colour, thickness, cv2.LINE_AA)


def _box_with_label(image: np.ndarray, corners: Sequence[int], text: str, colour: tuple,
                    thickness: int, font_scale: float, text_thickness: int) -> None:
    """The person box (integer corners x0, y0, x1, y1) and a label just above it."""
    import cv2

    x0, y0, x1, y1 = corners
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
    cv2.putText(image, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour,
                text_thickness, cv2.LINE_AA)


# -- the overlay ----------------------------------------------------------------------------------
def draw_person(image: np.ndarray, person: Person) -> None:
    """Draw one person in place on an H x W x 3 uint8 RGB image: box and label always; bones and
    joints where the joint is finite and not absurdly far off the image (bad input never raises)."""
    import cv2

    h, w = image.shape[:2]
    thickness = max(1, int(round(min(h, w) / LINE_PX_PER_SIDE)))
    corners = [int(round(float(v))) if math.isfinite(float(v)) else 0 for v in person.bbox]
    _box_with_label(image, corners, person_label(person), to_rgb8(BOX_RGB), thickness,
                    0.225 * thickness, max(1, thickness // 2))
    uv = np.asarray(person.joints2d, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(uv), axis=1) & (np.abs(uv) < 1e5).all(axis=1)
    pts = np.round(np.where(ok[:, None], uv, 0.0)).astype(int)
    _bones(image, pts, ok, to_rgb8(SKELETON_RGB), thickness)
    visibility = np.asarray(person.joint_visibility, dtype=np.float64).reshape(-1)
    for j in np.flatnonzero(ok):
        cv2.circle(image, (int(pts[j, 0]), int(pts[j, 1])), thickness + 2,
                   to_rgb8(visibility_colour(visibility[j])), -1, cv2.LINE_AA)


def draw_overlay(image_rgb: np.ndarray, people: Sequence[Person]) -> np.ndarray:
    """A copy of the H x W x 3 uint8 RGB image with every person drawn on it."""
    canvas = np.ascontiguousarray(image_rgb).copy()
    for person in people:
        draw_person(canvas, person)
    return canvas


def save_overlay(image_rgb: np.ndarray, result: FrameResult, path: str | Path) -> Path:
    """``draw_overlay`` of a frame's people written to ``path`` (PNG, JPEG ... by extension);
    raises OSError when it cannot be written."""
    import cv2

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), draw_overlay(image_rgb, result.people)[..., ::-1]):
        raise OSError(f"{out}: cannot write image")
    return out
