"""OpenCV's HOG + linear SVM people detector (Dalal & Triggs 2005, OpenCV's default coefficients).

Why this one: it ships inside OpenCV (no weights to download), runs on any CPU in tens of
milliseconds at VGA, and finds upright, mostly unoccluded people; it is the default for a
multi-person scene until a learned detector is configured. OpenCV 5 moved HOG out of the main
``opencv-python-headless`` build: it lives in ``opencv-contrib-python-headless`` (same ``cv2``
module) or in OpenCV 4.x.
"""
from __future__ import annotations

import numpy as np

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, _BaseDetector, check_image
from nbf_ros.geometry.boxes import clip_boxes, nms

# The 64 x 128 training windows hold the person with a margin of about 16 pixels on every side
# (Dalal & Triggs, sec. 3): the returned window is shrunk by these fractions per side so that the
# box hugs the person like the other detectors' boxes do.
WINDOW_MARGIN_X = 16.0 / 64.0
WINDOW_MARGIN_Y = 16.0 / 128.0
WIN_STRIDE = (8, 8)
PADDING = (16, 16)
# OpenCV's grouping of overlapping raw hits: a detection needs > GROUP_THRESHOLD neighbours,
# which removes most single-window false positives.
GROUP_THRESHOLD = 1


def _load_hog():
    """A cv2.HOGDescriptor with the default people SVM, or ImportError naming the fix."""
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        raise ImportError(
            f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to the contrib "
            "build): pip install opencv-contrib-python-headless (same version), or OpenCV 4.x; "
            "or set detector.kind to 'full_frame' / 'fixed'")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


class HogDetector(_BaseDetector):
    """Multi-scale HOG people detector; images are resized to ``hog_max_side`` on the long side."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        if config.hog_max_side < 64:
            raise ValueError(f"detector.hog_max_side must be >= 64, got {config.hog_max_side}")
        if not config.hog_scale_step > 1.0:
            raise ValueError(f"detector.hog_scale_step must be > 1, got {config.hog_scale_step}")
        self._hog = _load_hog()

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        """H x W x 3 uint8 RGB -> person boxes (image pixels), largest first (``best``)."""
        import cv2

        height, width = check_image(image_rgb)
        scale = self.config.hog_max_side / max(height, width)
        resized = image_rgb
        if abs(scale - 1.0) > 1e-3:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            resized = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA if scale < 1
                                 else cv2.INTER_LINEAR)
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(resized), hitThreshold=0.0, winStride=WIN_STRIDE,
            padding=PADDING, scale=self.config.hog_scale_step, groupThreshold=GROUP_THRESHOLD)
        if len(rects) == 0:
            return Detections()
        boxes = window_to_person_boxes(np.asarray(rects, dtype=np.float64).reshape(-1, 4),
                                       resized.shape[1] / width, resized.shape[0] / height)
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        keep = scores >= self.config.hog_score_threshold
        boxes, scores = clip_boxes(boxes[keep], width, height), scores[keep]
        order = nms(boxes, scores, self.config.nms_iou)
        return Detections(boxes[order], scores[order]).best(self.config.max_people,
                                                            self.config.min_height_px)


def window_to_person_boxes(rects: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """N x 4 HOG windows (x, y, w, h) in an image resized by (sx, sy) -> N x 4 person boxes.

    A window covers pixels x .. x + w - 1, i.e. edges x - 0.5 .. x + w - 0.5; an edge e' in the
    resized image is (e' + 0.5) / s - 0.5 in the original.
    """
    x, y, w, h = rects.T
    mx, my = w * WINDOW_MARGIN_X, h * WINDOW_MARGIN_Y
    x0, x1 = (x + mx) / sx - 0.5, (x + w - mx) / sx - 0.5
    y0, y1 = (y + my) / sy - 0.5, (y + h - my) / sy - 0.5
    return np.stack([x0, y0, x1, y1], axis=1)
