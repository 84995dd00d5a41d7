"""Detectors for single-person cells: the whole frame, or a fixed region of it."""
from __future__ import annotations

import numpy as np

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, _BaseDetector, check_image
from nbf_ros.geometry.boxes import box_area, clip_boxes


class FullFrameDetector(_BaseDetector):
    """One box covering the whole image (a camera framed on one person)."""

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        height, width = check_image(image_rgb)
        return Detections(np.array([[-0.5, -0.5, width - 0.5, height - 0.5]]), np.ones(1))


class FixedBoxDetector(_BaseDetector):
    """One configured box (``config.fixed_box``, pixels), clipped to the image; none if outside."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        x0, y0, x1, y1 = (float(v) for v in config.fixed_box)
        if not np.all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
            raise ValueError(f"detector.fixed_box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, "
                             f"got {list(config.fixed_box)}")
        self.box = np.array([[x0, y0, x1, y1]])

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        height, width = check_image(image_rgb)
        box = clip_boxes(self.box, width, height)
        if box_area(box)[0] <= 0:
            return Detections()
        return Detections(box, np.ones(1))
