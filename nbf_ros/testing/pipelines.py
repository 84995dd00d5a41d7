"""Pipeline stand-ins for tests and benchmarks, never used by the runtime.

``SilhouettePipeline`` has the ``Pipeline`` interface but no model: it finds the people that
``nbf_ros.testing.scenes.DrawnScene`` draws, so a test or benchmark measures the node shell
(messages, threading, tracking, diagnostics) without the cost or the variance of the method.
"""
from __future__ import annotations

import numpy as np

from nbf_ros.testing.scenes import PERSON_HEIGHT_M
from nbf_ros.types import CameraIntrinsics

# Standing pose in metres relative to the pelvis (x right, y down, z forward), SMPL joint order,
# for a 1.7 m person facing the camera; used by the stand-in pipeline below.
STANDING_JOINTS = np.array([
    [0.0, 0.0, 0.0], [0.09, 0.08, 0.0], [-0.09, 0.08, 0.0], [0.0, -0.1, 0.0], [0.1, 0.45, 0.0],
    [-0.1, 0.45, 0.0], [0.0, -0.23, 0.0], [0.1, 0.85, 0.0], [-0.1, 0.85, 0.0], [0.0, -0.28, 0.0],
    [0.1, 0.9, -0.1], [-0.1, 0.9, -0.1], [0.0, -0.5, 0.0], [0.07, -0.42, 0.0], [-0.07, -0.42, 0.0],
    [0.0, -0.62, 0.0], [0.17, -0.45, 0.0], [-0.17, -0.45, 0.0], [0.2, -0.2, 0.0], [-0.2, -0.2, 0.0],
    [0.22, 0.03, 0.0], [-0.22, 0.03, 0.0], [0.22, 0.1, 0.0], [-0.22, 0.1, 0.0]])
PELVIS_FROM_TOP = 0.45
"""Pelvis height below the top of a person's box, as a fraction of the box height."""
DARK_THRESHOLD = 100
UPRIGHT_FACING_CAMERA = np.array([np.pi, 0.0, 0.0])
"""global_orient of an upright person facing the camera (docs/architecture.md)."""


class SilhouettePipeline:
    """Stand-in with the Pipeline interface, for testing and benchmarking the node shell alone.

    It finds the dark silhouettes that ``DrawnScene`` draws (connected components), puts a
    1.7 m standing skeleton at the depth their height implies, and uses the real tracker. It
    has no model: it measures the node, not the method. ``delay_s`` emulates a model's cost;
    ``detector`` (e.g. the HOG detector) replaces the silhouette finder for real footage.
    """

    backend_name = "silhouette"

    def __init__(self, config=None, delay_s: float = 0.0, max_people: int = 5, detector=None) -> None:
        self.delay_s = delay_s
        self.detector = detector
        self.max_people = config.detector.max_people if config is not None else max_people
        self.min_height_px = config.detector.min_height_px if config is not None else 48.0

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        """N x 4 boxes of dark blobs at least min_height_px tall, largest first."""
        import cv2

        dark = (image_rgb.mean(axis=2) < DARK_THRESHOLD).astype(np.uint8)
        gap = max(3, image_rgb.shape[0] // 40)  # joins head and torso, not neighbours
        dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((gap, 3), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
        boxes = [(x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5, w * h)
                 for x, y, w, h, _ in (stats[i] for i in range(1, count)) if h >= self.min_height_px]
        boxes.sort(key=lambda b: -b[4])
        return np.array([b[:4] for b in boxes[: self.max_people]], dtype=np.float64).reshape(-1, 4)

    def process(self, image_rgb: np.ndarray, camera: CameraIntrinsics, tracker=None, fit: bool = True,
                boxes: np.ndarray | None = None, stamp_s: float = 0.0):
        from nbf_ros.types import FrameResult, Person

        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
        import time

        start = time.perf_counter()
        if boxes is None:
            boxes = (self.detector or self).detect(image_rgb)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        detect_ms = (time.perf_counter() - start) * 1e3
        if self.delay_s:
            time.sleep(self.delay_s)
        roots = np.array([self._pelvis(b, camera) for b in boxes]).reshape(-1, 3)
        ids, _ = tracker.assign(boxes, roots, stamp_s) if tracker is not None else (list(range(len(boxes))), None)
        people = []
        for pid, box, root in zip(ids, boxes, roots):
            scale = root[2] * (box[3] - box[1]) / camera.fy / PERSON_HEIGHT_M  # 1 for a 1.7 m person
            joints = root + STANDING_JOINTS * scale
            uv = np.stack([camera.fx * joints[:, 0] / joints[:, 2] + camera.cx,
                           camera.fy * joints[:, 1] / joints[:, 2] + camera.cy], axis=1)
            people.append(Person(id=int(pid), bbox=box, joints3d=joints, joints2d=uv,
                                 joint_visibility=np.ones(len(joints)), confidence=0.9,
                                 betas=np.zeros(10), global_orient=UPRIGHT_FACING_CAMERA.copy(),
                                 body_pose=np.zeros(69), transl=root.copy(),
                                 joint_confidence=np.full(len(joints), 0.9)))
        if tracker is not None:
            tracker.update(people, stamp_s)
        total_ms = (time.perf_counter() - start) * 1e3
        return FrameResult(people=people, timings_ms={"detect": detect_ms, "total": total_ms})

    @staticmethod
    def _pelvis(box: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        """Metric pelvis of a 1.7 m person filling ``box`` (pinhole back-projection)."""
        height_px = max(float(box[3] - box[1]), 1.0)
        z = camera.fy * PERSON_HEIGHT_M / height_px
        u = 0.5 * (box[0] + box[2])
        v = box[1] + PELVIS_FROM_TOP * height_px
        return np.array([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z])
