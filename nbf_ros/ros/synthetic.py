"""Synthetic camera frames with known people, for tests, the benchmark and the no-camera demo.

People are drawn as dark silhouettes (head, torso, arms, legs in human proportions: eight head
heights) on a lightly textured background; OpenCV's HOG people detector finds them, and their
known boxes and metric depths are the ground truth a test compares against. No ROS here.
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


class SyntheticScene:
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

    It finds the dark silhouettes that ``SyntheticScene`` draws (connected components), puts a
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
