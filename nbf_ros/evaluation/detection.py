"""Person-detection scoring: greedy matching at an IoU threshold, recall/precision by height.

One copy for the detector benchmark and the detector tests. A truth box may be marked "ignore"
(a person the detector cannot be asked to find, e.g. mostly hidden): a detection matching it is
neither a hit nor a false person, and it is not in the recall.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nbf_ros.geometry.boxes import box_iou


@dataclass
class Matching:
    """Result of matching the detections of one image to its truth.

    Attributes:
        truth_hit: (M,) bool, truth box i was found. det_state: (N,) 1 = hit, 0 = false person,
        -1 = matched an ignored truth box (or lies in an ignore region).
    """

    truth_hit: np.ndarray
    det_state: np.ndarray


def match(truth: np.ndarray, detections: np.ndarray, scores: np.ndarray, iou_min: float = 0.5,
          ignore: np.ndarray | None = None) -> Matching:
    """Greedy matching, best score first, each truth box matched once (COCO-style).

    Args:
        truth: M x 4 boxes; detections: N x 4; scores: (N,); ignore: (M,) bool or None.
    A detection takes the unmatched truth box of highest IoU >= iou_min, preferring boxes that
    are not ignored (so an ignored neighbour never steals a real hit).
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    ignore = np.zeros(len(truth), bool) if ignore is None else np.asarray(ignore, bool)
    iou = box_iou(detections, truth)
    hit = np.zeros(len(truth), bool)
    state = np.zeros(len(detections), np.int64)
    for d in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        for pool, value in ((~ignore, 1), (ignore, -1)):
            cand = np.where(pool & ~hit & (iou[d] >= iou_min), iou[d], -1.0)
            if cand.size and cand.max() >= 0:
                hit[int(cand.argmax())] = True
                state[d] = value
                break
    return Matching(hit, state)


@dataclass
class HeightBins:
    """Hits / misses / false people accumulated per person-height bin (pixels)."""

    edges: tuple[float, ...] = (80.0, 200.0)
    found: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    truths: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))
    false: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))

    def labels(self) -> list[str]:
        lo, hi = self.edges
        return [f"<{lo:.0f}px", f"{lo:.0f}-{hi:.0f}px", f">{hi:.0f}px"]

    def bin(self, boxes: np.ndarray) -> np.ndarray:
        heights = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return np.digitize(heights[:, 3] - heights[:, 1], self.edges)

    def add(self, truth: np.ndarray, detections: np.ndarray, m: Matching,
            ignore: np.ndarray | None = None) -> None:
        """Count one image; detections are binned by their own height (hits and false alike)."""
        counted = np.ones(len(m.truth_hit), bool) if ignore is None else ~np.asarray(ignore, bool)
        tb, db = self.bin(truth), self.bin(detections)
        np.add.at(self.truths, tb[counted], 1)
        np.add.at(self.found, tb[counted & m.truth_hit], 1)
        np.add.at(self.hits, db[m.det_state == 1], 1)
        np.add.at(self.false, db[m.det_state == 0], 1)

    def recall(self) -> np.ndarray:
        """(3,) found / truth per bin (nan where no truth)."""
        return np.where(self.truths > 0, self.found / np.maximum(self.truths, 1), np.nan)

    def precision(self) -> np.ndarray:
        """(3,) hits / (hits + false) per bin (nan where no detection)."""
        n = self.hits + self.false
        return np.where(n > 0, self.hits / np.maximum(n, 1), np.nan)
