"""Tracker: ids stable on synthetic sequences, gates, timeouts, clock resets (brute-force refs)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from nbf_ros.config import TrackerConfig
from nbf_ros.geometry.boxes import box_iou
from nbf_ros.tracking import Tracker
from nbf_ros.types import NUM_JOINTS, Person


def make_person(pid: int, box, root) -> Person:
    joints = np.tile(np.asarray(root, dtype=np.float64), (NUM_JOINTS, 1))
    z = np.zeros
    return Person(pid, np.asarray(box, dtype=np.float64), joints, z((NUM_JOINTS, 2)), np.ones(NUM_JOINTS),
                  0.9, z(10), z(3), z(69), np.asarray(root, dtype=np.float64))


def step(tracker: Tracker, boxes, roots, stamp):
    ids, warm = tracker.assign(np.asarray(boxes, float), None if roots is None else np.asarray(roots, float),
                               stamp)
    tracker.update([make_person(i, b, r) for i, b, r in
                    zip(ids, boxes, roots if roots is not None else [[0, 0, np.nan]] * len(boxes))], stamp)
    return ids, warm


def test_box_iou_matches_brute_force():
    rng = np.random.default_rng(1)
    a = np.sort(rng.uniform(0, 10, (5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 10, (4, 2, 2)), axis=1).transpose(0, 2, 1).reshape(4, 4)[:, [0, 2, 1, 3]]
    grid = np.linspace(0, 10, 801)[:-1] + 10 / 1600  # pixel-centre sampling of the plane
    xx, yy = np.meshgrid(grid, grid)
    inside = lambda r: (xx >= r[0]) & (xx < r[2]) & (yy >= r[1]) & (yy < r[3])  # noqa: E731
    ref = np.array([[(inside(p) & inside(q)).sum() / max((inside(p) | inside(q)).sum(), 1) for q in b] for p in a])
    np.testing.assert_allclose(box_iou(a, b), ref, atol=0.02)


def test_ids_stable_for_people_walking_and_crossing():
    """Two people cross in the image at different depths: 3D distance keeps their ids apart."""
    tracker = Tracker(TrackerConfig(iou_gate=0.3, distance_gate_m=0.5))
    first_ids = None
    for t in range(40):
        x_a, x_b = 100 + 10 * t, 500 - 10 * t  # they cross at t = 20
        boxes = [[x_a, 100, x_a + 60, 300], [x_b, 110, x_b + 60, 290]]
        roots = [[-1.0 + 0.05 * t, 0.0, 3.0], [1.0 - 0.05 * t, 0.0, 5.0]]
        ids, warm = step(tracker, boxes, roots, 0.1 * t)
        if first_ids is None:
            first_ids = ids
            assert warm == [None, None]
        else:
            assert ids == first_ids, f"ids changed at frame {t}: {ids} vs {first_ids}"
            assert [w.id for w in warm] == ids
    assert len(set(first_ids)) == 2


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(3)
    cfg = TrackerConfig(iou_gate=0.0, distance_gate_m=10.0)
    for _ in range(20):
        tracker = Tracker(cfg)
        boxes0 = np.column_stack([rng.uniform(0, 400, 4), rng.uniform(0, 200, 4)])
        boxes0 = np.hstack([boxes0, boxes0 + 80])
        roots0 = rng.uniform(-2, 2, (4, 3)) + [0, 0, 5]
        ids0, _ = step(tracker, boxes0, roots0, 0.0)
        perm = rng.permutation(4)
        boxes1 = boxes0[perm] + rng.normal(0, 15, (4, 4))
        roots1 = roots0[perm] + rng.normal(0, 0.2, (4, 3))
        ids1, _ = tracker.assign(boxes1, roots1, 0.1)
        cost = tracker._cost(list(tracker._tracks.values()), boxes1, roots1)
        best = min(itertools.permutations(range(4)), key=lambda p: sum(cost[p[j], j] for j in range(4)))
        expected = [list(tracker._tracks)[best[j]] for j in range(4)]
        assert ids1 == expected


def test_new_ids_for_far_boxes_and_monotonic_never_reused():
    tracker = Tracker(TrackerConfig(timeout_s=0.5, min_missed_frames=2))
    ids0, _ = step(tracker, [[0, 0, 50, 100]], [[0, 0, 3]], 0.0)
    ids1, _ = step(tracker, [[400, 0, 450, 100]], [[3, 0, 3]], 0.1)  # no overlap, 3 m away
    assert ids1[0] != ids0[0]
    for t in (0.2, 0.3):  # two empty frames: both tracks missed >= 2 frames
        step(tracker, [], None, t)
    # Both tracks time out; the same place later gets a fresh id, never an old one.
    ids2, warm2 = step(tracker, [[0, 0, 50, 100]], [[0, 0, 3]], 2.0)
    assert ids2[0] > max(ids0[0], ids1[0]) and warm2 == [None]
    assert tracker.track_ids == [ids2[0]]


def test_slow_pipeline_keeps_tracks_longer_than_the_timeout():
    """Frames 2 s apart with a 1 s timeout: the person is in every frame, so the id stays."""
    tracker = Tracker(TrackerConfig(timeout_s=1.0, min_missed_frames=3))
    ids = [step(tracker, [[100 + t, 0, 150 + t, 100]], [[0, 0, 3]], 2.0 * t)[0][0] for t in range(5)]
    assert len(set(ids)) == 1
    # Once absent for 3 processed frames and > 1 s, the track goes.
    for t in range(5, 8):
        step(tracker, [], None, 2.0 * t)
    assert step(tracker, [[100, 0, 150, 100]], [[0, 0, 3]], 16.0)[0][0] != ids[0]


def test_occluded_shrunken_box_keeps_id_through_3d_gate():
    tracker = Tracker(TrackerConfig(iou_gate=0.5, distance_gate_m=0.5))
    ids0, _ = step(tracker, [[100, 100, 200, 400]], [[0, 0, 4]], 0.0)
    ids1, _ = step(tracker, [[100, 100, 200, 180]], [[0.05, 0, 4]], 0.1)  # IoU 0.27 < gate
    assert ids1 == ids0


def test_timeout_and_clock_reset_and_small_reorder():
    cfg = TrackerConfig(timeout_s=1.0, max_backward_jump_s=0.5)
    tracker = Tracker(cfg)
    ids0, _ = step(tracker, [[0, 0, 50, 100]], [[0, 0, 3]], 10.0)
    ids1, _ = step(tracker, [[2, 0, 52, 100]], [[0, 0, 3]], 10.9)
    assert ids1 == ids0
    # A frame 0.2 s in the past (reordered): still matched, nothing dropped.
    ids2, _ = step(tracker, [[1, 0, 51, 100]], [[0, 0, 3]], 10.7)
    assert ids2 == ids0 and tracker.resets == 0
    # A clock reset (bag loop): tracks are dropped, a new id is issued.
    ids3, warm3 = step(tracker, [[1, 0, 51, 100]], [[0, 0, 3]], 1.0)
    assert tracker.resets == 1 and ids3[0] != ids0[0] and warm3 == [None]


def test_empty_frames_and_bad_input():
    tracker = Tracker()
    assert tracker.assign(np.zeros((0, 4)), None, 0.0) == ([], [])
    with pytest.raises(ValueError):
        tracker.assign(np.zeros((2, 4)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError):
        Tracker(TrackerConfig(timeout_s=0.0))
    # Without roots the tracker still works from IoU alone.
    ids0, _ = step(tracker, [[0, 0, 50, 100]], None, 0.0)
    ids1, _ = step(tracker, [[5, 0, 55, 100]], None, 0.1)
    assert ids0 == ids1
