"""Person boxes for the pipeline: full frame, a fixed region, OpenCV's HOG people detector, the
pretrained NanoDet-g detector (ONNX, through ``nbf_ros.engines``).

MediaPipe BlazePose, which also finds people, lives in ``keypoints/detector.py``: it depends on
this package (``Detections``), not the reverse; ``inference.pipeline.make_person_detector``
chooses between the two.

One entry point, ``make_detector(config)``; every detector has ``detect(image_rgb) -> N x 4``
boxes [x0, y0, x1, y1] (pixel-edge coordinates, see ``geometry/boxes.py``), best first, at most
``config.max_people``. ``detect_scored`` also returns the scores. Importing is cheap: OpenCV is
imported by the HOG detector when it is built, onnxruntime by NanoDet's.
"""
from __future__ import annotations

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, Detector, check_image
from nbf_ros.detection.simple import FixedBoxDetector, FullFrameDetector

__all__ = ["Detections", "Detector", "FixedBoxDetector", "FullFrameDetector", "check_image",
           "make_detector"]


def make_detector(config: DetectorConfig) -> Detector:
    """Build the detector that ``config.kind`` names (not 'mediapipe', see the module doc);
    raises ValueError with the fix."""
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
    if config.kind == "mediapipe":
        raise ValueError("detector.kind 'mediapipe' is built by "
                         "nbf_ros.inference.pipeline.make_person_detector, not by detection/")
    raise ValueError(f"unknown detector.kind {config.kind!r}; valid: full_frame, fixed, hog, nanodet, "
                     "mediapipe")
