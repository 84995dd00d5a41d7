"""MediaPipe BlazePose as person detector and 2D keypoint source (optional; docs/mediapipe.md).

BlazePose (full) is the one pretrained human model that runs offline here: its detector finds
one person per image (it wants people that fill a good part of the frame), its landmark model
gives 33 landmarks that ``nbf_ros.keypoints.blazepose`` maps onto SMPL's 24 joints.

``detect`` returns at most one box (BlazePose's legacy solution follows one person);
``keypoints(image, boxes)`` gives SMPL keypoints for any boxes, e.g. the HOG detector's: a box
that matches the person already found in this image reuses that estimate, any other box is
estimated on the image region around it, so several people are handled one box at a time.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, _BaseDetector, check_image
from nbf_ros.geometry.boxes import box_iou
from nbf_ros.keypoints.blazepose import BlazePoseResult, SmplKeypoints, pose_box, to_smpl
from nbf_ros.keypoints.runtime import PoseRunner, make_runner

# A given box is "the person found in the full image" when it overlaps that person's box this much.
REUSE_IOU = 0.5
# Per-box estimates run on the box grown by this fraction of its longer side per side (the
# detector wants some context), clipped to the image, at full resolution: BlazePose letterboxes
# and resizes internally, and zero padding or downscaling here measurably hurt its landmarks.
BOX_CONTEXT = 0.25

class MediaPipeDetector(_BaseDetector):
    """Person boxes and SMPL keypoints from BlazePose; raises MediaPipeUnavailable when absent."""

    def __init__(self, config: DetectorConfig, runner: Optional[PoseRunner] = None) -> None:
        super().__init__(config)
        if config.mediapipe_box_padding < 0:
            raise ValueError(f"detector.mediapipe_box_padding must be >= 0, got "
                             f"{config.mediapipe_box_padding}")
        self.runner = runner if runner is not None else make_runner(config)
        self._cache_key: Optional[bytes] = None
        self._cache: list[SmplKeypoints] = []

    # -- detection ---------------------------------------------------------------------------
    def people(self, image_rgb: np.ndarray) -> list[SmplKeypoints]:
        """Everyone BlazePose finds in the whole image (0 or 1), cached for the same image."""
        height, width = check_image(image_rgb)
        key = _fingerprint(image_rgb)
        if key != self._cache_key:
            result = self.runner.estimate(image_rgb)
            self._cache = [] if result is None else [
                to_smpl(result, pose_box(result, width, height, self.config.mediapipe_box_padding))]
            self._cache_key = key
        return list(self._cache)

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        """H x W x 3 uint8 RGB -> at most one person box, score = mean landmark visibility."""
        found = self.people(image_rgb)
        boxes = np.array([p.box for p in found]).reshape(-1, 4)
        scores = np.array([p.score for p in found])
        return Detections(boxes, scores).best(self.config.max_people, self.config.min_height_px)

    # -- keypoints ---------------------------------------------------------------------------
    def keypoints(self, image_rgb: np.ndarray, boxes: np.ndarray) -> list[Optional[SmplKeypoints]]:
        """SMPL keypoints (image pixels) for each of N x 4 ``boxes``; None where nobody is found.

        The returned ``box`` is the one asked for, so results line up with the pipeline's people.
        """
        height, width = check_image(image_rgb)
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be N x 4, got {boxes.shape}")
        found = self.people(image_rgb)
        out: list[Optional[SmplKeypoints]] = []
        for box in boxes:
            if found and box_iou(box, found[0].box)[0, 0] >= REUSE_IOU:
                result = found[0].source
            else:
                result = self._estimate_in_box(image_rgb, box)
            out.append(None if result is None else to_smpl(result, box))
        return out

    def _estimate_in_box(self, image_rgb: np.ndarray, box: np.ndarray) -> Optional[BlazePoseResult]:
        """BlazePose on the image region around ``box``, landmarks mapped back to image pixels."""
        height, width = image_rgb.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        margin = BOX_CONTEXT * max(x1 - x0, y1 - y0)
        # Pixel-edge box -> integer pixel rows/columns (pixel i spans [i - 0.5, i + 0.5]).
        c0, r0 = max(0, int(np.floor(x0 - margin + 0.5))), max(0, int(np.floor(y0 - margin + 0.5)))
        c1 = min(width, int(np.ceil(x1 + margin + 0.5)))
        r1 = min(height, int(np.ceil(y1 + margin + 0.5)))
        if c1 - c0 < 2 or r1 - r0 < 2:
            return None
        result = self.runner.estimate(np.ascontiguousarray(image_rgb[r0:r1, c0:c1]))
        if result is None:
            return None
        return BlazePoseResult(result.landmarks + np.array([c0, r0], dtype=np.float64),
                               result.visibility, result.world, None)

    def close(self) -> None:
        self.runner.close()


def _fingerprint(image: np.ndarray) -> bytes:
    """Content hash of an image (frames often reuse one buffer, so identity is not enough)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()
