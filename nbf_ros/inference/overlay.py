"""Draw people on an image (skeleton, joints coloured by visibility, box, id and confidence).

Used by `nbf-ros estimate --overlay`, the demo and the node's optional debug image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbf_ros.types import JOINT_PARENTS, FrameResult, Person

VISIBLE_RGB = (40, 220, 60)
OCCLUDED_RGB = (235, 60, 40)
BONE_RGB = (250, 250, 250)
BOX_RGB = (80, 160, 255)


def draw_person(image: np.ndarray, person: Person, visible_threshold: float = 0.5) -> None:
    """Draw one person in place on an H x W x 3 uint8 RGB image."""
    import cv2

    h, w = image.shape[:2]
    thickness = max(1, int(round(min(h, w) / 240)))
    uv = np.asarray(person.joints2d, dtype=np.float64)
    finite = np.all(np.isfinite(uv), axis=1) & (np.abs(uv) < 1e5).all(axis=1)
    pts = np.round(np.where(finite[:, None], uv, 0)).astype(int)
    for child, parent in enumerate(JOINT_PARENTS):
        if parent >= 0 and finite[child] and finite[parent]:
            cv2.line(image, tuple(pts[parent]), tuple(pts[child]), BONE_RGB, thickness, cv2.LINE_AA)
    for j, (u, v) in enumerate(pts):
        if finite[j]:
            colour = VISIBLE_RGB if person.joint_visibility[j] >= visible_threshold else OCCLUDED_RGB
            cv2.circle(image, (int(u), int(v)), thickness + 2, colour, -1, cv2.LINE_AA)
    x0, y0, x1, y1 = np.round(person.bbox).astype(int)
    cv2.rectangle(image, (x0, y0), (x1, y1), BOX_RGB, thickness)
    distance = float(np.linalg.norm(person.joints3d[0]))
    label = f"id {person.id} conf {person.confidence:.2f} {distance:.1f} m"
    cv2.putText(image, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness,
                BOX_RGB, thickness, cv2.LINE_AA)


def render_overlay(image_rgb: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of the image with every person drawn."""
    canvas = np.ascontiguousarray(image_rgb.copy())
    for person in result.people:
        draw_person(canvas, person)
    return canvas


def save_overlay(image_rgb: np.ndarray, result: FrameResult, path: str | Path) -> Path:
    import cv2

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), render_overlay(image_rgb, result)[..., ::-1]):
        raise OSError(f"{out}: cannot write image")
    return out
