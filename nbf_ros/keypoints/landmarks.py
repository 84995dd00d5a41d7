"""BlazePose GHUM landmarks per person box, top-down, in this process (ONNX; models/pretrained.md).

MediaPipe runs its landmark model on a square region of interest (ROI) around one person,
warped to 256 x 256. We do the same for N boxes from any detector, in one batch:

1. ROI of a box (``roi_from_box``): a square around the box centre, side = longer box side x
   ``roi_scale`` (MediaPipe's ``RectTransformationCalculator`` scale 1.25, ``square_long``), no
   rotation (a detector box says nothing about the body's tilt).
2. Optional refinement (``roi_from_aux``): the ROI MediaPipe would track into the next frame,
   from the first pass's auxiliary landmarks 33 (hip centre) and 34 (scale/rotation point):
   centred on 33, side = 2 |34 - 33| x 1.25 (MediaPipe's, whatever ``roi_scale``), rotated so
   that 33 -> 34 points up in the crop (MediaPipe's ``AlignmentPointsRectsCalculator``, target
   angle 90 degrees); run again.
3. Each crop is one ``cv2.warpAffine`` (bilinear, black outside the image), the batch
   B x 256 x 256 x 3 float32 in [0, 1] runs once, and the outputs are decoded back to the image:
   landmarks through the inverse affine; visibility/presence through a sigmoid (they are
   logits); world landmarks rotated from the crop's view into the camera frame
   (``world_to_camera``); the pose flag (a probability) drops boxes without a person.

Pixel conventions are those of ``geometry/camera.py`` (pixel (u, v) is a pixel centre; boxes
are pixel-edge coordinates like ``CropBox.around_bbox``'s). The model's own crop coordinates are
edge-based: crop pixel j spans [j, j + 1] (MediaPipe's normalised x = x_model / 256).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from nbf_ros.config import BlazePoseConfig, resolve_path
from nbf_ros.errors import NbfError
from nbf_ros.keypoints.blazepose import NUM_LANDMARKS, BlazePoseResult, SmplKeypoints, to_smpl
from nbf_ros.types import CameraIntrinsics

CROP_SIZE = 256
NUM_MODEL_LANDMARKS = 39
HIP_CENTRE, SCALE_POINT = 33, 34
# MediaPipe's ROI rotation target: the hip -> scale-point vector points straight up in the crop.
TARGET_ANGLE = 0.5 * np.pi
# MediaPipe's scale of the ROI it derives from landmarks 33/34 (pose_landmarks_to_roi): the
# model was trained on crops framed this way, whatever scale suits detector boxes.
AUX_ROI_SCALE = 1.25

RunModel = Callable[[np.ndarray], dict[str, np.ndarray]]
"""B x 256 x 256 x 3 float32 in [0, 1] -> the model's outputs by name (models/pretrained.md)."""


@dataclass(frozen=True)
class Roi:
    """A square, possibly rotated, region of the image that becomes one 256 x 256 crop.

    Attributes:
        centre: (2,) image pixel (u, v) of the crop centre (pixel-centre convention).
        side: side length in image pixels (> 0).
        rotation: radians; the crop's x axis points along (cos, sin) in the image (y down), its
            y axis along (-sin, cos): positive = clockwise on screen, as MediaPipe's rects.
    """

    centre: np.ndarray
    side: float
    rotation: float = 0.0

    def crop_to_image(self, size: int = CROP_SIZE) -> np.ndarray:
        """2 x 3 affine: crop pixel-centre index (j, i) -> image pixel (u, v).

        u = c + (side / size) R (j + 0.5 - size / 2): crop pixel j covers [j, j + 1] in the
        model's edge-based coordinates, whose centre size / 2 sits on the ROI centre.
        """
        linear = (self.side / size) * _rotation_2d(self.rotation)
        offset = np.asarray(self.centre, np.float64) + linear @ np.full(2, 0.5 - size / 2.0)
        return np.hstack([linear, offset[:, None]])

    def image_to_crop(self, size: int = CROP_SIZE) -> np.ndarray:
        """2 x 3 affine: image pixel (u, v) -> crop pixel-centre index (the inverse of
        ``crop_to_image``)."""
        return invert_affine(self.crop_to_image(size))

    def model_to_image(self, xy_model: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
        """... x 2 model crop coordinates (edge-based, 0..size) -> ... x 2 image pixels."""
        affine = self.crop_to_image(size)
        return (np.asarray(xy_model, np.float64) - 0.5) @ affine[:, :2].T + affine[:, 2]


def _rotation_2d(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine map (x -> A x + b)."""
    linear_inv = np.linalg.inv(affine[:, :2])
    return np.hstack([linear_inv, (-linear_inv @ affine[:, 2])[:, None]])


def roi_from_box(box: np.ndarray, scale: float) -> Roi:
    """ROI of a detector box [x0, y0, x1, y1] (pixel edges): square on the box centre, side =
    longer side x ``scale``, rotation 0 (MediaPipe's ``square_long`` + scale)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    centre = np.array([(x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5])
    return Roi(centre, max(x1 - x0, y1 - y0) * scale, 0.0)


def roi_from_aux(hip_centre: np.ndarray, scale_point: np.ndarray,
                 scale: float = AUX_ROI_SCALE) -> Roi:
    """The ROI MediaPipe derives from landmarks 33 (hip centre) and 34 (image pixels).

    Centre on the hips, side 2 |34 - 33| x ``scale`` (MediaPipe: 1.25; 33 -> 34 is the radius of a circle around
    the whole body), rotated so 33 -> 34 points up in the crop (rotation = 90 deg - the vector's
    angle, measured with y up).
    """
    hip = np.asarray(hip_centre, np.float64)
    delta = np.asarray(scale_point, np.float64) - hip
    rotation = _normalise_angle(TARGET_ANGLE - np.arctan2(-delta[1], delta[0]))
    return Roi(hip, 2.0 * float(np.hypot(*delta)) * scale, rotation)


def _normalise_angle(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return float(angle - 2.0 * np.pi * np.floor((angle + np.pi) / (2.0 * np.pi)))


def warp_crops(image_rgb: np.ndarray, rois: list[Roi], size: int = CROP_SIZE) -> np.ndarray:
    """H x W x 3 uint8 image -> B x size x size x 3 float32 in [0, 1], one affine warp per ROI
    (bilinear, black outside the image: what the model saw in MediaPipe)."""
    import cv2  # local: cv2 import is slow and not needed by pure-geometry users

    batch = np.zeros((len(rois), size, size, 3), np.float32)
    for i, roi in enumerate(rois):
        crop = cv2.warpAffine(image_rgb, roi.crop_to_image(size), (size, size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.multiply(crop, np.float32(1.0 / 255.0), out=batch[i], casting="unsafe")
    return batch


def refine_from_heatmaps(xy_model: np.ndarray, heatmaps: np.ndarray, window: int = 7,
                         min_confidence: float = 0.5) -> np.ndarray:
    """Landmarks moved to the confidence-weighted mean of their heatmap window (MediaPipe's
    ``RefineLandmarksFromHeatmapCalculator``: sigmoid of the logits, 7 x 7 cells around the
    landmark, only where the window's best cell reaches ``min_confidence``).

    Args:
        xy_model: K x 2 model crop coordinates (edge-based, 0..256).
        heatmaps: h x w x K heatmap logits over the crop (64 x 64 at 1/4 of the crop).
    Returns K x 2 model crop coordinates; a heatmap cell (i, j) stands for its centre.
    """
    rows, cols, count = heatmaps.shape
    cell = CROP_SIZE / cols
    out = np.array(xy_model, np.float64, copy=True)
    half = window // 2
    for k in range(min(count, len(out))):
        col, row = int(np.floor(out[k, 0] / cell)), int(np.floor(out[k, 1] / cell))
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        r0, r1 = max(0, row - half), min(rows, row + half + 1)
        c0, c1 = max(0, col - half), min(cols, col + half + 1)
        conf = sigmoid(heatmaps[r0:r1, c0:c1, k].astype(np.float64))
        total = conf.sum()
        if conf.max() < min_confidence or total <= 0:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        out[k] = [((cc + 0.5) * conf).sum() / total * cell, ((rr + 0.5) * conf).sum() / total * cell]
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings (mask logits reach +-1700)."""
    x = np.asarray(x)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def ray_rotation(direction: np.ndarray) -> np.ndarray:
    """3 x 3 rotation taking +z onto ``direction`` (3,) by the smallest angle (about z x d).

    The model's world landmarks are as seen by a camera looking straight at the crop centre;
    the real camera sees that point along this ray, so this turns the crop's view into the
    camera's without any roll about the ray.
    """
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    axis = np.array([-d[1], d[0], 0.0])  # z x d
    sin, cos = np.linalg.norm(axis), d[2]
    if sin < 1e-12:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / sin
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + sin * cross + (1.0 - cos) * cross @ cross


def world_to_camera(world: np.ndarray, roi: Roi, camera: CameraIntrinsics) -> np.ndarray:
    """K x 3 world landmarks in the crop's axes -> K x 3 metres in camera optical axes (origin
    still the hip centre).

    First undo the ROI rotation about the viewing axis (MediaPipe's
    ``WorldLandmarkProjectionCalculator``: the crop's x/y axes are rotated by ``roi.rotation`` in
    the image), then rotate the view axis onto the ray through the ROI centre (``ray_rotation``).
    """
    rot_roi = np.eye(3)
    rot_roi[:2, :2] = _rotation_2d(roi.rotation)
    u, v = roi.centre
    ray = np.array([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, 1.0])
    return np.asarray(world, np.float64) @ (ray_rotation(ray) @ rot_roi).T


@dataclass
class PoseLandmarks:
    """BlazePose's estimate for one person box, in image terms.

    Attributes:
        box: (4,) the box asked for (pixel edges).
        roi: the region the final estimate was made on.
        pose_flag: probability that the crop holds a person.
        landmarks: 33 x 3: image pixels (u, v) and z (depth relative to the hips, same pixel
            scale, smaller = nearer).
        visibility, presence: (33,) probabilities (sigmoid of the model's logits).
        world: 33 x 3 metres, origin at the hip centre, camera optical axes.
        aux: 6 x 2 image pixels of the auxiliary landmarks 33..38 (33 hips, 34 ROI scale point).
        mask_logits: 256 x 256 float32 segmentation logits over the crop (``mask`` gives the
            probability; ``mask_in_box`` pastes it into the image).
    """

    box: np.ndarray
    roi: Roi
    pose_flag: float
    landmarks: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    aux: np.ndarray
    mask_logits: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        """(33,) visibility x presence: seen and in the crop (the fit's keypoint confidence)."""
        return self.visibility * self.presence

    def mask(self) -> np.ndarray:
        """256 x 256 float32 person probability over the crop."""
        return sigmoid(self.mask_logits)

    def to_result(self) -> BlazePoseResult:
        """As ``keypoints/blazepose.py``'s estimate (confidence as its visibility), for
        ``to_smpl``."""
        return BlazePoseResult(self.landmarks[:, :2].copy(), self.confidence, self.world.copy())

    def to_smpl(self) -> SmplKeypoints:
        """SMPL's 24 joints for the box asked for (``blazepose.to_smpl``: confidence =
        visibility x presence mapped as in docs/landmarks.md)."""
        return to_smpl(self.to_result(), self.box)


def decode(outputs: dict[str, np.ndarray], rois: list[Roi], boxes: np.ndarray,
           camera: CameraIntrinsics) -> list[PoseLandmarks]:
    """The model's batch outputs (models/pretrained.md) -> one PoseLandmarks per ROI; with a
    ``heatmaps`` output the 33 landmarks' x, y are refined from it (``refine_from_heatmaps``)."""
    count = len(rois)
    raw = np.asarray(outputs["landmarks"], np.float64).reshape(count, NUM_MODEL_LANDMARKS, 5)
    if "heatmaps" in outputs:
        for i in range(count):
            raw[i, :NUM_LANDMARKS, :2] = refine_from_heatmaps(raw[i, :NUM_LANDMARKS, :2],
                                                              outputs["heatmaps"][i])
    world = np.asarray(outputs["world_landmarks"], np.float64).reshape(count, NUM_MODEL_LANDMARKS, 3)
    flags = np.asarray(outputs["pose_flag"], np.float64).reshape(count)
    masks = np.asarray(outputs["segmentation"], np.float32).reshape(count, CROP_SIZE, CROP_SIZE)
    people = []
    for i, roi in enumerate(rois):
        xy = roi.model_to_image(raw[i, :, :2])  # 39 x 2
        z = raw[i, :NUM_LANDMARKS, 2:3] * (roi.side / CROP_SIZE)
        people.append(PoseLandmarks(
            box=np.asarray(boxes[i], np.float64), roi=roi, pose_flag=float(flags[i]),
            landmarks=np.hstack([xy[:NUM_LANDMARKS], z]),
            visibility=sigmoid(raw[i, :NUM_LANDMARKS, 3]), presence=sigmoid(raw[i, :NUM_LANDMARKS, 4]),
            world=world_to_camera(world[i, :NUM_LANDMARKS], roi, camera),
            aux=xy[NUM_LANDMARKS:], mask_logits=masks[i]))
    return people


def mask_in_box(person: PoseLandmarks, box: np.ndarray, height: int, width: int
                ) -> tuple[np.ndarray, tuple[int, int]]:
    """The person's mask pasted into image pixels over ``box`` (clipped to the H x W image).

    Returns (h x w float32 probability, (col0, row0)): image pixel (col0 + j, row0 + i) has
    probability out[i, j]; 0 outside the crop. An empty box (after clipping) gives 0 x 0.
    """
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    col0, row0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    col1, row1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if not (np.isfinite([x0, y0, x1, y1]).all() and col1 > col0 and row1 > row0):
        return np.zeros((0, 0), np.float32), (col0, row0)
    to_crop = person.roi.image_to_crop()  # image pixel -> crop pixel index
    to_crop[:, 2] += to_crop[:, :2] @ np.array([col0, row0], np.float64)  # patch index -> crop
    patch = cv2.warpAffine(person.mask(), to_crop, (col1 - col0, row1 - row0),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return patch, (col0, row0)


# --- the model --------------------------------------------------------------------------------
REBUILD = "python3 tools/build_pretrained_models.py"
MODEL_PATHS = {variant: f"models/blazepose_{variant}.onnx" for variant in ("lite", "full", "heavy")}
OUTPUTS = ("landmarks", "world_landmarks", "pose_flag", "segmentation")
# Boxes narrower or lower than this (image pixels) hold no person to speak of: skipped.
MIN_BOX_PX = 2.0


class LandmarkModelError(NbfError, RuntimeError):
    """The BlazePose landmark model cannot be used; the message says how to get it."""


def open_landmark_model(config: BlazePoseConfig):
    """The ONNX graph of ``config.variant`` through the shared engines (onnxruntime CPU)."""
    from nbf_ros.engines import EngineOptions, open_graph

    path = MODEL_PATHS[config.variant]
    rebuild = REBUILD + (" --heavy" if config.variant == "heavy" else "")
    if config.variant == "heavy" and not resolve_path(path).is_file():
        raise LandmarkModelError(f"BlazePose heavy is not shipped ({path} missing); build it with "
                                 f"`{rebuild}`")
    graph = open_graph(path, rebuild, EngineOptions(threads=config.num_threads))
    missing = [name for name in ("image", *OUTPUTS)
               if name not in (*graph.input_names, *graph.output_names)]
    if missing:
        raise LandmarkModelError(f"{path}: not a BlazePose landmark model (no {missing}); rebuild "
                                 f"it with `{rebuild}`")
    return graph


def check_config(config: BlazePoseConfig) -> None:
    """ValueError naming the key of an out-of-range setting."""
    if config.num_threads < 0:
        raise ValueError(f"blazepose.num_threads must be >= 0, got {config.num_threads}")
    if not 0.0 <= config.min_pose_flag <= 1.0:
        raise ValueError(f"blazepose.min_pose_flag must be in [0, 1], got {config.min_pose_flag}")
    if not config.roi_scale > 0.0:
        raise ValueError(f"blazepose.roi_scale must be > 0, got {config.roi_scale}")


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W, H x W x 1, H x W x 3 or H x W x 4 uint8 -> H x W x 3 uint8 RGB (gray repeated,
    alpha dropped); ValueError for anything else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"expected an H x W (x 1, 3 or 4) image, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    return np.ascontiguousarray(image[:, :, :3])


def usable_box(box: np.ndarray, width: int, height: int) -> bool:
    """A finite box of at least MIN_BOX_PX per side that overlaps the image (pixel edges)."""
    x0, y0, x1, y1 = box
    return bool(np.isfinite(box).all() and x1 - x0 >= MIN_BOX_PX and y1 - y0 >= MIN_BOX_PX
                and x1 > 0 and y1 > 0 and x0 < width and y0 < height)


class BlazePoseLandmarker:
    """BlazePose GHUM on the boxes of any detector: one batch per pass, results per box.

    Not thread-safe (one caller at a time, like the pipeline).
    """

    def __init__(self, config: BlazePoseConfig, run_model: Optional[RunModel] = None) -> None:
        """``run_model`` replaces the ONNX graph (tests); default: ``open_landmark_model``."""
        check_config(config)
        self.config = config
        if run_model is None:
            graph = open_landmark_model(config)
            names = OUTPUTS + (("heatmaps",) if config.heatmap_refine else ())
            run_model = lambda batch: graph.run({"image": batch}, names)  # noqa: E731
        self.run_model = run_model

    def estimate(self, image: np.ndarray, boxes: np.ndarray,
                 camera: Optional[CameraIntrinsics] = None) -> list[Optional[PoseLandmarks]]:
        """Landmarks for each of N x 4 ``boxes`` (pixel edges); None where there is no usable
        box or no person (pose flag below ``min_pose_flag``).

        Args:
            image: H x W (x 1, 3, 4) uint8, RGB when in colour.
            camera: intrinsics of the image for the world landmarks' rotation (None = the
                default for its size, ``CameraIntrinsics.default_for``).
        """
        image = as_rgb(image)
        height, width = image.shape[:2]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        camera = camera if camera is not None else CameraIntrinsics.default_for(width, height)
        keep = [i for i, box in enumerate(boxes) if usable_box(box, width, height)]
        rois = [roi_from_box(boxes[i], self.config.roi_scale) for i in keep]
        found = self._run(image, rois, boxes[keep], camera)
        if self.config.refine_roi:
            found = self._refine(image, found, camera)
        out: list[Optional[PoseLandmarks]] = [None] * len(boxes)
        for i, person in zip(keep, found):
            if person.pose_flag >= self.config.min_pose_flag:
                out[i] = person
        return out

    def keypoints(self, image: np.ndarray, boxes: np.ndarray,
                  camera: Optional[CameraIntrinsics] = None) -> list[Optional[SmplKeypoints]]:
        """SMPL's 24 joints per box (``to_smpl``: confidence = visibility x presence mapped as in
        docs/landmarks.md), None where ``estimate`` found nobody; ``box`` is the one asked for."""
        return [None if p is None else p.to_smpl() for p in self.estimate(image, boxes, camera)]

    def _run(self, image: np.ndarray, rois: list[Roi], boxes: np.ndarray,
             camera: CameraIntrinsics) -> list[PoseLandmarks]:
        if not rois:
            return []
        return decode(self.run_model(warp_crops(image, rois)), rois, boxes, camera)

    def _refine(self, image: np.ndarray, first: list[PoseLandmarks],
                camera: CameraIntrinsics) -> list[PoseLandmarks]:
        """Re-run the people of the first pass on MediaPipe's tracking ROI; a refined estimate
        replaces the first one unless its pose flag falls below the threshold."""
        candidates = [(i, roi_from_aux(p.aux[0], p.aux[1]))
                      for i, p in enumerate(first) if p.pose_flag >= self.config.min_pose_flag]
        candidates = [(i, roi) for i, roi in candidates
                      if np.isfinite(roi.centre).all() and roi.side >= MIN_BOX_PX]
        redo, rois = [i for i, _ in candidates], [roi for _, roi in candidates]
        second = self._run(image, rois, np.array([first[i].box for i in redo]).reshape(-1, 4), camera)
        out = list(first)
        for i, person in zip(redo, second):
            if person.pose_flag >= self.config.min_pose_flag:
                out[i] = person
        return out
