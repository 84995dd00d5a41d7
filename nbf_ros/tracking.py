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
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from nbf_ros.config import TrackerConfig
from nbf_ros.geometry.boxes import box_iou
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

    def assign(self, boxes: np.ndarray, roots: Optional[np.ndarray], stamp_s: float
               ) -> tuple[list[int], list[Optional[Person]]]:
        """Give each box a track id and that track's last Person (None for new tracks).

        Args:
            boxes: N x 4 [x0, y0, x1, y1] pixels.
            roots: N x 3 body translations in metres, camera frame (the same quantity as
                ``Person.transl``, which ``update`` stores: the pipeline's regressed ``transl``),
                or None when unknown (rows with a non-finite value count as unknown).
            stamp_s: image stamp in seconds.
        Returns:
            (ids, warm): N ids (existing or new, all distinct) and N warm-start Persons or None.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
        if roots is not None:
            roots = np.asarray(roots, dtype=np.float64)
            if roots.shape != (len(boxes), 3):
                raise ValueError(f"roots must be N x 3 with N = {len(boxes)}, got {roots.shape}")
        self._advance_clock(float(stamp_s))
        tracks = list(self._tracks.values())
        ids: list[int] = [-1] * len(boxes)
        warm: list[Optional[Person]] = [None] * len(boxes)
        if tracks and len(boxes):
            cost = self._cost(tracks, boxes, roots)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _GATED:
                    ids[c] = tracks[r].id
                    warm[c] = tracks[r].person
        for i in range(len(boxes)):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
        return ids, warm

    def update(self, people: list[Person], stamp_s: float) -> None:
        """Record the people estimated this frame (their ``id`` from ``assign``) as track states."""
        stamp_s = float(stamp_s)
        present = {int(p.id) for p in people}
        for track in self._tracks.values():  # one processed frame: count it for the absent
            if track.id not in present:
                track.missed += 1
        for person in people:
            root = np.asarray(person.transl, dtype=np.float64).reshape(3)
            track = self._tracks.get(int(person.id))
            seen = stamp_s if track is None else max(track.last_seen_s, stamp_s)
            self._tracks[int(person.id)] = Track(
                int(person.id), np.asarray(person.bbox, dtype=np.float64).reshape(4),
                root if np.all(np.isfinite(root)) else None, seen, person)
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
