"""Draw people on an image, and the one palette that every view of a person uses (the overlays
here and the RViz markers in ``ros/conversions.py``).

Two looks, each kept pixel for pixel as it was:

- the report look (``draw_person``, ``render_overlay``, ``save_overlay``: ``nbf-ros estimate
  --overlay`` and the video overlay): lines that thicken with the image, joints green or red by a
  visibility threshold, white bones, a blue box;
- the debug look (``debug_overlay``: the node's and the bag replay's ``~/debug_image``): the RViz
  markers' colours (bones in the skeleton colour, joints on the visibility scale), a yellow box.

Colours are RGB in 0..1, the scale RViz takes; ``to_rgb8`` turns one into the 0..255 ints OpenCV
draws with. OpenCV is imported on first drawing, so the palette is cheap to import.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from nbf_ros.types import JOINT_PARENTS, NUM_JOINTS, FrameResult, Person

# -- palette (RGB, 0..1) ---------------------------------------------------------------------------
VISIBLE_RGB = (0.1, 0.85, 0.2)
"""A fully visible joint (RViz markers, debug image); in between, see ``visibility_colour``."""
OCCLUDED_RGB = (0.95, 0.25, 0.1)
SKELETON_RGB = (0.2, 0.6, 1.0)
"""Bones (RViz, debug image) and the body surface (RViz)."""
TEXT_RGB = (1.0, 1.0, 1.0)
"""The RViz label."""
DEBUG_BOX_RGB = (1.0, 1.0, 0.0)
"""Box and label of the debug image."""
REPORT_VISIBLE_RGB = (40 / 255, 220 / 255, 60 / 255)
"""The report look's own colours (they predate the shared ones; kept so its images do not change)."""
REPORT_OCCLUDED_RGB = (235 / 255, 60 / 255, 40 / 255)
REPORT_BONE_RGB = (250 / 255, 250 / 255, 250 / 255)
REPORT_BOX_RGB = (80 / 255, 160 / 255, 255 / 255)


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


# -- report look -----------------------------------------------------------------------------------
def draw_person(image: np.ndarray, person: Person, visible_threshold: float = 0.5) -> None:
    """Draw one person in place on an H x W x 3 uint8 RGB image (report look); joints that are
    not finite or absurdly far off the image are left out, with their bones."""
    import cv2

    h, w = image.shape[:2]
    thickness = max(1, int(round(min(h, w) / 240)))
    uv = np.asarray(person.joints2d, dtype=np.float64)
    finite = np.all(np.isfinite(uv), axis=1) & (np.abs(uv) < 1e5).all(axis=1)
    pts = np.round(np.where(finite[:, None], uv, 0)).astype(int)
    _bones(image, pts, finite, to_rgb8(REPORT_BONE_RGB), thickness)
    visible, occluded = to_rgb8(REPORT_VISIBLE_RGB), to_rgb8(REPORT_OCCLUDED_RGB)
    for j, (u, v) in enumerate(pts):
        if finite[j]:
            colour = visible if person.joint_visibility[j] >= visible_threshold else occluded
            cv2.circle(image, (int(u), int(v)), thickness + 2, colour, -1, cv2.LINE_AA)
    distance = float(np.linalg.norm(person.joints3d[0]))
    label = f"id {person.id} conf {person.confidence:.2f} {distance:.1f} m"
    _box_with_label(image, np.round(person.bbox).astype(int), label, to_rgb8(REPORT_BOX_RGB),
                    thickness, 0.4 * thickness, thickness)


def render_overlay(image_rgb: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of the image with every person drawn (report look)."""
    canvas = np.ascontiguousarray(image_rgb.copy())
    for person in result.people:
        draw_person(canvas, person)
    return canvas


def save_overlay(image_rgb: np.ndarray, result: FrameResult, path: str | Path) -> Path:
    """``render_overlay`` written to ``path`` (PNG, JPEG ... by extension); raises OSError."""
    import cv2

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), render_overlay(image_rgb, result)[..., ::-1]):
        raise OSError(f"{out}: cannot write image")
    return out


# -- debug look ------------------------------------------------------------------------------------
def debug_overlay(rgb: np.ndarray, people: Sequence[Person]) -> np.ndarray:
    """Copy of ``rgb`` with boxes, 2D skeletons and joints (colour = visibility) drawn on it, in
    the RViz markers' colours (debug look)."""
    out = np.ascontiguousarray(rgb).copy()
    for person in people:
        _draw_debug_person(out, person)
    return out


def _draw_debug_person(image: np.ndarray, person: Person) -> None:
    """Box and label always; skeleton and joints only when every joint is finite."""
    import cv2

    corners = [int(round(float(v))) for v in person.bbox]
    _box_with_label(image, corners, person_label(person), to_rgb8(DEBUG_BOX_RGB), 2, 0.45, 1)
    uv = np.asarray(person.joints2d, dtype=np.float64).reshape(NUM_JOINTS, 2)
    if not np.all(np.isfinite(uv)):
        return
    pts = np.round(uv).astype(int)
    _bones(image, pts, np.ones(NUM_JOINTS, dtype=bool), to_rgb8(SKELETON_RGB), 2)
    for j, v in enumerate(np.asarray(person.joint_visibility, dtype=np.float64).reshape(-1)):
        cv2.circle(image, tuple(pts[j]), 4, to_rgb8(visibility_colour(v)), -1, cv2.LINE_AA)
