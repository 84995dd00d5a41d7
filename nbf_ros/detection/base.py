"""What every detector returns, and the input check they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nbf_ros.config import DetectorConfig
from nbf_ros.geometry.boxes import box_area


@dataclass
class Detections:
    """Person boxes of one image, largest first (``best``).

    Attributes:
        boxes: N x 4 [x0, y0, x1, y1] float64 pixels (pixel-edge coordinates).
        scores: (N,) detector scores (larger = more confident; the scale is the detector's own).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"Detections: {len(self.boxes)} boxes but {len(self.scores)} scores")

    def best(self, max_people: int, min_height_px: float = 0.0) -> "Detections":
        """Boxes at least ``min_height_px`` tall and with positive area, largest first, top k.

        Largest (box area) first, not most confident: a robot cares most about the people
        nearest to it, and a person's image area falls with the square of their distance
        whatever their pose (height alone would rank a sitting or lying person as far). Every box
        here has passed its detector's score threshold; equal areas keep the higher score first.
        So with 30 people in view and ``max_people`` 5, the 5 nearest are processed.
        """
        heights = self.boxes[:, 3] - self.boxes[:, 1]
        areas = box_area(self.boxes)
        ok = (heights >= min_height_px) & (areas > 0)
        boxes, scores, areas = self.boxes[ok], self.scores[ok], areas[ok]
        order = np.lexsort((-scores, -areas))[:max_people]  # last key first: area, then score
        return Detections(boxes[order], scores[order])


class Detector(Protocol):
    """Anything with ``detect(image_rgb) -> N x 4`` boxes (largest first, at most max_people)."""

    def detect(self, image_rgb: np.ndarray) -> np.ndarray: ...

    def detect_scored(self, image_rgb: np.ndarray) -> Detections: ...


def check_image(image_rgb: np.ndarray) -> tuple[int, int]:
    """Raise ValueError unless image is H x W x 3 uint8 with H, W > 0; return (H, W)."""
    if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        shape = getattr(image_rgb, "shape", None)
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {shape}")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image_rgb.dtype}")
    height, width = image_rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"empty image {width} x {height}")
    return height, width


class _BaseDetector:
    """Shared ``detect`` built on ``detect_scored``, and the config check every detector needs."""

    def __init__(self, config: DetectorConfig) -> None:
        if config.max_people < 1:
            raise ValueError(f"detector.max_people must be >= 1, got {config.max_people}")
        self.config = config

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 RGB -> N x 4 boxes, largest first, N <= config.max_people."""
        return self.detect_scored(image_rgb).boxes

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        raise NotImplementedError
