"""Track ids across frames: gated optimal assignment on box overlap and 3D root distance.

Why both cues: box IoU is reliable at high frame rates and needs no 3D estimate, but it collapses
when an occluder shrinks a person's box or two people cross in the image; the 3D root (the body
translation ``transl``) separates people at different depths and is unaffected by the box
shrinking. A pair (track, box) is a candidate when either gate admits it; among candidates the
Hungarian algorithm (scipy.optimize.linear_sum_assignment) minimises

    cost = iou_weight * (1 - IoU) + distance_weight * min(d / distance_gate_m, 1)

where the distance term is a neutral 1 when either side has no 3D root.

Time handling (stamps are image stamps in seconds, not wall time):
- tracks not updated for ``timeout_s`` and missing from at least ``min_missed_frames`` processed
  frames are dropped (a pipeline slower than the timeout keeps its tracks); ids are monotonic and
  never reused;
- a stamp earlier than the latest one by more than ``max_backward_jump_s`` is a clock reset (a
  bag looping, a simulator restarting): every track is dropped and tracking starts afresh;
- a smaller step back (frames reordered by the transport) is tolerated: tracks are matched as
  usual but nobody's age is computed from the older stamp, so no track is dropped or refreshed
  into the past.

Tracking mode (``TrackingModeConfig``, MediaPipe's way of running BlazePose on video): a track
also holds the box its person should be looked for in next frame (``box_from_landmarks``: the
box around its BlazePose landmarks, grown by a margin), and the tracker counts the frames since
the detector last ran, so that the pipeline can skip the detector while every track holds.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from nbf_ros.config import TrackerConfig, TrackingModeConfig
from nbf_ros.geometry.boxes import box_area, box_intersection, box_iou, clip_boxes
from nbf_ros.types import Person

LOG = logging.getLogger(__name__)

_GATED = 1e6
"""Cost of a pair that no gate admits; larger than any admissible cost (at most the weights' sum)."""


@dataclass
class Track:
    """One tracked person: the last estimate and when it was seen (image-stamp seconds)."""

    id: int
    box: np.ndarray
    root: Optional[np.ndarray]
    last_seen_s: float
    person: Person
    missed: int = 0
    """Frames processed (``update`` calls) since this track was last seen."""
    next_box: Optional[np.ndarray] = None
    """Where to look for this person next frame (tracking mode), or None: find them by detection."""


def check_tracking_config(cfg: TrackingModeConfig) -> None:
    """Raise ValueError naming the first TrackingModeConfig value the pipeline cannot use."""
    if cfg.detect_every < 1:
        raise ValueError(f"tracking.detect_every must be >= 1, got {cfg.detect_every}")
    if not 0.0 <= cfg.roi_margin <= 1.0:
        raise ValueError(f"tracking.roi_margin must be in [0, 1], got {cfg.roi_margin}")
    if not 0.0 < cfg.merge_iou <= 1.0:
        raise ValueError(f"tracking.merge_iou must be in (0, 1], got {cfg.merge_iou}")
    if cfg.fit_iterations < 0 or cfg.start_iterations < 1:
        raise ValueError("tracking.fit_iterations must be >= 0 and tracking.start_iterations >= 1, got "
                         f"{cfg.fit_iterations} and {cfg.start_iterations}")


def box_from_landmarks(points: np.ndarray, margin: float, width: int, height: int) -> Optional[np.ndarray]:
    """A tracked person's box for the next frame (MediaPipe derives its next ROI from the
    landmarks instead of running the detector): [x0, y0, x1, y1] pixel edges (geometry/boxes.py).

    Args:
        points: L x 2 landmark pixels (u, v), pixel-centre convention; non-finite rows ignored.
            All of BlazePose's landmarks, hidden ones included: the model places them from the
            whole body's shape, so the box keeps framing a person a thing walks in front of.
        margin: each side moves out by ``margin`` x the landmarks' longer extent (joints lie
            inside the body's outline; a detector box also holds the head's top and the feet).
    Returns:
        (4,) float64 clipped to the image, or None when nothing of it is left in the image.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return None
    low, high = pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5  # the outer edges of those pixels
    grow = margin * float((high - low).max())
    box = clip_boxes(np.concatenate([low - grow, high + grow]), width, height)[0]
    return box if box[2] > box[0] and box[3] > box[1] else None


def already_tracked(box: np.ndarray, landmark_box: Optional[np.ndarray], tracked: np.ndarray,
                    merge_iou: float) -> bool:
    """Whether a detector box (4,) is a person one of the ``tracked`` boxes (K x 4) already
    follows, so that merging detections into the tracks never adds anyone twice.

    The same person when the box, or the box around the landmarks BlazePose read in it
    (``landmark_box``, None when it read no pose), overlaps a tracked box by ``merge_iou`` (IoU;
    BlazePose places the whole body even in a box of half of it). A box BlazePose reads no pose
    in (the legs of a tracked person hidden by a table leave the detector the upper body) is the
    tracked person when ``merge_iou`` of its own area lies inside a tracked box.
    """
    tracked = np.asarray(tracked, np.float64).reshape(-1, 4)
    if len(tracked) == 0:
        return False
    box = np.asarray(box, np.float64).reshape(1, 4)
    if box_iou(box, tracked).max() >= merge_iou:
        return True
    if landmark_box is not None:
        return bool(box_iou(np.asarray(landmark_box, np.float64).reshape(1, 4), tracked).max() >= merge_iou)
    inside = box_intersection(box, tracked)[0] / max(float(box_area(box)[0]), 1e-9)
    return bool(inside.max() >= merge_iou)


def duplicate_boxes(boxes: np.ndarray, iou: float) -> list[int]:
    """Indices of boxes that overlap an earlier box by at least ``iou`` (the earlier one stays):
    two boxes that frame one person, to be merged into one (N x 4 in, order = priority)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return []
    overlap = box_iou(boxes, boxes)
    dropped: list[int] = []
    for j in range(1, len(boxes)):
        if any(overlap[i, j] >= iou for i in range(j) if i not in dropped):
            dropped.append(j)
    return dropped


class Tracker:
    """Assigns stable integer ids to person boxes across frames (see the module docstring).

    Usage per frame: ``ids, warm = tracker.assign(boxes, roots, stamp)``, run the estimator with
    ``warm`` as the per-box initialisation, then ``tracker.update(people, stamp)`` with the people
    carrying the ids from ``assign``.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._validate(self.config)
        self._tracks: dict[int, Track] = {}
        self._next_id = 0
        self._latest_s: Optional[float] = None
        self._since_detection: Optional[int] = None
        self.resets = 0
        """Number of clock resets seen (stamps jumping back by more than max_backward_jump_s)."""

    @staticmethod
    def _validate(cfg: TrackerConfig) -> None:
        if not 0.0 <= cfg.iou_gate <= 1.0:
            raise ValueError(f"TrackerConfig.iou_gate must be in [0, 1], got {cfg.iou_gate}")
        for name in ("distance_gate_m", "timeout_s"):
            if not getattr(cfg, name) > 0:
                raise ValueError(f"TrackerConfig.{name} must be > 0, got {getattr(cfg, name)}")
        if cfg.iou_weight < 0 or cfg.distance_weight < 0 or cfg.max_backward_jump_s < 0:
            raise ValueError("TrackerConfig weights and max_backward_jump_s must be >= 0")
        if cfg.min_missed_frames < 1:
            raise ValueError(f"TrackerConfig.min_missed_frames must be >= 1, got {cfg.min_missed_frames}")

    @property
    def track_ids(self) -> list[int]:
        return sorted(self._tracks)

    def reset(self) -> None:
        """Forget every track (ids keep increasing: an id never names two people)."""
        self._tracks.clear()
        self._latest_s = None
        self._since_detection = None

    # -- tracking mode ------------------------------------------------------------------------
    def tracked_boxes(self) -> tuple[list[int], np.ndarray]:
        """(ids, K x 4 boxes) of the tracks seen in the last processed frame that know where to
        look next (``update``'s ``next_boxes``), oldest track first."""
        live = [t for t in sorted(self._tracks.values(), key=lambda t: t.id)
                if t.missed == 0 and t.next_box is not None]
        boxes = np.stack([t.next_box for t in live]) if live else np.zeros((0, 4))
        return [t.id for t in live], boxes

    def detection_due(self, every: int) -> bool:
        """True when ``every`` frames were processed since the detector last ran (or it never
        did since the last reset): time to look for people who entered meanwhile."""
        return self._since_detection is None or self._since_detection >= every

    def detector_ran(self) -> None:
        """Record that the detector ran on the frame being processed (before its ``update``)."""
        self._since_detection = 0

    def assign(self, boxes: np.ndarray, roots: Optional[np.ndarray], stamp_s: float,
               known: Optional[Sequence[Optional[int]]] = None) -> tuple[list[int], list[Optional[Person]]]:
        """Give each box a track id and that track's last Person (None for new tracks).

        Args:
            boxes: N x 4 [x0, y0, x1, y1] pixels.
            roots: N x 3 body translations in metres, camera frame (the same quantity as
                ``Person.transl``, which ``update`` stores: the pipeline's regressed ``transl``),
                or None when unknown (rows with a non-finite value count as unknown).
            stamp_s: image stamp in seconds.
            known: per box the track it is known to continue (tracking mode: the box came from
                that track's landmarks), or None; the other boxes are matched as usual among the
                other tracks.
        Returns:
            (ids, warm): N ids (existing or new, all distinct) and N warm-start Persons or None.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
        if roots is not None:
            roots = np.asarray(roots, dtype=np.float64)
            if roots.shape != (len(boxes), 3):
                raise ValueError(f"roots must be N x 3 with N = {len(boxes)}, got {roots.shape}")
        known = list(known) if known is not None else [None] * len(boxes)
        if len(known) != len(boxes):
            raise ValueError(f"known must have one entry per box ({len(boxes)}), got {len(known)}")
        self._advance_clock(float(stamp_s))
        ids: list[int] = [-1] * len(boxes)
        warm: list[Optional[Person]] = [None] * len(boxes)
        for i, tid in enumerate(known):
            if tid is not None and tid in self._tracks and tid not in ids:
                ids[i], warm[i] = tid, self._tracks[tid].person
        tracks = [t for t in self._tracks.values() if t.id not in ids]
        open_boxes = [i for i in range(len(boxes)) if ids[i] < 0]
        if tracks and open_boxes:
            cost = self._cost(tracks, boxes[open_boxes], None if roots is None else roots[open_boxes])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _GATED:
                    ids[open_boxes[c]] = tracks[r].id
                    warm[open_boxes[c]] = tracks[r].person
        for i in range(len(boxes)):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
        return ids, warm

    def update(self, people: list[Person], stamp_s: float,
               next_boxes: Optional[Sequence[Optional[np.ndarray]]] = None) -> None:
        """Record the people estimated this frame (their ``id`` from ``assign``) as track states;
        ``next_boxes``: per person where to look for them next frame (tracking mode), or None."""
        stamp_s = float(stamp_s)
        next_boxes = list(next_boxes) if next_boxes is not None else [None] * len(people)
        if len(next_boxes) != len(people):
            raise ValueError(f"next_boxes must have one entry per person ({len(people)}), got {len(next_boxes)}")
        if self._since_detection is not None:
            self._since_detection += 1
        present = {int(p.id) for p in people}
        for track in self._tracks.values():  # one processed frame: count it for the absent
            if track.id not in present:
                track.missed += 1
        for person, next_box in zip(people, next_boxes):
            root = np.asarray(person.transl, dtype=np.float64).reshape(3)
            track = self._tracks.get(int(person.id))
            seen = stamp_s if track is None else max(track.last_seen_s, stamp_s)
            self._tracks[int(person.id)] = Track(
                int(person.id), np.asarray(person.bbox, dtype=np.float64).reshape(4),
                root if np.all(np.isfinite(root)) else None, seen, person,
                next_box=None if next_box is None else np.asarray(next_box, np.float64).reshape(4))
            self._next_id = max(self._next_id, int(person.id) + 1)
        self._latest_s = stamp_s if self._latest_s is None else max(self._latest_s, stamp_s)

    def _advance_clock(self, stamp_s: float) -> None:
        """Reset on a large step back; drop tracks older than the timeout (never into the past)."""
        if self._latest_s is not None and stamp_s < self._latest_s - self.config.max_backward_jump_s:
            LOG.warning("tracker: stamp went back %.3f s (clock reset?): dropping all tracks",
                        self._latest_s - stamp_s)
            self.reset()
            self.resets += 1
        now = stamp_s if self._latest_s is None else max(self._latest_s, stamp_s)
        self._latest_s = now
        expired = [tid for tid, t in self._tracks.items()
                   if now - t.last_seen_s > self.config.timeout_s and t.missed >= self.config.min_missed_frames]
        for tid in expired:
            del self._tracks[tid]

    def _cost(self, tracks: list[Track], boxes: np.ndarray, roots: Optional[np.ndarray]) -> np.ndarray:
        """len(tracks) x N assignment cost; pairs that no gate admits cost _GATED."""
        cfg = self.config
        iou = box_iou(np.stack([t.box for t in tracks]), boxes)
        dist = np.full(iou.shape, np.inf)
        if roots is not None:
            for r, track in enumerate(tracks):
                if track.root is not None:
                    dist[r] = np.linalg.norm(roots - track.root[None, :], axis=1)
        dist = np.where(np.isfinite(dist), dist, np.inf)
        admitted = (iou >= max(cfg.iou_gate, 1e-9)) | (dist <= cfg.distance_gate_m)
        dist_term = np.where(np.isfinite(dist), np.minimum(dist / cfg.distance_gate_m, 1.0), 1.0)
        cost = cfg.iou_weight * (1.0 - iou) + cfg.distance_weight * dist_term
        return np.where(admitted, cost, _GATED)
