"""Person boxes for the pipeline: the pretrained NanoDet-g detector (ONNX, through
``nbf_ros.engines``; the default), OpenCV's HOG people detector, a fixed region, the full frame.

One entry point, ``make_detector(config)``; every detector has ``detect(image_rgb) -> N x 4``
boxes [x0, y0, x1, y1] (pixel-edge coordinates, see ``geometry/boxes.py``), largest first, at
most ``config.max_people`` (``Detections.best``: the nearest people when more are in view).
``detect_scored`` also returns the scores. Importing is cheap: OpenCV is imported by the HOG
detector when it is built, onnxruntime by NanoDet's.
"""
from __future__ import annotations

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, Detector, check_image
from nbf_ros.detection.simple import FixedBoxDetector, FullFrameDetector

__all__ = ["Detections", "Detector", "FixedBoxDetector", "FullFrameDetector", "check_image",
           "make_detector"]

KINDS = ("nanodet", "hog", "fixed", "full_frame")
"""Every ``detector.kind`` (the config's Literal, in this order in messages)."""


def make_detector(config: DetectorConfig) -> Detector:
    """Build the detector that ``config.kind`` names; raises ValueError naming the valid kinds."""
    if config.kind == "full_frame":
        return FullFrameDetector(config)
    if config.kind == "fixed":
        return FixedBoxDetector(config)
    if config.kind == "hog":
        from nbf_ros.detection.hog import HogDetector

        return HogDetector(config)
    if config.kind == "nanodet":
        from nbf_ros.detection.nanodet import NanoDetDetector

        return NanoDetDetector(config)
    raise ValueError(f"unknown detector.kind {config.kind!r}; valid: {', '.join(KINDS)}")
