"""Drawn camera frames with known people: the input of tests, the node benchmark and the camera
stand-in (``nbf_ros.apps.camera_publisher``); never used by the runtime.

People are drawn as dark silhouettes (head, torso, arms, legs in human proportions: eight head
heights) on a lightly textured background; OpenCV's HOG people detector finds them, and their
known boxes and metric depths are the ground truth a test compares against. No ROS here. (The
rendered scenes with a body model and exact 3D truth are ``nbf_ros.data.scene.SyntheticScene``.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nbf_ros.types import CameraIntrinsics

PERSON_HEIGHT_M = 1.7
"""Metric height used to place a drawn person at depth z = fy * PERSON_HEIGHT_M / height_px."""

BACKGROUND_RGB = (170, 180, 190)
SILHOUETTE_RGB = (40, 40, 60)
NOISE_SIGMA = 6.0


@dataclass(frozen=True)
class DrawnPerson:
    """Ground truth of one drawn person: pixel box [x0, y0, x1, y1] and depth in metres."""

    box: tuple[float, float, float, float]
    depth_m: float


def draw_person(image: np.ndarray, cx: float, top: float, height: float,
                colour: tuple[int, int, int] = SILHOUETTE_RGB) -> tuple[float, float, float, float]:
    """Draw an upright silhouette ``height`` pixels tall into ``image`` (in place); return its box."""
    import cv2

    s = height / 8.0  # one head height
    pt = lambda x, y: (int(round(cx + x * s)), int(round(top + y * s)))  # noqa: E731
    cv2.ellipse(image, pt(0, 0.5), (max(1, int(0.4 * s)), max(1, int(0.5 * s))), 0, 0, 360, colour, -1)
    cv2.rectangle(image, pt(-0.9, 1.1), pt(0.9, 4.2), colour, -1)
    leg, arm = max(2, int(0.45 * s)), max(2, int(0.3 * s))
    for side in (-1, 1):
        cv2.line(image, pt(0.5 * side, 4.0), pt(0.7 * side, 7.8), colour, leg)
        cv2.line(image, pt(0.9 * side, 1.3), pt(1.2 * side, 4.3), colour, arm)
    return (cx - 1.3 * s, top, cx + 1.3 * s, top + height)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 uint8 light background with a little noise (HOG sees texture, not a flat card)."""
    base = np.empty((height, width, 3), dtype=np.float32)
    base[:] = BACKGROUND_RGB
    return np.clip(base + rng.normal(0.0, NOISE_SIGMA, base.shape), 0, 255).astype(np.uint8)


class DrawnScene:
    """``num_people`` silhouettes walking left and right at fixed depths across a W x H frame."""

    def __init__(self, width: int = 640, height: int = 480, num_people: int = 1, seed: int = 0) -> None:
        if width < 64 or height < 128:
            raise ValueError(f"frame must be at least 64 x 128, got {width} x {height}")
        if num_people < 0:
            raise ValueError(f"num_people must be >= 0, got {num_people}")
        self.width, self.height, self.num_people = width, height, num_people
        self.camera = CameraIntrinsics.default_for(width, height)
        self._rng = np.random.default_rng(seed)
        self._background = background(width, height, self._rng)
        slots = np.linspace(0.22, 0.78, num_people) if num_people > 1 else np.array([0.5])
        self._start_x = slots[:num_people] * width
        self._height_px = np.linspace(0.7, 0.5, max(num_people, 1))[:num_people] * height
        self._speed_px = 2.0 * np.where(np.arange(num_people) % 2 == 0, 1.0, -1.0)

    def frame(self, index: int) -> tuple[np.ndarray, list[DrawnPerson]]:
        """Frame ``index``: H x W x 3 uint8 RGB and the drawn people (boxes, depths)."""
        image = self._background.copy()
        truth = []
        span = self.width * 0.05  # people walk back and forth within +-span of their slot
        for k in range(self.num_people):
            phase = (index * abs(self._speed_px[k]) + (0 if self._speed_px[k] > 0 else 2 * span)) % (4 * span)
            offset = phase - span if phase < 2 * span else 3 * span - phase
            h = float(self._height_px[k])
            top = (self.height - h) * 0.5
            box = draw_person(image, float(self._start_x[k] + offset), top, h)
            truth.append(DrawnPerson(box, self.camera.fy * PERSON_HEIGHT_M / h))
        return image, truth
