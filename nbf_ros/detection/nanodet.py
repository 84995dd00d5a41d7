"""NanoDet-g person detector (models/nanodet_g.onnx, models/pretrained.md), in-process.

Why this one: a pretrained COCO detector that finds people HOG misses (sitting, side-on, small,
partly hidden), 15 MB, one onnxruntime run per frame on the CPU (about 50 ms at 2 threads,
docs/detection.md) or a TensorRT engine on a GPU, through ``nbf_ros.engines``.

Stages: letterbox the frame to 416 x 416 (long side scaled to 416, top-left, black padding, BGR,
NanoDet's mean/std) -> the graph's per-stride class probabilities and distance distributions ->
person (class 0) scores above the threshold -> distribution-focal decode of the boxes -> back to
image pixels -> NMS -> minimum height, largest box first, at most ``max_people``. Optionally
the frame is also cut into an n x n grid of overlapping tiles, each run at the full input size
(small people get n times more pixels); boxes cut by an inner tile edge are dropped (the overlap
shows them whole in a neighbour tile or the full frame) and everything is merged by one NMS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nbf_ros.config import DetectorConfig
from nbf_ros.detection.base import Detections, _BaseDetector, check_image
from nbf_ros.engines import EngineOptions, Graph, open_graph
from nbf_ros.geometry.boxes import clip_boxes, nms

REBUILD = "python3 tools/build_pretrained_models.py"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_BINS = 11  # reg_max = 10: distances 0..10 strides per side
PERSON = 0  # COCO class index of "person"
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)  # NanoDet's training normalisation
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
EDGE_TOLERANCE_PX = 2.0  # a tile box this close to an inner tile edge counts as cut by it


@dataclass(frozen=True)
class Letterbox:
    """Where an image (or tile) sits in the 416 x 416 input: scaled by (sx, sy), top-left.

    Box coordinates: image boxes are pixel-edge (pixel (u, v) is a centre, the image spans
    [-0.5, W - 0.5], geometry/boxes.py); the network's boxes are continuous with the input's
    top-left corner at 0. ``offset`` is where the image's pixel (0, 0) lies in a larger frame
    (tiles), so ``to_image`` lands in frame pixels.
    """

    sx: float
    sy: float
    width: int  # of the resized image inside the input
    height: int
    offset: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def fit(width: int, height: int, offset: tuple[float, float] = (0.0, 0.0)) -> "Letterbox":
        """Scale the long side to INPUT_SIZE (aspect kept up to rounding to whole pixels)."""
        scale = INPUT_SIZE / max(width, height)
        new_w = min(INPUT_SIZE, max(1, round(width * scale)))
        new_h = min(INPUT_SIZE, max(1, round(height * scale)))
        return Letterbox(new_w / width, new_h / height, new_w, new_h, offset)

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """N x 4 input-pixel boxes -> N x 4 pixel-edge boxes of the (frame holding the) image."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.sx, self.sy, self.sx, self.sy])
        shift = np.array([*self.offset, *self.offset]) - 0.5
        return boxes / scale + shift

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Inverse of ``to_image``."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.sx, self.sy, self.sx, self.sy])
        shift = np.array([*self.offset, *self.offset]) - 0.5
        return (boxes - shift) * scale


def preprocess(image_rgb: np.ndarray, box: Letterbox) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 1 x 3 x 416 x 416 float32 network input (BGR, mean/std, padded)."""
    import cv2

    shrink = box.width < image_rgb.shape[1]
    resized = cv2.resize(image_rgb, (box.width, box.height),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)  # black padding, as at conversion
    canvas[:box.height, :box.width] = resized
    bgr = canvas[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)[None])


def decode_level(cls: np.ndarray, reg: np.ndarray, stride: int,
                 threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One stride's person boxes above ``threshold``, in input pixels.

    Args:
        cls: n^2 x 80 class probabilities; reg: n^2 x 44 distance logits (left, top, right,
            bottom x 11 bins); anchor i = row * n + col, centre ((col + 0.5) s, (row + 0.5) s).
    Returns:
        K x 4 boxes [x0, y0, x1, y1], (K,) scores.
    """
    n = INPUT_SIZE // stride
    if cls.shape != (n * n, 80) or reg.shape != (n * n, 4 * REG_BINS):
        raise ValueError(f"stride {stride}: expected {n * n} x 80 and {n * n} x 44 outputs, "
                         f"got {cls.shape} and {reg.shape}")
    scores = cls[:, PERSON]
    keep = np.flatnonzero(scores >= threshold)
    logits = reg[keep].reshape(-1, 4, REG_BINS).astype(np.float64)
    prob = np.exp(logits - logits.max(axis=2, keepdims=True))
    prob /= prob.sum(axis=2, keepdims=True)
    dist = (prob @ np.arange(REG_BINS, dtype=np.float64)) * stride  # K x 4: l, t, r, b
    cx = (keep % n + 0.5) * stride
    cy = (keep // n + 0.5) * stride
    boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
    return boxes, scores[keep].astype(np.float64)


def decode(outputs: dict[str, np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All strides' person boxes (input pixels, K x 4) and scores (K,), before NMS."""
    parts = [decode_level(outputs[f"cls_stride{s}"][0], outputs[f"reg_stride{s}"][0], s, threshold)
             for s in STRIDES]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def tile_grid(width: int, height: int, tiles: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """An n x n grid of [x0, y0, x1, y1) pixel windows covering the image, neighbours overlapping
    by ``overlap`` of a tile's size (so a person up to that size is whole in some tile)."""
    def spans(length: int) -> list[tuple[int, int]]:
        size = min(length, int(np.ceil(length / (tiles - (tiles - 1) * overlap))))
        starts = np.linspace(0, length - size, tiles).round().astype(int)
        return [(int(s), int(s) + size) for s in starts]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height) for x0, x1 in spans(width)]


def cut_by_inner_edge(boxes: np.ndarray, window: tuple[int, int, int, int], width: int,
                      height: int) -> np.ndarray:
    """(N,) True for boxes (frame pixels) touching an edge of the window that is not the frame's."""
    x0, y0, x1, y1 = (window[0] - 0.5, window[1] - 0.5, window[2] - 0.5, window[3] - 0.5)
    tol = EDGE_TOLERANCE_PX
    cut = np.zeros(len(boxes), dtype=bool)
    if x0 > -0.5:
        cut |= boxes[:, 0] <= x0 + tol
    if y0 > -0.5:
        cut |= boxes[:, 1] <= y0 + tol
    if x1 < width - 0.5:
        cut |= boxes[:, 2] >= x1 - tol
    if y1 < height - 0.5:
        cut |= boxes[:, 3] >= y1 - tol
    return cut


class NanoDetDetector(_BaseDetector):
    """People boxes from NanoDet-g; see the module doc for the stages."""

    def __init__(self, config: DetectorConfig, graph: Graph | None = None) -> None:
        super().__init__(config)
        _check_config(config)
        options = EngineOptions(kind=config.nanodet_runtime, threads=config.nanodet_threads)
        self.graph = graph if graph is not None else open_graph(config.nanodet_model_path, REBUILD, options)

    def raw(self, image_rgb: np.ndarray, box: Letterbox) -> tuple[np.ndarray, np.ndarray]:
        """One network run: the image's person boxes (frame pixels, before NMS) and scores."""
        outputs = self.graph.run({"image": preprocess(image_rgb, box)})
        boxes, scores = decode(outputs, self.config.nanodet_score_threshold)
        return box.to_image(boxes), scores

    def detect_scored(self, image_rgb: np.ndarray) -> Detections:
        """H x W x 3 uint8 RGB -> person boxes (image pixels), largest first (``best``)."""
        height, width = check_image(image_rgb)
        boxes, scores = self.raw(image_rgb, Letterbox.fit(width, height))
        if self.config.nanodet_tiles > 1:
            extra = [self._tile(image_rgb, w) for w in
                     tile_grid(width, height, self.config.nanodet_tiles, self.config.nanodet_tile_overlap)]
            boxes = np.concatenate([boxes, *(b for b, _ in extra)])
            scores = np.concatenate([scores, *(s for _, s in extra)])
        boxes = clip_boxes(boxes, width, height)
        order = nms(boxes, scores, self.config.nanodet_nms_iou)
        return Detections(boxes[order], scores[order]).best(self.config.max_people,
                                                            self.config.min_height_px)

    def _tile(self, image_rgb: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = window
        box = Letterbox.fit(x1 - x0, y1 - y0, offset=(float(x0), float(y0)))
        boxes, scores = self.raw(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]), box)
        keep = ~cut_by_inner_edge(boxes, window, image_rgb.shape[1], image_rgb.shape[0])
        return boxes[keep], scores[keep]


def _check_config(config: DetectorConfig) -> None:
    """ValueError naming the bad nanodet_* option."""
    if not 0.0 < config.nanodet_score_threshold < 1.0:
        raise ValueError(f"detector.nanodet_score_threshold must be in (0, 1), "
                         f"got {config.nanodet_score_threshold}")
    if not 0.0 < config.nanodet_nms_iou <= 1.0:
        raise ValueError(f"detector.nanodet_nms_iou must be in (0, 1], got {config.nanodet_nms_iou}")
    if not 1 <= config.nanodet_tiles <= 4:
        raise ValueError(f"detector.nanodet_tiles must be 1 (off) .. 4, got {config.nanodet_tiles}")
    if not 0.0 <= config.nanodet_tile_overlap < 0.5:
        raise ValueError(f"detector.nanodet_tile_overlap must be in [0, 0.5), got {config.nanodet_tile_overlap}")
    if config.nanodet_threads < 0:
        raise ValueError(f"detector.nanodet_threads must be >= 0, got {config.nanodet_threads}")
